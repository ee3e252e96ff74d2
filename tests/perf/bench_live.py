"""Live-path benchmarks against the Kite simulator, over loopback, with the real client.

* Rate-limit efficiency: more demand than budget in every endpoint class for
  ``--seconds`` (60 by default); achieved calls/s per class divided by the
  class's binding limit (target >= 0.95), and the breaches the simulator
  counted (target 0).
* Quote cost: REST calls per monitoring cycle for 10, 100 and 1,000 watched
  instruments, kitesaga's way (``ltp`` in batches of 1,000 under a permit:
  target ceil(N/1000)) against the old system's (one call per symbol, no
  limiter), in the same run: calls per cycle and how many the broker refused.

Run ``python -m tests.perf.bench_live --help``. Prints ONE JSON object on
stdout (logs go to stderr); exit code 0 when the targets hold, else 1.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import sys
import tempfile
import time
from collections.abc import Sequence
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pykka
import structlog
from kiteconnect import exceptions as kite_errors

from actors._base import EngineActor
from actors._ratelimit import RateLimitActor
from actors.config import Config
from actors.kite._calls import CallError, PermittedCalls, _Call
from actors.kite._feed import batches
from actors.kite._session import new_client
from messages import EndpointClass, Inbox, PermitRefused, Priority
from tests.live_support import live_config, simulator

CLASSES = (EndpointClass.QUOTE, EndpointClass.HISTORICAL, EndpointClass.ORDERS,
           EndpointClass.OTHER)


class Flood(PermittedCalls, EngineActor):
    """Keeps ``depth`` permitted calls queued in every class until told to stop."""

    def __init__(self, kite: Any, config: Config, limiter: Inbox, symbol: str, token: int,
                 depth: int) -> None:
        super().__init__()
        self._kite = kite
        self._limits = config.rate_limits
        self._limiter = limiter
        self._counts = dict.fromkeys(("calls", "call_errors", "throttled"), 0)
        self._jobs = {}
        self._next_job = 0
        self._symbol = symbol
        self._token = token
        self._depth = depth
        self.done: dict[str, int] = {c.value: 0 for c in CLASSES}
        self.running = True

    def on_start(self) -> None:
        self._me: Inbox = self.actor_ref
        for endpoint in CLASSES:
            for _ in range(self._depth):
                self._next(endpoint)

    def _next(self, endpoint: EndpointClass) -> None:
        if not self.running:
            return
        day = date(2026, 11, 24)
        method, args, kwargs = {
            EndpointClass.QUOTE: ("ltp", (self._symbol,), {}),
            EndpointClass.HISTORICAL: ("historical_data", (self._token, day,
                                                           day + timedelta(days=1), "minute"),
                                       {}),
            EndpointClass.ORDERS: ("place_order", (), {
                "variety": "regular", "exchange": "NSE", "tradingsymbol": "INFY",
                "transaction_type": "BUY", "quantity": 1, "product": "CNC",
                "order_type": "LIMIT", "price": 1.0, "tag": "bench"}),
            EndpointClass.OTHER: ("profile", (), {}),
        }[endpoint]

        def done(result: Any, error: CallError | None) -> None:
            self.done[endpoint.value] += 1
            self._next(endpoint)

        self._request(endpoint, Priority.READ if endpoint is not EndpointClass.ORDERS
                      else Priority.ENTRY, method, kwargs, done, args=args)

    def receive(self, message: Any) -> Any:
        if isinstance(message, _Call):
            self._on_call(message)
        elif isinstance(message, PermitRefused):
            self._call_refused(message)
        elif message == "stop":
            self.running = False
        elif message == "done":
            return dict(self.done)
        return None


def efficiency(config: Config, seconds: float) -> dict[str, Any]:
    with simulator(config) as server:
        kite = new_client(server.api_key, server.issue_access_token(), server.url, 5)
        limiter = RateLimitActor.start(config.rate_limits)
        before = server.stats()
        flood = Flood.start(kite, config, limiter, "NSE:INFY", 408065, depth=4)
        time.sleep(seconds)  # the measurement window
        flood.tell("stop")
        counts: dict[str, int] = flood.ask("done")
        after = server.stats()
        flood.stop()
        limiter.stop()
    limits = config.rate_limits
    binding = {"quote": limits.quote_per_s, "historical": limits.historical_per_s,
               "orders": min(limits.orders_per_s,
                             limits.orders_per_min * math.ceil(seconds / 60) / seconds),
               "other": limits.other_per_s}
    out: dict[str, Any] = {}
    for name, limit in binding.items():
        achieved = counts[name] / seconds
        out[name] = {"calls": counts[name], "per_s": round(achieved, 3), "limit_per_s":
                     round(limit, 3), "efficiency": round(achieved / limit, 3),
                     "throttled": after["throttled"][name] - before["throttled"][name]}
    out["breaches"] = after["breaches"]["count"] - before["breaches"]["count"]
    return out


def quote_cost(config: Config, sizes: Sequence[int]) -> dict[str, Any]:
    results: dict[str, Any] = {}
    with simulator(config) as server:
        kite = new_client(server.api_key, server.issue_access_token(), server.url, 5)
        equities = [f"NSE:SYN{n:04d}" for n in range(1, max(sizes) + 1)]
        for size in sizes:
            keys = equities[:size]
            time.sleep(config.rate_limits.safety_margin_s + 1)  # a fresh one-second window
            before = server.stats()
            start = time.perf_counter()
            ours = 0
            for batch in batches(keys, config.rate_limits.ltp_max_instruments):
                kite.ltp(*batch)
                ours += 1
            ours_s = time.perf_counter() - start
            ours_refused = server.stats()["throttled"]["quote"] - before["throttled"]["quote"]
            time.sleep(config.rate_limits.safety_margin_s + 1)
            mid = server.stats()
            refused = 0
            start = time.perf_counter()
            for key in keys:  # the old system: one call per symbol, no limiter
                try:
                    kite.ltp(key)
                except kite_errors.NetworkException:
                    refused += 1
            old_s = time.perf_counter() - start
            after = server.stats()
            results[str(size)] = {
                "kitesaga_calls": ours, "target_calls": math.ceil(size / 1000),
                "kitesaga_refused": ours_refused,
                "kitesaga_s": round(ours_s, 4),
                "old_calls": size, "old_refused_429": refused,
                "old_breaches": after["breaches"]["count"] - mid["breaches"]["count"],
                "old_s": round(old_s, 4),
            }
    return results


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0,
                        help="length of the rate-limit flood (default 60)")
    parser.add_argument("--sizes", default="10,100,1000", help="watched instruments per cycle")
    args = parser.parse_args(argv)
    logging.basicConfig(stream=sys.stderr, level=logging.WARNING)
    structlog.configure(logger_factory=structlog.PrintLoggerFactory(sys.stderr),
                        wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    sizes = [int(s) for s in args.sizes.split(",")]
    with tempfile.TemporaryDirectory() as tmp:
        # the simulator steps its market on the loop that answers requests: a light
        # market (real-time, no extra instruments) keeps its arrival clock honest
        light = live_config(Path(tmp), KITESAGA_MARKET_SPEED="1")
        wide = live_config(Path(tmp), KITESAGA_MARKET_SPEED="1",
                           KITESAGA_MARKET_EXTRA_INSTRUMENTS=str(max(sizes)))
        report: dict[str, Any] = {
            "benchmark": "bench_live", "seconds": args.seconds,
            "rate_limit": efficiency(light, args.seconds),
            "quote_cost": quote_cost(wide, sizes),
        }
    pykka.ActorRegistry.stop_all()
    rate = report["rate_limit"]
    ok = rate["breaches"] == 0 and all(rate[c.value]["efficiency"] >= 0.95 for c in CLASSES)
    ok = ok and all(r["kitesaga_calls"] == r["target_calls"] and r["kitesaga_refused"] == 0
                    for r in report["quote_cost"].values())
    report["targets_met"] = ok
    print(json.dumps(report, indent=2))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
