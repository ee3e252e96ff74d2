"""``kitesaga repl``, the console side: scripted and interactive sessions (the real
console script, or :func:`actors.repl.run_repl` in-process) against a real engine and
its control socket, the audit log, and the text renderings of canned replies."""

from __future__ import annotations

import io
import json
import os
import re
import stat
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from actors.config import Config, state_dir
from actors.control import start_control
from actors.repl import _render as render
from actors.repl import run_repl
from actors.repl._execute import statements
from actors.repl._session import Result
from messages import TradingState
from tests.engine_support import Harness, make_config, running
from tests.support import clean_env, kitesaga_command

_TIME = r"\d\d:\d\d:\d\d\.\d{3}"




@contextmanager
def engine(**sections: dict[str, Any]) -> Iterator[Harness]:
    """A real engine answering on its control socket."""
    with running(make_config(**sections)) as h:
        server = start_control(h.engine)
        try:
            yield h
        finally:
            server.stop()


def repl(config: Config, source: str, *, write: bool = False, yes: bool = False,
         json_output: bool = False, capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    """A scripted session in-process: exit code, stdout, and its ``error:`` lines."""
    capsys.readouterr()
    out = io.StringIO()
    code = run_repl(config, allow_write=write, yes=yes, json_output=json_output,
                    stdin=io.StringIO(source), stdout=out)
    err = capsys.readouterr().err
    errors = "".join(line for line in err.splitlines(keepends=True)
                     if line.startswith(("error:", "kitesaga repl:", "Traceback")))
    return code, out.getvalue(), errors


def audit_lines(config: Config) -> list[dict[str, Any]]:
    path = state_dir(config) / config.repl.audit_file
    return [json.loads(line) for line in path.read_text().splitlines()]


# -- no engine --------------------------------------------------------------------------


def test_no_engine_exits_2_with_one_line(tmp_path: Path) -> None:
    done = subprocess.run([*kitesaga_command(), "repl", "--state-dir", str(tmp_path)],
                          input="actors()\n", env=clean_env(), capture_output=True, text=True,
                          timeout=60, check=False)
    assert done.returncode == 2
    assert done.stdout == ""
    [line] = done.stderr.splitlines()
    assert line.startswith("kitesaga repl: no engine is running at ") and str(tmp_path) in line
    assert not (tmp_path / "repl-audit.jsonl").exists()  # nothing ran, nothing audited


# -- scripted sessions ------------------------------------------------------------------


def test_a_script_runs_statement_by_statement_and_errors_are_one_line(
        capsys: pytest.CaptureFixture[str]) -> None:
    with engine() as h:
        code, out, errors = repl(h.engine.config, (
            "positions()\n"
            "total = 0\n"
            "for i in range(3):\n"
            "    total += i\n"
            "\n"
            "    total += 10\n"
            "print('total', total)\n"
            "x = (1 +\n"
            "2)\n"
            "x\n"
            "1 +\n"
            "nope()\n"
            "int('z')\n"
            "'still running'\n"), capsys=capsys)
    assert code == 1
    assert out.splitlines() == ["no open positions", "total 33", "3", "'still running'"]
    assert errors.splitlines() == [
        "error: SyntaxError: invalid syntax (line 11, column 4)",
        "error: NameError: name 'nope' is not defined",
        "error: ValueError: invalid literal for int() with base 10: 'z'"]


def test_a_clean_script_exits_0_and_json_prints_each_result_as_one_line(
        capsys: pytest.CaptureFixture[str]) -> None:
    with engine() as h:
        code, out, errors = repl(h.engine.config, "positions()\nactors()\nDescribeSagas()\n"
                                 "r = sagas()\nr.data\n", json_output=True, capsys=capsys)
    assert (code, errors) == (0, "")
    lines = [json.loads(line) for line in out.splitlines()]
    assert lines[0] == {"positions": []}
    assert "OrderActor" in [a["name"] for a in lines[1]["actors"]]
    assert lines[2] == {"type": "DescribeSagas"}
    assert lines[3] == {"sagas": []}


def test_read_only_refuses_every_write_before_sending(
        capsys: pytest.CaptureFixture[str]) -> None:
    with engine() as h:
        code, out, errors = repl(h.engine.config, (
            "halt()\nresume()\nask('orders', Halt('stop'))\n"
            "tell('orders', ResumeTrading('go'))\n"
            "ask('orders', DescribeSagas())\n"), yes=True, capsys=capsys)
        assert h.engine.orders_snapshot.state is TradingState.ACTIVE
    assert code == 1
    assert errors.splitlines() == [
        f"error: read-only session: start kitesaga repl with --allow-write to {what}"
        for what in ("halt trading", "resume trading", "send Halt to orders",
                     "send ResumeTrading to orders")]
    assert out.startswith("OrderActor answered DescribeSagas with 1 reply:")


def test_a_message_is_built_and_checked_here(capsys: pytest.CaptureFixture[str]) -> None:
    with engine() as h:
        code, _, errors = repl(h.engine.config, "ask('orders', 'DescribeSagas')\n"
                               "ask('orders', Halt(''))\n", write=True, capsys=capsys)
    assert code == 1
    first, second = errors.splitlines()
    assert first == ("error: message: must be a message such as DescribeSagas(), "
                     "got 'DescribeSagas'")
    assert second.startswith("error: ValueError: reason")


def test_dangerous_commands_need_yes_in_a_script(capsys: pytest.CaptureFixture[str]) -> None:
    with engine() as h:
        config = h.engine.config
        code, _, errors = repl(config, "halt()\nask('orders', Halt('by ask'))\n", write=True,
                               capsys=capsys)
        assert code == 1
        assert h.engine.orders_snapshot.state is TradingState.ACTIVE
        halt, ask = errors.splitlines()
        assert halt == ("error: halt trading (halted from the REPL): needs confirmation "
                        "(confirm with --yes)")
        assert ask.startswith("error: Halt to OrderActor halts trading") and ask.endswith(
            "(confirm with --yes)")
        code, out, errors = repl(config, "halt('drill')\n", write=True, yes=True, capsys=capsys)
        assert (code, errors) == (0, "")
        assert "HALTED" in out and "drill" in out
        assert h.engine.orders_snapshot.state is TradingState.HALTED
        code, out, errors = repl(config, "resume()\n", write=True, yes=True, capsys=capsys)
        assert (code, errors) == (0, "")
        assert out.startswith("trading ACTIVE")
        assert h.engine.orders_snapshot.state is TradingState.ACTIVE
        code, out, errors = repl(config, "ask('orders', Halt('by ask'))\n", write=True,
                                 yes=True, capsys=capsys)
        assert (code, errors) == (0, "")
        assert h.engine.orders_snapshot.state is TradingState.HALTED


def test_every_command_is_audited_owner_only_cut_and_redacted(
        capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TELEGRAM_BOT_TOKEN", "bot-secret-4242")
    with engine(repl={"audit_result_chars": 100}) as h:
        config = h.engine.config
        code, _, _ = repl(config, "help()\nnope\n'token bot-secret-4242'\n", capsys=capsys)
        assert code == 1
        repl(config, "positions()\n", write=True, capsys=capsys)
    path = state_dir(config) / config.repl.audit_file
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    lines = audit_lines(config)
    assert [line["command"] for line in lines] == [
        "help()", "nope", "'token ***REDACTED***'", "positions()"]
    assert [line["ok"] for line in lines] == [True, False, True, True]
    assert set(lines[0]) == {"at", "user", "pid", "session", "write", "command", "ok",
                             "result"}
    assert lines[0]["at"].endswith("+00:00") and lines[0]["pid"] == os.getpid()
    assert len(lines[0]["result"]) == 101 and lines[0]["result"].endswith("…")
    assert lines[1]["result"] == "error: NameError: name 'nope' is not defined"
    assert "bot-secret-4242" not in path.read_text() and "REDACTED" in lines[2]["result"]
    assert lines[0]["session"] == lines[2]["session"] != lines[3]["session"]
    assert [line["write"] for line in lines] == [False, False, False, True]


def test_every_read_only_built_in_answers(capsys: pytest.CaptureFixture[str]) -> None:
    with engine() as h:
        h.quote(h.option(), 150_00)
        code, out, errors = repl(h.engine.config, (
            "actors()\ninspect('orders')\nsagas(open=False, n=5)\nprices(stale=False)\n"
            "limits()\norders()\nstatus()\nhelp(halt)\nhelp('DescribeSagas')\n"
            "trace\nsagas(n=0)\ninspect(3)\nhelp('nothing')\n"), capsys=capsys)
    assert code == 1
    for shown in ("OrderActor", "snapshot: {", "ended:", "accepted 1", "orders today 0/",
                  "no working orders", "kitesaga paper  ACTIVE", "halt(reason='halted from "
                  "the REPL', flatten=False)", "DescribeSagas(reply_to=None)",
                  "<built-in trace(target=None, n=50, timeout=None): watch messages"):
        assert shown in out, (shown, out)
    assert errors.splitlines() == [
        "error: n: must be a whole number >= 1, got 0",
        "error: name: must be a name such as \"orders\", got 3",
        "error: help: no built-in or message named 'nothing'"]


def test_trace_prints_each_message_as_it_comes(capsys: pytest.CaptureFixture[str]) -> None:
    with engine() as h:
        option = h.option()
        done = threading.Event()

        def quote() -> None:
            last = 100_00
            while not done.is_set():
                last += 5
                h.quote(option, last)  # waits for the engine to take it in: paced

        feeder = threading.Thread(target=quote, daemon=True)
        feeder.start()
        try:
            code, out, errors = repl(h.engine.config, "r = trace('RecordPrices', n=2, "
                                     "timeout=60)\nlen(r.data['events'])\nr\n", capsys=capsys)
        finally:
            done.set()
            feeder.join(timeout=30)
    assert (code, errors) == (0, "")
    lines = out.splitlines()
    assert lines[0] == "tracing RecordPrices: up to 2 message(s), 60s; Ctrl-C stops"
    assert all(re.fullmatch(rf"{_TIME}  (PriceActor|PaperBrokerActor)\s+RecordPrices\s+"
                            r"1 price\(s\): NFO:NIFTY\S+ ₹\S+", line)
               for line in lines[1:3]), lines
    assert lines[3].startswith("trace: 2 message(s), 0 dropped; ") and lines[4] == "2"
    assert lines[5:] == lines[1:4]  # shown again in full when asked for


# -- the interactive console ------------------------------------------------------------


def _console(state: Path, *flags: str) -> Any:
    pexpect = pytest.importorskip("pexpect")
    return pexpect.spawn(kitesaga_command()[0], ["repl", "--state-dir", str(state), *flags],
                         env=clean_env(PROMPT_TOOLKIT_NO_CPR="1", TERM="xterm"),
                         encoding="utf-8", timeout=30, dimensions=(40, 200))


def _at_prompt(child: Any, keys: str, prompt: str = "kitesaga>") -> None:
    """Type ``keys`` once the prompt is up (Ctrl-C and Ctrl-D mean something else to a
    terminal in line mode, between two prompts)."""
    child.expect_exact(prompt)
    child.send(keys)


def test_the_console_runs_lines_and_blocks_and_ends_at_ctrl_d() -> None:
    pexpect = pytest.importorskip("pexpect")
    with engine() as h:
        state = state_dir(h.engine.config)
        child = _console(state)
        child.expect_exact("read-only (start with --allow-write to change state)")
        _at_prompt(child, "positions()\r")
        child.expect_exact("no open positions")
        _at_prompt(child, "for i in range(2):\r")
        child.send("print('row', i * 10)\r")
        child.send("\r")
        child.expect_exact("row 10")
        _at_prompt(child, "forgotten\x03")  # Ctrl-C: the line is dropped
        _at_prompt(child, "halt()\r")
        child.expect_exact("error: read-only session: start kitesaga repl with --allow-write "
                           "to halt trading")
        _at_prompt(child, "\x04")  # Ctrl-D
        child.expect(pexpect.EOF)
        child.close()
        assert child.exitstatus == 0
        history = state / h.engine.config.repl.history_file
        assert stat.S_IMODE(history.stat().st_mode) == 0o600
        assert "positions()" in history.read_text()
        commands = [line["command"] for line in audit_lines(h.engine.config)]
        assert commands == ["positions()", "for i in range(2):\n    print('row', i * 10)",
                            "halt()"]


def test_the_console_asks_before_a_halt_and_ctrl_c_stops_a_trace() -> None:
    pexpect = pytest.importorskip("pexpect")
    prompt = "kitesaga[WRITE]>"
    with engine() as h:
        child = _console(state_dir(h.engine.config), "--allow-write")
        child.expect_exact("WRITE ENABLED")
        _at_prompt(child, "halt('drill')\r", prompt)
        child.expect_exact("halt trading (drill) — send it? [y/N]")
        child.send("n\r")
        child.expect_exact("error: not sent: halt trading (drill)")
        assert h.engine.orders_snapshot.state is TradingState.ACTIVE
        _at_prompt(child, "halt('drill')\r", prompt)
        child.expect_exact("send it? [y/N]")
        child.send("y\r")
        child.expect_exact("done: nothing in flight")
        assert h.engine.orders_snapshot.state is TradingState.HALTED
        _at_prompt(child, "trace('RecordPrices', timeout=60)\r", prompt)
        child.expect_exact("Ctrl-C stops")  # the trace runs: it waits for prices
        child.sendintr()
        child.expect_exact("trace: 0 message(s), 0 dropped; stopped by Ctrl-C")
        _at_prompt(child, "40 + 2\r", prompt)
        child.expect_exact("42")
        _at_prompt(child, "\x04", prompt)
        child.expect(pexpect.EOF)
        child.close()
        assert child.exitstatus == 0


# -- statements and renderings ------------------------------------------------------------


def test_enter_runs_a_whole_statement_and_continues_a_block() -> None:
    from actors.repl._console import ready

    assert ready("actors()") and ready("") and ready("x = = 1")
    assert not ready("for i in range(2):") and not ready("x = (1,")
    assert not ready("for i in range(2):\n    print(i)")
    assert ready("for i in range(2):\n    print(i)\n    ")
    assert ready("x = 1\ny = 2")  # pasted: run, statement by statement


def test_statements_split_at_column_0_keeping_blocks_and_brackets() -> None:
    source = ("# a comment\n\nx = [1,\n2]\nif x:\n    y = 1\n\nelse:\n    y = 2\n"
              "def f():\n    return 1\n@f\n\nz = 3\n1 +\n")
    assert list(statements(io.StringIO(source))) == [
        (3, "x = [1,\n2]"), (5, "if x:\n    y = 1\n\nelse:\n    y = 2"),
        (10, "def f():\n    return 1"), (12, "@f\n\nz = 3"), (15, "1 +")]


_ACTOR = {"name": "OrderActor", "state": "running", "mailbox": 3, "processed": 120,
          "rate_per_s": 4.25, "last_message": "RecordPrices", "last_age_s": 0.5,
          "busy_s": None, "failures": 1, "last_failure": "ValueError: boom"}


def test_renderings_of_canned_replies() -> None:
    table = render.actors({"actors": [_ACTOR]}).splitlines()
    assert table[0].split() == ["actor", "state", "mailbox", "processed", "msg/s", "last",
                                "message", "age", "s", "busy", "s", "failures"]
    assert table[1].split() == ["OrderActor", "running", "3", "120", "4.2", "RecordPrices",
                                "0.5", "-", "1"]
    assert table[2] == "  OrderActor: last failure: ValueError: boom"
    shown = render.inspect({"name": "OrderActor", "stats": _ACTOR, "snapshot": {"a": [1]}})
    assert shown.endswith('snapshot: {\n  "a": [\n    1\n  ]\n}')
    saga = render.saga({"saga_id": "s1", "live": None, "timeline": [
        {"seq": 7, "at": "2025-01-02T09:15:01.5+05:30", "kind": "SagaStarted",
         "summary": "ENTRY momentum", "body": {}}]})
    assert saga.splitlines() == ["saga s1", "live: not in flight", "timeline (1 entries):",
                                 "       7  09:15:01.500  SagaStarted        ENTRY momentum"]
    prices = render.prices({"max_age_s": 120.0, "accepted": 5, "rejected": {"stale": 2},
                            "prices": [{"instrument": "NIFTY", "token": 256265,
                                        "last_paise": 2410050, "bid_paise": None,
                                        "ask_paise": None, "exchange_ts": "2025-01-02T09:15:00",
                                        "age_s": 200.0, "stale": True}]}).splitlines()
    assert prices[0] == "max age 120s; accepted 5; rejected stale 2"
    assert prices[2].split()[:4] == ["NIFTY", "256265", "₹24,100.50", "-"]
    assert prices[2].endswith("STALE")
    as_list = render.limits({"classes": [{"name": "orders", "limit_per_s": 10.0, "queued": 0}],
                             "orders_today": 4, "daily_order_limit": 3000})
    assert as_list.splitlines()[1].split() == ["orders", "10.00", "0"]
    assert as_list.splitlines()[-1] == "orders today 4/3000"
    as_map = render.limits({"classes": {"quote": {"granted": 1, "windows": [
        {"span_s": 1.0, "limit": 1, "used": 1}]}}, "orders_today": 0, "orders_per_day": 10})
    assert "1/1 per 1s" in as_map and "orders today 0/10" in as_map
    event = {"at": "2025-01-02T09:15:00.123456+05:30", "actor": "PriceActor",
             "type": "RecordPrices", "message": "prices=(...)"}
    assert re.fullmatch(rf"{_TIME}  PriceActor\s+RecordPrices\s+prices=\(\.\.\.\)",
                        render.trace_event(event))
    assert render.ask({"actor": "OrderActor", "sent": "DescribeSagas", "answered": False,
                       "replies": []}) == ("OrderActor answered DescribeSagas with 0 replies "
                                           "(no answer within the wait)")
    result = Result({"k": 1}, "text")
    assert (repr(result), str(result), result.data) == ("text", "text", {"k": 1})
