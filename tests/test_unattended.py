"""`kitesaga run` as a user runs it unattended: a real process with its control socket,
/metrics and dashboard beside it, driven by the real `kitesaga` commands."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from tests.support import wait_until

KITESAGA = [str(Path(sys.executable).with_name("kitesaga"))]


def _env(state: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KITESAGA_", "ZERODHA_"))}
    return {**env, "KITESAGA_STATE_DIR": str(state), "KITESAGA_MARKET_SPEED": "120",
            "KITESAGA_METRICS_PORT": "0", "KITESAGA_DASHBOARD_PORT": "0",
            "KITESAGA_STRATEGY_MOMENTUM_THRESHOLD_PCT": "0.01",
            "KITESAGA_STRATEGY_MOMENTUM_LOOKBACK_TICKS": "3",
            "KITESAGA_ENGINE_DRAIN_TIMEOUT_S": "20", "NO_PROXY": "127.0.0.1"}


def _cli(state: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*KITESAGA, *args], env=_env(state), capture_output=True, text=True,
                          timeout=90)


@pytest.mark.timeout(180)
def test_an_unattended_engine_is_watched_and_stopped_with_one_command(tmp_path: Path) -> None:
    state = tmp_path / "state"
    assert _cli(state, "status").returncode == 2  # no engine yet: said clearly
    proc = subprocess.Popen([*KITESAGA, "run", "--quiet", "--summary", str(tmp_path / "s.json")],
                            env=_env(state), stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                            text=True)
    try:
        assert proc.stdout is not None
        assert "paper trading" in proc.stdout.readline()
        where = proc.stdout.readline()
        metrics = re.search(r"metrics (http://\S+?);", where)
        dashboard = re.search(r"dashboard (http://\S+?);", where)
        assert metrics and dashboard and "control " in where, where
        wait_until(lambda: json.loads(_cli(state, "status", "--json").stdout)["sagas"][
            "stats"]["sagas_completed"] >= 3, timeout=60, what="the strategies traded")
        scrape = requests.get(metrics.group(1), timeout=5).text
        assert re.search(r"^kitesaga_fills_total \d", scrape, re.M)
        page = requests.get(dashboard.group(1), timeout=5)
        assert page.status_code == 200 and "kitesaga" in page.text.lower()
        assert _cli(state, "health").returncode == 0
        halted = _cli(state, "halt", "--flatten", "--reason", "test emergency")
        assert halted.returncode == 0, halted.stdout + halted.stderr
        status = json.loads(_cli(state, "status", "--json").stdout)
        assert status["trading"]["state"] == "HALTED"
        assert status["positions"]["count"] == 0 and status["positions"]["open"] == []
        assert status["sagas"]["in_flight"] == 0
        health = _cli(state, "health")
        assert health.returncode == 1 and "HALTED" in health.stdout
        assert _cli(state, "resume").returncode == 0
        assert json.loads(_cli(state, "status", "--json").stdout)["trading"]["state"] == \
            "ACTIVE"
    finally:
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0, out[-2000:]
    data = json.loads((tmp_path / "s.json").read_text())
    assert data["drained"] and data["invariant_violations"] == 0
    assert _cli(state, "status").returncode == 2  # the socket went with the engine
    report = _cli(state, "report", "--csv", str(tmp_path / "day.csv"))
    assert report.returncode == 0, report.stderr
    assert "total" in (tmp_path / "day.csv").read_text()
