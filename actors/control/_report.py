"""``kitesaga report``: a day's trades, charges and P&L per strategy and instrument,
read from the journal file (read-only; the engine may be running or not).

Every fill the portfolio booked is an ``ApplyFill`` (or ``AdoptPosition``) record;
folding them all, in journal order, through the portfolio's own
:class:`actors._ledger.Ledger` (average cost: a close removes its pro-rata share of
the open cost, the rest is realised) gives each fill's realised P&L exactly as the
running engine booked it, whatever day the position was opened. A day's report is
the fills whose timestamp falls on that date in IST.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

import actors.journal._records as fmt
from actors._ledger import Ledger
from actors.journal import JournalCorrupt, JournalError, JournalRecord
from actors.market import IST
from messages import AdoptPosition, ApplyFill

__all__ = ["DailyReport", "Line", "Trade", "daily_report", "read_fills"]

_CHUNK = 1000


@dataclass(frozen=True, slots=True)
class Trade:
    """One booked fill: money in paise; ``realised`` is the gross P&L this fill
    booked (closing part only), ``adopted`` marks a position taken over from the
    broker (live reconciliation) rather than traded by a saga."""

    seq: int
    time: datetime
    strategy: str
    instrument_token: int
    instrument: str
    side: str
    quantity: int
    price: int
    charges: int
    realised: int
    saga_id: str
    fill_id: str
    adopted: bool = False

    @property
    def value(self) -> int:
        """Quantity times price (turnover), paise."""
        return self.quantity * self.price


@dataclass(slots=True)
class Line:
    """Totals of some trades: count, quantities bought and sold, turnover, realised
    P&L (gross), charges and net (realised - charges), all money in paise."""

    trades: int = 0
    bought: int = 0
    sold: int = 0
    turnover: int = 0
    realised: int = 0
    charges: int = 0

    @property
    def net(self) -> int:
        """Realised P&L less charges."""
        return self.realised - self.charges

    def add(self, trade: Trade) -> None:
        """Count ``trade`` in these totals."""
        self.trades += 1
        if trade.side == "BUY":
            self.bought += trade.quantity
        else:
            self.sold += trade.quantity
        self.turnover += trade.value
        self.realised += trade.realised
        self.charges += trade.charges


@dataclass(slots=True)
class DailyReport:
    """One day's trades (journal order), totals per (strategy, instrument) and overall."""

    day: date
    journal: Path
    trades: list[Trade] = field(default_factory=list)
    lines: dict[tuple[str, str], Line] = field(default_factory=dict)
    total: Line = field(default_factory=Line)


def _open(path: Path, mode: str) -> sqlite3.Connection:
    """Open ``path`` read-only after the checks :meth:`Journal.open` makes (kitesaga's
    header, format, SQLite's quick_check, the book's mode); SQLite never writes it."""
    if not path.is_file():
        raise JournalError(f"{path}: no {mode} journal there (has the engine run with this "
                           f"state dir and mode?)")
    fmt.check_header(path)
    try:
        conn = sqlite3.connect(f"file:{quote(str(path))}?mode=ro", uri=True)
    except sqlite3.Error as bad:
        raise JournalError(f"{path}: cannot open the journal read-only: {bad}") from None
    try:
        problems = [row[0] for row in conn.execute("PRAGMA quick_check")]
        if problems != ["ok"]:
            raise JournalCorrupt(f"{path}: SQLite finds the file damaged: "
                                 f"{'; '.join(map(str, problems[:5]))}")
        fmt.check_version(path, conn.execute("PRAGMA user_version").fetchone()[0])
        meta = dict(conn.execute("SELECT key, value FROM meta").fetchall())
        if meta.get("mode") != mode:
            raise JournalError(f"{path}: is the {meta.get('mode')} journal, not the {mode} "
                               f"one")
    except sqlite3.Error as bad:
        conn.close()
        raise JournalError(f"{path}: cannot read the journal: {bad}") from None
    except BaseException:
        conn.close()
        raise
    return conn


