"""PaperBrokerActor round-trips: a real actor around a real engine, real inboxes."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import pykka
import pytest

from actors._published import Published
from actors.broker import (
    BrokerSnapshot,
    ChargeSchedule,
    MatchingEngine,
    PaperBrokerActor,
    build_engine,
)
from actors.config._schema import ChargesConfig, Config, PaperConfig
from messages import (
    CancelBrokerOrder,
    Exchange,
    FindOrdersByTag,
    Instrument,
    InstrumentKind,
    Money,
    OrderLeg,
    OrderOutcomeUnknown,
    OrderPlaced,
    OrderRejected,
    OrderRequest,
    OrdersFound,
    OrderStatus,
    OrderType,
    OrderUpdated,
    PlaceOrder,
    Price,
    QueryOrder,
    RecordPrices,
    Side,
)
from tests.support import Recorder, wait_until

IST = ZoneInfo("Asia/Kolkata")
NOW = datetime(2026, 3, 10, 10, 0, tzinfo=IST)
CE = Instrument(1, Exchange.NFO, "NIFTY26DEC24000CE", "NIFTY", InstrumentKind.CE, 65, Money(5),
                date(2026, 12, 29), Money(2400000))


def rs(text: str) -> Money:
    return Money.from_rupees(Decimal(text))


def quote(last: str, bid: str, ask: str, at: datetime = NOW) -> RecordPrices:
    return RecordPrices((Price(CE.instrument_token, rs(last), at, at, rs(bid), rs(ask)),))


def order(tag: str, side: Side = Side.BUY, order_type: OrderType = OrderType.MARKET,
          limit: str | None = None) -> OrderRequest:
    return OrderRequest(tag, OrderLeg(CE, side, 65, order_type,
                                      limit_price=None if limit is None else rs(limit)))


@dataclass
class Broker:
    ref: pykka.ActorRef[PaperBrokerActor]
    listener: Recorder
    replies: Recorder
    snapshot: Published[BrokerSnapshot]

    def latest(self) -> BrokerSnapshot:
        return self.snapshot.latest()


@pytest.fixture(autouse=True)
def _stop_actors() -> Iterator[None]:
    yield
    pykka.ActorRegistry.stop_all()


def start(paper: PaperConfig | None = None) -> Broker:
    engine = MatchingEngine(paper or PaperConfig(), ChargeSchedule(ChargesConfig()),
                            rs("1000000"), Decimal("15"), 5)
    listener, replies = Recorder(), Recorder()
    ref = PaperBrokerActor.start(engine, lambda: NOW, listener)
    snapshot = ref.proxy().snapshot.get()
    return Broker(ref, listener, replies, snapshot)


def test_market_order_is_placed_then_its_fill_pushed() -> None:
    broker = start()
    broker.ref.tell(quote("100", "99.95", "100.05"))
    broker.ref.tell(PlaceOrder(order("a1"), reply_to=broker.replies))
    [answer] = broker.replies.wait_for_kind(OrderPlaced)
    [update] = broker.listener.wait_for_kind(OrderUpdated)
    assert answer.tag == "a1" and update.state.broker_order_id == answer.broker_order_id
    assert update.state.status is OrderStatus.COMPLETE and len(update.state.fills) == 1
    wait_until(lambda: broker.latest().fills == 1, what="fill counted")
    snap = broker.latest()
    assert snap.orders_placed == 1 and snap.working_orders == 0
    fill = update.state.fills[0]
    assert snap.funds == rs("1000000") - fill.value - fill.charges


def test_listener_gets_registration_and_first_state_in_one_message() -> None:
    inbox = Recorder()
    ref = PaperBrokerActor.start(build_engine(Config(), rng_seed=1), lambda: NOW, inbox)
    ref.tell(quote("100", "99.95", "100.05"))
    ref.tell(PlaceOrder(order("a1"), reply_to=inbox))
    [placed] = inbox.wait_for_kind(OrderPlaced)
    assert placed.state is not None and placed.state.fills
    assert placed.state.broker_order_id == placed.broker_order_id
    ref.tell(PlaceOrder(order("a2"), reply_to=inbox))
    inbox.wait_for_kind(OrderPlaced, 2)
    assert not inbox.of(OrderUpdated)


def test_no_price_is_rejected() -> None:
    broker = start()
    broker.ref.tell(PlaceOrder(order("a1"), reply_to=broker.replies))
    [rejected] = broker.replies.wait_for_kind(OrderRejected)
    assert rejected.reason == "no market price for NFO:NIFTY26DEC24000CE"
    wait_until(lambda: broker.latest().orders_rejected == 1, what="rejection counted")
    assert broker.listener.messages == []


def test_limit_order_rests_and_fills_on_a_later_price() -> None:
    broker = start()
    broker.ref.tell(quote("100", "99.95", "100.05"))
    broker.ref.tell(PlaceOrder(order("l1", order_type=OrderType.LIMIT, limit="99"),
                               reply_to=broker.replies))
    [placed] = broker.replies.wait_for_kind(OrderPlaced)
    wait_until(lambda: broker.latest().working_orders == 1, what="order resting")
    assert broker.latest().blocked > Money(0)
    broker.ref.tell(quote("98.90", "98.80", "98.85", NOW + timedelta(seconds=1)))
    [update] = broker.listener.wait_for_kind(OrderUpdated)
    assert update.state.broker_order_id == placed.broker_order_id
    assert update.state.fills[0].price == rs("98.85")
    wait_until(lambda: broker.latest().blocked == Money(0), what="hold released")


def test_older_prices_are_ignored_and_counted() -> None:
    broker = start()
    broker.ref.tell(quote("100", "99.95", "100.05"))
    broker.ref.tell(PlaceOrder(order("l1", order_type=OrderType.LIMIT, limit="99"),
                               reply_to=broker.replies))
    broker.replies.wait_for_kind(OrderPlaced)
    broker.ref.tell(quote("98", "97.95", "98.05", NOW - timedelta(seconds=1)))
    wait_until(lambda: broker.latest().stale_prices == 1, what="stale price counted")
    assert broker.listener.messages == []


def test_cancel_pushes_to_listener_and_replies_to_a_different_inbox() -> None:
    broker = start()
    broker.ref.tell(quote("100", "99.95", "100.05"))
    broker.ref.tell(PlaceOrder(order("l1", order_type=OrderType.LIMIT, limit="90"),
                               reply_to=broker.replies))
    [placed] = broker.replies.wait_for_kind(OrderPlaced)
    broker.ref.tell(CancelBrokerOrder(placed.broker_order_id, "l1", reply_to=broker.replies))
    [reply] = broker.replies.wait_for_kind(OrderUpdated)
    [pushed] = broker.listener.wait_for_kind(OrderUpdated)
    assert reply.state.status is pushed.state.status is OrderStatus.CANCELLED
    # reply_to is the listener: told once, not twice
    broker.ref.tell(CancelBrokerOrder(placed.broker_order_id, "l1", reply_to=broker.listener))
    broker.listener.wait_for_kind(OrderUpdated, count=2)
    broker.ref.tell(FindOrdersByTag("l1", reply_to=broker.replies))
    broker.replies.wait_for_kind(OrdersFound)
    assert len(broker.listener.of(OrderUpdated)) == 2


def test_query_and_find_by_tag_round_trip() -> None:
    broker = start()
    broker.ref.tell(quote("100", "99.95", "100.05"))
    broker.ref.tell(PlaceOrder(order("q1"), reply_to=broker.replies))
    [placed] = broker.replies.wait_for_kind(OrderPlaced)
    broker.ref.tell(QueryOrder(placed.broker_order_id, "q1", reply_to=broker.replies))
    [queried] = broker.replies.wait_for_kind(OrderUpdated)
    assert queried.state.status is OrderStatus.COMPLETE and len(queried.state.fills) == 1
    broker.ref.tell(FindOrdersByTag("q1", reply_to=broker.replies))
    broker.ref.tell(FindOrdersByTag("none", reply_to=broker.replies))
    found, empty = broker.replies.wait_for_kind(OrdersFound, count=2)
    assert [s.broker_order_id for s in found.orders] == [placed.broker_order_id]
    assert empty.tag == "none" and empty.orders == ()


def test_unknown_outcome_is_reported_and_resolved_by_tag() -> None:
    broker = start(PaperConfig(unknown_outcome_ratio=Decimal(1)))
    broker.ref.tell(quote("100", "99.95", "100.05"))
    broker.ref.tell(PlaceOrder(order("u1"), reply_to=broker.replies))
    [unknown] = broker.replies.wait_for_kind(OrderOutcomeUnknown)
    assert unknown.tag == "u1" and broker.replies.of(OrderPlaced) == []
    broker.ref.tell(FindOrdersByTag("u1", reply_to=broker.replies))
    [found] = broker.replies.wait_for_kind(OrdersFound)
    [state] = found.orders
    assert state.status is OrderStatus.COMPLETE and len(state.fills) == 1
    wait_until(lambda: broker.latest().unknown_outcomes == 1, what="unknown counted")


def test_stuck_order_can_be_cancelled_through_the_actor() -> None:
    broker = start(PaperConfig(stuck_ratio=Decimal(1)))
    broker.ref.tell(quote("100", "99.95", "100.05"))
    broker.ref.tell(PlaceOrder(order("k1"), reply_to=broker.replies))
    [placed] = broker.replies.wait_for_kind(OrderPlaced)
    broker.ref.tell(quote("100", "99.95", "100.05", NOW + timedelta(seconds=1)))
    broker.ref.tell(QueryOrder(placed.broker_order_id, "k1", reply_to=broker.replies))
    [queried] = broker.replies.wait_for_kind(OrderUpdated)
    assert queried.state.status is OrderStatus.OPEN_PENDING
    broker.ref.tell(CancelBrokerOrder(placed.broker_order_id, "k1"))
    [cancelled] = broker.listener.wait_for_kind(OrderUpdated)
    assert cancelled.state.status is OrderStatus.CANCELLED


def test_unknown_ids_and_unhandled_messages_are_counted_not_fatal() -> None:
    broker = start()
    broker.ref.tell(CancelBrokerOrder("123", "x1", reply_to=broker.replies))
    broker.ref.tell(QueryOrder("123", "x1", reply_to=broker.replies))
    broker.ref.tell("not a message")
    wait_until(lambda: broker.latest().unknown_order_ids == 2
               and broker.latest().unhandled_messages == 1, what="counted")
    broker.ref.tell(FindOrdersByTag("x1", reply_to=broker.replies))
    broker.replies.wait_for_kind(OrdersFound)  # still alive
    assert broker.replies.of(OrderUpdated) == []


class _Sink(pykka.ThreadingActor):
    def on_receive(self, message: Any) -> Any:
        return None


def test_a_dead_listener_does_not_kill_the_broker() -> None:
    dead = _Sink.start()
    dead.stop()
    engine = build_engine(Config(), rng_seed=1)
    replies = Recorder()
    ref = PaperBrokerActor.start(engine, lambda: NOW, dead)
    snapshot: Published[BrokerSnapshot] = ref.proxy().snapshot.get()
    ref.tell(quote("100", "99.95", "100.05"))
    ref.tell(PlaceOrder(order("d1"), reply_to=replies))
    replies.wait_for_kind(OrderPlaced)
    wait_until(lambda: snapshot.latest().dead_letters == 1, what="dead letter counted")
    assert ref.is_alive()


def test_snapshot_cell_can_be_supplied() -> None:
    engine = build_engine(Config(), rng_seed=1)
    cell = Published(BrokerSnapshot(Money(0), Money(0), Money(0)))
    PaperBrokerActor.start(engine, lambda: NOW, Recorder(), snapshot=cell)
    assert cell.latest().funds == rs("1000000")
