"""OrderActor: runs every order saga and owns the book of managed positions."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

import structlog

from actors._base import EngineActor, Wake, WakeTimer
from actors._book import Book, BookEntry, BookStatus
from actors._entry_cost import capped_leg, reserve_amount
from actors._halt_steps import HaltSteps
from actors._live_steps import LiveSteps
from actors._published import Published
from actors._reconcile_steps import ReconcileSteps
from actors._recover_steps import RecoverySteps, Resume
from actors._saga import Role, Saga, SagaOutcome, to_base36
from actors._saga_steps import CANCELLED_BY_REQUEST, SagaSteps
from messages import (
    SYNC_SAGA,
    CancelEntry,
    CashRefused,
    CashReleased,
    CashReserved,
    DescribeSagas,
    ExitDecided,
    ExitRules,
    FillApplied,
    Halt,
    Inbox,
    Instrument,
    MarginsChecked,
    Money,
    OrderLeg,
    OrderOutcomeUnknown,
    OrderPlaced,
    OrderRejected,
    OrdersFound,
    OrderUpdated,
    PermitRefused,
    PositionAdopted,
    PositionProtected,
    Price,
    PricesProcessed,
    PricesUpdated,
    ProtectionFailed,
    ProtectionRemoved,
    ReconcilePosition,
    ReserveCash,
    ResumeTrading,
    SagaKind,
    SagaRefused,
    SagaStarted,
    SetTradingState,
    SubmitEntry,
    SubmitExit,
    TradingState,
    TradingStateChanged,
)

if TYPE_CHECKING:
    from actors._durable import Recovered
    from actors.config import EngineConfig

__all__ = ["Drain", "OrderActor", "OrdersSnapshot"]

_log = structlog.get_logger("kitesaga.orders")


@dataclass(frozen=True, slots=True)
class Drain:
    """Stop taking entries (graceful shutdown); running sagas finish."""


@dataclass(frozen=True, slots=True)
class OrdersSnapshot:
    """OrderActor's published state: trading state, sagas in flight, counters, and
    the positions (``strategy:token``) no broker-side GTT protects (live)."""

    state: TradingState
    state_reason: str
    draining: bool
    in_flight: int
    open_positions: int
    exiting: int
    stats: MappingProxyType[str, int]
    unprotected: tuple[str, ...] = ()


_COUNTERS = ("price_batches", "sagas_started", "sagas_completed", "sagas_compensated",
             "sagas_refused",
             "orders", "fills", "cancels", "unknown_outcomes", "exits_decided",
             "invariant_violations", "late_sagas", "undo_abandoned", "foreign_updates",
             "margin_refusals", "protected", "unprotected", "sagas_recovered", "reconciles",
             "reconciles_deferred", "reconciled_fills", "halts")


class OrderActor(HaltSteps, ReconcileSteps, RecoverySteps, LiveSteps, SagaSteps,
                 EngineActor):
    """Runs entry and exit sagas; the only actor that starts broker orders.

    Contract:
    - A buy's price is capped (MARKET → LIMIT at ask + buffer) and its cash
      reserved for the cap plus charges, so no fill ever draws on free cash.
    - An entry is refused (SagaRefused, nothing changed) when draining, when
      trading is not ACTIVE, outside the session, for an unknown instrument,
      when the same strategy already has an OPENING, OPEN or EXITING
      position in one of its instruments, or when no price is known.
    - Exits are refused only when there is nothing to exit or an exit is
      already running: never by the trading state or the session clock.
    - Every started saga ends with SagaCompleted or SagaCompensated, told to
      its ``reply_to`` and to every listener.
    - Never two broker orders for one leg: an unknown outcome is resolved by
      FindOrdersByTag; a cancel is confirmed only by a terminal status.
    - Exit rules are checked on every PricesUpdated; one decision starts
      exactly one exit saga (the position is EXITING until it ends).
    """

    def __init__(self, config: EngineConfig, portfolio: Inbox, gateway: Inbox, limiter: Inbox,
                 instruments: Callable[[int], Instrument], now: Callable[[], datetime],
                 entry_refusal: Callable[[datetime], str | None],
                 charges: Callable[[OrderLeg, int], int], listeners: tuple[Inbox, ...] = (),
                 price_source: Inbox | None = None, margin_check: bool = False,
                 protector: Inbox | None = None, journal: Inbox | None = None,
                 recovered: Recovered | None = None,
                 positions: Mapping[tuple[str, int], int] | None = None) -> None:
        super().__init__()
        self._config = config
        self._portfolio = portfolio
        self._gateway = gateway
        self._limiter = limiter
        self._instrument = instruments
        self._now = now
        self._entry_refusal = entry_refusal
        self._charges = charges
        self._buffer = config.reserve_buffer_pct
        self._margin_pct = config.short_margin_pct
        self._listeners = listeners
        self._sagas: dict[str, Saga] = {}
        self._by_tag: dict[str, tuple[Saga, Any]] = {}
        self._book = Book()
        self._prices: dict[int, Price] = {}
        self._stats: dict[str, int] = dict.fromkeys(_COUNTERS, 0)
        self._state = TradingState.ACTIVE
        self._state_reason = "started"
        self._draining = False
        self._journal = journal
        self._recovered = recovered
        self._positions_at_start = dict(positions or {})
        used = recovered.prefixes if recovered is not None else set()
        self._prefix = to_base36(int.from_bytes(os.urandom(2), "big"), 2)
        while self._prefix in used:  # saga ids (and so tags) are never reused
            self._prefix = to_base36(int.from_bytes(os.urandom(2), "big"), 2)
        self._counter = 0
        self._deadlines: list[tuple[float, int, str]] = []
        self._seq = 0
        self._price_source = price_source
        self._margin_check = margin_check
        self._protector = protector
        self._unprotected: set[str] = set()
        self._pending_sync = {}
        self._flattening = None
        self._flatten_tries = {}
        self._operator_halt = None
        self.snapshot: Published[OrdersSnapshot] = Published(self._build())
        self._handlers: dict[type, Callable[[Any], None]] = {
            PricesUpdated: self._on_prices,
            OrderUpdated: lambda m: self._updated(m.state),
            FillApplied: lambda m: self._sync_fill_applied(m) if m.saga_id == SYNC_SAGA else
            self._fill_applied(m.saga_id, m.fill_id, m.realised.paise, m.position_quantity),
            PermitRefused: lambda m: self._permit_refused(m.request_id, m.reason),
            OrderPlaced: lambda m: self._placed(m.tag, m.broker_order_id, m.state),
            OrderRejected: lambda m: self._rejected(m.tag, m.reason),
            OrderOutcomeUnknown: lambda m: self._unknown(m.tag, m.reason),
            OrdersFound: lambda m: self._found(m.tag, m.orders),
            CashReserved: self._on_reserved,
            CashRefused: self._on_refused,
            CashReleased: lambda m: self._released(m.saga_id),
            SubmitEntry: self._on_entry,
            SubmitExit: self._on_exit,
            CancelEntry: self._on_cancel,
            SetTradingState: self._on_state,
            Wake: self._on_wake,
            Drain: self._on_drain,
            MarginsChecked: self._margins_checked,
            **dict.fromkeys((PositionProtected, ProtectionFailed, ProtectionRemoved),
                            self._protection_answer),
            Resume: self._on_resume,
            ReconcilePosition: self._on_reconcile,
            PositionAdopted: self._adopted,
            Halt: self._on_halt,
            ResumeTrading: self._on_resume_trading,
            DescribeSagas: self._on_describe,
        }

    def on_start(self) -> None:
        self._me: Inbox = self.actor_ref
        self._timer = WakeTimer(self.actor_ref)

    def on_stop(self) -> None:
        self._timer.cancel()

    def receive(self, message: Any) -> Any:
        handler = self._handlers.get(type(message))
        if handler is None:
            self.unhandled(message)
            return None
        handler(message)
        self.snapshot.publish(self._build())
        self.send_replies()
        return None

    def _build(self) -> OrdersSnapshot:
        exiting = self._book.exiting
        return OrdersSnapshot(self._state, self._state_reason, self._draining, len(self._sagas),
                              len(self._book) - exiting, exiting,
                              MappingProxyType(dict(self._stats)),
                              tuple(sorted(self._unprotected)))

    def _emit(self, saga: Saga | None, event: Any) -> None:
        """Announce ``event`` to the saga's reply address and every listener."""
        self._announce(saga.reply_to if saga is not None else None, event)

    def _announce(self, to: Inbox | None, event: Any) -> None:
        """``event`` to ``to`` and every listener, after this message's snapshot."""
        self.reply_after_publish(to, event)
        for listener in self._listeners:
            self.reply_after_publish(listener, event)

    # -- entries -------------------------------------------------------------------

    def _refuse(self, strategy: str, kind: SagaKind, reason: str, to: Inbox | None) -> None:
        self._stats["sagas_refused"] += 1
        self._announce(to, SagaRefused(strategy, kind, reason[:500]))

    def _entry_problem(self, msg: SubmitEntry) -> str | None:
        if self._draining:
            return "engine is stopping: no new entries"
        if self._state is not TradingState.ACTIVE:
            return f"trading is {self._state.value} ({self._state_reason}): no new entries"
        refusal = self._entry_refusal(self._now())
        if refusal is not None:
            return refusal
        if len(self._book) + len(msg.legs) > self._config.max_open_positions:
            return f"max_open_positions {self._config.max_open_positions} reached"
        for leg in msg.legs:
            token = leg.instrument.instrument_token
            try:
                known = self._instrument(token)
            except ValueError as exc:
                return str(exc)
            if known != leg.instrument:
                return f"instrument: {leg.instrument.tradingsymbol} does not match the dump"
            entry = self._book.get((msg.strategy, token))
            if entry is not None:
                return (f"{msg.strategy} already has an {entry.status.value} position in "
                        f"{leg.instrument.tradingsymbol}")
            if leg.limit_price is None and token not in self._prices:
                return f"no price yet for {leg.instrument.tradingsymbol}"
        return None

    def _on_entry(self, msg: SubmitEntry) -> None:
        problem = self._entry_problem(msg)
        if problem is not None:
            self._refuse(msg.strategy, SagaKind.ENTRY, problem, msg.reply_to)
            return
        legs = tuple(capped_leg(leg, self._prices, self._buffer) for leg in msg.legs)
        margins: dict[int, int] = {}
        try:
            amount = reserve_amount(legs, self._prices, self._charges, self._margin_pct,
                                    margins)
        except ValueError as exc:  # e.g. no charge rate in force for today
            self._refuse(msg.strategy, SagaKind.ENTRY, f"cannot price the entry: {exc}",
                         msg.reply_to)
            return
        saga = self._new_saga(SagaKind.ENTRY, msg.strategy, legs, msg.exit_rules,
                              msg.reply_to)
        saga.margins = margins
        for leg in legs:
            self._book.open((msg.strategy, leg.instrument.instrument_token), leg.instrument,
                            leg.product, msg.exit_rules)
        saga.step = "RESERVING"
        self._journal_saga(saga, (self._portfolio,
                                  ReserveCash(saga.saga_id, Money(amount), self._me)))

    def _new_saga(self, kind: SagaKind, strategy: str, legs: tuple[Any, ...], rules: ExitRules,
                  reply_to: Inbox | None) -> Saga:
        self._counter += 1
        saga_id = self._prefix + to_base36(self._counter, 4)
        saga = Saga(saga_id, kind, strategy, legs, rules, reply_to,
                    time.monotonic() + self._config.saga_deadline_s)
        self._sagas[saga_id] = saga
        self._stats["sagas_started"] += 1
        self._emit(saga, SagaStarted(saga_id, kind, strategy))
        return saga

    def _on_reserved(self, msg: CashReserved) -> None:
        saga = self._sagas.get(msg.saga_id)
        if saga is None:
            return
        if saga.reason == CANCELLED_BY_REQUEST:
            self._release(saga, SagaOutcome.COMPENSATED)
        else:
            self._start_legs(saga)

    def _on_refused(self, msg: CashRefused) -> None:
        saga = self._sagas.get(msg.saga_id)
        if saga is not None:
            saga.reason = f"insufficient cash: need {msg.amount}, free {msg.available}"
            self._finish(saga, SagaOutcome.COMPENSATED)

    def _on_cancel(self, msg: CancelEntry) -> None:
        saga = self._sagas.get(msg.saga_id)
        if saga is None or saga.kind is not SagaKind.ENTRY or saga.outcome is not None:
            return
        saga.reason = CANCELLED_BY_REQUEST
        order = saga.current
        if order is not None and order.terminal is None and not order.cancel_sent:
            self._timed_out(saga)

    def _on_state(self, msg: SetTradingState) -> None:
        if self._operator_halt is not None:  # only ResumeTrading lifts an operator's halt
            _log.warning("operator_halt_stands", wanted=msg.state.value, reason=msg.reason)
            return
        if msg.state is TradingState.ACTIVE:
            self._flattening = None
        if msg.state is not self._state:
            _log.warning("trading_state", state=msg.state.value, reason=msg.reason)
        self._state, self._state_reason = msg.state, msg.reason
        self._emit(None, TradingStateChanged(msg.state, msg.reason))

    def _on_drain(self, msg: Drain) -> None:
        self._draining = True

    # -- exits ---------------------------------------------------------------------

    def _on_exit(self, msg: SubmitExit) -> None:
        entry = self._book.get((msg.strategy, msg.instrument_token))
        if entry is None or entry.status is not BookStatus.OPEN:
            why = "no position" if entry is None else f"position is {entry.status.value}"
            self._refuse(msg.strategy, SagaKind.EXIT, f"cannot exit {msg.instrument_token}: "
                         f"{why}", msg.reply_to)
            return
        self._start_exit(entry, msg.reason, msg.reply_to, None)

    def _start_exit(self, entry: BookEntry, reason: str, reply_to: Inbox | None,
                    tick: Price | None) -> None:
        self._book.mark_exiting(entry)
        leg = entry.closing_leg()
        saga = self._new_saga(SagaKind.EXIT, entry.key[0], (leg,), entry.rules, reply_to)
        saga.reason = reason
        self._journal_saga(saga)
        if tick is not None:
            self._stats["exits_decided"] += 1
            self._emit(None, ExitDecided(saga.saga_id, entry.key[0], entry.key[1], reason,
                                         tick.received_ts))
        self._place(saga, 0, Role.CLOSE, leg)

    def _on_prices(self, msg: PricesUpdated) -> None:
        self._stats["price_batches"] += 1
        for price in msg.prices:
            token = price.instrument_token
            self._prices[token] = price
            entries = self._book.on_token(token)
            if not entries:
                continue
            last = price.last.paise
            for entry in tuple(entries):
                if entry.status is not BookStatus.OPEN:
                    continue
                if entry.plan is None:  # adopted before any price: its plan starts here
                    entry.plan_at(last)
                    self._journal_book([entry], [])
                    self._protect_settled([entry], [])
                    continue
                entry.peak = entry.plan.new_peak(entry.peak, last)
                rule = entry.plan.check(last, entry.peak, price.exchange_ts)
                if rule is not None:
                    self._start_exit(entry, rule, None, price)
        if self._price_source is not None:
            self.tell_if_alive(self._price_source, PricesProcessed("orders"))

    # -- book ------------------------------------------------------------------------

    def _book_fill(self, saga: Saga, order: Any, position_quantity: int) -> None:
        self._book.fill((saga.strategy, order.leg.instrument.instrument_token),
                        position_quantity)

    def _book_settle(self, saga: Saga) -> None:
        opened, closed = self._book.settle(saga)
        self._journal_book(opened, closed)
        self._protect_settled(opened, closed)
        if self._flattening is not None and opened:
            self._flatten_open()
