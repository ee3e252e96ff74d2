"""``kitesaga report [--date D] [--csv PATH]``: a day's trades, charges and P&L per
strategy and instrument, read from the journal (read-only), engine running or not."""

from __future__ import annotations

import argparse
import csv
import sys
from datetime import date, datetime
from pathlib import Path
from typing import Any

from actors.cli._control import common_flags
from actors.cli._control_text import table
from actors.cli._flags import configure
from actors.control import DailyReport, daily_report
from actors.control._report import Line
from actors.journal import journal_path
from actors.market import IST
from messages import Money

__all__ = ["CSV_COLUMNS", "add_report_parser", "rupees"]

CSV_COLUMNS = ("row", "date", "time_ist", "strategy", "instrument", "instrument_token",
               "side", "quantity", "price", "value", "charges", "realised", "net", "saga_id",
               "fill_id")
"""``--csv``'s columns. ``row`` is ``trade`` (one per fill), ``subtotal`` (one per
strategy and instrument) or ``total`` (the day). Money is in rupees with two decimals
(exact paise): ``price`` per unit, ``value`` quantity × price, ``charges`` the fill's
charges, ``realised`` the gross P&L the fill booked (average cost), ``net`` realised −
charges. A subtotal's ``quantity`` is the units bought plus sold; ``side`` is empty."""

_FLAG_KEYS = {"state_dir": "KITESAGA_ENGINE_STATE_DIR", "mode": "KITESAGA_ENGINE_MODE"}


def _day(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a date YYYY-MM-DD, got {text!r}") from None


def add_report_parser(sub: Any) -> None:
    """Register ``report`` and its flags."""
    p = sub.add_parser("report", help="a day's trades, charges and P&L per strategy and "
                       "instrument, from the journal (the engine need not run)")
    p.add_argument("--date", type=_day, metavar="D", help="the day, YYYY-MM-DD (default: "
                   "today in IST)")
    p.add_argument("--csv", type=Path, metavar="PATH", help="also write one row per trade "
                   "plus subtotals and the total as CSV")
    p.add_argument("--mode", metavar="MODE", help="whose journal: paper or live (default: "
                   "engine.mode)")
    common_flags(p)
    p.set_defaults(func=report)


def rupees(paise: int) -> str:
    """Paise as a plain decimal number of rupees, exact: ``-1234.05``."""
    sign = "-" if paise < 0 else ""
    whole, part = divmod(abs(paise), 100)
    return f"{sign}{whole}.{part:02d}"


def _line_cells(line: Line) -> list[Any]:
    return [line.trades, line.bought, line.sold, Money(line.turnover), Money(line.realised),
            Money(line.charges), Money(line.net)]


def render(data: DailyReport, mode: str) -> str:
    """The report as a table."""
    head = f"kitesaga report {data.day.isoformat()} ({mode} journal {data.journal})"
    if not data.trades:
        return f"{head}\nno trades on {data.day.isoformat()}"
    rows = [[strategy, instrument, *_line_cells(line)]
            for (strategy, instrument), line in data.lines.items()]
    rows.append(["total", "", *_line_cells(data.total)])
    return head + "\n" + table(("strategy", "instrument", "trades", "bought", "sold",
                                "turnover", "realised", "charges", "net"), rows)


def write_csv(data: DailyReport, path: Path) -> None:
    """``--csv``: see :data:`CSV_COLUMNS`."""
    day = data.day.isoformat()
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as out:
        writer = csv.writer(out)
        writer.writerow(CSV_COLUMNS)
        for t in data.trades:
            writer.writerow(["trade", day, t.time.isoformat(), t.strategy, t.instrument,
                             t.instrument_token, t.side, t.quantity, rupees(t.price),
                             rupees(t.value), rupees(t.charges), rupees(t.realised),
                             rupees(t.realised - t.charges), t.saga_id, t.fill_id])
        totals = [("subtotal", s, i, line) for (s, i), line in data.lines.items()]
        for kind, strategy, instrument, line in [*totals, ("total", "", "", data.total)]:
            writer.writerow([kind, day, "", strategy, instrument, "", "",
                             line.bought + line.sold, "", rupees(line.turnover),
                             rupees(line.charges), rupees(line.realised), rupees(line.net),
                             "", ""])


def report(args: argparse.Namespace) -> int:
    """Print the day's report (and write ``--csv``); exit 0, or 2 for bad input or a
    journal that cannot be read (named, with the reason)."""
    config = configure(args, _FLAG_KEYS)
    mode = config.engine.mode
    day = args.date or datetime.now(IST).date()
    data = daily_report(journal_path(config, mode), mode, day,
                        config.engine.fill_dedupe_window)
    print(render(data, mode))
    if args.csv is not None:
        write_csv(data, args.csv)
        print(f"wrote {len(data.trades)} trade(s) and {len(data.lines) + 1} total row(s) "
              f"to {args.csv}", file=sys.stderr)
    return 0