def _records(conn: sqlite3.Connection, path: Path) -> Iterator[tuple[int, JournalRecord]]:
    """Every event in seq order, each row's crc checked, no seq missing."""
    cursor = conn.execute("SELECT seq, kind, saga_id, body, crc FROM events ORDER BY seq")
    expected = 1
    while rows := cursor.fetchmany(_CHUNK):
        for seq, kind, saga_id, text, stored in rows:
            if seq != expected:
                raise JournalCorrupt(f"{path}: event seq {expected} is missing")
            fmt.check_row(path, "event", seq, text, stored)
            body = fmt.load_body(path, "event", seq, text)
            yield seq, JournalRecord.from_stored(kind, saga_id, text, body)
            expected += 1


def _names(record: JournalRecord, names: dict[int, str]) -> None:
    """Learn ``token -> EXCHANGE:TRADINGSYMBOL`` from saga and book records."""
    instruments: list[Any] = []
    if record.kind == "saga":
        instruments = [leg.get("instrument") for leg in record.body.get("legs", ())]
    elif record.kind in ("book", "order"):
        source = record.body.get("instrument") or record.body.get("leg", {}).get("instrument")
        instruments = [source]
    for item in instruments:
        if isinstance(item, dict) and "instrument_token" in item:
            names[item["instrument_token"]] = f"{item.get('exchange')}:{item.get('tradingsymbol')}"


def read_fills(path: Path, mode: str, dedupe_window: int) -> list[Trade]:
    """Every fill the journal at ``path`` (of book ``mode``) booked, in order, each
    with the realised P&L the portfolio booked for it (duplicates, which it ignored,
    are left out). Raises JournalError/JournalCorrupt naming the file and the
    problem; the file is only read."""
    conn = _open(path, mode)
    ledger = Ledger(0, dedupe_window)
    names: dict[int, str] = {}
    booked: list[tuple[int, str, Any, int, bool]] = []
    try:
        for seq, record in _records(conn, path):
            if record.kind not in ("ApplyFill", "AdoptPosition"):
                _names(record, names)
                continue
            try:
                message = record.message()
            except ValueError as bad:
                raise JournalCorrupt(f"{path}: event seq {seq}: {bad}") from None
            if isinstance(message, ApplyFill):
                realised = ledger.apply(message)
            elif isinstance(message, AdoptPosition):
                realised = ledger.adopt(message)
            else:
                raise JournalCorrupt(f"{path}: event seq {seq}: a {record.kind} record "
                                     f"holds a {type(message).__name__}")
            if realised is not None:
                booked.append((seq, record.saga_id or "", message, realised,
                               isinstance(message, AdoptPosition)))
    except sqlite3.Error as bad:
        raise JournalError(f"{path}: cannot read the journal: {bad}") from None
    finally:
        conn.close()
    trades = []
    for seq, saga_id, message, realised, adopted in booked:
        fill = message.fill
        trades.append(Trade(seq, fill.timestamp.astimezone(IST), message.strategy,
                            fill.instrument_token,
                            names.get(fill.instrument_token, str(fill.instrument_token)),
                            fill.side.value, fill.quantity, fill.price.paise,
                            fill.charges.paise, realised, saga_id, fill.fill_id, adopted))
    return trades


def daily_report(path: Path, mode: str, day: date, dedupe_window: int) -> DailyReport:
    """The trades of ``day`` (IST) in the journal at ``path`` and their totals per
    (strategy, instrument) and overall (see :func:`read_fills`)."""
    report = DailyReport(day, path)
    for trade in read_fills(path, mode, dedupe_window):
        if trade.time.date() != day:
            continue
        report.trades.append(trade)
        report.lines.setdefault((trade.strategy, trade.instrument), Line()).add(trade)
        report.total.add(trade)
    report.lines = dict(sorted(report.lines.items()))
    return report
