"""Hypothesis drives a live engine against the Kite simulator through random entries,
exits and faults; after every step, once the sagas have ended, the promise holds: one
broker order per tag, our book equals the broker's positions, money is conserved, no
rate-limit breach, no actor failure."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from messages import (
    ExitRules,
    InstrumentKind,
    OrderLeg,
    OrderType,
    Product,
    Side,
    SubmitEntry,
    SubmitExit,
)
from tests.live_support import LiveHarness, live_engine
from tests.support import wait_until

FAULTS = ["reject=0.5", "drop_response=0.5", "stuck=0.5,stuck_cancel_s=0.3",
          "burst_429=2", "error_5xx=0.2", "latency_ms=30,latency_jitter_ms=30"]
RULES = ExitRules(Decimal(50), Decimal(200))  # wide: the rules, not the market, decide exits
STEPS = int(os.environ.get("LIVE_STATEFUL_STEPS", "8"))
EXAMPLES = int(os.environ.get("LIVE_STATEFUL_EXAMPLES", "3"))  # ~40 s; raise for a longer hunt


@pytest.fixture(scope="module")
def harness() -> Iterator[LiveHarness]:
    with tempfile.TemporaryDirectory() as tmp, live_engine(
            Path(tmp), KITESAGA_PAPER_PARTIAL_FILL_RATIO="0.3",
            KITESAGA_ENGINE_FILL_TIMEOUT_S="1.5") as h:
        for kind in (InstrumentKind.CE, InstrumentKind.PE):
            h.priced(h.option(kind))
        yield h


def settled(h: LiveHarness) -> None:
    wait_until(lambda: h.engine.orders_snapshot.in_flight == 0, timeout=60,
               what="every saga ended")


def submit(h: LiveHarness, message: SubmitEntry | SubmitExit) -> None:
    """Send ``message`` and wait until OrderActor took it and every saga ended."""
    def handled() -> int:
        stats = h.engine.orders_snapshot.stats
        return stats["sagas_started"] + stats["sagas_refused"]
    before = handled()
    h.engine.orders.tell(message)
    wait_until(lambda: handled() > before, what="OrderActor took the message")
    settled(h)


def book(h: LiveHarness) -> dict[str, int]:
    out: dict[str, int] = {}
    for (_, token), view in h.engine.portfolio_snapshot.positions.items():
        if view.quantity:
            key = h.engine.instruments.get(token).key
            out[key] = out.get(key, 0) + view.quantity
    return out


def broker(h: LiveHarness) -> dict[str, int]:
    return {f"{p['exchange']}:{p['tradingsymbol']}": p["quantity"]
            for p in h.stats()["open_positions"]["positions"] if p["quantity"]}


def test_live_invariants_hold_under_random_faults(harness: LiveHarness) -> None:
    h = harness

    class LiveMachine(RuleBasedStateMachine):
        @initialize(kind=st.sampled_from([InstrumentKind.CE, InstrumentKind.PE]))
        def first_entry(self, kind: InstrumentKind) -> None:
            # every example trades, even one Hypothesis draws with no steps
            self.enter("", kind, 0, "a")

        @rule(spec=st.sampled_from(FAULTS),
              kind=st.sampled_from([InstrumentKind.CE, InstrumentKind.PE]),
              offset=st.integers(-2, 2), strategy=st.sampled_from(["a", "b"]))
        def enter(self, spec: str, kind: InstrumentKind, offset: int, strategy: str) -> None:
            option = h.option(kind, offset)
            leg = OrderLeg(option, Side.BUY, option.lot_size, OrderType.MARKET, Product.NRML)
            h.server.set_faults(spec)
            submit(h, SubmitEntry(strategy, (leg,), RULES))
            h.server.set_faults("")

        @rule(spec=st.sampled_from(FAULTS), data=st.data())
        def leave(self, spec: str, data: st.DataObject) -> None:
            held = [key for key, view in h.engine.portfolio_snapshot.positions.items()
                    if view.quantity]
            if not held:
                return
            strategy, token = data.draw(st.sampled_from(sorted(held)))
            h.server.set_faults(spec)
            submit(h, SubmitExit(strategy, token, "test"))
            h.server.set_faults("")

        @invariant()
        def the_promise_holds(self) -> None:
            settled(h)
            stats = h.stats()
            assert all(n == 1 for tag, n in stats["orders_per_tag"].items() if tag), stats
            # the book follows the broker once pending fills have arrived
            wait_until(lambda: book(h) == broker(h), timeout=15,
                       what=f"book {book(h)} equals broker {broker(h)}")
            snap = h.engine.portfolio_snapshot
            assert snap.conservation_error == 0 and snap.cash >= 0
            assert stats["breaches"]["count"] == 0, stats["breaches"]
            assert h.engine.orders_snapshot.stats["invariant_violations"] == 0
            assert h.engine.failures() == ()

    LiveMachine.TestCase.settings = settings(
        max_examples=EXAMPLES, stateful_step_count=STEPS, deadline=None,
        suppress_health_check=list(HealthCheck))
    LiveMachine.TestCase().runTest()
    stats = h.engine.orders_snapshot.stats
    assert stats["sagas_started"] > 0  # the machine traded (the invariants were not vacuous)
