"""Introspection benchmark: what counting and tracing cost an actor, and how fast the
control socket answers the REPL while the engine is busy.

Run ``python -m tests.perf.bench_introspect --help``. Prints ONE JSON object on stdout
(logs go to stderr). Phases, each measured in the same run so that ratios compare:

- ``tell``: messages/s one actor handles, for a bare Pykka actor (the floor), an
  EngineActor (counting every message in ActorStats, no trace), an EngineActor with
  a trace attached that keeps nothing (another message type) and one that keeps
  every message (its reader draining);
- ``answers``: a running paper engine fed ``--ticks-per-s`` prices over
  ``--instruments`` instruments; ``actors``, ``prices`` and ``status`` requests
  are timed (p50/p99/max) while a trace of RecordPrices runs beside them.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import threading
import time
from collections.abc import Sequence
from typing import Any

import pykka

from actors._base import EngineActor
from actors._introspect import AttachTrace, TraceSink
from actors._system import Engine
from actors.control import request, start_control, stream
from messages import Money, Price, RecordPrices
from tests.engine_support import make_config
from tests.perf.bench_core import _quiet_logs, percentile

__all__ = ["main"]


class _Done:
    """The last message: tells the waiting thread the actor got through the batch."""

    def __init__(self) -> None:
        self.event = threading.Event()


class _Bare(pykka.ThreadingActor):
    def on_receive(self, message: Any) -> Any:
        if isinstance(message, _Done):
            message.event.set()
        return None


class _Counted(EngineActor):
    def receive(self, message: Any) -> Any:
        if isinstance(message, _Done):
            message.event.set()
        return None


def _per_s(actor: type[pykka.ThreadingActor], n: int, sink: TraceSink | None) -> float:
    ref = actor.start()
    try:
        if sink is not None:
            ref.tell(AttachTrace(sink))
        drain = threading.Event()
        reader = None
        if sink is not None:
            def read() -> None:
                while not drain.is_set():
                    sink.take()
                    drain.wait(0.01)
            reader = threading.Thread(target=read)
            reader.start()
        message = RecordPrices(())
        done = _Done()
        started = time.perf_counter()
        for _ in range(n):
            ref.tell(message)
        ref.tell(done)
        done.event.wait(120)
        elapsed = time.perf_counter() - started
        drain.set()
        if reader is not None:
            reader.join()
        return n / elapsed
    finally:
        ref.stop()


def tell_costs(n: int, rounds: int) -> dict[str, Any]:
    """Median messages/s per variant over ``rounds`` interleaved rounds."""
    runs: dict[str, list[float]] = {"bare": [], "counted": [], "trace_other_type": [],
                                    "trace_everything": []}
    for _ in range(rounds):
        runs["bare"].append(_per_s(_Bare, n, None))
        runs["counted"].append(_per_s(_Counted, n, None))
        runs["trace_other_type"].append(_per_s(_Counted, n, TraceSink(frozenset({"X"}), 10_000)))
        runs["trace_everything"].append(_per_s(_Counted, n, TraceSink(None, 10_000)))
    median = {k: statistics.median(v) for k, v in runs.items()}
    return {f"{k}_msgs_per_s": round(v) for k, v in median.items()} | {
        f"{k}_vs_bare": round(v / median["bare"], 3) for k, v in median.items() if k != "bare"}


def answers(ticks_per_s: float, instruments: int, seconds: float) -> dict[str, Any]:
    """Control-socket answer times while prices flow and a trace runs."""
    engine = Engine(make_config(), run_strategies=False, run_feed=False).start()
    server = start_control(engine)
    stop = threading.Event()
    tokens = [i.instrument_token for i in engine.instruments][:instruments]
    sent = [0]

    def feed() -> None:
        batch = max(1, round(ticks_per_s / 100))  # 100 batches a second
        step, began = 0, time.monotonic()
        while not stop.is_set():
            now = engine.clock.now()
            prices = tuple(Price(tokens[(step * batch + k) % len(tokens)],
                                 Money(10_000 + (step + k) % 50), now, now)
                           for k in range(batch))
            engine.prices.tell(RecordPrices(prices))
            sent[0] += batch
            step += 1
            stop.wait(max(0.0, began + step / 100 - time.monotonic()))

    def trace() -> None:
        for _ in stream(server.path, "trace", {"target": "RecordPrices", "n": 10_000,
                                               "timeout_s": seconds + 5}, timeout=seconds + 10):
            if stop.is_set():
                break

    threads = [threading.Thread(target=feed), threading.Thread(target=trace)]
    for thread in threads:
        thread.start()
    timings: dict[str, list[float]] = {"actors": [], "prices": [], "status": []}
    began = time.monotonic()
    try:
        while time.monotonic() - began < seconds:
            for command in timings:
                t0 = time.perf_counter()
                request(server.path, command, {}, timeout=10)
                timings[command].append(time.perf_counter() - t0)
    finally:
        stop.set()
        for thread in threads:
            thread.join(30)
        elapsed = time.monotonic() - began
        server.stop()
        engine.stop(drain=False)
    out: dict[str, Any] = {"ticks_per_s_achieved": round(sent[0] / elapsed, 1),
                           "instruments": len(tokens)}
    for command, values in timings.items():
        out[command] = {"n": len(values), "p50_ms": round(percentile(values, 50) * 1e3, 2),
                        "p99_ms": round(percentile(values, 99) * 1e3, 2),
                        "max_ms": round(max(values) * 1e3, 2)}
    return out


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.perf.bench_introspect",
                                     description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--messages", type=int, default=200_000, help="tells per round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--ticks-per-s", type=float, default=1000.0)
    parser.add_argument("--instruments", type=int, default=80)
    parser.add_argument("--seconds", type=float, default=10.0)
    args = parser.parse_args(argv)
    if args.messages < 1 or args.rounds < 1 or args.seconds <= 0 or args.ticks_per_s <= 0:
        parser.error("need --messages, --rounds >= 1 and --seconds, --ticks-per-s > 0")
    _quiet_logs()
    print("bench_introspect: tell costs...", file=sys.stderr, flush=True)
    result = {"tell": tell_costs(args.messages, args.rounds)}
    print("bench_introspect: answers under load...", file=sys.stderr, flush=True)
    result["answers"] = answers(args.ticks_per_s, args.instruments, args.seconds)
    worst = max(v["max_ms"] for k, v in result["answers"].items() if isinstance(v, dict))
    result["answer_within_1s"] = worst < 1000
    print(json.dumps(result, indent=2))
    pykka.ActorRegistry.stop_all()
    return 0 if result["answer_within_1s"] else 1


if __name__ == "__main__":
    sys.exit(main())
