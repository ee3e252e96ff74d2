"""Live reconciliation: the book against the Kite simulator's positions, orders and GTTs,
the fail-closed start-up gate, and the paper book that is never reconciled."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path
from types import MappingProxyType
from typing import Any

import pykka
import pytest
import requests

import messages as m
from actors import _drift
from actors._order import OrdersSnapshot
from actors._ratelimit import RateBook, RateLimitActor
from actors._resolve import BrokerTrade, foreign_trades, plan
from actors._saga import Role, make_tag
from actors._sync import AWAITING, Reconcile, ReconcileSkipped, SyncActor, SyncWiring
from actors._system import Engine
from actors.kite import LiveSession
from actors.kite._convert import BrokerReplyError
from actors.market import IST
from tests.engine_support import running
from tests.live_support import (
    LiveHarness,
    as_user,
    live_config,
    live_engine,
    restarts,
    simulator,
    store_token,
    zerodha_env,
)
from tests.support import Recorder, wait_until

RULES = m.ExitRules(Decimal(25), Decimal(40))
NOW = datetime(2026, 11, 25, 10, 0, tzinfo=IST)


def started(h: LiveHarness) -> str:
    """Wait for the start-up reconciliation to decide; its verdict."""
    wait_until(lambda: h.engine.sync_snapshot.startup != "pending", 15, what="start-up")
    return h.engine.sync_snapshot.startup


def reconcile(h: LiveHarness) -> m.Reconciled:
    inbox = Recorder()
    h.engine.sync.tell(Reconcile(inbox))
    return inbox.wait_for_kind(m.Reconciled, timeout=15)[0]


def drifts(h: LiveHarness, kind: m.DriftKind) -> list[m.DriftDetected]:
    return [d for d in h.events.of(m.DriftDetected) if d.kind is kind]


def granted(h: LiveHarness) -> int:
    book: RateBook = h.engine.limiter.proxy().snapshot.get().latest()
    return book.granted[m.EndpointClass.OTHER]


def buy(h: LiveHarness, instrument: m.Instrument) -> None:
    leg = m.OrderLeg(instrument, m.Side.BUY, instrument.lot_size, m.OrderType.MARKET,
                     m.Product.NRML)
    h.engine.orders.tell(m.SubmitEntry("t", (leg,), RULES))


def protected_entry(h: LiveHarness) -> m.Instrument:
    """Start-up clean, one entry filled, its GTT placed: the option it holds."""
    assert started(h) == "clean"
    wait_until(lambda: h.engine.orders_snapshot.state is m.TradingState.ACTIVE)
    option = h.option()
    h.priced(option)
    buy(h, option)
    [entry] = h.ended(1)
    assert isinstance(entry, m.SagaCompleted)
    wait_until(lambda: h.engine.gateway_snapshot.protected == 1, what="GTT placed")
    return option


def book_behind_the_back(url: str, instrument: m.Instrument, quantity: int) -> None:
    reply = requests.post(f"{url}/_sim/positions", json={
        "exchange": instrument.exchange.value, "tradingsymbol": instrument.tradingsymbol,
        "quantity": quantity, "product": "NRML", "price": 100}, timeout=5)
    assert reply.status_code == 200, reply.text


# -- against the simulator -------------------------------------------------------------


def test_a_clean_start_resumes_trading_and_every_call_took_a_permit(tmp_path: Path) -> None:
    with live_engine(tmp_path) as h:
        assert started(h) == "clean"
        wait_until(lambda: h.engine.orders_snapshot.state is m.TradingState.ACTIVE,
                   what="trading resumed")
        states = [(c.state, c.reason) for c in h.events.of(m.TradingStateChanged)]
        assert states == [(m.TradingState.HALTED, AWAITING),
                          (m.TradingState.ACTIVE, "start-up reconciliation clean")]
        before_calls = h.engine.sync_snapshot.counts["calls"]
        before_permits = granted(h)
        done = reconcile(h)
        assert done.ok and done.drifts == 0 and done.reason == ""
        assert set(done.checked) == set(m.SyncCheck)
        snap = h.engine.sync_snapshot
        assert snap.round_ok is True and snap.round_at is not None
        assert snap.round_at.tzinfo is not None and snap.drifts == ()
        assert {c: s.result for c, s in snap.checks.items()} == dict.fromkeys(m.SyncCheck, "ok")
        assert snap.summary() == "positions ok, orders ok, gtts ok"
        calls = snap.counts["calls"] - before_calls
        assert calls == 3 and granted(h) - before_permits >= calls
        assert h.stats()["breaches"]["count"] == 0
        assert h.engine.failures() == ()


def test_a_trade_behind_the_engines_back_is_reported(tmp_path: Path) -> None:
    with live_engine(tmp_path, KITESAGA_SYNC_RESOLVE_DRIFTS="false") as h:
        assert started(h) == "clean"
        option = h.option()
        book_behind_the_back(h.server.url, option, option.lot_size)
        done = reconcile(h)
        assert not done.ok and done.drifts == 1
        assert "POSITION_MISSING_IN_BOOK x1" in done.reason
        [drift] = drifts(h, m.DriftKind.POSITION_MISSING_IN_BOOK)
        assert (drift.key, drift.engine, drift.broker) == (option.key, 0, option.lot_size)
        assert drift.instrument_token == option.instrument_token and drift.product == "NRML"
        assert h.engine.sync_snapshot.drifts == (drift,)
        assert h.engine.sync_snapshot.checks[m.SyncCheck.POSITIONS].result == "drift"
        # a later drift is reported, announced once, and changes no trading state
        assert reconcile(h).drifts == 1
        assert len(drifts(h, m.DriftKind.POSITION_MISSING_IN_BOOK)) == 1
        assert h.engine.orders_snapshot.state is m.TradingState.ACTIVE
        assert h.engine.portfolio_snapshot.open_positions == 0  # reported, not acted on


def external(h: LiveHarness, token: int) -> int:
    view = h.engine.portfolio_snapshot.positions.get((m.EXTERNAL, token))
    return view.quantity if view is not None else 0


def test_a_trade_behind_the_engines_back_is_adopted_as_external(tmp_path: Path) -> None:
    with live_engine(tmp_path) as h:
        assert started(h) == "clean"
        option = h.option()
        h.priced(option)
        before = h.engine.portfolio_snapshot
        book_behind_the_back(h.server.url, option, option.lot_size)
        assert not reconcile(h).ok  # declared (settled), then resolved
        wait_until(lambda: external(h, option.instrument_token) == option.lot_size,
                   what="the broker's position adopted as EXTERNAL")
        snap = h.engine.portfolio_snapshot
        assert snap.cash == before.cash  # paid for outside the book: a capital transfer
        assert snap.transfers == option.lot_size * 100_00 and snap.conservation_error == 0
        wait_until(lambda: reconcile(h).ok, what="the book agrees with the broker again")
        assert h.engine.sync_snapshot.counts["resolutions"] == 1
        # protective exit rules: a GTT protects the adopted position at the broker
        wait_until(lambda: h.engine.gateway_snapshot.protected == 1, what="GTT placed")
        assert h.engine.orders_snapshot.stats["reconciled_fills"] == 1
        assert h.engine.orders_snapshot.state is m.TradingState.ACTIVE
        assert h.engine.failures() == ()


def test_a_book_position_closed_behind_the_back_is_closed_on_the_evidence(
        tmp_path: Path) -> None:
    with live_engine(tmp_path) as h:
        option = protected_entry(h)
        held = h.engine.portfolio_snapshot
        cash = held.cash
        book_behind_the_back(h.server.url, option, -option.lot_size)  # sold at ₹100
        reconcile(h)
        wait_until(lambda: h.engine.portfolio_snapshot.open_positions == 0,
                   what="the book position closed on the broker's trade")
        snap = h.engine.portfolio_snapshot
        assert snap.cash == cash + option.lot_size * 100_00  # the book's own money moved
        assert snap.transfers == 0 and snap.conservation_error == 0
        assert h.engine.orders_snapshot.open_positions == 0
        wait_until(lambda: h.engine.gateway_snapshot.protected == 0, what="GTT deleted")
        wait_until(lambda: reconcile(h).ok, what="the book agrees with the broker again")
        assert h.engine.failures() == ()


@contextmanager
def engine_after(tmp_path: Path, before: Any, **env: str) -> Iterator[LiveHarness]:
    """A simulator on which ``before(server, session)`` acts, then a live engine on it."""
    config = live_config(tmp_path, **env)
    with simulator(config) as server:
        zenv = zerodha_env(server)
        store_token(server, config, zenv)
        session = LiveSession.connect(config, zenv)
        before(server, session)
        events = Recorder()
        engine = Engine(config, run_strategies=False, listeners=(events,),
                        session=session).start()
        try:
            yield LiveHarness(server, engine, events, zenv)
        finally:
            engine.stop(drain=False)
            pykka.ActorRegistry.stop_all()


def hold_an_option(held: list[m.Instrument], quantity: int) -> Callable[[Any, LiveSession], None]:
    def book(server: Any, session: LiveSession) -> None:
        expiry = min(session.instruments.expiries("NIFTY"))
        held.append(sorted(session.instruments.options("NIFTY", expiry),
                           key=lambda i: i.instrument_token)[0])
        book_behind_the_back(server.url, held[0], quantity * held[0].lot_size)
    return book


def test_a_position_held_before_start_keeps_new_entries_halted(tmp_path: Path) -> None:
    held: list[m.Instrument] = []
    with engine_after(tmp_path, hold_an_option(held, -1),
                      KITESAGA_SYNC_RESOLVE_DRIFTS="false") as h:
        assert started(h) == "drift"
        snap = h.engine.sync_snapshot
        assert "1 drift(s): POSITION_MISSING_IN_BOOK x1" in snap.startup_reason
        wait_until(lambda: "POSITION_MISSING_IN_BOOK" in h.engine.orders_snapshot.state_reason,
                   what="the halt names the drift")
        assert h.engine.orders_snapshot.state is m.TradingState.HALTED
        [drift] = drifts(h, m.DriftKind.POSITION_MISSING_IN_BOOK)
        assert (drift.key, drift.engine, drift.broker) == (held[0].key, 0, -held[0].lot_size)
        option = h.option()
        h.priced(option)
        buy(h, option)
        assert "HALTED" in h.events.wait_for_kind(m.SagaRefused)[0].reason
        assert h.stats()["orders"] == 1  # only the trade booked before the engine started


def test_a_position_held_before_start_is_adopted_and_trading_starts(tmp_path: Path) -> None:
    held: list[m.Instrument] = []
    with engine_after(tmp_path, hold_an_option(held, -1)) as h:
        assert started(h) == "clean"
        token = held[0].instrument_token
        assert external(h, token) == -held[0].lot_size
        snap = h.engine.portfolio_snapshot
        assert snap.conservation_error == 0 and snap.transfers == -held[0].lot_size * 100_00
        wait_until(lambda: h.engine.orders_snapshot.state is m.TradingState.ACTIVE,
                   what="trading resumed once the book followed the broker")
        assert h.engine.sync_snapshot.counts["resolutions"] == 1
        wait_until(lambda: h.engine.gateway_snapshot.protected == 1,
                   what="a BUY GTT protects the adopted short")
        client = h.engine.live.client()  # type: ignore[union-attr]
        [gtt] = as_user(client.get_gtts)
        assert gtt["orders"][0]["transaction_type"] == "BUY"
        assert gtt["condition"]["tradingsymbol"] == held[0].tradingsymbol


def test_a_broker_down_at_start_halts_with_the_error_after_the_timeout(tmp_path: Path) -> None:
    def down(server: Any, session: LiveSession) -> None:
        server.set_faults("error_5xx=1")

    with engine_after(tmp_path, down, KITESAGA_SYNC_STARTUP_TIMEOUT_S="1",
                      KITESAGA_SYNC_STARTUP_RETRY_S="0.2") as h:
        assert started(h) == "error"
        snap = h.engine.sync_snapshot
        assert snap.counts["startup_attempts"] >= 2
        assert "start-up reconciliation failed" in snap.startup_reason
        assert snap.checks[m.SyncCheck.POSITIONS].result == "error"
        wait_until(lambda: "failed" in h.engine.orders_snapshot.state_reason,
                   what="the halt names the error")
        assert h.engine.orders_snapshot.state is m.TradingState.HALTED
        h.server.set_faults("")
        assert reconcile(h).ok  # the broker is back: reported, yet trading stays halted
        assert h.engine.orders_snapshot.state is m.TradingState.HALTED
        assert h.engine.failures() == ()


def test_orders_placed_outside_the_engine_are_unknown_to_the_book(tmp_path: Path) -> None:
    with live_engine(tmp_path) as h:
        assert started(h) == "clean"
        option = h.option()
        client = h.engine.live.client()  # type: ignore[union-attr]  # a user's own client
        ids = {as_user(lambda tag=tag: client.place_order(  # type: ignore[misc]
            "regular", "NFO", option.tradingsymbol, "BUY", option.lot_size, "NRML", "LIMIT",
            price=float(option.tick_size.rupees), validity="DAY", tag=tag))
            for tag in (None, "MANUAL1")}
        done = reconcile(h)
        unknown = drifts(h, m.DriftKind.ORDER_UNKNOWN_TO_BOOK)
        assert {d.key for d in unknown} == ids and done.drifts == 2
        assert all(d.engine == 0 and d.broker == option.lot_size for d in unknown)
        assert any("'MANUAL1'" in d.detail for d in unknown)


def test_gtts_are_matched_to_protected_positions(tmp_path: Path) -> None:
    with live_engine(tmp_path) as h:
        option = protected_entry(h)
        assert reconcile(h).ok  # the engine's own GTT protects its position
        client = h.engine.live.client()  # type: ignore[union-attr]
        [ours] = as_user(client.get_gtts)
        as_user(lambda: client.delete_gtt(ours["id"]))
        other = h.option(offset=2)
        h.priced(other)
        paise = h.engine.prices.proxy().snapshot.get().latest().prices[
            other.instrument_token].last.paise
        tick = other.tick_size.paise
        triggers = [(paise // 2) // tick * tick / 100, (paise * 2) // tick * tick / 100]
        legs = [{"exchange": "NFO", "tradingsymbol": other.tradingsymbol, "price": p,
                 "transaction_type": "SELL", "quantity": other.lot_size,
                 "order_type": "LIMIT", "product": "NRML"} for p in triggers]
        foreign = as_user(lambda: client.place_gtt(
            "two-leg", other.tradingsymbol, "NFO", triggers, paise / 100, legs))["trigger_id"]
        done = reconcile(h)
        assert done.drifts == 2, done
        [missing] = drifts(h, m.DriftKind.GTT_MISSING)
        assert missing.key == f"t:{option.instrument_token}"
        assert (missing.engine, missing.broker) == (option.lot_size, 0)
        [unknown] = drifts(h, m.DriftKind.GTT_UNKNOWN)
        assert unknown.key == str(foreign) and unknown.broker == -other.lot_size
        assert all(d.kind.check is m.SyncCheck.GTTS for d in h.events.of(m.DriftDetected))


def test_a_restarted_engine_adopts_its_positions_gtts_instead_of_placing_more(
        tmp_path: Path) -> None:
    with restarts(tmp_path) as on:
        first = on.engine()
        try:
            wait_until(lambda: first.engine.orders_snapshot.state is m.TradingState.ACTIVE)
            option = first.option()
            first.priced(option)
            buy(first, option)
            [entry] = first.ended(1)
            assert isinstance(entry, m.SagaCompleted)
            wait_until(lambda: first.engine.gateway_snapshot.protected == 1, what="GTT placed")
        finally:
            first.engine.stop()  # the position stays open, and so does its GTT
            pykka.ActorRegistry.stop_all()
        client = first.engine.live.client()  # type: ignore[union-attr]
        [before] = as_user(client.get_gtts)
        second = on.engine()
        try:
            assert started(second) == "clean"
            wait_until(lambda: second.engine.gateway_snapshot.protected == 1, 30,
                       what="the restored position protected")
            counts = second.engine.gateway_snapshot.counts
            assert counts["gtt_adopted"] == 1 and counts["gtt_placed"] == 0
            assert [g["id"] for g in as_user(client.get_gtts)] == [before["id"]]
            assert reconcile(second).ok
        finally:
            second.engine.stop(drain=False)
            pykka.ActorRegistry.stop_all()


def test_the_paper_book_is_never_reconciled() -> None:
    with running() as h:
        call = h.option()
        h.quote(call, 150_00)
        h.submit(m.SubmitEntry.single("t", call, m.Side.BUY, call.lot_size))
        h.events.wait_for_kind(m.SagaCompleted)
        wait_until(lambda: h.engine.orders_snapshot.in_flight == 0)
        book = h.engine.portfolio_snapshot
        inbox = Recorder()
        h.engine.sync.tell(Reconcile(inbox))
        assert "never reconciled" in inbox.wait_for_kind(ReconcileSkipped)[0].reason
        assert h.engine.portfolio_snapshot == book
        assert book.positions[("t", call.instrument_token)].quantity == call.lot_size
        snap = h.engine.sync_snapshot
        assert snap.startup == "skipped" and snap.counts["skipped"] == 1
        assert snap.counts["calls"] == 0
        assert h.engine.orders_snapshot.state is m.TradingState.ACTIVE


# -- the actor against a broken broker reply (a stand-in client, not our code) -----------


class MalformedBroker:
    """A client whose positions reply lacks a field; orders and GTTs are empty."""

    def positions(self) -> Any:
        return {"net": [{"exchange": "NFO", "tradingsymbol": "X", "quantity": "lots"}]}

    def orders(self) -> list[Any]:
        return []

    get_gtts = orders


def test_a_bad_reply_is_an_error_not_a_crash(tmp_path: Path) -> None:
    config = live_config(tmp_path, KITESAGA_SYNC_STARTUP_TIMEOUT_S="0.5",
                         KITESAGA_SYNC_STARTUP_RETRY_S="0.1")
    orders = Recorder()
    limiter = RateLimitActor.start(config.rate_limits)
    flat = OrdersSnapshot(m.TradingState.HALTED, AWAITING, False, 0, 0, 0,
                          MappingProxyType({"sagas_started": 0}))
    wiring = SyncWiring(MalformedBroker(), config, limiter, orders,
                        lambda: _drift.BookView({}, frozenset(), True, True, 0), lambda: flat,
                        lambda: NOW, str)
    ref = SyncActor.start("live", wiring)
    try:
        cell = ref.proxy().snapshot.get()
        wait_until(lambda: cell.latest().startup == "error", what="start-up gave up")
        snap = cell.latest()
        assert snap.counts["bad_replies"] >= 2 and ref.is_alive()
        status = snap.checks[m.SyncCheck.POSITIONS]
        assert status.result == "error" and "instrument_token" in status.error
        assert snap.checks[m.SyncCheck.ORDERS].result == "ok"
        halts = orders.of(m.SetTradingState)
        assert halts[0] == m.SetTradingState(m.TradingState.HALTED, AWAITING)
        assert halts[-1].state is m.TradingState.HALTED and "positions" in halts[-1].reason
        assert all(s.state is m.TradingState.HALTED for s in halts)
    finally:
        ref.stop()
        limiter.stop()


# -- the pure comparisons ----------------------------------------------------------------


def pos(token: int, quantity: int, product: str = "NRML") -> _drift.BrokerPosition:
    return _drift.BrokerPosition(token, f"NFO:SYM{token}", product, quantity)


def test_positions_compare_net_per_instrument_over_strategies_and_products() -> None:
    book = {("a", 1): 65, ("b", 1): 65, ("a", 2): -30, ("a", 3): 10, ("a", 5): 0}
    broker = [pos(1, 65), pos(1, 65, "MIS"), pos(2, -60), pos(4, 75), pos(6, 0)]
    found = {d.instrument_token: d for d in _drift.compare_positions(book, broker, "X:{}".format)}
    assert set(found) == {2, 3, 4}
    assert (found[2].kind, found[2].engine, found[2].broker) == (
        m.DriftKind.QUANTITY_MISMATCH, -30, -60)
    assert (found[3].kind, found[3].key, found[3].engine, found[3].broker) == (
        m.DriftKind.POSITION_MISSING_AT_BROKER, "X:3", 10, 0)
    assert (found[4].kind, found[4].key, found[4].broker) == (
        m.DriftKind.POSITION_MISSING_IN_BOOK, "NFO:SYM4", 75)
    assert "a -30" in found[2].detail and "NRML -60" in found[2].detail


def test_two_observations_declare_what_a_settled_one_declares_at_once() -> None:
    drift = m.DriftDetected(m.DriftKind.QUANTITY_MISMATCH, "NFO:X", 65, 130, "d", 1)
    declared, pending = _drift.confirm([drift], {}, settled=False)
    assert declared == [] and list(pending.values()) == [drift]
    declared, _ = _drift.confirm([drift], pending, settled=False)
    assert declared == [drift]
    moved = dataclasses.replace(drift, broker=195)
    declared, pending = _drift.confirm([moved], pending, settled=False)
    assert declared == [] and moved.identity in pending
    assert _drift.confirm([drift], {}, settled=True)[0] == [drift]
    order = m.DriftDetected(m.DriftKind.ORDER_UNKNOWN_TO_BOOK, "1", 0, 65, "d")
    assert _drift.confirm([order], {}, settled=False)[0] == [order]


def order(tag: str, status: m.OrderStatus = m.OrderStatus.OPEN, age_s: int = 0,
          ) -> _drift.BrokerOrder:
    return _drift.BrokerOrder(f"id-{tag}-{status.value}", tag, status, 7, "NFO:X", "SELL", 65,
                              NOW - timedelta(seconds=age_s))


def test_orders_foreign_stale_and_orphaned() -> None:
    ours, is_ours = make_tag("AB12CD", 0, Role.OPEN), _drift.is_engine_tag
    assert is_ours(ours) and is_ours(make_tag("AB12CD", 1, Role.UNDO, 2))
    assert not is_ours("MANUAL1") and not is_ours("")
    rows = [order(""), order("MANUAL1"), order(ours, age_s=300),
            order(ours, m.OrderStatus.COMPLETE, 900), order(make_tag("ZZ0000", 0, Role.CLOSE))]
    found = _drift.compare_orders(rows, is_ours, settled=False, now=NOW, max_age_s=120)
    assert [(d.kind, d.engine, d.broker) for d in found] == [
        (m.DriftKind.ORDER_UNKNOWN_TO_BOOK, 0, -65), (m.DriftKind.ORDER_UNKNOWN_TO_BOOK, 0, -65),
        (m.DriftKind.STALE_IN_FLIGHT, 120, 300)]
    # nothing of ours in flight: a working order with our tag belongs to no saga
    quiet = _drift.compare_orders(rows, is_ours, settled=True, now=NOW, max_age_s=120)
    assert [d.kind for d in quiet] == [m.DriftKind.ORDER_UNKNOWN_TO_BOOK] * 4


def test_gtts_match_by_instrument_side_and_quantity() -> None:
    positions = {("a", 1): 65, ("b", 2): -30, ("c", 3): 10}
    gtts = [_drift.BrokerGtt(10, "active", 1, "NFO:A", "SELL", 65),
            _drift.BrokerGtt(11, "active", 2, "NFO:B", "SELL", 30),
            _drift.BrokerGtt(12, "triggered", 3, "NFO:C", "SELL", 10),
            _drift.BrokerGtt(13, "active", 9, "NFO:D", "BUY", 50)]
    found = _drift.compare_gtts(gtts, positions, frozenset({("a", 1), ("b", 2), ("c", 3)}))
    assert [(d.kind, d.key, d.engine, d.broker) for d in found] == [
        (m.DriftKind.GTT_MISSING, "b:2", -30, 0), (m.DriftKind.GTT_MISSING, "c:3", 10, 0),
        (m.DriftKind.GTT_UNKNOWN, "11", 0, -30), (m.DriftKind.GTT_UNKNOWN, "13", 0, 50)]
    assert _drift.compare_gtts(gtts[:1], positions, frozenset({("a", 1)})) == []


ROW = {"exchange": "NFO", "tradingsymbol": "X", "instrument_token": 5}


@pytest.mark.parametrize(("parse", "reply", "field"), [
    (_drift.parse_positions, {"day": []}, "positions.net"),
    (_drift.parse_positions, {"net": [{**ROW, "product": "NRML", "quantity": 1.5}]}, "quantity"),
    (_drift.parse_orders, [{"order_id": "1", "status": "DONE"}], "status"),
    (_drift.parse_orders, [{**ROW, "order_id": "1", "status": "OPEN", "transaction_type": "BUY",
                            "pending_quantity": 65, "order_timestamp": "yesterday"}],
     "order_timestamp"),
    (_drift.parse_gtts, [{"id": 1, "status": "active", "condition": {}, "orders": [{}]}],
     "condition.instrument_token"),
    (_drift.parse_gtts, {"id": 1}, "gtts"),
])
def test_bad_replies_name_the_field(parse: Any, reply: Any, field: str) -> None:
    with pytest.raises(BrokerReplyError, match=field.replace(".", r"\.")):
        parse(reply)


def test_good_replies_parse() -> None:
    [p] = _drift.parse_positions({"net": [{**ROW, "product": "MIS", "quantity": -65}]})
    assert p == _drift.BrokerPosition(5, "NFO:X", "MIS", -65)
    [o] = _drift.parse_orders([{**ROW, "order_id": 9, "status": "COMPLETE", "tag": None,
                                "transaction_type": "BUY", "pending_quantity": None,
                                "order_timestamp": datetime(2026, 11, 25, 10, 0)}])
    assert (o.order_id, o.tag, o.pending, o.placed_at) == ("9", "", 0, NOW)
    [g] = _drift.parse_gtts([{"id": 3, "status": "active", "condition": ROW,
                              "orders": [{"transaction_type": "SELL", "quantity": 65}]}])
    assert g == _drift.BrokerGtt(3, "active", 5, "NFO:X", "SELL", 65)


# -- resolution plans (pure) -------------------------------------------------------------


def trade(trade_id: str, side: m.Side, quantity: int, token: int = 7) -> BrokerTrade:
    return BrokerTrade(m.Fill(trade_id, f"o{trade_id}", token, side, quantity, m.Money(120_00),
                              m.Money(0), NOW), "")


def row(quantity: int, average: int = 100_00, token: int = 7) -> _drift.BrokerPosition:
    return _drift.BrokerPosition(token, "NFO:X", "NRML", quantity, average)


def test_what_the_broker_holds_beyond_the_book_is_adopted() -> None:
    decided = plan(7, {}, [row(65)], None, (), RULES, NOW, "missing in book")
    assert decided.expected == 65 and decided.unexplained == ""
    message = decided.message
    assert message is not None and message.evidence == () and message.book_net == 0
    assert message.adopt is not None
    assert (message.adopt.side, message.adopt.quantity, message.adopt.price) == (
        m.Side.BUY, 65, m.Money(100_00))
    excess = plan(7, {"a": 65}, [row(130)], None, (), RULES, NOW, "more at the broker")
    assert excess.message is not None and excess.message.adopt is not None
    assert excess.message.adopt.quantity == 65 and excess.expected == 130
    short = plan(7, {}, [row(-65)], None, (), RULES, NOW, "a short")
    assert short.message is not None and short.message.adopt is not None
    assert short.message.adopt.side is m.Side.SELL and short.expected == -65
    nothing = plan(7, {}, [row(65, average=0)], None, (), RULES, NOW, "no price")
    assert nothing.message is None and "average price" in nothing.unexplained


def test_the_book_is_reduced_only_on_evidence() -> None:
    closed = plan(7, {"a": 65}, [], [trade("T1", m.Side.SELL, 65)], (), RULES, NOW, "gone")
    assert closed.message is not None and closed.expected == 0
    assert [(f.strategy, f.fill.fill_id, f.fill.quantity) for f in closed.message.evidence] \
        == [("a", "T1", 65)]
    assert closed.message.adopt is None and closed.message.book_net == 65
    none = plan(7, {"a": 65}, [], [], (), RULES, NOW, "gone")
    assert none.message is None and "no broker trade" in none.unexplained
    wrong_side = plan(7, {"a": 65}, [], [trade("T2", m.Side.BUY, 65)], (), RULES, NOW, "x")
    assert wrong_side.message is None and wrong_side.unexplained
    used = plan(7, {"a": 65}, [], [trade("T1", m.Side.SELL, 65)], {"T1"}, RULES, NOW, "x")
    assert used.message is None  # one trade is never evidence twice


def test_evidence_is_split_over_strategies_and_a_crossing_opens_external() -> None:
    split = plan(7, {"a": 65, "b": 130}, [], [trade("T1", m.Side.SELL, 195)], (), RULES, NOW,
                 "both gone")
    assert split.message is not None and split.expected == 0
    assert [(f.strategy, f.fill.fill_id, f.fill.quantity) for f in split.message.evidence] \
        == [("b", "T1", 130), ("a", "T1.1", 65)]
    crossed = plan(7, {"a": 65}, [row(-65)], [trade("T3", m.Side.SELL, 130)], (), RULES, NOW,
                   "reversed")
    assert crossed.message is not None and crossed.expected == -65
    assert [(f.strategy, f.fill.quantity) for f in crossed.message.evidence] == [
        ("a", 65), (m.EXTERNAL, 65)]
    assert crossed.message.adopt is None


def test_only_trades_of_orders_the_engine_did_not_place_are_evidence() -> None:
    ours = make_tag("AB0001", 0, Role.OPEN)
    pairs = [("T2", "O2"), ("T1", "O1"), ("T3", "O3")]
    trades = [{"trade_id": t, "order_id": o, "instrument_token": 7, "transaction_type": "SELL",
               "quantity": 65, "average_price": 120.5,
               "fill_timestamp": f"2026-11-25 10:0{i}:00"} for i, (t, o) in enumerate(pairs)]
    orders = [{"order_id": "O1", "tag": ours}, {"order_id": "O2", "tag": None},
              {"order_id": "O3", "tag": "MANUAL"}]
    found = foreign_trades(trades, orders, _drift.is_engine_tag)
    assert [(t.fill.fill_id, t.tag) for t in found] == [("T2", ""), ("T3", "MANUAL")]
    assert found[0].fill.price == m.Money(120_50)
    with pytest.raises(BrokerReplyError, match="instrument_token"):
        foreign_trades([{**trades[0], "instrument_token": "7"}], orders, _drift.is_engine_tag)
    with pytest.raises(BrokerReplyError, match="trades/orders"):
        foreign_trades({}, orders, _drift.is_engine_tag)


def test_a_reconciliation_names_what_is_wrong() -> None:
    fill = m.Fill("T1", "O1", 7, m.Side.SELL, 65, m.Money(1), m.Money(0), NOW)
    with pytest.raises(ValueError, match="nothing to reconcile"):
        m.ReconcilePosition(7, m.Product.NRML, (), None, RULES, "x")
    with pytest.raises(ValueError, match="adopt: a fill of instrument 7"):
        m.ReconcilePosition(8, m.Product.NRML, (), fill, RULES, "x")
    with pytest.raises(ValueError, match="evidence: a fill of instrument 7"):
        m.ReconcilePosition(8, m.Product.NRML, (m.StrategyFill("a", fill),), None, RULES, "x")
