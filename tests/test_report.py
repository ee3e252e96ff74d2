"""The ``kitesaga`` console script as a subprocess: ``report`` (the day's trades from the
journal file, read-only, engine running or not, its totals equal to what the portfolio
booked) and every control command when no engine runs."""

from __future__ import annotations

import csv
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from actors.cli import main
from actors.control import daily_report, read_fills, request, start_control
from actors.journal import journal_path
from actors.market import IST
from messages import InstrumentKind, SagaCompleted, Side, SubmitEntry, SubmitExit
from tests.engine_support import make_config, running
from tests.support import Recorder


def _script(*argv: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    script = Path(sys.executable).with_name("kitesaga")
    command = [str(script)] if script.exists() else [sys.executable, "-m", "actors.cli"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("KITESAGA_")}
    return subprocess.run([*command, *argv], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=60, check=False)


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def _paise(rupees: str) -> int:
    whole, _, part = rupees.lstrip("-").partition(".")
    value = int(whole) * 100 + int(part)
    return -value if rupees.startswith("-") else value


def test_report_totals_equal_the_portfolio_running_or_not(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = make_config()
    state = Path(config.engine.state_dir)
    with running(config) as h:
        server = start_control(h.engine)
        call, put = h.option(InstrumentKind.CE), h.option(InstrumentKind.PE)
        h.quote(call, 150_00)
        h.quote(put, 90_00)
        for side in ("BUY", "SELL"):  # a manual round trip: opened, then closed at a profit
            reply = request(server.path, "submit", {
                "side": side, "symbol": call.tradingsymbol, "quantity": 2 * call.lot_size},
                timeout=30)
            assert reply["outcome"] == "completed", reply
            h.quote(call, 171_35)
        done = Recorder()  # a strategy's round trip with a loss, and a position left open
        h.submit(SubmitEntry.single("t", put, Side.SELL, put.lot_size, reply_to=done))
        h.submit(SubmitEntry.single("t", call, Side.BUY, call.lot_size, reply_to=done))
        done.wait_for_kind(SagaCompleted, 2)
        h.quote(put, 95_55)
        h.submit(SubmitExit("t", put.instrument_token, "test", reply_to=done))
        done.wait_for_kind(SagaCompleted, 3)
        port = h.engine.portfolio_snapshot
        day = h.engine.clock.now().astimezone(IST).date()
        server.stop()
        live = _script("report", "--state-dir", str(state), "--date", day.isoformat(),
                       "--csv", "while.csv", cwd=tmp_path)
        assert live.returncode == 0, live.stderr
    assert port.realised != 0 and port.charges > 0 and port.open_positions == 1
    after = _script("report", "--state-dir", str(state), "--date", day.isoformat(),
                    "--csv", "after.csv", cwd=tmp_path)
    assert after.returncode == 0, after.stderr
    assert "Traceback" not in after.stderr and call.key in after.stdout
    for name in ("while.csv", "after.csv"):
        rows = _rows(tmp_path / name)
        trades = [r for r in rows if r["row"] == "trade"]
        [total] = [r for r in rows if r["row"] == "total"]
        assert len(trades) == port.fills_applied == 5
        assert _paise(total["realised"]) == port.realised
        assert _paise(total["charges"]) == port.charges
        assert _paise(total["net"]) == port.realised - port.charges
        assert sum(_paise(r["realised"]) for r in trades) == port.realised
        subtotals = {(r["strategy"], r["instrument"]): r
                     for r in rows if r["row"] == "subtotal"}
        assert set(subtotals) == {("manual", call.key), ("t", call.key), ("t", put.key)}
        manual = subtotals[("manual", call.key)]
        # bought at the ask, sold at the bid (spread 10 paise, no slippage)
        assert _paise(manual["realised"]) == 2 * call.lot_size * (171_30 - 150_05) == \
            port.positions[("manual", call.instrument_token)].realised
        assert _paise(subtotals[("t", put.key)]["realised"]) == \
            port.positions[("t", put.instrument_token)].realised < 0
        assert all(r["date"] == day.isoformat() for r in rows)
        assert {r["side"] for r in trades} == {"BUY", "SELL"}
    capsys.readouterr()  # the same command in-process: the same table and file
    assert main(["report", "--state-dir", str(state), "--date", day.isoformat(), "--csv",
                 str(tmp_path / "in.csv")]) == 0
    assert capsys.readouterr().out.splitlines()[-6:] == after.stdout.splitlines()[-6:]
    assert (tmp_path / "in.csv").read_text() == (tmp_path / "after.csv").read_text()
    journal = journal_path(config, "paper")
    before = journal.read_bytes()
    data = daily_report(journal, "paper", day, config.engine.fill_dedupe_window)
    assert (data.total.trades, data.total.realised) == (5, port.realised)
    assert journal.read_bytes() == before  # read-only
    assert daily_report(journal, "paper", day.replace(year=day.year + 1),
                        config.engine.fill_dedupe_window).trades == []
    assert len(read_fills(journal, "paper", config.engine.fill_dedupe_window)) == 5
    empty = _script("report", "--state-dir", str(state), "--date", "2001-01-01",
                    cwd=tmp_path)
    assert empty.returncode == 0 and "no trades on 2001-01-01" in empty.stdout


def test_report_refuses_what_it_cannot_read(tmp_path: Path) -> None:
    missing = _script("report", "--state-dir", str(tmp_path / "none"), cwd=tmp_path)
    assert missing.returncode == 2 and "no paper journal there" in missing.stderr
    (tmp_path / "foreign").mkdir()
    (tmp_path / "foreign" / "journal-paper.sqlite3").write_text("hello")
    foreign = _script("report", "--state-dir", str(tmp_path / "foreign"), cwd=tmp_path)
    assert foreign.returncode == 2 and "not a kitesaga journal" in foreign.stderr
    assert (tmp_path / "foreign" / "journal-paper.sqlite3").read_text() == "hello"
    bad = _script("report", "--state-dir", str(tmp_path), "--date", "25-11-2026",
                  cwd=tmp_path)
    assert bad.returncode == 2 and "must be a date YYYY-MM-DD, got '25-11-2026'" in bad.stderr
    for result in (missing, foreign, bad):
        assert "Traceback" not in result.stderr


# -- the console script, no engine -----------------------------------------------------


def test_every_command_says_no_engine_runs(tmp_path: Path) -> None:
    state = tmp_path / "state"
    for argv in (("status",), ("positions", "--json"), ("orders",), ("sagas",),
                 ("submit", "BUY", "X", "75"), ("halt", "--flatten"), ("resume",)):
        done = _script(*argv, "--state-dir", str(state), cwd=tmp_path)
        assert done.returncode == 2, (argv, done.stdout, done.stderr)
        assert "no engine is running" in done.stderr and str(state / "control.sock") in \
            done.stderr
        assert "Traceback" not in done.stderr and done.stdout == ""
    state.mkdir()
    dead = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    dead.bind(str(state / "control.sock"))
    dead.close()
    done = _script("health", "--state-dir", str(state), cwd=tmp_path)
    assert done.returncode == 2 and done.stdout.startswith("down: ") and "stale" in done.stdout
    done = _script("status", "--state-dir", str(state), "--config", str(tmp_path / "no.toml"),
                   cwd=tmp_path)
    assert done.returncode == 2 and "no.toml" in done.stderr and "Traceback" not in done.stderr
