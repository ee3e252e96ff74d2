"""Chaos: the engine as a real process, SIGKILLed at random points during saga traffic and
restarted on the same journal, again and again; then one clean run, stopped with SIGTERM
(drain). Two halves:

* paper: the paper gateway (its broker lives in the engine and is journaled with it);
* live: ``kitesaga run --mode live`` against a ``kitesaga sim`` process that outlives every
  engine, with faults that widen the window between "the broker executed the order" and
  "the journal recorded its placement" (see tests/chaos_support.py).

After the clean run: no fill lost, no broker order duplicated for a tag, money conserved,
every saga terminal. ``CHAOS_TRIALS`` and ``CHAOS_SEED`` override the CI run's count and seed.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import time
from pathlib import Path

import pytest

from tests.chaos_support import (
    KITESAGA,
    LiveChaos,
    engine_env,
    journal_facts,
    sigkill,
    start_engine,
)
from tests.support import only_when_selected

TRIALS = int(os.environ.get("CHAOS_TRIALS", "25"))
TRAFFIC = {  # busy and faulty: sagas are always in flight when the kill comes
    "KITESAGA_MARKET_SPEED": "300", "KITESAGA_MARKET_SEED": "7",
    "KITESAGA_STRATEGY_MOMENTUM_THRESHOLD_PCT": "0.01",
    "KITESAGA_STRATEGY_MOMENTUM_LOOKBACK_TICKS": "3",
    "KITESAGA_STRATEGY_STRADDLE_EVERY_S": "120",
    "KITESAGA_PAPER_STUCK_RATIO": "0.2", "KITESAGA_PAPER_PARTIAL_FILL_RATIO": "0.3",
    "KITESAGA_PAPER_UNKNOWN_OUTCOME_RATIO": "0.1", "KITESAGA_PAPER_REJECT_RATIO": "0.05",
    "KITESAGA_ENGINE_FILL_TIMEOUT_S": "0.5", "KITESAGA_ENGINE_CANCEL_TIMEOUT_S": "0.5",
    "KITESAGA_ENGINE_POLL_INTERVAL_S": "0.2", "KITESAGA_ENGINE_DRAIN_TIMEOUT_S": "20",
}
LIVE_KILL_AFTER_S = (0.3, 2.0)
"""A live engine is killed this long (uniform, wall seconds) after its banner."""
LIVE_TRIAL_S = 3.0
"""Wall seconds a live trial takes, about (start-up, traffic, kill, journal read)."""
SESSION_WALL_S = 22_000
"""Simulated seconds of the session before the 15:15 square-off; the simulator's speed is
chosen so that a run's trials all fall inside it."""


# -- paper ----------------------------------------------------------------------------------


@pytest.mark.timeout(600)
def test_sigkill_during_traffic_loses_and_duplicates_nothing(tmp_path: Path) -> None:
    _paper_chaos(tmp_path, TRIALS, int(os.environ.get("CHAOS_SEED", "11")))


@pytest.mark.slow
@pytest.mark.timeout(3600)
def test_two_hundred_kills(tmp_path: Path, request: pytest.FixtureRequest) -> None:
    only_when_selected(request)
    _paper_chaos(tmp_path, 200, int(os.environ.get("CHAOS_SEED", "12")))


def _paper_chaos(tmp_path: Path, trials: int, seed: int) -> None:
    rng = random.Random(seed)
    state = tmp_path / "state"
    env = engine_env(state, TRAFFIC)
    journal = state / "journal-paper.sqlite3"
    caught = 0  # kills that left sagas in flight (each resumed by the next start)
    with (tmp_path / "engine.stderr").open("a") as stderr:
        for _ in range(trials):
            proc = start_engine(["run", "--quiet"], env, "paper trading", stderr)
            time.sleep(rng.uniform(0.05, 1.2))  # the random kill point, not synchronisation
            sigkill(proc)
            caught += bool(journal_facts(journal, "paper").unfinished)
    facts = journal_facts(journal, "paper")
    assert facts.intended, "the kills came before any order: the trials tested nothing"
    assert caught, "no kill caught a saga in flight: the trials tested nothing"
    summary = tmp_path / "final.json"
    final = subprocess.run([*KITESAGA, "run", "--quiet", "--duration", "3", "--summary",
                            str(summary)], env=env, capture_output=True, text=True,
                           timeout=120)
    assert final.returncode == 0, final.stdout[-2000:] + final.stderr[-2000:]
    data = json.loads(summary.read_text())
    facts = journal_facts(journal, "paper")
    assert max(facts.intended.values()) == 1, "a tag was intended twice"
    assert max(facts.placed.values()) == 1, "a broker order was placed twice for one tag"
    assert not facts.unfinished, f"{len(facts.unfinished)} sagas left unfinished after recovery"
    assert data["sagas_in_flight"] == 0 and data["drained"]
    assert data["conservation_error_paise"] == 0 and data["cash_paise"] >= 0
    assert data["invariant_violations"] == 0, data
    print(f"paper chaos: {trials} kills, {caught} with sagas in flight, "
          f"{sum(facts.intended.values())} broker orders")


# -- live, against the Kite simulator ----------------------------------------------------------


@pytest.mark.timeout(900)
def test_live_sigkill_against_the_simulator(tmp_path: Path) -> None:
    _live_chaos(tmp_path, TRIALS, int(os.environ.get("CHAOS_SEED", "21")))


@pytest.mark.slow
@pytest.mark.timeout(5400)
def test_two_hundred_live_kills(tmp_path: Path, request: pytest.FixtureRequest) -> None:
    only_when_selected(request)
    _live_chaos(tmp_path, 200, int(os.environ.get("CHAOS_SEED", "22")))


def _live_chaos(tmp_path: Path, trials: int, seed: int) -> None:
    speed = min(60.0, SESSION_WALL_S / (trials * LIVE_TRIAL_S + 60))
    with LiveChaos.running(tmp_path, seed, speed) as chaos:
        for trial in range(trials):  # every fifth kill aimed at the window
            chaos.kill_during_traffic(*LIVE_KILL_AFTER_S, targeted=trial % 5 == 4)
        report = chaos.report
        print("\n".join(report.kills))
        assert report.kills_in_flight, "no kill caught a saga in flight: nothing was tested"
        assert report.kills_in_window >= 1, (  # (tests/test_live_recovery.py: every time)
            f"only {report.kills_in_window} of {trials} kills landed between 'executed at "
            f"the broker' and 'placed recorded'")
        summary = chaos.final_run(tmp_path / "final.json")
        problems = chaos.verify(summary)
        print(report.line())
        assert not problems, "\n".join(problems)
        opening, broker_cash = chaos.sim.funds()
        engine_cash = summary["cash_paise"] + summary["reserved_paise"]
        assert summary["initial_cash_paise"] == opening, (summary, opening)
        assert engine_cash == broker_cash, (
            f"the engine holds {engine_cash} paise, the broker {broker_cash}; "
            f"{report.line()}")
