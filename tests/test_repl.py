"""`kitesaga repl` as a trader uses it: a real `kitesaga run` engine (paper, about 1,000
ticks/s from its simulated market, strategies trading), and the console driven through
a pseudo-terminal (pexpect) and, scripted, through a pipe."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pexpect
import pytest

from tests.support import wait_until

KITESAGA = str(Path(sys.executable).with_name("kitesaga"))
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b[=>]|\r")
CORE = ("PortfolioActor", "OrderActor", "PriceActor", "RateLimitActor", "SyncActor")


def _env(state: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KITESAGA_", "ZERODHA_"))}
    # 100 instruments stepped 10 times a (wall) second: about 1,000 ticks/s
    return {**env, "KITESAGA_STATE_DIR": str(state), "KITESAGA_MARKET_SPEED": "10",
            "KITESAGA_MARKET_EXTRA_INSTRUMENTS": "10", "KITESAGA_METRICS_PORT": "0",
            "KITESAGA_DASHBOARD_ENABLED": "false",
            "KITESAGA_STRATEGY_MOMENTUM_THRESHOLD_PCT": "0.01",
            "KITESAGA_STRATEGY_MOMENTUM_LOOKBACK_TICKS": "3",
            "TERM": "xterm-256color", "PROMPT_TOOLKIT_NO_CPR": "1", "COLUMNS": "200",
            "LINES": "60"}


def _cli(state: Path, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([KITESAGA, *args], env=_env(state), capture_output=True, text=True,
                          input=stdin, timeout=60)


def _status(state: Path) -> dict[str, object]:
    out = _cli(state, "status", "--json")
    assert out.returncode == 0, out.stderr
    parsed: dict[str, object] = json.loads(out.stdout)
    return parsed


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A `kitesaga run` process that has completed at least one saga."""
    state = tmp_path_factory.mktemp("repl") / "state"
    proc = subprocess.Popen([KITESAGA, "run", "--quiet"], env=_env(state),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_until(lambda: _cli(state, "status").returncode == 0, timeout=60,
                   what="the engine's control socket answers")
        wait_until(lambda: _status(state)["sagas"]["stats"]["sagas_completed"] >= 1,  # type: ignore[index]
                   timeout=90, what="the strategies traded")
        yield state
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(60)


class Console:
    """``kitesaga repl`` in a pseudo-terminal."""

    def __init__(self, state: Path, *flags: str) -> None:
        self.child = pexpect.spawn(KITESAGA, ["repl", *flags], env=_env(state),
                                   encoding="utf-8", dimensions=(60, 200), timeout=20)
        self.prompt = "kitesaga[WRITE]>" if "--allow-write" in flags else "kitesaga>"
        self.child.expect_exact(self.prompt)
        self.banner = ANSI.sub("", self.child.before or "")

    def run(self, line: str, until: str, timeout: float = 20) -> tuple[str, float]:
        """Type ``line``; its output up to the pattern ``until`` (which the typed line
        must not contain), and the seconds until that came."""
        self.child.send(line + "\r")
        started = time.monotonic()
        self.child.expect(until, timeout=timeout)
        took = time.monotonic() - started
        out = (self.child.before or "") + str(self.child.after or "")
        self.child.expect_exact(self.prompt, timeout=timeout)  # the next prompt
        return ANSI.sub("", out + (self.child.before or "")), took

    def answer(self, question: str, reply: str, until: str, timeout: float = 90) -> str:
        """Wait for a confirmation ``question``, type ``reply``, read up to ``until``."""
        self.child.expect_exact(question, timeout=timeout)
        self.child.send(reply + "\r")
        self.child.expect(until, timeout=timeout)
        out = (self.child.before or "") + str(self.child.after or "")
        self.child.expect_exact(self.prompt, timeout=timeout)
        return ANSI.sub("", out)

    def close(self) -> int:
        self.child.send("\x04")  # Ctrl-D at the prompt
        self.child.expect(pexpect.EOF, timeout=20)
        self.child.close()
        return int(self.child.exitstatus or 0)


def test_a_console_lists_the_actors_and_traces_ticks_under_load(engine: Path) -> None:
    console = Console(engine)
    assert "read-only" in console.banner and "ACTIVE" in console.banner
    for _ in range(3):  # answers within a second while ~1,000 ticks/s flow
        out, took = console.run("actors()", until=r"SyncActor[^\n]*\n")
        assert all(name in out for name in CORE), out
        assert took < 1.0, f"actors() took {took:.2f}s"
    row = next(line for line in out.splitlines() if line.startswith("PriceActor"))
    assert "running" in row
    out, _ = console.run('trace("RecordPrices", n=5)', until=r"trace: 5 message")
    ticks = [line for line in out.splitlines() if "RecordPrices" in line and " price(s): " in line]
    assert len(ticks) == 5, out
    out, _ = console.run("prices(stale=False)", until=r"NFO:NIFTY\S+")
    out, _ = console.run("halt()", until=r"error: read-only session[^\n]*")
    assert console.close() == 0
    assert _status(engine)["trading"]["state"] == "ACTIVE"  # type: ignore[index]


def test_a_saga_timeline_and_halt_resume_with_confirmation(engine: Path) -> None:
    scripted = _cli(engine, "repl", "--json", stdin="sagas(open=False, n=1)\n")
    assert scripted.returncode == 0, scripted.stderr
    [ended] = json.loads(scripted.stdout.splitlines()[-1])["ended"]
    console = Console(engine, "--allow-write")
    out, _ = console.run(f'saga("{ended["saga_id"]}")', until=r"ended (COMPLETED|COMPENSATED)")
    for kind in ("saga", "order", "placed", "ApplyFill"):
        assert re.search(rf"\b{kind}\b", out), (kind, out)
    assert f"ended {ended['outcome']}" in out
    console.child.send('halt("from the pty test")\r')
    out = console.answer("[y/N]", "y", until=r"HALTED")
    assert _status(engine)["trading"]["state"] == "HALTED"  # type: ignore[index]
    console.child.send("resume()\r")
    out = console.answer("[y/N]", "y", until=r"ACTIVE")
    assert _status(engine)["trading"]["state"] == "ACTIVE"  # type: ignore[index]
    assert console.close() == 0
    audit = [json.loads(line) for line in
             (engine / "repl-audit.jsonl").read_text().splitlines()]
    commands = [a["command"] for a in audit if a["write"]]
    assert commands[-2:] == ['halt("from the pty test")', "resume()"]
    assert all(a["ok"] for a in audit if a["write"])
    assert (engine / "repl-audit.jsonl").stat().st_mode & 0o777 == 0o600


def test_scripted_input_runs_each_statement(engine: Path) -> None:
    out = _cli(engine, "repl", stdin="actors()\nsorted(positions().data)\n")
    assert out.returncode == 0, out.stderr
    assert all(name in out.stdout for name in CORE) and "['positions']" in out.stdout
    bad = _cli(engine, "repl", stdin="inspect('nobody')\nactors()\n")
    assert bad.returncode == 1
    assert "actor: no actor 'nobody'" in bad.stdout + bad.stderr
    assert "Traceback" not in bad.stdout + bad.stderr
    assert "OrderActor" in bad.stdout  # the script went on
