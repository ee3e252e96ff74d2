"""JournalActor: the one owner of the journal, and its protocol (``Append``).

Write-ahead: a step's record is committed (durably) before the message that
lets it proceed is delivered. Group commit: Appends that arrive while the
actor is busy are committed together, in one transaction (one fsync).
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import structlog

from actors._base import EngineActor
from actors._published import Published
from actors.config._schema import JournalConfig
from actors.journal._records import JournalRecord, JournalWriteError
from actors.journal._store import Journal
from messages import Inbox, SetTradingState, TradingState

__all__ = ["Append", "JournalActor", "JournalSnapshot"]

_log = structlog.get_logger("kitesaga.journal")

_REASON_MAX = 200  # SetTradingState.reason's limit


@dataclass(frozen=True, slots=True)
class Append:
    """Journal ``records``, then deliver each ``(inbox, message)`` of ``then``.

    Contract: every record of this Append (and of every Append sent before
    it) is committed before the first ``then`` message is told; the ``then``
    messages go out in order. If the write fails, none of them is ever told.
    An Append's records are never split across transactions. An Append with
    no records is a barrier: its ``then`` goes out once everything sent
    before it is committed.
    """

    records: tuple[JournalRecord, ...]
    then: tuple[tuple[Inbox, Any], ...] = ()

    def __post_init__(self) -> None:
        if not isinstance(self.records, tuple) or not all(
                isinstance(r, JournalRecord) for r in self.records):
            raise ValueError(f"records: must be a tuple of JournalRecord, got {self.records!r}")
        if not isinstance(self.then, tuple) or not all(
                isinstance(t, tuple) and len(t) == 2 and callable(getattr(t[0], "tell", None))
                for t in self.then):
            raise ValueError(f"then: must be a tuple of (inbox, message) pairs, got "
                             f"{self.then!r}")


@dataclass(frozen=True, slots=True)
class _Flush:
    """Private: commit what is buffered (queued behind the Appends that wait)."""


@dataclass(frozen=True, slots=True)
class JournalSnapshot:
    """JournalActor's published state: an immutable snapshot any thread may read.

    ``last_seq``/``events``/``snapshots``/``bytes`` describe the journal;
    ``appends`` counts Append messages, ``batches`` the transactions that
    committed them (group commit: fewer), ``largest_batch`` the most records
    in one. ``failed`` is True for good after a write failed (``last_error``
    says why); ``refused`` counts the Appends turned away since. ``undelivered``
    counts ``then`` messages whose recipient was dead. Write latency p50/p99
    (ms) cover the last ``journal.latency_window`` commits. ``enabled`` is
    False when the actor runs without a journal (pass-through).
    """

    enabled: bool = True
    last_seq: int = 0
    events: int = 0
    snapshots: int = 0
    bytes: int = 0
    appends: int = 0
    batches: int = 0
    largest_batch: int = 0
    refused: int = 0
    undelivered: int = 0
    failed: bool = False
    last_error: str | None = None
    write_p50_ms: float = 0.0
    write_p99_ms: float = 0.0


class JournalActor(EngineActor):
    """Owns the :class:`Journal`: all of its blocking I/O happens on this actor.

    Contract:
    - ``journal`` is handed over at construction (opened, and replayed by
      start-up, on the caller's thread); from then on only this actor uses it,
      and closes it on stop. ``journal=None`` (``journal.enabled = false``,
      benchmarks only) passes every Append through without writing.
    - :class:`Append` is buffered while more messages wait in the inbox; the
      buffer is committed in ONE transaction when the inbox is empty, when it
      holds ``config.max_batch`` records, or when the private flush marker the
      actor queues behind the waiting messages comes round. Then the snapshot
      is published and every ``then`` is told, in order; a dead recipient is
      logged and counted, not fatal.
    - A failed write (disk full, read-only, I/O): no ``then`` of that batch is
      told; ``halt_to`` is told ``SetTradingState(HALTED, "journal write
      failed: ...")``; an ``alert`` (``journal_write_failed``) is logged at
      ERROR; the snapshot shows ``failed``. Every later Append is refused the
      same way (nothing told, HALTED again), with no retry: nothing proceeds on
      unsaved state and nothing is written out of order.
    - ``on_commit(records)`` (if given) is called on this actor's thread with
      each committed batch, in seq order, right after its commit and before
      its ``then`` messages: a projection fed this way holds exactly the
      committed events.
    - Every ``config.snapshot_every`` events, ``snapshot_source()`` (if given)
      is called on this actor's thread and its body written as the snapshot at
      the last seq. It must return the state after exactly the events up to
      that seq (for example the projection ``on_commit`` feeds): other
      actors' published state may lag behind the journal. The body is encoded
      as the source built it (no deep walk: lists, not tuples). A source or an
      ``on_commit`` that raises, or a body that is not plain JSON, is a bug:
      the actor fails, and EngineActor reports it to the supervisor.
    - On stop, whatever is buffered is committed (and its ``then`` told).
    """

    def __init__(self, journal: Journal | None, config: JournalConfig,
                 halt_to: Inbox | None = None,
                 snapshot_source: Callable[[], Mapping[str, Any]] | None = None,
                 on_commit: Callable[[Sequence[JournalRecord]], None] | None = None) -> None:
        super().__init__()
        if (journal is None) == config.enabled:
            raise ValueError(f"journal: {'required' if config.enabled else 'must be None'} "
                             f"when journal.enabled is {config.enabled}")
        for key in ("max_batch", "snapshot_every", "latency_window"):
            value = getattr(config, key)
            if type(value) is not int or value < 1:
                raise ValueError(f"journal.{key}: must be an integer >= 1, got {value!r}")
        self._journal = journal
        self._halt_to = halt_to
        self._source = snapshot_source
        self._on_commit = on_commit
        self._max_batch = config.max_batch
        self._every = config.snapshot_every
        self._pending: list[Append] = []
        self._pending_records = 0
        self._flush_queued = False
        self._latencies: deque[float] = deque(maxlen=config.latency_window)
        latest = journal.latest_snapshot() if journal is not None else None
        self._since_snapshot = (journal.last_seq if journal else 0) - (latest[0] if latest else 0)
        self._state = JournalSnapshot(enabled=journal is not None)
        if journal is not None:
            stats = journal.stats()
            self._state = replace(self._state, last_seq=journal.last_seq, events=stats.events,
                                   snapshots=stats.snapshots, bytes=stats.bytes)
        self.snapshot: Published[JournalSnapshot] = Published(self._state)

    def receive(self, message: Any) -> Any:
        if isinstance(message, Append):
            self._on_append(message)
        elif isinstance(message, _Flush):
            self._flush_queued = False
            self._flush()
        else:
            self.unhandled(message)
        return None

    def on_stop(self) -> None:
        if self._pending and not self._state.failed:
            self._flush(snapshot=False)
        if self._journal is not None:
            self._journal.close()

    # -- appends ---------------------------------------------------------------------

    def _on_append(self, message: Append) -> None:
        self._update(appends=self._state.appends + 1)
        if self._state.failed:
            self._refuse(message)
            return
        self._pending.append(message)
        self._pending_records += len(message.records)
        if self._pending_records >= self._max_batch or self.actor_inbox.empty():
            self._flush()
        elif not self._flush_queued:
            # Messages wait: commit after them, even if none of them is an Append
            # (a proxy call never reaches receive, so it cannot trigger a flush).
            self._flush_queued = True
            self.actor_ref.tell(_Flush())

    def _flush(self, snapshot: bool = True) -> None:
        if not self._pending:
            return
        batch, self._pending, self._pending_records = self._pending, [], 0
        records = [record for append in batch for record in append.records]
        if records and self._journal is not None:
            started = time.perf_counter()
            try:
                last = self._journal.append(records)
            except JournalWriteError as bad:
                self._fail(bad, batch)
                return
            self._latencies.append(time.perf_counter() - started)
            self._since_snapshot += len(records)
            self._committed(last, len(records))
            if self._on_commit is not None:
                self._on_commit(records)
        for append in batch:
            for inbox, then in append.then:
                if not self.tell_if_alive(inbox, then):
                    self._update(undelivered=self._state.undelivered + 1)
        if snapshot and self._since_snapshot >= self._every and self._source is not None:
            self._write_snapshot()

    def _committed(self, last: int, count: int) -> None:
        ordered = sorted(self._latencies)
        stats = self._journal.stats() if self._journal is not None else None
        self._update(
            last_seq=last, events=stats.events if stats else last,
            bytes=stats.bytes if stats else 0, batches=self._state.batches + 1,
            largest_batch=max(self._state.largest_batch, count),
            write_p50_ms=_rank(ordered, 0.50) * 1000, write_p99_ms=_rank(ordered, 0.99) * 1000)

    def _write_snapshot(self) -> None:
        if self._journal is None or self._source is None:
            return
        body = self._source()
        seq = self._journal.last_seq
        try:
            self._journal.write_snapshot(seq, body, built=True)
        except JournalWriteError as bad:
            self._fail(bad, [])
            return
        self._since_snapshot = 0
        _log.info("journal_snapshot", seq=seq, path=str(self._journal.path))
        self._update(snapshots=self._state.snapshots + 1)

    # -- failure -----------------------------------------------------------------------

    def _fail(self, error: JournalWriteError, dropped: list[Append]) -> None:
        reason = str(error)
        path = str(self._journal.path) if self._journal is not None else None
        _log.error("alert", alert="journal_write_failed", error=reason, path=path,
                   appends_dropped=len(dropped),
                   records_dropped=sum(len(a.records) for a in dropped),
                   then_withheld=sum(len(a.then) for a in dropped))
        self._update(failed=True, last_error=reason)
        self._halt(reason)

    def _refuse(self, message: Append) -> None:
        self._update(refused=self._state.refused + 1)
        _log.error("journal_append_refused", refused=self._state.refused,
                   records=len(message.records), then_withheld=len(message.then),
                   reason=self._state.last_error)
        self._halt(self._state.last_error or "")

    def _halt(self, reason: str) -> None:
        if self._halt_to is None:
            return
        text = f"journal write failed: {reason}"
        if len(text) > _REASON_MAX:
            text = text[:_REASON_MAX - 3] + "..."
        self.tell_if_alive(self._halt_to, SetTradingState(TradingState.HALTED, text))

    def _update(self, **changes: Any) -> None:
        self._state = replace(self._state, **changes)
        self.snapshot.publish(self._state)


def _rank(ordered: list[float], share: float) -> float:
    """The nearest-rank percentile of sorted ``ordered`` (0.0 when empty)."""
    if not ordered:
        return 0.0
    return ordered[min(len(ordered) - 1, max(0, round(share * len(ordered)) - 1))]
