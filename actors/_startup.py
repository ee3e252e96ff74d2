"""Opening the journal at start-up: recover, fix the opening cash, hand over the store.

Start-up IS recovery (docs/sagas.md): :func:`open_journal` opens this mode's
journal, loads its latest snapshot and folds the tail (:func:`recover`), and
makes sure the journal records its opening cash. The returned
:class:`JournalStart` carries what Engine wires: the store (for the
JournalActor), what the actors start from, and the projection that goes on
folding committed records for the next snapshots.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import structlog

from actors._durable import Projection, Recovered, opening_record, recover
from actors.config import Config
from actors.journal import Journal, journal_path
from messages import Money

__all__ = ["JournalStart", "open_journal"]

_log = structlog.get_logger("kitesaga.system")


@dataclass(frozen=True, slots=True)
class JournalStart:
    """An opened, recovered journal: the ``store`` (to hand to the JournalActor),
    the ``projection`` at its last seq (feed it the committed records; it is the
    snapshot source), ``recovered`` (what the actors start from), the seq of the
    ``snapshot`` start-up loaded (0: none) and the wall ``seconds`` it took."""

    store: Journal
    projection: Projection
    recovered: Recovered
    snapshot: int
    seconds: float


def open_journal(config: Config, cash: Money, cash_source: str) -> JournalStart:
    """Open and recover ``config``'s journal for its mode.

    ``cash`` is the opening cash this start would use (``cash_source`` says
    where it comes from: the configuration or the broker). On a journal's
    first start it is recorded (an ``opening`` record); on every later start
    the JOURNALED opening cash is the one used, and a different ``cash`` is
    logged at WARNING (``opening_cash_differs``), never applied: the journal's
    fills already account for what happened since the opening. A foreign,
    corrupt or other-mode file raises JournalError and is left untouched.
    """
    mode = config.engine.mode
    paper_pct = config.engine.short_margin_pct if mode == "paper" else None
    store = Journal.open(journal_path(config, mode), mode)
    try:
        started = time.monotonic()
        projection, snapshot = recover(store, config.engine.fill_dedupe_window, paper_pct)
        if projection.opening is None:
            record = opening_record(cash.paise)
            store.append([record])
            projection.add(record)
            _log.info("opening_cash_recorded", cash=str(cash), source=cash_source,
                      seq=store.last_seq)
        elif projection.opening != cash.paise:
            _log.warning("opening_cash_differs", journaled=str(Money(projection.opening)),
                         current=str(cash), source=cash_source,
                         action="using the journaled opening cash")
        recovered = projection.recovered()
        seconds = time.monotonic() - started
    except BaseException:
        store.close()
        raise
    _log.info("journal_replayed", events=recovered.events, snapshot_seq=snapshot,
              tail_events=recovered.events - snapshot,
              unfinished_sagas=len(recovered.unfinished), seconds=round(seconds, 3))
    return JournalStart(store, projection, recovered, snapshot, seconds)
