"""Chaos harness support: engines (and a Kite simulator) as real processes, SIGKILLed.

* :func:`engine_env`, :func:`start_engine` and :func:`sigkill`: ``kitesaga run`` as a
  child process, its banner awaited with a deadline, killed with SIGKILL.
* :func:`journal_facts`: a journal read back (read-only use, AFTER its writer is dead).
* :class:`SimProcess`: ``kitesaga sim --port 0`` that outlives every engine; its
  ``/_sim/stats``, ``/_sim/faults`` and (with the logged-in token) Kite's own order and
  trade books and funds.
* :class:`LiveChaos`: the live harness. One simulator, one login, one state directory;
  ``kitesaga run --mode live`` killed again and again while sagas are in flight, with
  faults at the simulator that hold an executed order's answer back (latency), lose it
  (drop_response) or leave the order stuck, so that kills land between "the broker has
  the order" and "the journal has its ``placed`` record". :meth:`LiveChaos.verify` holds
  the final state to the issue's checks.
"""

from __future__ import annotations

import json
import os
import random
import re
import selectors
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import requests
from cryptography.fernet import Fernet
from kiteconnect import KiteConnect
from kiteconnect import exceptions as kite_errors

from actors._durable import SagaRecord, fold
from actors.config import load_config
from actors.journal import Journal, JournalRecord
from actors.kite import TokenStore
from actors.kite._token import token_path
from messages import ApplyFill, Fill
from tests.support import wait_until

__all__ = ["KITESAGA", "JournalFacts", "LiveChaos", "LiveReport", "SimProcess", "engine_env",
           "journal_facts", "sigkill", "start_engine"]

KITESAGA = [str(Path(sys.executable).with_name("kitesaga"))]
BANNER_TIMEOUT_S = 60.0
"""Longest wait for an engine's banner (it is printed once every actor runs)."""
EXIT_TIMEOUT_S = 20.0
"""Longest wait for a killed engine to be reaped."""
DRAIN_EXIT_TIMEOUT_S = 90.0
"""Longest wait for an engine stopped with SIGTERM to drain and exit."""


def engine_env(state: Path, *layers: Mapping[str, str]) -> dict[str, str]:
    """This process's environment without any KITESAGA_/ZERODHA_ variable, then
    ``layers`` in order, with the state directory."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KITESAGA_", "ZERODHA_"))}
    for layer in layers:
        env.update(layer)
    return {**env, "KITESAGA_STATE_DIR": str(state), "NO_PROXY": "127.0.0.1"}


def _first_line(proc: subprocess.Popen[str], timeout: float) -> str:
    """The child's first stdout line, or "" at EOF; fails at the deadline."""
    assert proc.stdout is not None
    with selectors.DefaultSelector() as selector:
        selector.register(proc.stdout, selectors.EVENT_READ)
        if not selector.select(timeout):
            proc.kill()
            proc.wait(EXIT_TIMEOUT_S)
            raise AssertionError(f"no banner within {timeout}s from {proc.args!r}")
    return proc.stdout.readline()


def start_engine(args: list[str], env: Mapping[str, str], banner: str,
                 stderr: IO[str]) -> subprocess.Popen[str]:
    """``kitesaga *args`` as a child; returns once it printed ``banner`` (its first line)."""
    proc = subprocess.Popen([*KITESAGA, *args], env=dict(env), stdout=subprocess.PIPE,
                            stderr=stderr, text=True)
    line = _first_line(proc, BANNER_TIMEOUT_S)
    if banner not in line:
        proc.kill()
        proc.wait(EXIT_TIMEOUT_S)
        stderr.flush()
        raise AssertionError(f"engine did not start: {line!r} (stderr in {stderr.name})")
    return proc


def sigkill(proc: subprocess.Popen[str]) -> None:
    """SIGKILL ``proc`` and reap it (it must not have exited before)."""
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=EXIT_TIMEOUT_S)
    assert proc.returncode == -signal.SIGKILL, f"the engine exited before the kill: " \
                                               f"{proc.returncode}"


