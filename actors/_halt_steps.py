"""OrderActor's operator commands: the emergency stop (``Halt``, ``kitesaga halt
[--flatten]``) and ``DescribeSagas`` (``kitesaga sagas``, the REPL)."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import structlog

from actors._book import Book, BookEntry, BookStatus
from actors._journaled import trading_record
from actors._saga import Saga
from actors._saga_steps import CANCELLED_BY_REQUEST
from messages import (
    DescribeSagas,
    Halt,
    HaltStarted,
    OrderView,
    ResumeTrading,
    SagaKind,
    SagasDescribed,
    SagaView,
    SetTradingState,
    TradingState,
)

if TYPE_CHECKING:
    from actors.config import EngineConfig
    from actors.journal import JournalRecord
    from messages import Inbox, Price

__all__ = ["HaltSteps"]

_log = structlog.get_logger("kitesaga.orders")


class HaltSteps:
    """Mixin for OrderActor: the emergency stop.

    Contract: ``Halt`` moves trading to HALTED at once and answers HaltStarted.
    The halt is journaled: it stands across restarts, and only ``ResumeTrading``
    lifts it (a SetTradingState(ACTIVE) from anyone else, such as the start-up
    reconciliation, leaves it standing).
    Every running saga is told to stop as a cancel request would: its working
    order is cancelled (the cancel counts only when the order's status says
    so), an entry compensates (unwinding what filled), an exit that closed
    nothing leaves its position OPEN. With ``flatten`` exits already running
    are left to close, every OPEN position gets a MARKET exit, and so does every
    position a saga leaves OPEN afterwards (at most ``engine.flatten_attempts`` exits per
    position, then an alert), until trading is set ACTIVE again.
    """

    _sagas: dict[str, Saga]
    _book: Book
    _stats: dict[str, int]
    _config: EngineConfig
    _flattening: str | None
    _flatten_tries: dict[tuple[str, int], int]
    _operator_halt: str | None

    if TYPE_CHECKING:
        def _on_state(self, msg: SetTradingState) -> None: ...

        def _timed_out(self, saga: Saga) -> None: ...

        def _write(self, record: JournalRecord | None,
                   then: tuple[Inbox, Any] | None = None) -> None: ...

        def _start_exit(self, entry: BookEntry, reason: str, reply_to: Inbox | None,
                        tick: Price | None) -> None: ...

        def reply_after_publish(self, to: Inbox | None, message: Any) -> None: ...

    def _on_halt(self, msg: Halt) -> None:
        reason = f"halted by the operator: {msg.reason}"[:200]
        self._write(trading_record(reason))  # an emergency stop outlives a restart
        self._operator_halt = None  # so that this halt's own reason is taken
        self._on_state(SetTradingState(TradingState.HALTED, reason))
        self._operator_halt = reason
        in_flight, open_before = len(self._sagas), self._book_open()
        cancels = 0
        for saga in list(self._sagas.values()):
            if msg.flatten and saga.kind is SagaKind.EXIT:
                continue  # already closing: that is what flattening wants
            if saga.outcome is not None or saga.reason == CANCELLED_BY_REQUEST:
                continue
            saga.reason = CANCELLED_BY_REQUEST
            order = saga.current
            if order is not None and order.terminal is None and not order.cancel_sent:
                cancels += 1
                self._timed_out(saga)
        exits = 0
        if msg.flatten:
            self._flattening, self._flatten_tries = reason, {}
            exits = self._flatten_open()
        self._stats["halts"] += 1
        _log.warning("halt", reason=msg.reason, flatten=msg.flatten, cancels=cancels,
                     exits=exits, sagas_in_flight=in_flight)
        self.reply_after_publish(msg.reply_to, HaltStarted(
            reason[:200], msg.flatten, cancels, exits, in_flight, open_before))

    def _on_resume_trading(self, msg: ResumeTrading) -> None:
        if self._operator_halt is not None:
            self._write(trading_record(None))
            self._operator_halt = None
        self._on_state(SetTradingState(TradingState.ACTIVE, msg.reason))

    def _flatten_open(self) -> int:
        """Start an exit for every OPEN position (while flattening); how many."""
        if self._flattening is None:
            return 0
        started = 0
        for entry in self._book.entries():
            if entry.status is not BookStatus.OPEN or not entry.quantity:
                continue
            tries = self._flatten_tries.get(entry.key, 0)
            if tries >= self._config.flatten_attempts:
                _log.error("alert", alert="flatten_gave_up", strategy=entry.key[0],
                           instrument_token=entry.key[1], quantity=entry.quantity,
                           tries=tries, action="square it off by hand")
                continue
            self._flatten_tries[entry.key] = tries + 1
            self._start_exit(entry, self._flattening, None, None)
            started += 1
        return started

    def _book_open(self) -> int:
        return sum(1 for entry in self._book.entries() if entry.quantity)

    def _on_describe(self, msg: DescribeSagas) -> None:
        now = time.monotonic()
        views = tuple(SagaView(
            saga.saga_id, saga.kind.value, saga.strategy, saga.step, saga.reason,
            round(saga.deadline - now, 3),
            tuple(OrderView(order.tag, order.broker_order_id or "", order.role.name,
                            order.leg.side.value, order.leg.instrument.tradingsymbol,
                            order.leg.quantity, order.filled,
                            "UNKNOWN" if order.unknown else
                            order.terminal.value if order.terminal is not None else
                            "WORKING" if order.broker_order_id else "PLACING")
                  for order in saga.orders))
            for saga in self._sagas.values())
        self.reply_after_publish(msg.reply_to, SagasDescribed(views))
