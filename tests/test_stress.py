"""Stress: many round trips (entry then exit) from many threads at once over the real
actors and paper broker. Everything ends in bounded time, money balances to the
paisa, and no actor dies or deadlocks."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal

import pytest

from messages import (
    ExitRules,
    Instrument,
    InstrumentKind,
    Money,
    OrderType,
    Price,
    RecordPrices,
    SagaCompensated,
    SagaCompleted,
    SagaRefused,
    SagaStarted,
    Side,
    SubmitEntry,
    SubmitExit,
)
from tests.engine_support import Harness, make_config, running
from tests.support import only_when_selected, wait_until

START = date(2026, 11, 25)  # a Wednesday session, not an expiry day of the chain
RULES = ExitRules(exit_on_expiry_day=False)
_ENDS = (SagaCompleted, SagaCompensated, SagaRefused)
_MAX_EXIT_TRIES = 20
FAULTS = {"reject_ratio": Decimal("0.05"), "unknown_outcome_ratio": Decimal("0.05"),
          "stuck_ratio": Decimal("0.05"), "partial_fill_ratio": Decimal("0.1")}


@dataclass
class Tally:
    """What one trader thread saw (written by that thread only)."""

    entries: int = 0
    exits: int = 0
    refused: list[str] = field(default_factory=list)
    compensated: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


def _chain(h: Harness, width: int) -> list[Instrument]:
    out = []
    for offset in range(-(width // 2), width - width // 2):
        out.append(h.option(InstrumentKind.CE, offset))
        out.append(h.option(InstrumentKind.PE, offset))
    return out


def _prices(h: Harness, instruments: list[Instrument], lasts: dict[int, int]) -> None:
    now = h.engine.clock.now()
    message = RecordPrices(tuple(
        Price(i.instrument_token, Money(lasts[i.instrument_token]), now, now,
              Money(lasts[i.instrument_token] - 5), Money(lasts[i.instrument_token] + 5))
        for i in instruments))
    h.engine.prices.tell(message)
    h.engine.broker.tell(message)


class Replies:
    """A trader's reply inbox: keeps only the replies that end a submission, in order
    (O(1) per wait, however long the run)."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._ends: list[object] = []

    def tell(self, message: object) -> None:
        if isinstance(message, _ENDS):
            with self._cond:
                self._ends.append(message)
                self._cond.notify_all()

    def end(self, index: int, timeout: float) -> object:
        """The ``index``-th ending reply, waiting at most ``timeout`` seconds for it."""
        with self._cond:
            if not self._cond.wait_for(lambda: len(self._ends) > index, timeout):
                raise AssertionError(f"no reply #{index} within {timeout}s")
            return self._ends[index]


def _trader(h: Harness, name: str, instruments: list[Instrument], trips: int, start: object,
            tally: Tally, saga_timeout: float) -> None:
    """``trips`` round trips: an entry, then exits until the position is gone."""
    inbox = Replies()
    ended = 0

    def next_end() -> object:
        nonlocal ended
        end = inbox.end(ended, saga_timeout)
        ended += 1
        return end

    try:
        start.wait(timeout=30)  # type: ignore[attr-defined]
        for k in range(trips):
            instrument = instruments[k % len(instruments)]
            side = Side.BUY if k % 3 else Side.SELL
            lots = 1 + k % 2
            h.submit(SubmitEntry.single(name, instrument, side, instrument.lot_size * lots,
                                        OrderType.MARKET, exit_rules=RULES, reply_to=inbox))
            end = next_end()
            if isinstance(end, SagaCompleted):
                tally.entries += 1
            elif isinstance(end, SagaCompensated):
                tally.compensated.append(end.reason)
            else:
                tally.refused.append(end.reason)  # type: ignore[attr-defined]
            for _ in range(_MAX_EXIT_TRIES):  # compensated/partial exits leave a rest
                h.submit(SubmitExit(name, instrument.instrument_token, "round trip", inbox))
                end = next_end()
                if isinstance(end, SagaRefused):
                    if "no position" not in end.reason:
                        tally.refused.append(end.reason)
                    break
                if isinstance(end, SagaCompleted):
                    tally.exits += 1
                else:
                    tally.compensated.append(end.reason)  # type: ignore[attr-defined]
            else:
                tally.errors.append(f"{name}: {instrument.tradingsymbol} still open after "
                                    f"{_MAX_EXIT_TRIES} exits")
    except AssertionError as exc:  # a wait timed out: report it from the main thread
        tally.errors.append(str(exc)[:300])


def _ticker(h: Harness, instruments: list[Instrument], lasts: dict[int, int],
            stop: threading.Event) -> None:
    step = 0
    while not stop.wait(0.005):  # a market that keeps moving while the traders trade
        step += 1
        moved = {t: p + (5 if (step + t) % 2 else -5) for t, p in lasts.items()}
        _prices(h, instruments, moved)