# -- the journal, read back ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class JournalFacts:
    """What a journal says, for the harness's checks."""

    records: list[JournalRecord]
    intended: Counter[str]  # tag -> ``order`` records
    placed: Counter[str]  # tag -> ``placed`` records
    placed_ids: dict[str, str]  # tag -> broker order id of its (last) ``placed`` record
    unfinished: list[SagaRecord]
    fills: list[Fill]  # every ApplyFill's fill, in journal order

    def window_tags(self, at_broker: Mapping[str, int]) -> set[str]:
        """Tags of unfinished sagas journaled as ``order`` (intended) without ``placed``
        that the broker nevertheless has: the kill came between the two."""
        return {order.tag for saga in self.unfinished for order in saga.orders
                if order.broker_order_id is None and at_broker.get(order.tag, 0) > 0}


def journal_facts(path: Path, mode: str) -> JournalFacts:
    """Read ``path`` (a ``mode`` journal) back. Only once its writer is dead."""
    journal = Journal.open(path, mode)
    try:
        records = [record for _, record in journal.replay()]
    finally:
        journal.close()
    placed_ids = {r.body["tag"]: r.body["broker_order_id"] for r in records
                  if r.kind == "placed"}
    fills = [message.fill for message in (r.message() for r in records if r.kind == "ApplyFill")
             if isinstance(message, ApplyFill)]
    return JournalFacts(records, Counter(r.body["tag"] for r in records if r.kind == "order"),
                        Counter(r.body["tag"] for r in records if r.kind == "placed"),
                        placed_ids, fold(records).unfinished, fills)


# -- the simulator ----------------------------------------------------------------------


class SimProcess:
    """A running ``kitesaga sim``: its control routes, and Kite's books once logged in."""

    def __init__(self, proc: subprocess.Popen[str], url: str, ws_url: str) -> None:
        self.proc = proc
        self.url = url
        self.ws_url = ws_url
        self._http = requests.Session()
        self._http.trust_env = False
        self.kite: KiteConnect | None = None

    def stats(self) -> dict[str, Any]:
        reply = self._http.get(f"{self.url}/_sim/stats", timeout=10)
        reply.raise_for_status()
        data: dict[str, Any] = reply.json()
        return data

    def set_faults(self, spec: str) -> None:
        reply = self._http.post(f"{self.url}/_sim/faults", json={"spec": spec}, timeout=10)
        assert reply.status_code == 200, reply.text

    def use_token(self, api_key: str, access_token: str) -> None:
        """Read Kite's books as the logged-in user (not while an engine runs: the
        calls count against the account's rate limits)."""
        kite = KiteConnect(api_key, root=self.url, timeout=10)
        kite.reqsession.trust_env = False
        kite.set_access_token(access_token)
        self.kite = kite

    def _kite(self) -> KiteConnect:
        assert self.kite is not None, "use_token first"
        return self.kite

    def _read(self, method: str, *args: Any) -> Any:
        """One Kite read; a 429 (the last engine's calls still fill the window) is tried
        again until the deadline."""
        result: list[Any] = []

        def done() -> bool:
            try:
                result.append(getattr(self._kite(), method)(*args))
            except kite_errors.NetworkException as error:
                if error.code != 429:  # Too Many Requests
                    raise
                return False
            return True

        wait_until(done, 10, f"the simulator answers {method} without a 429")
        return result[0]

    def orders(self) -> list[dict[str, Any]]:
        return list(self._read("orders"))

    def trades(self) -> list[dict[str, Any]]:
        return list(self._read("trades"))

    def funds(self) -> tuple[int, int]:
        """(opening balance, cash) of the equity segment, in paise."""
        available = self._read("margins", "equity")["available"]
        return round(available["opening_balance"] * 100), round(available["cash"] * 100)


@contextmanager
def sim_process(env: Mapping[str, str], faults: str = "") -> Iterator[SimProcess]:
    """``kitesaga sim --port 0`` for the block; stopped with SIGTERM (must exit 0)."""
    args = [*KITESAGA, "sim", "--port", "0"] + (["--faults", faults] if faults else [])
    proc = subprocess.Popen(args, env=dict(env), stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True)
    try:
        line = _first_line(proc, BANNER_TIMEOUT_S)
        match = re.search(r"listening on (http://\S+) \(ticker (ws://\S+)\)", line)
        assert match, f"unexpected first line from kitesaga sim: {line!r}"
        yield SimProcess(proc, match.group(1), match.group(2))
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=EXIT_TIMEOUT_S) == 0


