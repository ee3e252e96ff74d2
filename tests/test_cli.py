"""The real ``kitesaga`` console script, run as a subprocess."""

from __future__ import annotations

import json
import queue
import signal
import subprocess
import threading
import time
from pathlib import Path
from typing import IO

import pytest

from tests.support import clean_env, kitesaga_command

SUMMARY_KEYS = ("sagas_started", "sagas_completed", "sagas_compensated", "orders", "fills",
                "realized_pnl_paise", "fees_paise", "cash_paise", "open_positions",
                "invariant_violations")




def _kitesaga(args: list[str], cwd: Path, timeout: float = 60.0,
              env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*kitesaga_command(), *args], cwd=cwd, env=env or clean_env(),
                          capture_output=True, text=True, timeout=timeout, check=False)


def test_run_trades_and_writes_a_summary_and_json_log(tmp_path: Path) -> None:
    done = _kitesaga(["run", "--duration", "20", "--speed", "60", "--seed", "1", "--summary",
                      "s.json", "--state-dir", "tmp"], tmp_path, timeout=90)
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    data = json.loads((tmp_path / "s.json").read_text())
    missing = [k for k in SUMMARY_KEYS if k not in data]
    assert not missing
    assert data["orders"] > 0 and data["fills"] > 0
    assert data["sagas_started"] > 0
    assert data["sagas_started"] == data["sagas_completed"] + data["sagas_compensated"]
    assert data["invariant_violations"] == 0
    assert data["cash_paise"] >= 0 and data["fees_paise"] > 0
    assert all(isinstance(data[k], int) for k in SUMMARY_KEYS)
    logs = list((tmp_path / "tmp").glob("*.log"))
    assert logs, "no log file in the state dir"
    lines = [line for line in logs[0].read_text().splitlines() if line.strip()]
    assert lines
    records = [json.loads(line) for line in lines]  # every line is one JSON object
    assert all(isinstance(r, dict) and "event" in r and "level" in r for r in records)
    assert any(r["event"] == "engine_started" for r in records)


def _lines(stream: IO[str]) -> queue.Queue[str]:
    """Read ``stream`` line by line on a thread, so the test can wait with a deadline."""
    lines: queue.Queue[str] = queue.Queue()

    def pump() -> None:
        for line in stream:
            lines.put(line)

    threading.Thread(target=pump, daemon=True).start()
    return lines


def _wait_for_line(lines: queue.Queue[str], text: str, timeout: float) -> str:
    deadline = time.monotonic() + timeout
    seen = []
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise AssertionError(f"no line with {text!r} within {timeout}s; got {seen!r}")
        try:
            line = lines.get(timeout=remaining)
        except queue.Empty:
            continue
        seen.append(line)
        if text in line:
            return line


def test_sigterm_stops_gracefully_with_a_summary(tmp_path: Path) -> None:
    proc = subprocess.Popen(
        [*kitesaga_command(), "run", "--speed", "600", "--summary", "s.json", "--state-dir", "tmp"],
        cwd=tmp_path, env=clean_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        lines = _lines(proc.stdout)
        _wait_for_line(lines, "Ctrl-C stops", timeout=30)
        threading.Event().wait(2.0)  # let it trade for ~20 simulated minutes (not a sync)
        assert proc.poll() is None, "kitesaga run exited without being told to"
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=30)
        table = _wait_for_line(lines, "invariant violations", timeout=10)  # summary printed
        assert table.split()[-1] == "0"
        assert proc.stderr is not None
        err = proc.stderr.read()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
    assert code == 0, err
    assert "Traceback" not in err
    data = json.loads((tmp_path / "s.json").read_text())
    assert data["invariant_violations"] == 0 and data["drained"] is True
    assert data["sagas_started"] > 0 and data["orders"] > 0  # it was trading when stopped
    assert data["sagas_started"] == data["sagas_completed"] + data["sagas_compensated"]
    stopping = [json.loads(line) for line in (tmp_path / "tmp" / "kitesaga.log").read_text()
                .splitlines() if '"stopping"' in line]
    assert stopping and stopping[0]["reason"] == "SIGTERM"


def _bad_toml(tmp_path: Path) -> Path:
    path = tmp_path / "bad.toml"
    path.write_text("[market]\nspeeed = 5\n")
    return path


@pytest.mark.parametrize(("args", "env", "named"), [
    (["--speed", "-1"], {}, ["--speed", "-1"]),
    (["--speed", "nan"], {}, ["--speed", "nan"]),
    (["--speed", "inf"], {}, ["--speed", "inf"]),
    (["--duration", "abc"], {}, ["--duration", "abc"]),
    (["--duration", "0"], {}, ["--duration", "0"]),
    (["--seed", "x1"], {}, ["--seed", "x1"]),
    (["--seed", "-1"], {}, ["--seed", "market.seed", "-1"]),
    (["--speed", "1e300"], {}, ["--speed", "market.speed", "1e+300"]),
    (["--config", "BAD"], {}, ["market.speeed", "5"]),
    ([], {"KITESAGA_MARKET_SPEED": "fast"}, ["KITESAGA_MARKET_SPEED", "market.speed", "fast"]),
    ([], {"KITESAGA_ENGINE_FILL_TIMEOUT_S": "-3"}, ["engine.fill_timeout_s", "-3"]),
    (["--config", "missing.toml"], {}, ["missing.toml"]),
], ids=["speed-negative", "speed-nan", "speed-inf", "duration-text", "duration-zero",
        "seed-text", "seed-negative", "speed-overflow", "config-unknown-key",
        "env-speed-text", "env-negative-timeout", "config-missing"])
def test_bad_input_exits_2_naming_field_and_value(tmp_path: Path, args: list[str],
                                                   env: dict[str, str], named: list[str]) -> None:
    args = [str(_bad_toml(tmp_path)) if a == "BAD" else a for a in args]
    duration = [] if "--duration" in args else ["--duration", "1"]
    done = _kitesaga(["run", *args, *duration, "--quiet", "--state-dir", "tmp"], tmp_path,
                     env=clean_env(**env))
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert "Traceback" not in done.stderr
    for text in named:
        assert text in done.stderr, (text, done.stderr)
    assert not (tmp_path / "tmp" / "kitesaga.log").exists()  # refused before starting


def test_no_command_exits_2_with_usage(tmp_path: Path) -> None:
    done = _kitesaga([], tmp_path)
    assert done.returncode == 2
    assert "usage: kitesaga" in done.stderr
    assert "Traceback" not in done.stderr


def test_a_corrupt_journal_stops_the_start_with_exit_2_and_is_kept(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir()
    journal = state / "journal-paper.sqlite3"
    journal.write_bytes(b"SQLite format 3\x00" + b"\xff" * 200)
    result = _kitesaga(["run", "--duration", "1", "--quiet", "--state-dir", str(state)], tmp_path)
    assert result.returncode == 2
    assert "journal refused" in result.stderr and "Traceback" not in result.stderr
    assert journal.read_bytes() == b"SQLite format 3\x00" + b"\xff" * 200