def _round_trips(threads: int, trips: int, budget_s: float, faults: bool = False) -> None:
    config = make_config(
        engine={"saga_deadline_s": 10.0, "max_open_positions": 10_000,
                "fill_timeout_s": 0.1, "cancel_timeout_s": 0.1, "poll_interval_s": 0.05,
                "initial_cash_rupees": Decimal(100_000_000),  # shorts block 15% of strike
                "daily_loss_limit_rupees": Decimal(10_000_000)},  # costs add up; no halt
        market={"start_date": START},
        prices={"max_price_age_s": 3600.0},
        paper=FAULTS if faults else {},
        rate_limits={"orders_per_s": 100_000, "orders_per_min": 1_000_000,
                     "orders_per_day": 10_000_000, "other_per_s": 100_000},
    )
    began = time.monotonic()
    with running(config) as h:
        instruments = _chain(h, 5)
        lasts = {i.instrument_token: 120_00 + 5_00 * n for n, i in enumerate(instruments)}
        _prices(h, instruments, lasts)
        h.quote(instruments[0], lasts[instruments[0].instrument_token])  # OrderActor has prices
        start = threading.Barrier(threads + 1)
        tallies = [Tally() for _ in range(threads)]
        workers = [threading.Thread(target=_trader, daemon=True,
                                    args=(h, f"s{n}", instruments, trips, start, tallies[n], 30.0))
                   for n in range(threads)]
        stop = threading.Event()
        ticker = threading.Thread(target=_ticker, args=(h, instruments, lasts, stop), daemon=True)
        for w in workers:
            w.start()
        ticker.start()
        start.wait(timeout=30)
        deadline = began + budget_s
        for w in workers:
            w.join(timeout=max(0.0, deadline - time.monotonic()))
        stop.set()
        ticker.join(timeout=10)
        hung = [w.name for w in workers if w.is_alive()]
        assert not hung, f"traders still running after {budget_s}s (deadlock?): {hung}"
        assert not ticker.is_alive()

        errors = [e for t in tallies for e in t.errors]
        assert not errors, errors[:3]
        refused = [r for t in tallies for r in t.refused]
        assert not refused, refused[:3]  # distinct strategies, one trade at a time each
        compensated = [r for t in tallies for r in t.compensated]
        entries = sum(t.entries for t in tallies)
        exits = sum(t.exits for t in tallies)
        if not faults:
            assert not compensated, compensated[:3]
            assert entries == exits == threads * trips
        else:
            assert entries > threads * trips // 2 and exits >= entries
            assert compensated, "faults were injected but nothing compensated"

        engine = h.engine
        wait_until(lambda: engine.orders_snapshot.in_flight == 0, timeout=10,
                   what="no saga in flight")
        events = h.events
        started = [m.saga_id for m in events.of(SagaStarted)]
        ended_ids = [m.saga_id for m in events.messages
                     if isinstance(m, SagaCompleted | SagaCompensated)]
        assert len(started) == len(set(started)), "a saga id was reused"
        if not faults:
            assert len(started) == 2 * threads * trips
        assert len(ended_ids) == len(set(ended_ids)), "a saga ended twice"
        assert set(ended_ids) == set(started), "a saga never ended"
        assert len(started) >= threads * trips + exits

        stats = engine.orders_snapshot.stats
        assert stats["invariant_violations"] == 0
        assert stats["late_sagas"] == 0
        assert stats["sagas_started"] == len(started)
        assert stats["sagas_started"] == stats["sagas_completed"] + stats["sagas_compensated"]
        broker = engine.broker_snapshot
        assert stats["orders"] == broker.orders_placed + broker.orders_rejected
        assert not engine.failures()

        snap = engine.portfolio_snapshot
        assert snap.conservation_error == 0
        assert snap.cash >= 0 and snap.reserved == 0 and snap.margin == 0
        assert snap.open_positions == 0 and engine.orders_snapshot.open_positions == 0
        assert snap.fills_applied == stats["fills"] == broker.fills
        assert broker.working_orders == 0
        # every position is flat at both ends and the broker's cash equals ours to the paisa
        assert broker.funds.paise == snap.cash and broker.blocked.paise == 0
        assert snap.charges > 0
        assert engine.drain(timeout=5)
    assert time.monotonic() - began < budget_s + 15


def test_thousand_round_trips_from_ten_threads() -> None:
    """10 threads x 100 round trips: 1,000 entries and 1,000 exits."""
    _round_trips(threads=10, trips=100, budget_s=120.0)


def test_round_trips_with_injected_broker_faults() -> None:
    """10 threads x 50 round trips while the broker rejects, loses answers, sticks
    and part-fills orders: every saga still ends and the books still balance."""
    _round_trips(threads=10, trips=50, budget_s=120.0, faults=True)


@pytest.mark.slow
def test_fifty_thousand_round_trips_from_twenty_threads(request: pytest.FixtureRequest) -> None:
    only_when_selected(request)
    _round_trips(threads=20, trips=2_500, budget_s=900.0)


@pytest.mark.slow
def test_ten_thousand_round_trips_with_faults(request: pytest.FixtureRequest) -> None:
    only_when_selected(request)
    _round_trips(threads=20, trips=500, budget_s=900.0, faults=True)
