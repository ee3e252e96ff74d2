"""Soak: the main job's Engine (strategies + feed) at high clock speed, ~1,000 ticking
instruments; RSS and thread count sampled over the run.

Run ``python -m tests.perf.soak --help``. Prints ONE JSON object on stdout; the engine's
log goes, as in ``kitesaga run``, to a JSON-lines file in a temporary state directory.
Exit code 0 when every target is met and the run ended without invariant violations.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pykka

from actors._system import Engine
from actors.cli._run import summary
from actors.config import Config, load_config
from actors.log import configure_logging
from actors.market import InstrumentTable, MarketCalendar, synthetic_dump_csv
from actors.market._clock import SimClock

__all__ = ["main", "rss_mb"]

TARGET_RSS_MB = 150.0
TARGET_GROWTH_MB = 5.0
TARGET_THREADS = 16
SESSION_S = 6 * 3600 + 15 * 60  # 09:15-15:30 IST
_DEFAULT_SPEED = 30.0  # 10 minutes of wall time = 5 simulated hours


def rss_mb() -> float:
    """This process's resident set size (VmRSS) in MB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


def soak_config(instruments: int, speed: float, state: Path, config_path: Path | None,
                seed: int | None) -> tuple[Config, int]:
    """The main job's configuration (file + environment, validated by the loader) with
    the market sized to ``instruments`` ticking instruments; returns it and the extra
    synthetic equities it lists."""
    env = {k: v for k, v in os.environ.items() if k.startswith("KITESAGA_")}
    base = load_config(config_path, {**env, "KITESAGA_MARKET_EXTRA_INSTRUMENTS": "0"})
    calendar = MarketCalendar(base.calendar)
    day = calendar.next_trading_day(base.market.start_date or datetime.now(UTC).date())
    listed = len(InstrumentTable.from_csv(synthetic_dump_csv(base.market, day, calendar)))
    extra = max(0, instruments - listed)
    env.update({"KITESAGA_MARKET_EXTRA_INSTRUMENTS": str(extra),
                "KITESAGA_MARKET_SPEED": repr(speed),
                "KITESAGA_STATE_DIR": str(state)})
    if seed is not None:
        env["KITESAGA_MARKET_SEED"] = str(seed)
    return load_config(config_path, env), extra


def _inboxes(engine: Engine) -> dict[str, int]:
    """Messages waiting in each actor's inbox (a backlog that grows is a leak)."""
    waiting: dict[str, int] = {}
    for ref in pykka.ActorRegistry.get_all():
        if ref is not None and ref.is_alive():
            waiting[ref.actor_class.__name__] = ref.actor_inbox.qsize()
    return waiting


def _sample(engine: Engine, began: float, feed_steps: int) -> dict[str, Any]:
    orders = engine.orders_snapshot
    stats = orders.stats
    waiting = _inboxes(engine)
    busiest = max(waiting, key=lambda k: waiting[k]) if waiting else ""
    return {
        "t_s": round(time.monotonic() - began, 1),
        "sim": engine.clock.now().strftime("%H:%M:%S"),
        "rss_mb": round(rss_mb(), 1),
        "threads": threading.active_count(),
        "sagas_started": stats["sagas_started"],
        "fills": stats["fills"],
        "open_positions": orders.open_positions,
        "price_batches": stats["price_batches"],
        "feed_steps": feed_steps,
        "inbox_max": waiting.get(busiest, 0),
        "inbox_max_actor": busiest,
    }


def _feed_steps(engine: Engine) -> int:
    try:
        steps: int = engine.feed.proxy().steps.get(timeout=5)
    except pykka.Timeout:
        return -1
    return steps


