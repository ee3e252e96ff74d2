"""OrderActor's journal: write-ahead saga records, and resuming sagas at start-up.

With a journal, a saga's record is committed before the message that acts on
it is delivered (the JournalActor delivers it: ``Append(records, then)``).
At start-up, :meth:`RecoverySteps._restore` rebuilds the book and every
unfinished saga from :class:`actors._durable.Recovered` and resumes each one
through the ordinary saga steps: its last order is looked up by tag first
(never placed again), fills the broker reports are applied (de-duplicated by
fill id), and the normal timeouts, cancels and compensations finish it.
The policy table is docs/sagas.md.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import structlog

from actors._book import Book, BookStatus
from actors._durable import (
    Recovered,
    book_record,
    ended_record,
    order_record,
    placed_record,
    saga_record,
)
from actors._saga import LegOrder, Role, Saga, SagaOutcome
from actors.journal import Append, JournalRecord
from messages import (
    FindOrdersByTag,
    OrderStatus,
    Priority,
    SagaKind,
    SetTradingState,
    TradingState,
)

if TYPE_CHECKING:
    from actors._book import BookEntry
    from actors.config import EngineConfig
    from messages import Inbox

__all__ = ["RecoverySteps", "Resume"]

_log = structlog.get_logger("kitesaga.recovery")


@dataclass(frozen=True, slots=True)
class Resume:
    """Resume the sagas the journal left unfinished (the engine sends it once every
    actor is wired, so the look-ups reach the broker)."""


class RecoverySteps:
    """Mixin for OrderActor: the saga journal and start-up recovery.

    Contract: without a journal (``_journal`` None) every message goes out at
    once and nothing is recorded. With one, :meth:`_write` hands records and
    their follow-up messages to the JournalActor in order, so a saga's order
    record is durable before its PlaceOrder can be sent.
    """

    _journal: Inbox | None
    _sagas: dict[str, Saga]
    _by_tag: dict[str, tuple[Saga, LegOrder]]
    _book: Book
    _stats: dict[str, int]
    _config: EngineConfig
    _me: Inbox
    _recovered: Recovered | None
    _positions_at_start: dict[tuple[str, int], int]
    _operator_halt: str | None

    if TYPE_CHECKING:
        def _call(self, request_id: str, call: Any, lane: Priority,
                  placing: tuple[Saga, LegOrder] | None = None) -> None: ...

        def _arm(self, saga: Saga, seconds: float) -> None: ...

        def _backoff(self, order: LegOrder) -> float: ...

        def _on_state(self, msg: SetTradingState) -> None: ...

        def _release(self, saga: Saga, outcome: SagaOutcome) -> None: ...

        def _finish(self, saga: Saga, outcome: SagaOutcome) -> None: ...

        def _protect_settled(self, opened: list[BookEntry],
                             closed: list[BookEntry]) -> None: ...

    # -- writing --------------------------------------------------------------------

    def _write(self, record: JournalRecord | None, then: tuple[Inbox, Any] | None = None) -> None:
        """Record ``record`` (if any), then deliver ``then`` — in that order."""
        if self._journal is None:
            if then is not None:
                then[0].tell(then[1])
            return
        self._journal.tell(Append((record,) if record is not None else (),
                                  (then,) if then is not None else ()))

    def _journal_saga(self, saga: Saga, then: tuple[Inbox, Any] | None = None) -> None:
        record = saga_record(saga.saga_id, saga.kind, saga.strategy, saga.legs, saga.rules,
                             saga.margins, saga.reason) if self._journal is not None else None
        self._write(record, then)

    def _journal_order(self, saga: Saga, order: LegOrder, then: tuple[Inbox, Any]) -> None:
        record = order_record(saga.saga_id, order.tag, order.index, order.role.value,
                              order.attempt, order.leg) if self._journal is not None else None
        self._write(record, then)

    def _journal_placed(self, saga: Saga, order: LegOrder) -> None:
        if self._journal is not None and order.broker_order_id is not None:
            self._write(placed_record(saga.saga_id, order.tag, order.broker_order_id))

    def _journal_end(self, saga: Saga, outcome: SagaOutcome) -> None:
        if self._journal is not None:
            self._write(ended_record(saga.saga_id, outcome.value, saga.reason))

    def _journal_book(self, opened: list[BookEntry], closed: list[BookEntry]) -> None:
        if self._journal is None:
            return
        for entry, gone in [(e, False) for e in opened] + [(e, True) for e in closed]:
            plan = entry.plan  # an OPEN entry with no plan yet is recorded with entry 0
            self._write(book_record(entry.key[0], entry.instrument, entry.product, entry.rules,
                                    None if gone else plan.entry if plan else 0, entry.peak))

    # -- start-up -------------------------------------------------------------------

    def _on_resume(self, message: Resume) -> None:
        if self._recovered is not None:
            recovered, self._recovered = self._recovered, None
            self._restore(recovered, self._positions_at_start)

    def _restore(self, recovered: Recovered, positions: Mapping[tuple[str, int], int]) -> None:
        """Rebuild the book and resume every unfinished saga (on the actor's thread)."""
        if recovered.halted is not None:  # the operator's emergency stop still stands
            _log.warning("operator_halt_recovered", reason=recovered.halted)
            self._on_state(SetTradingState(TradingState.HALTED, recovered.halted))
            self._operator_halt = recovered.halted
        restored: list[BookEntry] = []
        for key, rec in recovered.book.items():
            quantity = positions.get(key, 0)
            if quantity == 0:
                continue
            restored.append(self._book.open_settled(key, rec.instrument, rec.product,
                                                    rec.rules, quantity, rec.entry or None,
                                                    rec.peak or None))
        # live: the previous run's GTTs are adopted by the gateway, or new ones placed
        self._protect_settled(restored, [])
        for record in recovered.unfinished:
            saga = Saga(record.saga_id, record.kind, record.strategy, record.legs,
                        record.rules, None, time.monotonic() + self._config.saga_deadline_s)
            saga.margins, saga.reason = record.margins, record.reason
            saga.release_sent = record.release_sent
            self._sagas[saga.saga_id] = saga
            self._stats["sagas_recovered"] += 1
            for leg in record.legs:
                key = (record.strategy, leg.instrument.instrument_token)
                entry = self._book.get(key)
                if entry is None:
                    self._book.open(key, leg.instrument, leg.product, record.rules)
                    entry = self._book.get(key)
                    assert entry is not None
                    entry.quantity = positions.get(key, 0)
                if record.kind is SagaKind.EXIT and entry.status is BookStatus.OPEN:
                    self._book.mark_exiting(entry)
            for journaled in record.orders:
                order = LegOrder(journaled.index, Role(journaled.role), journaled.leg,
                                 journaled.tag, journaled.attempt)
                order.broker_order_id = journaled.broker_order_id
                order.take_new(tuple(journaled.fills))
                saga.charges += sum(f.charges.paise for f in journaled.fills)
                saga.orders.append(order)
                self._by_tag[order.tag] = (saga, order)
            self._resume(saga)

    def _resume(self, saga: Saga) -> None:
        _log.warning("saga_recovering", saga=saga.saga_id, kind=saga.kind.value,
                     orders=len(saga.orders))
        if not saga.orders:
            saga.reason = saga.reason or "the engine restarted before any order was placed"
            if saga.kind is SagaKind.ENTRY:
                self._release(saga, SagaOutcome.COMPENSATED)
            else:
                self._finish(saga, SagaOutcome.COMPENSATED)
            return
        *done, current = saga.orders
        for order in done:  # orders before the last were finished before the crash
            order.terminal = (OrderStatus.COMPLETE if order.filled == order.leg.quantity
                              else OrderStatus.CANCELLED)
            if order.role is Role.OPEN and order.filled:
                saga.opened.append(order)
        saga.current = current
        current.unknown = True  # the truth is at the broker: look it up by tag first
        saga.step = f"RECOVERING {current.tag}"
        self._call(f"{current.tag}:f", FindOrdersByTag(current.tag, self._me, current.leg),
                   Priority.EXIT)
        self._arm(saga, self._backoff(current))