# -- the live harness -------------------------------------------------------------------

SIM = {  # the simulator's market: busy, and fixed so that a seed reproduces it
    "KITESAGA_MARKET_SEED": "7", "KITESAGA_MARKET_START_DATE": "2026-03-04",
    "KITESAGA_SIM_OPEN_PENDING_S": "0.01",  # executes long before a delayed answer leaves
}
LIVE_TRAFFIC = {  # many short sagas, short timeouts: sagas are in flight when the kill comes
    "KITESAGA_LIVE_CLOCK": "simulator",
    "KITESAGA_STRATEGY_MOMENTUM_THRESHOLD_PCT": "0.01",
    "KITESAGA_STRATEGY_MOMENTUM_LOOKBACK_TICKS": "3",
    "KITESAGA_STRATEGY_STRADDLE_EVERY_S": "60",
    "KITESAGA_EXITS_STOP_LOSS_PCT": "1", "KITESAGA_EXITS_TAKE_PROFIT_PCT": "1",
    "KITESAGA_EXITS_TRAIL_ACTIVATION_PCT": "none", "KITESAGA_EXITS_TRAIL_GIVEBACK_PCT": "none",
    # no GTT backstop: with exits this tight it would fire at the broker while an engine
    # is down (a tagless order no saga owns), and the checks here are about sagas' orders
    "KITESAGA_LIVE_GTT_PROTECTION": "false",
    "KITESAGA_ENGINE_FILL_TIMEOUT_S": "0.6", "KITESAGA_ENGINE_CANCEL_TIMEOUT_S": "0.6",
    "KITESAGA_ENGINE_POLL_INTERVAL_S": "0.2", "KITESAGA_ENGINE_SAGA_DEADLINE_S": "20",
    "KITESAGA_ENGINE_POLL_MAX_INTERVAL_S": "1",
    "KITESAGA_ENGINE_DRAIN_TIMEOUT_S": "30",
    "KITESAGA_LIVE_REQUEST_TIMEOUT_S": "2", "KITESAGA_LIVE_TICKER_STALE_S": "3",
    "KITESAGA_LIVE_REST_POLL_INTERVAL_S": "0.5",
    "KITESAGA_SYNC_STARTUP_RETRY_S": "0.3",
}
CALM_FAULTS = "stuck_cancel_s=0.3"
TARGET_LATENCY_MS = 3000
"""A targeted trial's answer delay: far longer than it takes to notice the order and kill."""
TARGET_WAIT_S = 10.0
"""In force while an engine starts (its start-up calls must not time out)."""


def window_faults(seed: int) -> str:
    """In force once the engine runs: answers held back 0.05-0.35 s after the order executed,
    some lost outright, some orders stuck OPEN PENDING (cancelled 0.3 s after asked)."""
    return (f"latency_ms=50,latency_jitter_ms=300,drop_response=0.25,stuck=0.1,"
            f"stuck_cancel_s=0.3,reject=0.03,seed={seed}")


@dataclass(slots=True)
class LiveReport:
    """What the live chaos run saw (printed, and asserted on by the test)."""

    trials: int = 0
    kills_in_flight: int = 0  # kills that left sagas unfinished
    kills_in_window: int = 0  # kills with an order at the broker that the journal lacked
    window_tags: set[str] = field(default_factory=set)
    sim_orders: int = 0
    sim_trades: int = 0
    journal_fills: int = 0
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)
    kills: list[str] = field(default_factory=list)  # one line per trial

    def line(self) -> str:
        return (f"live chaos: {self.trials} kills, {self.kills_in_flight} with sagas in "
                f"flight, {self.kills_in_window} between 'executed at the broker' and "
                f"'placed recorded' ({len(self.window_tags)} orders), {self.sim_orders} "
                f"broker orders, {self.sim_trades} trades, {self.seconds:.1f} s")


