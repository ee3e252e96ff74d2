"""Start-up from the journal: the latest snapshot, then the tail (one path, always).

:func:`recover` is what every start does, on a fresh journal, after a clean
stop and after a crash alike: load the latest snapshot (if any) into a
:class:`Projection`, fold the events after it, and hand back the projection
(which goes on folding the committed records for the next snapshots) and its
:class:`Recovered`. :func:`fold` is the same fold over records in hand.

The records and the dataclasses start-up hands the actors are in
``actors/_journaled.py`` (re-exported here); the fold is
``actors/_projection.py``. See docs/sagas.md ("Snapshots").
"""

from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal

import structlog

from actors._journaled import (
    PORTFOLIO_KINDS,
    BookRecord,
    OrderRecord,
    Recovered,
    SagaRecord,
    book_record,
    ended_record,
    opening_record,
    order_record,
    placed_record,
    saga_record,
    trading_record,
)
from actors._projection import SNAPSHOT_FORMAT, Projection
from actors.config import EngineConfig
from actors.journal import Journal, JournalCorrupt, JournalRecord

__all__ = ["PORTFOLIO_KINDS", "SNAPSHOT_FORMAT", "BookRecord", "OrderRecord", "Projection",
           "Recovered", "SagaRecord", "book_record", "ended_record", "fold", "opening_record",
           "order_record", "placed_record", "recover", "saga_record", "trading_record"]

_log = structlog.get_logger("kitesaga.journal")

_WINDOW = EngineConfig().fill_dedupe_window
_PAPER_PCT = EngineConfig().short_margin_pct


def fold(records: Iterable[JournalRecord], dedupe_window: int = _WINDOW,
         paper_margin_pct: Decimal | None = _PAPER_PCT) -> Recovered:
    """Rebuild :class:`Recovered` from a journal's records, in order (every one of
    them: no snapshot). ``paper_margin_pct`` None: no paper broker book (live)."""
    projection = Projection(dedupe_window, paper_margin_pct)
    projection.add_all(records)
    return projection.recovered()


def recover(journal: Journal, dedupe_window: int = _WINDOW,
            paper_margin_pct: Decimal | None = _PAPER_PCT) -> tuple[Projection, int]:
    """Load ``journal``'s latest snapshot and fold the events after it.

    Returns the projection (at the journal's last seq) and the seq of the
    snapshot it started from (0: none, a full replay). A snapshot of another
    format is ignored with a warning (``snapshot_format_ignored``) and every
    event is folded: events are the truth, a snapshot only a shortcut. A
    snapshot of this format that cannot be loaded, or that does not cover
    exactly its seq's events, or an event that cannot be folded, raises
    :class:`JournalCorrupt` naming the file and the seq; nothing is deleted.
    """
    latest = journal.latest_snapshot()
    projection: Projection | None = None
    after = 0
    if latest is not None:
        seq, body = latest
        found = body.get("format")
        if found != SNAPSHOT_FORMAT:
            _log.warning("snapshot_format_ignored", seq=seq, path=str(journal.path),
                         found=found, reads=SNAPSHOT_FORMAT,
                         action="replaying every event instead")
        else:
            try:
                projection = Projection.from_body(body, dedupe_window, paper_margin_pct)
            except ValueError as bad:
                raise JournalCorrupt(f"{journal.path}: snapshot seq {seq}: cannot be loaded: "
                                     f"{bad}; refusing the journal (left untouched)") from None
            if projection.events != seq:
                raise JournalCorrupt(f"{journal.path}: snapshot seq {seq}: it holds the state "
                                     f"after {projection.events} events, not {seq}; refusing "
                                     f"the journal (left untouched)")
            after = seq
    if projection is None:
        projection = Projection(dedupe_window, paper_margin_pct)
    for seq, record in journal.replay(after=after):
        try:
            projection.add(record)
        except ValueError as bad:
            raise JournalCorrupt(f"{journal.path}: event seq {seq}: {bad}; refusing the "
                                 f"journal (left untouched)") from None
    return projection, after
