"""Core benchmark: the raw Pykka ask, entry-saga throughput and latency, tick -> exit decision.

Run ``python -m tests.perf.bench_core --help``. Prints ONE JSON object on stdout (logs go to
stderr); exit code 0 when every saga ended as expected and money was conserved, else 1.
The figures are explained in ``docs/performance.md``.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import statistics
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pykka
import structlog

from actors._system import Engine
from actors.config import Config
from messages import (
    ExitDecided,
    ExitRules,
    Instrument,
    Money,
    Price,
    RecordPrices,
    SagaCompensated,
    SagaCompleted,
    SagaRefused,
    Side,
    SubmitEntry,
)
from tests.engine_support import make_config
from tests.support import wait_until

__all__ = ["main", "percentile"]

TARGET_SAGA_COST_VS_ASK = 8.0
TARGET_TICK_TO_EXIT_P99_US = 2000.0
_HUGE = 10**9
_SYNTHETIC_PREFIX = "SYN"


def percentile(values: Sequence[float], pct: float) -> float:
    """Nearest-rank percentile (``pct`` in 0..100) of a non-empty sequence."""
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(pct / 100 * len(ordered) + 0.5)))
    return ordered[rank - 1]


def _quiet_logs() -> None:
    """Warnings and errors only, on stderr: stdout carries the JSON alone."""
    logging.basicConfig(stream=sys.stderr, level=logging.WARNING)
    structlog.configure(
        wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING),
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
        cache_logger_on_first_use=True,
    )


# --- the floor: a raw Pykka ask ---------------------------------------------------


class _Echo(pykka.ThreadingActor):
    def on_receive(self, message: Any) -> Any:
        return message


class _Count(pykka.ThreadingActor):
    def __init__(self, expected: int, done: threading.Event) -> None:
        super().__init__()
        self._left = expected
        self._done = done

    def on_receive(self, message: Any) -> Any:
        self._left -= 1
        if self._left == 0:
            self._done.set()
        return None


def raw_ask_roundtrip_us(count: int, cpus: tuple[int, int] | None = None) -> float:
    """Median wall time of ``ref.ask(x)`` to a trivial ThreadingActor, in microseconds.

    ``cpus`` = (asking thread's CPU, actor thread's CPU) pins both threads for the
    measurement (Linux: a new thread inherits its creator's affinity); None leaves the
    scheduler free, as the engine runs.
    """
    original = os.sched_getaffinity(0) if cpus is not None else None
    if cpus is not None:
        os.sched_setaffinity(0, {cpus[1]})
    ref = _Echo.start()
    try:
        if cpus is not None:
            os.sched_setaffinity(0, {cpus[0]})
        for i in range(min(500, count)):
            ref.ask(i)
        samples = []
        for i in range(count):
            started = time.perf_counter()
            ref.ask(i)
            samples.append(time.perf_counter() - started)
    finally:
        ref.stop()
        if original is not None:
            os.sched_setaffinity(0, original)
    return statistics.median(samples) * 1e6


def pinned_asks(count: int) -> dict[str, float | None]:
    """The ask with both threads on one CPU, and on two different CPUs (if allowed)."""
    if not hasattr(os, "sched_setaffinity"):
        return {"same_cpu": None, "cross_cpu": None}
    allowed = sorted(os.sched_getaffinity(0))
    same = raw_ask_roundtrip_us(count, (allowed[0], allowed[0]))
    cross = raw_ask_roundtrip_us(count, (allowed[0], allowed[1])) if len(allowed) > 1 else None
    return {"same_cpu": same, "cross_cpu": cross}


def raw_tell_per_s(count: int) -> float:
    """Messages per second one thread can tell a trivial ThreadingActor (pipelined)."""
    done = threading.Event()
    ref = _Count.start(count, done)
    try:
        started = time.perf_counter()
        for i in range(count):
            ref.tell(i)
        if not done.wait(60):
            raise RuntimeError("raw tell benchmark did not finish within 60 s")
        elapsed = time.perf_counter() - started
    finally:
        ref.stop()
    return count / elapsed


# --- engine plumbing ---------------------------------------------------------------


class Listener:
    """An engine listener: counts saga outcomes and stamps each ExitDecided's arrival.

    ``tell`` runs on the OrderActor thread, so it does as little as possible.
    """

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self.completed = 0
        self.compensated = 0
        self.refused = 0
        self.last_end = 0.0
        self.exits: list[tuple[float, ExitDecided]] = []
        self.failures: list[Any] = []

    def tell(self, message: Any) -> None:
        now = time.perf_counter()
        kind = type(message)
        if kind is ExitDecided:
            self.exits.append((now, message))
            return
        if kind is SagaCompleted or kind is SagaCompensated or kind is SagaRefused:
            with self._cond:
                if kind is SagaCompleted:
                    self.completed += 1
                else:
                    if kind is SagaCompensated:
                        self.compensated += 1
                    else:
                        self.refused += 1
                    if len(self.failures) < 5:
                        self.failures.append(message)
                self.last_end = now
                self._cond.notify_all()

    def ended(self) -> int:
        with self._cond:
            return self.completed + self.compensated + self.refused

    def wait_ended(self, count: int, timeout: float) -> bool:
        """Wait (bounded) until ``count`` sagas or refusals ended; False on timeout."""
        with self._cond:
            return self._cond.wait_for(
                lambda: self.completed + self.compensated + self.refused >= count, timeout)


class _Window:
    """A submitting thread's reply address: bounds its sagas in flight."""

    def __init__(self, size: int) -> None:
        self.free = threading.Semaphore(size)

    def tell(self, message: Any) -> None:
        kind = type(message)
        if kind is SagaCompleted or kind is SagaCompensated or kind is SagaRefused:
            self.free.release()


def bench_config(instruments: int, journal: bool = True, **engine: Any) -> Config:
    """Fast timeouts, effectively unlimited rate limits, cash and positions; the journal
    on (as in production) unless told otherwise."""
    settings: dict[str, Any] = {
        "fill_timeout_s": 10.0, "cancel_timeout_s": 5.0, "saga_deadline_s": 60.0,
        "drain_timeout_s": 10.0, "max_open_positions": _HUGE,
        "initial_cash_rupees": Decimal(10**12), "daily_loss_limit_rupees": Decimal(10**12)}
    settings.update(engine)
    return make_config(
        engine=settings,
        rate_limits={"quote_per_s": _HUGE, "historical_per_s": _HUGE, "orders_per_s": _HUGE,
                     "orders_per_min": _HUGE, "orders_per_day": _HUGE, "other_per_s": _HUGE},
        market={"extra_instruments": instruments}, journal={"enabled": journal})


@contextmanager
def started(config: Config, listener: Listener) -> Iterator[Engine]:
    """A started engine (no feed, no strategies) whose prices are all known; stopped after."""
    engine = Engine(config, run_strategies=False, run_feed=False, listeners=(listener,)).start()
    try:
        seen = engine.orders_snapshot.stats["price_batches"]
        message = RecordPrices(tuple(engine.market.step(engine.clock.now())))
        engine.broker.tell(message)  # before any order: the broker's inbox is FIFO
        engine.prices.tell(message)  # one message, so OrderActor gets one batch of all
        wait_until(lambda: engine.orders_snapshot.stats["price_batches"] > seen, 30.0,
                   "OrderActor saw the first prices")
        yield engine
    finally:
        engine.stop(drain=True)
        pykka.ActorRegistry.stop_all()


def synthetic(engine: Engine, count: int) -> list[Instrument]:
    """The first ``count`` SYNnnnn equities (lot 1, ~100 rupees)."""
    found = sorted((i for i in engine.instruments if i.tradingsymbol.startswith(
        _SYNTHETIC_PREFIX)), key=lambda i: i.instrument_token)
    if len(found) < count:
        raise ValueError(f"need {count} synthetic instruments, the market lists {len(found)}")
    return found[:count]


def balanced(engine: Engine) -> dict[str, Any]:
    """The end-of-phase checks: nothing in flight, money conserved, no violation."""
    wait_until(lambda: engine.orders_snapshot.in_flight == 0, 30.0, "no saga in flight")
    port = engine.portfolio_snapshot
    stats = engine.orders_snapshot.stats
    return {"conservation_error": port.conservation_error,
            "invariant_violations": stats["invariant_violations"],
            "late_sagas": stats["late_sagas"], "cancels": stats["cancels"],
            "actor_failures": len(engine.failures()), "cash_negative": port.cash < 0}


def _submit_all(engine: Engine, work: list[tuple[list[SubmitEntry], _Window]]) -> float:
    """Tell each batch from its own thread, keeping within its window of sagas in flight
    (the messages' ``reply_to`` must be that window). Returns the perf_counter time just
    before the first tell."""
    gate = threading.Barrier(len(work) + 1)
    errors: list[Exception] = []

    def submit(batch: list[SubmitEntry], inbox: _Window) -> None:
        try:
            gate.wait(30)
            tell = engine.orders.tell
            for message in batch:
                if not inbox.free.acquire(timeout=60):
                    raise RuntimeError("no saga ended within 60 s")
                tell(message)
        except (RuntimeError, threading.BrokenBarrierError, pykka.ActorDeadError) as exc:
            errors.append(exc)

    threads = [threading.Thread(target=submit, args=pair, daemon=True) for pair in work]
    for thread in threads:
        thread.start()
    gate.wait(30)
    start = time.perf_counter()
    for thread in threads:
        thread.join(120)
    if errors:
        raise RuntimeError(f"a submitting thread failed: {errors[0]!r}")
    return start


# --- phase 1: throughput ---------------------------------------------------------------


def saga_throughput(sagas: int, threads: int, window: int,
                    journal: bool = True) -> dict[str, Any]:
    """Entry sagas per second from ``threads`` submitting threads."""
    per_thread = -(-sagas // threads)
    listener = Listener()
    with started(bench_config(per_thread, journal), listener) as engine:
        instruments = synthetic(engine, per_thread)
        work: list[tuple[list[SubmitEntry], _Window]] = []
        left = sagas
        for t in range(threads):
            inbox = _Window(window)
            count = min(per_thread, left)
            left -= count
            work.append(([SubmitEntry.single(f"bench{t:02d}", instrument, Side.BUY, 1,
                                             reply_to=inbox)
                          for instrument in instruments[:count]], inbox))
        start = _submit_all(engine, work)
        if not listener.wait_ended(sagas, 120):
            raise RuntimeError(f"only {listener.ended()} of {sagas} sagas ended within 120 s")
        elapsed = listener.last_end - start
        checks = balanced(engine)
        checks["open_positions"] = engine.portfolio_snapshot.open_positions
    return {"sagas": sagas, "threads": threads, "window_per_thread": window,
            "completed": listener.completed, "compensated": listener.compensated,
            "refused": listener.refused, "seconds": round(elapsed, 3),
            "per_s": sagas / elapsed, "examples": [repr(m) for m in listener.failures],
            **checks}


# --- phase 2: latency of one saga at a time ------------------------------------------------


class _Reply:
    def __init__(self) -> None:
        self.ended = threading.Event()
        self.at = 0.0

    def tell(self, message: Any) -> None:
        kind = type(message)
        if kind is SagaCompleted or kind is SagaCompensated or kind is SagaRefused:
            self.at = time.perf_counter()
            self.ended.set()


def saga_latency(count: int) -> dict[str, Any]:
    """Submit-to-SagaCompleted time, one saga at a time (reply_to stamps the arrival)."""
    listener = Listener()
    samples: list[float] = []
    with started(bench_config(count), listener) as engine:
        for instrument in synthetic(engine, count):
            reply = _Reply()
            message = SubmitEntry.single("latency", instrument, Side.BUY, 1, reply_to=reply)
            sent = time.perf_counter()
            engine.orders.tell(message)
            if not reply.ended.wait(10):
                raise RuntimeError("a saga did not end within 10 s")
            samples.append((reply.at - sent) * 1e6)
        checks = balanced(engine)
    return {"sagas": count, "completed": listener.completed,
            "p50_us": percentile(samples, 50), "p99_us": percentile(samples, 99), **checks}


# --- phase 3: tick -> exit decision -------------------------------------------------------


def open_positions(engine: Engine, listener: Listener, instruments: list[Instrument],
                   rules: ExitRules, threads: int, window: int) -> float:
    """Open one position per instrument via entry sagas; returns the seconds it took."""
    work: list[tuple[list[SubmitEntry], _Window]] = []
    for t in range(threads):
        inbox = _Window(window)
        work.append(([SubmitEntry.single(f"tick{t:02d}", i, Side.BUY, 1, exit_rules=rules,
                                         reply_to=inbox)
                      for i in instruments[t::threads]], inbox))
    start = _submit_all(engine, work)
    if not listener.wait_ended(len(instruments), 120):
        raise RuntimeError(f"only {listener.ended()} of {len(instruments)} entries ended")
    return listener.last_end - start


def tick_to_exit(positions: int, ticks_per_s: float, seconds: float, threads: int,
                 window: int) -> dict[str, Any]:
    """Latency from a tick's send to the listener's receipt of its ExitDecided.

    ``positions`` long positions (stop-loss 5%) are opened first. Then ticks go round-robin
    over their instruments at ``ticks_per_s``, each one RecordPrices to PriceActor and to the
    paper broker (as the feed does). In round r, instrument k ticks at its entry level until
    round 1 + k mod (rounds - 1), then below its stop, so the decisions are spread over the run.
    """
    rounds = max(2, round(ticks_per_s * seconds / positions))
    listener = Listener()
    rules = ExitRules(stop_loss_pct=Decimal(5))
    with started(bench_config(positions), listener) as engine:
        instruments = synthetic(engine, positions)
        opening_s = open_positions(engine, listener, instruments, rules, threads, window)
        entries_ok = listener.completed == positions
        held = engine.prices.proxy().snapshot.get().latest().prices
        first = {i.instrument_token: held[i.instrument_token] for i in instruments}
        sent_at: dict[tuple[int, datetime], float] = {}
        crossing = {i.instrument_token: 1 + k % (rounds - 1) for k, i in enumerate(instruments)}
        now, prices_box, broker_box = engine.clock.now, engine.prices, engine.broker
        interval = 1.0 / ticks_per_s
        total = rounds * positions
        lag_max = 0.0
        start = time.perf_counter()
        for j in range(total):
            due = start + j * interval
            ahead = due - time.perf_counter()
            if ahead > 0:
                time.sleep(ahead)  # pacing the feed, not synchronisation
            else:
                lag_max = max(lag_max, -ahead)
            instrument = instruments[j % positions]
            token = instrument.instrument_token
            level = first[token].last.paise
            if j // positions >= crossing[token]:
                level = level * 80 // 100
            received = datetime.now(UTC)
            price = Price(token, Money(level), now(), received, Money(level - 5),
                          Money(level + 5))
            message = RecordPrices((price,))
            sent_at[(token, received)] = time.perf_counter()
            prices_box.tell(message)
            broker_box.tell(message)
        feed_s = time.perf_counter() - start
        decided = listener.wait_ended(2 * positions, 60)
        checks = balanced(engine)
        exits = list(listener.exits)
        book = engine.prices.proxy().snapshot.get().latest()
    latencies = [(at - sent_at[(m.instrument_token, m.tick_received_ts)]) * 1e6
                 for at, m in exits if (m.instrument_token, m.tick_received_ts) in sent_at]
    return {"positions": positions, "entries_completed": entries_ok, "opening_s":
            round(opening_s, 3), "ticks": total, "rounds": rounds, "feed_s": round(feed_s, 3),
            "ticks_per_s_achieved": round(total / feed_s, 1),
            "feed_max_lag_ms": round(lag_max * 1e3, 3), "exit_decisions": len(exits),
            "exits_matched": len(latencies), "all_exits_ended": decided,
            "exit_sagas_completed": listener.completed - positions,
            "compensated": listener.compensated, "refused": listener.refused,
            "prices_rejected": dict(book.rejected), "max_pending": book.max_pending,
            "p50_us": percentile(latencies, 50) if latencies else None,
            "p99_us": percentile(latencies, 99) if latencies else None,
            "max_us": max(latencies) if latencies else None, **checks}


# --- main ---------------------------------------------------------------------------


def _round(key: str, value: Any) -> Any:
    if not isinstance(value, float):
        return value
    return round(value, 1) if key.endswith(("_us", "per_s")) else round(value, 3)


def _phase(name: str, run: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    started_at = time.perf_counter()
    print(f"bench_core: {name}...", file=sys.stderr, flush=True)
    result = run()
    result["wall_s"] = round(time.perf_counter() - started_at, 2)
    return {k: _round(k, v) for k, v in result.items()}


def _target(target: float, value: float | None) -> dict[str, Any]:
    return {"target": f"<= {target:g}", "value": value,
            "met": value is not None and value <= target}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.perf.bench_core",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--sagas", type=int, default=4000,
                        help="entry sagas per throughput round")
    parser.add_argument("--rounds", type=int, default=3,
                        help="throughput rounds, each on a fresh engine (median reported)")
    parser.add_argument("--threads", type=int, default=10, help="submitting threads")
    parser.add_argument("--window", type=int, default=20,
                        help="sagas each thread keeps in flight")
    parser.add_argument("--latency-sagas", type=int, default=500,
                        help="sagas submitted one at a time (0: skip)")
    parser.add_argument("--asks", type=int, default=5000, help="raw asks timed per round")
    parser.add_argument("--positions", type=int, default=1000, help="open positions for ticks")
    parser.add_argument("--ticks-per-s", type=float, default=1000.0)
    parser.add_argument("--seconds", type=float, default=20.0, help="seconds of ticks")
    args = parser.parse_args(argv)
    if (args.sagas < args.threads or args.rounds < 1 or args.positions < 2
            or args.ticks_per_s <= 0 or args.seconds <= 0):
        parser.error("need --sagas >= --threads, --rounds >= 1, --positions >= 2, "
                     "--ticks-per-s > 0 and --seconds > 0")
    _quiet_logs()
    began = time.perf_counter()
    pinned = pinned_asks(args.asks)
    tells = raw_tell_per_s(100_000)
    asks: list[float] = []
    rounds: list[dict[str, Any]] = []
    unjournaled: list[dict[str, Any]] = []
    for n in range(args.rounds):  # journal on and off interleaved: the same machine state
        asks.append(round(raw_ask_roundtrip_us(args.asks), 1))
        rounds.append(_phase(f"throughput round {n + 1}", lambda: saga_throughput(
            args.sagas, args.threads, args.window)))
        unjournaled.append(_phase(f"throughput round {n + 1}, no journal",
                                  lambda: saga_throughput(args.sagas, args.threads,
                                                          args.window, journal=False)))
    latency = _phase("latency", lambda: saga_latency(args.latency_sagas)) \
        if args.latency_sagas > 0 else None
    ticks = _phase("ticks", lambda: tick_to_exit(args.positions, args.ticks_per_s, args.seconds,
                                                 args.threads, args.window))
    ask_us = statistics.median(asks)
    per_s = statistics.median(r["per_s"] for r in rounds)
    off_per_s = statistics.median(r["per_s"] for r in unjournaled)
    cost_us = 1e6 / per_s
    ratio = round(cost_us / ask_us, 2)
    p99 = ticks["p99_us"]
    ok = (all(r["completed"] == args.sagas and r["conservation_error"] == 0
              and r["invariant_violations"] == 0 and r["actor_failures"] == 0
              for r in rounds + unjournaled)
          and ticks["entries_completed"] and ticks["all_exits_ended"]
          and ticks["exit_decisions"] == args.positions and ticks["compensated"] == 0
          and ticks["conservation_error"] == 0 and ticks["invariant_violations"] == 0
          and (latency is None or (latency["completed"] == args.latency_sagas
                                   and latency["conservation_error"] == 0)))
    same, cross = pinned["same_cpu"], pinned["cross_cpu"]
    result = {
        "raw_ask_roundtrip_us": ask_us,
        "raw_ask_roundtrip_us_rounds": asks,
        "raw_ask_same_cpu_us": None if same is None else round(same, 1),
        "raw_ask_cross_cpu_us": None if cross is None else round(cross, 1),
        "raw_tell_msgs_per_s": round(tells),
        "saga_throughput_per_s": round(per_s, 1),
        "saga_throughput_rounds_per_s": [r["per_s"] for r in rounds],
        "saga_throughput_journal_off_per_s": round(off_per_s, 1),
        "journal_on_vs_off": round(per_s / off_per_s, 3),
        "saga_cost_us": round(cost_us, 1),
        "saga_cost_vs_ask": ratio,
        "saga_cost_vs_same_cpu_ask": None if same is None else round(cost_us / same, 2),
        "saga_cost_vs_cross_cpu_ask": None if cross is None else round(cost_us / cross, 2),
        "saga_latency_us_p50": None if latency is None else latency["p50_us"],
        "saga_latency_us_p99": None if latency is None else latency["p99_us"],
        "tick_to_exit_decision_us_p50": ticks["p50_us"],
        "tick_to_exit_decision_us_p99": p99,
        "targets": {
            "saga_cost_vs_ask": _target(TARGET_SAGA_COST_VS_ASK, ratio),
            # the same ratio against the reproducible floor (both threads on one CPU)
            "saga_cost_vs_same_cpu_ask": _target(
                TARGET_SAGA_COST_VS_ASK, None if same is None else round(cost_us / same, 2)),
            "tick_to_exit_decision_us_p99": _target(TARGET_TICK_TO_EXIT_P99_US, p99),
        },
        "all_checks_passed": ok,
        "throughput": rounds,
        "latency": latency,
        "ticks": ticks,
        "python": platform.python_version(),
        "pykka": _version("pykka"),
        "cpu_count": os.cpu_count(),
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "wall_s": round(time.perf_counter() - began, 1),
    }
    print(json.dumps(result))
    return 0 if ok else 1


def _version(package: str) -> str:
    from importlib.metadata import version

    return version(package)


if __name__ == "__main__":
    sys.exit(main())
