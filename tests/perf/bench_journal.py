"""Journal benchmarks: how long start-up takes against journal size, and what a commit costs.

* Recovery time: open (header, quick_check, checksum of every row) and replay
  1k, 10k and 100k events of a saga's realistic mix (fills and cash
  changes as protocol messages), decoding each back into its message.
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

from actors.journal import Journal, JournalRecord
from actors.market import IST
from messages import (
    ApplyFill,
    Fill,
    Instrument,
    Money,
    ReleaseCash,
    ReserveCash,
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


def recovery(directory: Path, sizes: Sequence[int]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for size in sizes:
        path = directory / f"recovery-{size}.sqlite3"
        journal = Journal.open(path, "paper")
        records = saga_records(size)
        for start in range(0, len(records), 5000):
            journal.append(records[start:start + 5000])
        journal.close()
        begin = time.perf_counter()
        journal = Journal.open(path, "paper")
        opened = time.perf_counter()
        count = sum(1 for _, record in journal.replay() if record.message() is not None)
        done = time.perf_counter()
        journal.close()
        result[str(size)] = {"events": count, "open_s": round(opened - begin, 4),
                             "replay_decode_s": round(done - opened, 4),
                             "total_s": round(done - begin, 4),
                             "bytes": path.stat().st_size}
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