def run(minutes: float, speed: float, instruments: int, sample_s: float,
        config_path: Path | None, seed: int | None) -> dict[str, Any]:
    """Run the soak; the figures and verdicts as a dict."""
    seconds = minutes * 60
    with tempfile.TemporaryDirectory(prefix="kitesaga-soak-") as tmp:
        state = Path(tmp)
        config, extra = soak_config(instruments, speed, state, config_path, seed)
        configure_logging(state, config.logging.level, config.logging.file_name)
        rss_before = rss_mb()
        threads_before = threading.active_count()
        engine = Engine(config).start()
        began = time.monotonic()
        cpu_began = time.process_time()
        samples: list[dict[str, Any]] = []
        try:
            end = began + seconds
            due = [began + k * sample_s for k in range(int(seconds // sample_s) + 1)]
            if due[-1] < end - 1e-3:
                due.append(end)
            for at in due:
                time.sleep(max(0.0, at - time.monotonic()))  # pacing the samples
                samples.append(_sample(engine, began, _feed_steps(engine)))
            cpu_s = time.process_time() - cpu_began
        finally:
            drained = engine.stop(drain=True)
        figures = summary(engine, drained)
        log_bytes = (state / config.logging.file_name).stat().st_size
        sim_end = engine.clock.now()
        pykka.ActorRegistry.stop_all()
    window = [s for s in samples if s["t_s"] >= 0.2 * seconds] or samples[-1:]
    growth = window[-1]["rss_mb"] - window[0]["rss_mb"]
    max_rss = max(s["rss_mb"] for s in samples)
    max_threads = max(s["threads"] for s in samples)
    steps = samples[-1]["feed_steps"]
    ticking = len(engine.instruments)
    session_end = engine.start_time.replace(hour=15, minute=30)
    targets = {
        "max_rss_mb": {"target": f"<= {TARGET_RSS_MB:g}", "value": max_rss,
                       "met": max_rss <= TARGET_RSS_MB},
        "rss_growth_last_80pct_mb": {"target": f"<= {TARGET_GROWTH_MB:g}",
                                     "value": round(growth, 1),
                                     "met": growth <= TARGET_GROWTH_MB},
        "max_threads": {"target": f"<= {TARGET_THREADS}", "value": max_threads,
                        "met": max_threads <= TARGET_THREADS},
        "invariant_violations": {"target": "== 0", "value": figures["invariant_violations"],
                                 "met": figures["invariant_violations"] == 0},
    }
    return {
        "minutes": minutes, "speed": speed, "instruments": ticking, "extra_instruments": extra,
        "sample_s": sample_s,
        "simulated_start": engine.start_time.isoformat(), "simulated_end": sim_end.isoformat(),
        "inside_session": sim_end <= session_end,
        "feed_steps": steps,
        "feed_steps_expected": int(seconds * speed / config.market.tick_interval_s),
        "prices_per_s": round(steps * ticking / seconds, 1) if steps > 0 else None,
        "cpu_cores_busy": round(cpu_s / seconds, 2),
        "rss_before_engine_mb": round(rss_before, 1), "threads_before_engine": threads_before,
        "max_rss_mb": max_rss, "rss_growth_last_80pct_mb": round(growth, 1),
        "max_threads": max_threads, "log_bytes": log_bytes,
        "summary": figures, "targets": targets,
        "all_met": all(t["met"] for t in targets.values()),
        "samples": samples,
        "python": platform.python_version(), "cpu_count": os.cpu_count(),
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.perf.soak",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10.0, help="wall minutes to run")
    parser.add_argument("--speed", type=float, default=None,
                        help=f"simulated seconds per wall second (default {_DEFAULT_SPEED:g}, "
                             "lowered so the run stays inside the 09:15-15:30 session)")
    parser.add_argument("--instruments", type=int, default=1000,
                        help="ticking instruments in all (options, indices, equities)")
    parser.add_argument("--sample-s", type=float, default=10.0, help="seconds between samples")
    parser.add_argument("--config", type=Path, default=None, help="TOML configuration file")
    parser.add_argument("--seed", type=int, default=None, help="market seed")
    args = parser.parse_args(argv)
    if args.minutes <= 0 or args.sample_s <= 0 or args.instruments < 1:
        parser.error("need --minutes > 0, --sample-s > 0 and --instruments >= 1")
    # the simulated session must outlast the run: entries are refused after 15:30
    speed = args.speed or min(_DEFAULT_SPEED, 0.95 * SESSION_S / (args.minutes * 60))
    if speed <= 0:
        parser.error("--speed must be > 0")
    SimClock(datetime.now(UTC), speed)  # validates speed like the engine does
    if args.minutes * 60 * speed > SESSION_S:
        print(f"soak: {args.minutes:g} min at {speed:g}x runs past 15:30 "
              f"({timedelta(seconds=args.minutes * 60 * speed)} simulated): entries after "
              "the close are refused", file=sys.stderr)
    result = run(args.minutes, speed, args.instruments, args.sample_s, args.config, args.seed)
    print(json.dumps(result))
    return 0 if result["all_met"] else 1


if __name__ == "__main__":
    sys.exit(main())