class LiveChaos:
    """The live harness: one simulator, one login, one state directory (see module doc)."""

    def __init__(self, tmp: Path, sim: SimProcess, env: dict[str, str], seed: int) -> None:
        self.tmp = tmp
        self.sim = sim
        self.env = env
        self.rng = random.Random(seed)
        self.seed = seed
        self.state = Path(env["KITESAGA_STATE_DIR"])
        self.journal = self.state / "journal-live.sqlite3"
        self.report = LiveReport()
        self._stderr = (tmp / "engine.stderr").open("a")
        self._pending_window: set[str] = set()  # caught tags not yet seen after a restart

    @classmethod
    @contextmanager
    def running(cls, tmp: Path, seed: int, speed: float) -> Iterator[LiveChaos]:
        """A simulator at ``speed``, logged in once with ``kitesaga login``."""
        state = tmp / "state"
        sim_env = engine_env(state, SIM, {"KITESAGA_MARKET_SPEED": f"{speed:g}"})
        with sim_process(sim_env, CALM_FAULTS) as sim:
            env = engine_env(state, SIM, LIVE_TRAFFIC, {
                "ZERODHA_API_KEY": "kitesim", "ZERODHA_API_SECRET": "kitesim-secret",
                "ZERODHA_TOKEN_KEY": Fernet.generate_key().decode(),
                "ZERODHA_API_ROOT": sim.url, "ZERODHA_WS_ROOT": sim.ws_url})
            login = subprocess.run([*KITESAGA, "login", "--request-token", "chaos1"],
                                   env=env, capture_output=True, text=True, timeout=60)
            assert login.returncode == 0, login.stderr
            config = load_config(None, env={"KITESAGA_STATE_DIR": str(state)})
            token = TokenStore(token_path(config), env).load()
            sim.use_token(env["ZERODHA_API_KEY"], token.access_token)
            chaos = cls(tmp, sim, env, seed)
            try:
                yield chaos
            finally:
                chaos._stderr.close()

    def _start(self) -> subprocess.Popen[str]:
        return start_engine(["run", "--mode", "live", "--quiet"], self.env, "LIVE trading",
                            self._stderr)

    def kill_during_traffic(self, low: float, high: float, targeted: bool = False) -> None:
        """One trial: start (recovering what the last kill left), let sagas run under the
        window faults, SIGKILL at a random moment, and note what the kill caught.

        ``targeted``: the broker holds every answer back ``TARGET_LATENCY_MS`` after the
        order executed, and the kill comes as soon as the broker counts a new order (or,
        with no order within ``TARGET_WAIT_S``, at the random moment): the kill lands
        between "executed at the broker" and "placement recorded" by construction."""
        started = time.monotonic()
        self.sim.set_faults(CALM_FAULTS)
        proc = self._start()
        seed = self.seed * 100_003 + self.report.trials
        delay = self.rng.uniform(low, high)
        if targeted:
            try:
                # first the engine trades (its start-up calls answered in time), then
                # every answer is held back and the next order is the kill's cue
                trading = self.sim.stats()["orders"]
                wait_until(lambda: self.sim.stats()["orders"] > trading, TARGET_WAIT_S,
                           "the engine trades")
                self.sim.set_faults(f"latency_ms={TARGET_LATENCY_MS},stuck_cancel_s=0.3,"
                                    f"seed={seed}")
                before = self.sim.stats()["orders"]
                wait_until(lambda: self.sim.stats()["orders"] > before, TARGET_WAIT_S,
                           "an order executed at the broker")
                delay = time.monotonic() - started
            except AssertionError:
                time.sleep(delay)  # no order came: the random kill point instead
        else:
            self.sim.set_faults(window_faults(seed))
            time.sleep(delay)  # the random kill point, not synchronisation
        sigkill(proc)
        self.sim.set_faults(CALM_FAULTS)
        facts = journal_facts(self.journal, "live")
        at_broker = self.sim.stats()["orders_per_tag"]
        self._check_caught_once(at_broker)  # the last kill's catches, after this restart
        caught = facts.window_tags(at_broker)
        self.report.trials += 1
        self.report.kills_in_flight += bool(facts.unfinished)
        self.report.kills_in_window += bool(caught)
        self.report.window_tags |= caught
        self._pending_window |= caught
        self.report.seconds += time.monotonic() - started
        self.report.kills.append(
            f"trial {self.report.trials}: killed {delay:.2f}s after the banner; "
            f"{len(facts.unfinished)} sagas unfinished, {sum(at_broker.values())} broker "
            f"orders, caught at the broker unrecorded: {sorted(caught) or '-'}")

    def _check_caught_once(self, at_broker: Mapping[str, int]) -> None:
        for tag in sorted(self._pending_window):
            assert at_broker.get(tag) == 1, (
                f"tag {tag}: the kill caught it at the broker unrecorded; after the restart "
                f"the broker has {at_broker.get(tag)} orders under it")
        self._pending_window.clear()

    def final_run(self, summary: Path, new_orders: int = 1) -> dict[str, Any]:
        """A clean run (no faults): start, recover, trade until ``new_orders`` more orders
        reached the broker and none is working (or the deadline: noted, then checked by
        :meth:`verify`), then SIGTERM: it must drain and exit 0."""
        started = time.monotonic()
        self.sim.set_faults("")
        before = self.sim.stats()["orders"]
        proc = subprocess.Popen([*KITESAGA, "run", "--mode", "live", "--quiet", "--summary",
                                 str(summary)], env=self.env, stdout=subprocess.PIPE,
                                stderr=self._stderr, text=True)
        try:
            assert "LIVE trading" in _first_line(proc, BANNER_TIMEOUT_S)

            def traded_and_quiet() -> bool:
                stats = self.sim.stats()
                return stats["orders"] >= before + new_orders and not any(
                    n for status, n in stats["orders_by_status"].items()
                    if status not in TERMINAL)

            try:
                wait_until(traded_and_quiet, FINAL_SETTLE_S, "")
            except AssertionError:
                stats = self.sim.stats()
                self.report.notes.append(
                    f"the clean run did not trade {new_orders} orders and settle within "
                    f"{FINAL_SETTLE_S:g}s: {stats['orders'] - before} new orders, broker "
                    f"orders by status {stats['orders_by_status']}")
            proc.send_signal(signal.SIGTERM)
            out, _ = proc.communicate(timeout=DRAIN_EXIT_TIMEOUT_S)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(EXIT_TIMEOUT_S)
        assert proc.returncode == 0, f"the clean run exited {proc.returncode}: {out[-2000:]}"
        self.report.seconds += time.monotonic() - started
        data: dict[str, Any] = json.loads(summary.read_text())
        return data

    def verify(self, summary: dict[str, Any]) -> list[str]:
        """The issue's checks on the journal and the simulator after the clean run: every
        problem found, one line each (empty: all held). See :func:`check_live_books`."""
        facts = journal_facts(self.journal, "live")
        stats = self.sim.stats()
        orders, trades = self.sim.orders(), self.sim.trades()
        report = self.report
        report.sim_orders, report.sim_trades = len(orders), len(trades)
        report.journal_fills = len(facts.fills)
        problems = list(report.notes)
        problems += [f"after the restart, tag {tag} (caught between the broker and the "
                     f"journal) has {stats['orders_per_tag'].get(tag)} orders at the broker"
                     for tag in sorted(self._pending_window)
                     if stats["orders_per_tag"].get(tag) != 1]
        opening, cash = self.sim.funds()
        problems += check_live_books(facts, stats, orders, trades, summary, opening, cash)
        return problems


