"""The simulator's exchange: Kite orders and their status trails, trades, market stepping.

"One engine, two faces": fills, funds and charges come from the core's paper
:class:`~actors.broker.MatchingEngine`; prices from the core's
:class:`~actors.market.SyntheticMarket` on a :class:`~actors.market.SimClock`.
This module keeps what Kite shows on top: each order in Kite's format with a
row per status change, the trades, GTTs firing on the market's prices.
The order record and its validation are in ``_orders.py``; positions,
quotes and account views in ``_views.py``.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import replace
from datetime import datetime
from decimal import Decimal
from typing import Any

import structlog

from actors._system import SimulatedMarket
from actors.broker import ChargeSchedule, PlaceOutcome, build_engine
from actors.config._schema import Config
from actors.kitesim._faults import FaultState
from actors.kitesim._gtt import GttBook
from actors.kitesim._kite import KiteError, field_int
from actors.kitesim._orders import SIM_USER_ID, SimOrder, SimTrade, order_json, order_terms
from actors.kitesim._rms import Rms
from actors.market import MarketCalendar
from messages import (
    Instrument,
    Money,
    OrderLeg,
    OrderRequest,
    OrderState,
    OrderStatus,
    OrderType,
    Price,
    Product,
    Side,
)

__all__ = ["FIRST_EXCHANGE_ORDER_ID", "MANUAL_TRADE_ID_BASE", "MAX_MODIFICATIONS",
           "SimExchange"]

_log = structlog.get_logger("kitesaga.sim")

MAX_MODIFICATIONS = 25
"""Modifications Kite allows on one order; one more is an OrderException."""

FIRST_EXCHANGE_ORDER_ID = 1_300_000_000_000_001
"""Exchange order ids count up from here (16 digits, as NSE's)."""

MANUAL_TRADE_ID_BASE = 90_000_000
"""Trades booked by ``/_sim/positions`` get ids above this (the engine's count from 10,000,001)."""

ORDERS_KEPT = 20_000
"""Orders held for the order book and their trails; past it the oldest finished ones are
forgotten (Kite's book holds one day's; a fast simulated clock runs many days)."""

TRADES_KEPT = 50_000
"""Trades held for the trade book (positions are kept as running totals, not from it)."""

_ENGINE_TAG_PREFIX = "k"  # internal tags given to the matching engine: "k" + base 36 counter
_BASE36 = "0123456789abcdefghijklmnopqrstuvwxyz"
_WORKING = frozenset({OrderStatus.OPEN, OrderStatus.TRIGGER_PENDING})
_S = OrderStatus


def _base36(number: int) -> str:
    digits = ""
    while True:
        number, rest = divmod(number, 36)
        digits = _BASE36[rest] + digits
        if number == 0:
            return digits


class SimExchange:
    """The simulated broker's state, driven by HTTP handlers and the market task.

    Contract: ``place`` validates like Kite (``KiteError`` before any order
    exists), registers the order (PUT ORDER REQUEST RECEIVED -> VALIDATION
    PENDING -> OPEN PENDING) and after ``sim.open_pending_s`` wall seconds
    sends it to the matching engine (OPEN / TRIGGER PENDING, then COMPLETE as
    it fills on :meth:`step`) unless the ``reject`` fault or the engine's RMS
    rejects it (REJECTED, ``status_message``) or the ``stuck`` fault keeps it
    OPEN PENDING. A cancel goes CANCEL PENDING, then CANCELLED on the next
    loop turn (a stuck order's after ``stuck_cancel_s``); a fill may win the
    race (COMPLETE). Every status or fill change appends a full order dict to
    the order's trail and is passed to ``on_order``. Runs on one event loop.
    """

    def __init__(self, config: Config, faults: FaultState,
                 loop: asyncio.AbstractEventLoop) -> None:
        simulated = SimulatedMarket.of(config, MarketCalendar(config.calendar))
        self.start, self.clock = simulated.start, simulated.clock
        self.dump_csv, self.instruments = simulated.dump_csv, simulated.instruments
        self.market = simulated.market
        paper = replace(config.paper, reject_ratio=Decimal(0),
                        unknown_outcome_ratio=Decimal(0), stuck_ratio=Decimal(0))
        self.engine = build_engine(replace(config, paper=paper))
        self.initial_cash = Money.from_rupees(config.engine.initial_cash_rupees)
        self.gtts = GttBook(self.instruments, SIM_USER_ID)
        self.rms = Rms(self.instruments, self.engine.account, ChargeSchedule(config.charges),
                       self.market.quote, lambda: self.clock.now().date())
        self.on_order: Callable[[Mapping[str, Any]], None] = lambda order: None
        self._faults = faults
        self._loop = loop
        self._open_pending_s = config.sim.open_pending_s
        self._orders: dict[str, SimOrder] = {}
        self._by_engine: dict[str, SimOrder] = {}
        self.trades: deque[SimTrade] = deque(maxlen=TRADES_KEPT)
        self.books: dict[tuple[int, Product], list[int]] = {}  # buy qty, value, sell qty, value
        self.volume: dict[int, int] = {}  # token -> quantity traded
        self.day: dict[int, list[int]] = {}  # token -> [open, high, low] paise
        self._finished: deque[str] = deque()  # terminal order ids, oldest first
        self._next_order = 1
        self._next_engine_tag = 1
        self._next_exchange_id = FIRST_EXCHANGE_ORDER_ID
        self._next_manual_trade = MANUAL_TRADE_ID_BASE + 1
        self.step()

    # -- market -------------------------------------------------------------------------

    def step(self) -> list[Price]:
        """Advance the market to the clock; fill orders; fire GTTs. The new prices."""
        now = self.clock.now()
        prices = self.market.step(now)
        lasts: dict[int, Money] = {}
        for price in prices:
            last = price.last.paise
            day = self.day.setdefault(price.instrument_token, [last, last, last])
            day[1], day[2] = max(day[1], last), min(day[2], last)
            lasts[price.instrument_token] = price.last
            for state in self.engine.on_price(price, now):
                order = self._by_engine.get(state.broker_order_id)
                if order is not None:
                    self._apply(order, state)
        for trigger, leg in self.gtts.due(lasts, now):
            fired_at = lasts[trigger.instrument.instrument_token]
            try:
                order = self.place(trigger.orders[leg].form())
            except KiteError as error:
                self.gtts.record(trigger, leg, fired_at, now, None, error.message)
                continue
            self.gtts.record(trigger, leg, fired_at, now, order.order_id)
        return prices

    # -- orders ---------------------------------------------------------------------------

    def place(self, fields: Mapping[str, Any]) -> SimOrder:
        """Validate and register an order (see the class contract)."""
        order = self._register(order_terms(self.instruments, fields, None))
        for status in (_S.PUT_ORDER_REQUEST_RECEIVED, _S.VALIDATION_PENDING, _S.OPEN_PENDING):
            self._row(order, status)
        self._loop.call_later(self._open_pending_s, self._activate, order)
        return order

    def modify(self, order_id: str, fields: Mapping[str, Any]) -> str:
        """Change a working order's quantity, prices, type or validity."""
        order = self.order(order_id)
        if order.status not in _WORKING or order.engine_id is None:
            raise KiteError.order(f"Order cannot be modified as it is {order.status.value}")
        if order.modifications >= MAX_MODIFICATIONS:
            raise KiteError.order(f"Maximum allowed order modifications ({MAX_MODIFICATIONS}) "
                                  "exceeded")
        terms = order_terms(self.instruments, fields, order)
        if terms["quantity"] <= order.filled:
            raise KiteError.input(f"Invalid `quantity`: must exceed the filled quantity "
                                  f"{order.filled}")
        before = order.status
        self._row(order, _S.MODIFY_VALIDATION_PENDING)
        self._row(order, _S.MODIFY_PENDING)
        old = order.engine_id
        engine_id, reason = self._send(order, terms, terms["quantity"] - order.filled)
        if not engine_id:
            self._row(order, before)
            raise KiteError.order(f"Modification rejected: {reason}")
        self._take_fills(order, self.engine.cancel(old, self.clock.now()))
        self._by_engine.pop(old, None)
        order.modifications += 1
        for name, value in terms.items():
            setattr(order, name, value)
        self._apply(order, self.engine.query(engine_id), force=True)
        return order.order_id

    def cancel(self, order_id: str) -> str:
        """Request a cancel; CANCELLED comes later (see the class contract)."""
        order = self.order(order_id)
        if order.status.is_terminal or order.status is _S.CANCEL_PENDING:
            raise KiteError.order(f"Order cannot be cancelled as it is {order.status.value}")
        self._row(order, _S.CANCEL_PENDING)
        delay = self._faults.spec.stuck_cancel_s if order.stuck else 0.0
        self._loop.call_later(delay, self._confirm_cancel, order)
        return order.order_id

    def order(self, order_id: str) -> SimOrder:
        """The order ``order_id``; a 404 if unknown."""
        order = self._orders.get(order_id)
        if order is None:
            raise KiteError.not_found(f"Order {order_id} not found")
        return order

    def orders(self) -> list[SimOrder]:
        """Every order of the day, oldest first."""
        return list(self._orders.values())

    def book_trade(self, fields: Mapping[str, Any]) -> tuple[str, str]:
        """``/_sim/positions``: a tag-less COMPLETE order and its trade, booked behind the
        client's back at ``price`` (the broker account settles it without charges)."""
        quantity = field_int(fields, "quantity") or 0
        side = Side.BUY if quantity > 0 else Side.SELL
        form = {**fields, "transaction_type": side.value, "quantity": str(abs(quantity)),
                "order_type": "LIMIT", "tag": ""}
        terms = order_terms(self.instruments, form, None)
        order = self._register(terms)
        now = order.placed_at
        price, qty, instrument = terms["price"], terms["quantity"], terms["instrument"]
        leg = OrderLeg(instrument, side, qty, OrderType.LIMIT, terms["product"], price)
        account = self.engine.account
        account.settle(instrument.instrument_token, side, qty, price * qty, Money(0),
                       account.margin_per_unit(leg, price))
        trade_id = str(self._next_manual_trade)
        self._next_manual_trade += 1
        self._activated(order, now)
        self._add_trade(order, trade_id, qty, price, now)
        self._row(order, _S.COMPLETE)
        return order.order_id, trade_id

    # -- lifecycle ------------------------------------------------------------------------

    def _register(self, terms: Mapping[str, Any]) -> SimOrder:
        """A new order with a Kite-like id (trade date, then a 9-digit count)."""
        now = self.clock.now()
        order = SimOrder(f"{now:%y%m%d}{self._next_order:09d}", placed_at=now, **terms)
        self._next_order += 1
        self._orders[order.order_id] = order
        return order

    def _activate(self, order: SimOrder) -> None:
        if order.status is not _S.OPEN_PENDING:
            return  # cancelled while it was pending
        faults = self._faults
        if faults.chance(faults.spec.reject):
            faults.note("rejected")
            order.status_message = "RMS: simulated rejection (fault reject)"
            self._row(order, _S.REJECTED)
            return
        if faults.chance(faults.spec.stuck):
            faults.note("stuck")
            order.stuck = True
            return
        now = self.clock.now()
        terms = {"instrument": order.instrument, "side": order.side, "product": order.product,
                 "order_type": order.order_type, "price": order.price,
                 "trigger_price": order.trigger_price, "market_protection":
                     order.market_protection}
        engine_id, reason = self._send(order, terms, order.quantity)
        if not engine_id:
            order.status_message = reason
            self._row(order, _S.REJECTED)
            return
        self._activated(order, now)
        state = self.engine.query(engine_id)
        working = _S.TRIGGER_PENDING if order.order_type in (OrderType.SL, OrderType.SL_M) \
            else _S.OPEN
        self._row(order, working)
        self._apply(order, state)
        if order.validity == "IOC" and not order.status.is_terminal:
            order.status_message = "IOC order cancelled: not filled at once"
            self._apply(order, self.engine.cancel(engine_id, now))

    def _activated(self, order: SimOrder, now: datetime) -> None:
        order.exchange_order_id = str(self._next_exchange_id)
        self._next_exchange_id += 1
        order.exchange_at = now

    def _send(self, order: SimOrder, terms: Mapping[str, Any], quantity: int
              ) -> tuple[str, str]:
        """Place ``quantity`` with the matching engine: (its engine id, "") or ("", why not).

        On success the order answers to the new engine id from now on.
        """
        tag = _ENGINE_TAG_PREFIX + _base36(self._next_engine_tag)
        self._next_engine_tag += 1
        instrument: Instrument = terms["instrument"]
        order_type: OrderType = terms["order_type"]
        limit = terms["price"] if order_type in (OrderType.LIMIT, OrderType.SL) else None
        trigger = terms["trigger_price"] if order_type in (OrderType.SL, OrderType.SL_M) \
            else None
        protection = terms["market_protection"]
        try:
            leg = OrderLeg(instrument, terms["side"], quantity, order_type, terms["product"],
                           limit, trigger)
            request = OrderRequest(tag, leg, protection if protection > 0 else -1)
            result = self.engine.place(request, self.clock.now(),
                                       self.market.quote(instrument.instrument_token))
        except ValueError as error:  # e.g. no charge rate configured for the trade date
            _log.warning("engine_place_failed", order_id=order.order_id, error=str(error))
            return "", str(error)
        if result.outcome is PlaceOutcome.REJECTED or result.state is None:
            return "", f"RMS: {result.reason}"
        engine_id = result.state.broker_order_id
        order.engine_id = engine_id
        self._by_engine[engine_id] = order
        return engine_id, ""

    def _confirm_cancel(self, order: SimOrder) -> None:
        if order.status is not _S.CANCEL_PENDING:
            return  # a fill won the race
        if order.engine_id is not None:
            self._apply(order, self.engine.cancel(order.engine_id, self.clock.now()))
            return
        order.cancelled = order.quantity - order.filled
        self._row(order, _S.CANCELLED)

    def _take_fills(self, order: SimOrder, state: OrderState) -> bool:
        new = False
        for fill in state.fills:
            if fill.fill_id not in order.fill_ids:
                order.fill_ids.add(fill.fill_id)
                self._add_trade(order, fill.fill_id, fill.quantity, fill.price, fill.timestamp)
                new = True
        return new

    def _add_trade(self, order: SimOrder, trade_id: str, quantity: int, price: Money,
                   at: datetime) -> None:
        order.filled += quantity
        order.value += price.paise * quantity
        self.trades.append(SimTrade(trade_id, order, quantity, price, at))
        token = order.instrument.instrument_token
        book = self.books.setdefault((token, order.product), [0, 0, 0, 0])
        at_side = 0 if order.side is Side.BUY else 2
        book[at_side] += quantity
        book[at_side + 1] += price.paise * quantity
        self.volume[token] = self.volume.get(token, 0) + quantity

    def _apply(self, order: SimOrder, state: OrderState, force: bool = False) -> None:
        """Take an engine state: new fills become trades; a change becomes a trail row."""
        filled = self._take_fills(order, state)
        status = state.status
        if order.status is _S.CANCEL_PENDING and not status.is_terminal:
            status = _S.CANCEL_PENDING  # the cancel is still on its way
        if status is _S.CANCELLED:
            order.cancelled = order.quantity - order.filled
        if filled or force or status is not order.status:
            self._row(order, status)
        if status.is_terminal and order.engine_id is not None:
            self._by_engine.pop(order.engine_id, None)

    def _row(self, order: SimOrder, status: OrderStatus) -> None:
        if status.is_terminal and not order.status.is_terminal:
            self._finished.append(order.order_id)
            while len(self._orders) > ORDERS_KEPT and self._finished:
                self._orders.pop(self._finished.popleft(), None)
        order.status = status
        row = order_json(order)
        order.history.append(row)
        try:
            self.on_order(row)
        except Exception:  # noqa: BLE001 - a listener's bug must not corrupt the order book
            _log.exception("order_listener_failed", order_id=order.order_id)
