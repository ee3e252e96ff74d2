"""Journal benchmarks: how long start-up takes against journal size, and what a commit costs.

* Recovery time: start-up's own path (``actors._durable.recover`` and
  ``Projection.recovered``) over journals of 1k, 10k and 100k events of
  round trips (an entry saga and its exit: ``saga``, ``ReserveCash``,
  ``order``, ``placed``, ``ApplyFill``, ``ended``, ``book``, as the engine
  writes them), measured in the same run WITHOUT a snapshot (every event
  folded) and WITH one near the end (the last 100 events folded). Opening the
  file (header, quick_check, every row's crc) is timed apart: it is the same
  for both.
* Commit cost: records/s appended one per transaction (synchronous=FULL: one
  fsync each) against group commit (``--batch`` records per transaction),
  measured in the same run.

Run ``python -m tests.perf.bench_journal --help``. Prints ONE JSON object on stdout.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections.abc import Sequence
from datetime import date, datetime
from pathlib import Path
from typing import Any

from actors._durable import (
    Projection,
    book_record,
    ended_record,
    opening_record,
    order_record,
    placed_record,
    recover,
    saga_record,
)
from actors.config import EngineConfig
from actors.journal import Journal, JournalRecord
from actors.market import IST
from messages import (
    ApplyFill,
    ExitRules,
    Fill,
    Instrument,
    Money,
    OrderLeg,
    Product,
    ReleaseCash,
    ReserveCash,
    SagaKind,
    Side,
)

CALL = Instrument((35010 << 8) | 2, "NFO", "NIFTY26DEC24000CE", "NIFTY", "CE", 65, Money(5),
                  date(2026, 12, 29), Money(2_400_000))
NOW = datetime(2026, 11, 25, 10, 0, tzinfo=IST)


def saga_records(n: int) -> list[JournalRecord]:
    """Records of ``n`` // 3 entry sagas: reserve, fill, release (the portfolio's inputs)."""
    out: list[JournalRecord] = []
    for i in range(n // 3 + 1):
        saga = f"S{i:07d}"
        fill = Fill(f"F{i}", f"B{i}", CALL.instrument_token, Side.BUY, 65, Money(100_00),
                    Money(25_00), NOW)
        out += [JournalRecord.of(ReserveCash(saga, Money(7_000_00)), saga),
                JournalRecord.of(ApplyFill(saga, "bench", fill, Money(0)), saga),
                JournalRecord.of(ReleaseCash(saga), saga)]
    return out[:n]


TAIL = 100
"""Events start-up folds after the snapshot in the WITH-snapshot measurement."""
_PCT = EngineConfig().short_margin_pct


def round_trips(n: int) -> list[JournalRecord]:
    """``n`` records as the engine writes them: the opening, then entry and exit sagas
    (one lot of one option each, ten instruments in turn, so the book stays small)."""
    out = [opening_record(10**12)]
    rules = ExitRules()
    i = 0
    while len(out) < n:
        instrument = Instrument((35010 << 8) | (2 + i % 10), "NFO", f"NIFTY26DEC{24000 + i % 10}CE",
                                "NIFTY", "CE", 65, Money(5), date(2026, 12, 29), Money(2_400_000))
        for side, kind in ((Side.BUY, SagaKind.ENTRY), (Side.SELL, SagaKind.EXIT)):
            saga, broker = f"S{i:07d}", str(100_000_000_000_001 + i)
            leg = OrderLeg(instrument, side, 65, product=Product.NRML)
            tag = f"{saga}1{'E' if side is Side.BUY else 'X'}"
            fill = Fill(str(10_000_001 + i), broker, instrument.instrument_token, side, 65,
                        Money(100_00), Money(25_00), NOW)
            out += [saga_record(saga, kind, "bench", (leg,), rules, {})]
            if side is Side.BUY:
                out += [JournalRecord.of(ReserveCash(saga, Money(7_000_00)), saga)]
            out += [order_record(saga, tag, 1, "E" if side is Side.BUY else "X", 0, leg),
                    placed_record(saga, tag, broker),
                    JournalRecord.of(ApplyFill(saga, "bench", fill,
                                               release_rest=side is Side.BUY), saga),
                    ended_record(saga, "COMPLETED", ""),
                    book_record("bench", instrument, Product.NRML, rules,
                                100_00 if side is Side.BUY else None, 100_00)]
            i += 1
    return out[:n]


def _start_up(path: Path) -> dict[str, float]:
    """Start-up as the engine does it: open, recover (snapshot + tail), rebuild."""
    begin = time.perf_counter()
    journal = Journal.open(path, "paper")
    opened = time.perf_counter()
    projection, after = recover(journal, paper_margin_pct=_PCT)
    recovered = projection.recovered()
    done = time.perf_counter()
    journal.close()
    assert recovered.events == journal.last_seq
    return {"snapshot_seq": after, "open_s": round(opened - begin, 4),
            "fold_s": round(done - opened, 4), "total_s": round(done - begin, 4)}


def recovery(directory: Path, sizes: Sequence[int]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for size in sizes:
        records = round_trips(size)
        plain, snapped = (directory / f"recovery-{size}.sqlite3",
                          directory / f"recovery-{size}-snapshot.sqlite3")
        for path in (plain, snapped):
            journal = Journal.open(path, "paper")
            for start in range(0, len(records), 5000):
                journal.append(records[start:start + 5000])
            if path is snapped:  # folded from the committed records, as JournalActor does
                head = Projection(paper_margin_pct=_PCT)
                head.add_all(records[:max(0, len(records) - TAIL)])
                journal.write_snapshot(head.events, head.to_body(), built=True)
            journal.close()
        without, with_ = _start_up(plain), _start_up(snapped)
        result[str(size)] = {"events": len(records), "without_snapshot": without,
                             "with_snapshot": with_,
                             "snapshot_bytes": snapped.stat().st_size - plain.stat().st_size,
                             "speedup": round(without["total_s"] / with_["total_s"], 1),
                             "bytes": plain.stat().st_size}
    return result


def commit_cost(directory: Path, records: int, batch: int) -> dict[str, Any]:
    data = saga_records(records)
    one = Journal.open(directory / "single.sqlite3", "paper")
    begin = time.perf_counter()
    for record in data:
        one.append([record])
    single_s = time.perf_counter() - begin
    one.close()
    group = Journal.open(directory / "group.sqlite3", "paper")
    begin = time.perf_counter()
    for start in range(0, len(data), batch):
        group.append(data[start:start + batch])
    group_s = time.perf_counter() - begin
    group.close()
    return {"records": len(data), "batch": batch,
            "single_records_per_s": round(len(data) / single_s),
            "single_commit_ms": round(single_s / len(data) * 1000, 3),
            "group_records_per_s": round(len(data) / group_s),
            "group_vs_single": round(single_s / group_s, 1)}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000,10000,100000")
    parser.add_argument("--records", type=int, default=3000, help="for the commit cost")
    parser.add_argument("--batch", type=int, default=100, help="group commit size")
    parser.add_argument("--dir", type=Path, default=None,
                        help="where the files go (default: a temporary dir; tmpfs hides "
                             "the fsync cost, so point this at the real disk)")
    args = parser.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",")]
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        report = {"benchmark": "bench_journal", "dir": str(args.dir or tempfile.gettempdir()),
                  "recovery": recovery(Path(tmp), sizes),
                  "commit": commit_cost(Path(tmp), args.records, args.batch)}
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
