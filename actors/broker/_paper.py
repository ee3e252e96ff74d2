"""PaperBrokerActor: the simulated broker, speaking the gateway interface."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import pykka
import structlog

from actors._base import EngineActor
from actors._published import Published
from actors.broker._charges import ChargeSchedule
from actors.broker._matching import MatchingEngine, PlaceOutcome, PlaceResult
from actors.config._schema import Config
from messages import (
    CancelBrokerOrder,
    FindOrdersByTag,
    Inbox,
    Money,
    OrderOutcomeUnknown,
    OrderPlaced,
    OrderRejected,
    OrdersFound,
    OrderState,
    OrderUpdated,
    PlaceOrder,
    Price,
    QueryOrder,
    RecordPrices,
)

__all__ = ["BrokerSnapshot", "PaperBrokerActor", "build_engine"]

_log = structlog.get_logger("kitesaga.broker")


def build_engine(config: Config, rng_seed: int | None = None) -> MatchingEngine:
    """A matching engine configured from ``config`` (faults seeded by
    ``rng_seed``, default ``config.market.seed``)."""
    return MatchingEngine(
        config.paper,
        ChargeSchedule(config.charges),
        Money.from_rupees(config.engine.initial_cash_rupees, "engine.initial_cash_rupees"),
        config.engine.short_margin_pct,
        config.market.seed if rng_seed is None else rng_seed,
    )


@dataclass(frozen=True, slots=True)
class BrokerSnapshot:
    """What the paper broker has done, published after every message it handles.

    ``orders_placed`` counts registered orders (including unknown outcomes);
    ``unknown_order_ids`` counts cancels/queries for ids the broker does not
    hold; ``unhandled_messages`` counts messages of a type it does not handle;
    ``dead_letters`` counts updates a dead listener could not take.
    """

    funds: Money
    blocked: Money
    available: Money
    working_orders: int = 0
    orders_placed: int = 0
    orders_rejected: int = 0
    unknown_outcomes: int = 0
    fills: int = 0
    unknown_order_ids: int = 0
    unhandled_messages: int = 0
    stale_prices: int = 0
    dead_letters: int = 0


class PaperBrokerActor(EngineActor):
    """The paper broker: a :class:`MatchingEngine` behind an actor's inbox.

    Its message set IS the gateway interface, which the Kite gateway
    implements too, so callers cannot tell them apart:

    * ``PlaceOrder`` -> ``OrderPlaced`` | ``OrderRejected`` |
      ``OrderOutcomeUnknown`` to ``reply_to``. An order that filled at once
      (wholly or in part) also pushes ``OrderUpdated`` to ``listener``, after
      the reply. An unknown outcome's order is registered and keeps working;
      its updates are pushed like any other's (postbacks still arrive when
      the HTTP answer is lost).
    * ``CancelBrokerOrder`` -> ``OrderUpdated`` (the resulting state; a
      terminal order as it is) to ``listener``, and to ``reply_to`` if given
      and different.
    * ``QueryOrder`` -> ``OrderUpdated`` to ``reply_to`` (every fill so far).
    * ``FindOrdersByTag`` -> ``OrdersFound`` to ``reply_to`` (every fill so far).
    * Pushed updates carry only fills not pushed before; polled states carry
      every fill: apply fills by ``fill_id``.

    ``RecordPrices`` is the paper broker's own market feed: it keeps the
    latest price per instrument (older exchange timestamps are ignored and
    counted) and matches resting orders, pushing ``OrderUpdated`` to
    ``listener``. A cancel or query for an id the broker does not hold has no
    reply (there is no such event in the protocol): it is counted and logged.
    Messages of any other type are counted and logged as warnings.
    ``snapshot`` holds the latest :class:`BrokerSnapshot`.
    """

    def __init__(self, engine: MatchingEngine, clock: Callable[[], datetime], listener: Inbox,
                 snapshot: Published[BrokerSnapshot] | None = None) -> None:
        super().__init__()
        self._engine = engine
        self._clock = clock
        self._listener = listener
        self._prices: dict[int, Price] = {}
        self._counts: dict[str, int] = dict.fromkeys(
            ("orders_placed", "orders_rejected", "unknown_outcomes", "fills",
             "unknown_order_ids", "unhandled_messages", "stale_prices", "dead_letters"), 0)
        self.snapshot: Published[BrokerSnapshot] = snapshot or Published(self._snapshot())
        self.snapshot.publish(self._snapshot())

    def receive(self, message: Any) -> Any:
        if isinstance(message, RecordPrices):
            self._record(message)
        elif isinstance(message, PlaceOrder):
            self._place(message)
        elif isinstance(message, CancelBrokerOrder):
            self._cancel(message)
        elif isinstance(message, QueryOrder):
            self._query(message)
        elif isinstance(message, FindOrdersByTag):
            self._tell(message.reply_to, OrdersFound(
                message.tag, tuple(self._engine.find_by_tag(message.tag))))
        else:
            self._counts["unhandled_messages"] += 1
            _log.warning("unhandled_message", actor="PaperBrokerActor",
                         message=type(message).__name__)
        self.snapshot.publish(self._snapshot())
        return None

    def _record(self, message: RecordPrices) -> None:
        now = self._clock()
        for price in message.prices:
            known = self._prices.get(price.instrument_token)
            if known is not None and price.exchange_ts < known.exchange_ts:
                self._counts["stale_prices"] += 1
                continue
            self._prices[price.instrument_token] = price
            for state in self._engine.on_price(price, now):
                self._push(state)

    def _place(self, message: PlaceOrder) -> None:
        request = message.request
        price = self._prices.get(request.leg.instrument.instrument_token)
        try:
            result = self._engine.place(request, self._clock(), price)
        except ValueError as error:  # a configuration gap, e.g. no charge rate for the date
            _log.error("place_failed", tag=request.tag, error=str(error))
            result = PlaceResult(PlaceOutcome.REJECTED, request.tag, None, str(error))
        if result.state is None:
            self._counts["orders_rejected"] += 1
            self._tell(message.reply_to, OrderRejected(request.tag, result.reason))
            return
        self._counts["orders_placed"] += 1
        if result.outcome is PlaceOutcome.UNKNOWN:
            self._counts["unknown_outcomes"] += 1
            self._tell(message.reply_to, OrderOutcomeUnknown(request.tag, result.reason))
        elif message.reply_to is not None and message.reply_to == self._listener:
            # one message: the registration and the first state (often filled at once)
            self._counts["fills"] += len(result.state.fills)
            self._tell(message.reply_to, OrderPlaced(request.tag, result.state.broker_order_id,
                                                     result.state))
            return
        else:
            self._tell(message.reply_to, OrderPlaced(request.tag, result.state.broker_order_id))
        if result.state.fills:
            self._push(result.state)

    def _cancel(self, message: CancelBrokerOrder) -> None:
        try:
            state = self._engine.cancel(message.broker_order_id, self._clock())
        except ValueError as error:
            self._unknown_id(message.broker_order_id, message.tag, error)
            return
        self._push(state)
        if message.reply_to is not None and message.reply_to != self._listener:
            self._tell(message.reply_to, OrderUpdated(state))

    def _query(self, message: QueryOrder) -> None:
        try:
            state = self._engine.query(message.broker_order_id)
        except ValueError as error:
            self._unknown_id(message.broker_order_id, message.tag, error)
            return
        self._tell(message.reply_to, OrderUpdated(state))

    def _unknown_id(self, broker_order_id: str, tag: str, error: ValueError) -> None:
        self._counts["unknown_order_ids"] += 1
        _log.warning("unknown_broker_order_id", broker_order_id=broker_order_id, tag=tag,
                     error=str(error))

    def _push(self, state: OrderState) -> None:
        self._counts["fills"] += len(state.fills)
        self._tell(self._listener, OrderUpdated(state))

    def _tell(self, inbox: Inbox | None, message: Any) -> None:
        if inbox is None:
            return
        try:
            inbox.tell(message)
        except pykka.ActorDeadError:
            self._counts["dead_letters"] += 1
            _log.warning("dead_letter", message=type(message).__name__)

    def _snapshot(self) -> BrokerSnapshot:
        account = self._engine.account
        return BrokerSnapshot(
            working_orders=self._engine.working_orders, funds=account.funds,
            blocked=account.blocked, available=account.available, **self._counts)