TERMINAL = ("COMPLETE", "CANCELLED", "REJECTED")
FINAL_SETTLE_S = 45.0
"""Longest the clean run may take to recover, trade and settle before its SIGTERM."""
NO_ORDER_UNDER_TAG = "no order under its tag"


def check_live_books(facts: JournalFacts, stats: Mapping[str, Any],
                     orders: list[dict[str, Any]], trades: list[dict[str, Any]],
                     summary: Mapping[str, Any], opening: int, cash: int) -> list[str]:
    """The final checks, one line per problem: no broker order duplicated (orders per tag)
    or unknown to the journal; every saga terminal; every broker trade of ours exactly one
    journal fill, the same trade; the journal's positions = the broker's = the summary's;
    money conserved in the book and the fills' cash = the broker's cash movement."""
    problems: list[str] = []
    per_tag: dict[str, int] = stats["orders_per_tag"]
    if not facts.intended:
        problems.append("the kills came before any order: the trials tested nothing")
    problems += [f"tag {tag} intended {n} times" for tag, n in facts.intended.items() if n > 1]
    problems += [f"tag {tag} placed {n} times" for tag, n in facts.placed.items() if n > 1]
    if None in per_tag or "" in per_tag:
        problems.append(f"orders without a tag at the broker (a GTT fired?): {per_tag}")
    problems += [f"tag {tag}: {n} orders at the broker" for tag, n in per_tag.items() if n != 1]
    unknown = sorted(set(per_tag) - set(facts.intended) - {"", None})
    if unknown:
        problems.append(f"orders at the broker under tags the journal never intended: {unknown}")
    by_tag = {o["tag"]: o for o in orders}
    problems += [f"tag {tag}: placed as {order_id}, the broker has "
                 f"{by_tag.get(tag, {}).get('order_id')}"
                 for tag, order_id in facts.placed_ids.items()
                 if by_tag.get(tag, {}).get("order_id") != order_id]
    if facts.unfinished:
        problems.append(f"{len(facts.unfinished)} sagas unfinished after the recovery: "
                        f"{[s.saga_id for s in facts.unfinished]}")

    # every trade of ours is exactly one fill in the journal, and nothing else is
    ours = {o["order_id"] for o in orders if o["tag"] in facts.intended}
    broker = {t["trade_id"]: t for t in trades if t["order_id"] in ours}
    seen = Counter(f.fill_id for f in facts.fills)
    problems += [f"fill {fill_id} journaled {n} times" for fill_id, n in seen.items() if n > 1]
    lost = sorted(set(broker) - set(seen))
    if lost:
        problems.append(f"{len(lost)} broker trades never reached the journal (lost fills): "
                        + ", ".join(f"{t} (order {broker[t]['order_id']}, tag "
                                    f"{_tag_of(orders, broker[t]['order_id'])})"
                                    for t in lost[:8]))
    phantom = sorted(set(seen) - set(broker))
    if phantom:
        problems.append(f"journal fills the broker does not have: {phantom[:10]}")
    for fill in facts.fills:
        trade = broker.get(fill.fill_id)
        if trade is not None and (fill.broker_order_id, fill.side.value, fill.quantity,
                                  fill.price.paise) != (
                trade["order_id"], trade["transaction_type"], trade["quantity"],
                round(trade["average_price"] * 100)):
            problems.append(f"fill {fill} is not the broker's trade {trade}")

    # positions: the journal's fills = the broker's trades = its net positions = the summary's
    from_journal: Counter[int] = Counter()
    for fill in facts.fills:
        from_journal[fill.instrument_token] += fill.side.sign * fill.quantity
    from_trades: Counter[int] = Counter()
    for trade in trades:
        sign = 1 if trade["transaction_type"] == "BUY" else -1
        from_trades[trade["instrument_token"]] += sign * trade["quantity"]
    if {k: v for k, v in from_journal.items() if v} != {k: v for k, v in from_trades.items()
                                                         if v}:
        problems.append(f"positions by token: journal {dict(+from_journal)} "
                        f"{dict(-from_journal)}, broker {dict(+from_trades)} "
                        f"{dict(-from_trades)}")
    at_broker = {f"{p['exchange']}:{p['tradingsymbol']}": p["quantity"]
                 for p in stats["open_positions"]["positions"] if p["quantity"]}
    if summary["positions"] != at_broker:
        problems.append(f"positions: the engine's {summary['positions']}, the broker's "
                        f"{at_broker}")

    # money: conserved in the book, and every fill's cash moved as the broker's did
    for key, good in (("sagas_in_flight", 0), ("drained", True), ("conservation_error_paise", 0),
                      ("invariant_violations", 0), ("reserved_paise", 0)):
        if summary[key] != good:
            problems.append(f"summary {key} = {summary[key]!r}, expected {good!r}")
    if summary["cash_paise"] < 0:
        problems.append(f"summary cash_paise = {summary['cash_paise']} < 0")
    flows = sum(-f.side.sign * f.quantity * f.price.paise - f.charges.paise for f in facts.fills)
    if opening + flows != cash:
        problems.append(f"the journal's fills moved {flows} paise of cash; the broker's cash "
                        f"moved {cash - opening} (opening {opening}, now {cash})")
    return problems


def _tag_of(orders: list[dict[str, Any]], order_id: str) -> str:
    return next((str(o["tag"]) for o in orders if o["order_id"] == order_id), "?")
