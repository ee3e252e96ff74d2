"""The dress rehearsal as a user runs it: `kitesaga sim`, `kitesaga login`, then
`kitesaga run --mode live` for a bounded time, each a real process."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import requests
from cryptography.fernet import Fernet

from actors.config import load_config
from actors.kite import TokenStore
from actors.kite._token import token_path

KITESAGA = [str(Path(sys.executable).with_name("kitesaga"))]
MARKET = {"KITESAGA_MARKET_SPEED": "60", "KITESAGA_MARKET_SEED": "3",
          "KITESAGA_SIM_OPEN_PENDING_S": "0.02"}


def _base_env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("KITESAGA_", "ZERODHA_"))}
    return {**env, **MARKET, "KITESAGA_STATE_DIR": str(tmp_path / "state"),
            "NO_PROXY": "127.0.0.1"}


@contextmanager
def sim_process(tmp_path: Path) -> Iterator[tuple[str, str]]:
    """`kitesaga sim --port 0`; yields (REST url, ticker url)."""
    proc = subprocess.Popen(
        [*KITESAGA, "sim", "--port", "0"], env=_base_env(tmp_path),
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        match = re.search(r"listening on (http://\S+) \(ticker (ws://\S+)\)", line)
        assert match, f"unexpected first line from kitesaga sim: {line!r}"
        yield match.group(1), match.group(2)
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0


def _secrets_absent(texts: list[str], secrets: list[str]) -> None:
    for secret in secrets:
        for text in texts:
            assert secret not in text, "a secret leaked into the output or the log"


@pytest.mark.timeout(180)
def test_dress_rehearsal_trades_live_against_the_simulator(tmp_path: Path) -> None:
    with sim_process(tmp_path) as (url, ws_url):
        env = {**_base_env(tmp_path), "ZERODHA_API_KEY": "kitesim",
               "ZERODHA_API_SECRET": "kitesim-secret",
               "ZERODHA_TOKEN_KEY": Fernet.generate_key().decode(),
               "ZERODHA_API_ROOT": url, "ZERODHA_WS_ROOT": ws_url}
        login = subprocess.run(
            [*KITESAGA, "login", "--request-token", "rehearsal1"],
            env=env, capture_output=True, text=True, timeout=60)
        assert login.returncode == 0, login.stderr
        config = load_config(None, env={"KITESAGA_STATE_DIR": env["KITESAGA_STATE_DIR"]})
        access_token = TokenStore(token_path(config), env).load().access_token

        status = subprocess.run([*KITESAGA, "token", "status"],
                                env=env, capture_output=True, text=True, timeout=60)
        assert status.returncode == 0 and "valid" in status.stdout

        summary = tmp_path / "summary.json"
        run_env = {**env, "KITESAGA_LIVE_CLOCK": "simulator",
                   "KITESAGA_STRATEGY_MOMENTUM_THRESHOLD_PCT": "0.01",
                   "KITESAGA_STRATEGY_MOMENTUM_LOOKBACK_TICKS": "5",
                   "KITESAGA_ENGINE_FILL_TIMEOUT_S": "3"}
        run = subprocess.run(
            [*KITESAGA, "run", "--mode", "live", "--duration", "25",
             "--quiet", "--summary", str(summary)],
            env=run_env, capture_output=True, text=True, timeout=150)
        assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
        data = json.loads(summary.read_text())
        stats = requests.get(f"{url}/_sim/stats", timeout=5).json()
        stats = stats.get("data", stats)

        assert data["invariant_violations"] == 0 and data["drained"]
        assert data["sagas_completed"] >= 1, data
        assert stats["breaches"]["count"] == 0, stats["breaches"]
        assert all(n == 1 for tag, n in stats["orders_per_tag"].items() if tag), stats
        broker = {f"{p['exchange']}:{p['tradingsymbol']}": p["quantity"]
                  for p in stats["open_positions"]["positions"] if p["quantity"]}
        assert data["positions"] == broker
        sync = data["reconciliation"]  # status shows the last reconciliation
        assert sync["mode"] == "live" and sync["startup"] == "clean", sync
        assert sync["last_check_at"] is not None and sync["last_round_ok"] is True
        log = (Path(env["KITESAGA_STATE_DIR"]) / "kitesaga.log").read_text()
        assert "live_session" in log  # the log is the live session's
        _secrets_absent([log, run.stdout, run.stderr, login.stdout, login.stderr,
                         status.stdout, status.stderr],
                        [access_token, env["ZERODHA_API_SECRET"], env["ZERODHA_TOKEN_KEY"]])


def test_live_mode_refuses_to_start_without_a_token(tmp_path: Path) -> None:
    env = {**_base_env(tmp_path), "ZERODHA_API_KEY": "k", "ZERODHA_API_SECRET": "s",
           "ZERODHA_TOKEN_KEY": Fernet.generate_key().decode()}
    run = subprocess.run([*KITESAGA, "run", "--mode", "live",
                          "--duration", "5", "--quiet"],
                         env=env, capture_output=True, text=True, timeout=60)
    assert run.returncode == 2
    assert "kitesaga login" in run.stderr and "Traceback" not in run.stderr
