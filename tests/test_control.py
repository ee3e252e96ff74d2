"""The control socket against a real running engine: the socket itself (0600, a stale
socket replaced, a live one or a foreign file refused) and every command through the
real ``kitesaga`` command-line code, in-process, its JSON parsed (the console script
as a subprocess: tests/test_report.py)."""

from __future__ import annotations

import json
import re
import socket
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from decimal import Decimal
from pathlib import Path
from typing import Any

import pykka
import pytest
import requests

from actors._base import ActorFailed
from actors._system import Engine
from actors.cli import main
from actors.control import (
    Alert,
    ControlServer,
    ControlStartError,
    NoEngine,
    check_control,
    request,
    socket_path,
    start_control,
)
from actors.kite import LiveSession
from messages import (
    InstrumentKind,
    SagaCompleted,
    SetTradingState,
    Side,
    SubmitEntry,
    TradingState,
)
from tests.engine_support import Harness, make_config, running
from tests.live_support import live_config, simulator, store_token, zerodha_env
from tests.support import wait_until


@contextmanager
def controlled(alerts: Any = None, **sections: dict[str, Any]) -> Iterator[
        tuple[Harness, ControlServer]]:
    with running(make_config(**sections)) as h:
        server = start_control(h.engine, alerts)
        try:
            yield h, server
        finally:
            server.stop()


class Cli:
    """Runs ``kitesaga ARGS --state-dir D`` in-process (the console script's code)."""

    def __init__(self, capsys: pytest.CaptureFixture[str], state: str) -> None:
        self.capsys = capsys
        self.state = state

    def __call__(self, *argv: str) -> tuple[int, str, str]:
        self.capsys.readouterr()
        code = main([*argv, "--state-dir", self.state])
        out = self.capsys.readouterr()
        return code, _without_logs(out.out), _without_logs(out.err)

    def json(self, *argv: str, code: int = 0) -> Any:
        got, out, err = self(*argv, "--json")
        assert got == code, (got, out, err)
        return json.loads(out)


_LOG_LINE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d \[")


def _without_logs(text: str) -> str:
    """The command's own output: structlog's console lines (the in-process engine logs
    to the test's stdout) left out."""
    return "".join(line for line in text.splitlines(keepends=True)
                   if not _LOG_LINE.match(line))


def cli_of(h: Harness, capsys: pytest.CaptureFixture[str]) -> Cli:
    return Cli(capsys, str(h.engine.config.engine.state_dir))


# -- the socket ----------------------------------------------------------------------


def test_the_socket_is_owner_only_and_claimed_once() -> None:
    with controlled() as (h, server):
        mode = server.path.lstat().st_mode
        assert stat.S_ISSOCK(mode) and stat.S_IMODE(mode) == 0o600
        assert server.path == socket_path(h.engine.config)
        assert server.path.parent == Path(h.engine.config.engine.state_dir).resolve()
        with pytest.raises(ControlStartError, match="already running"):
            check_control(h.engine.config)  # before a second engine would start
        with pytest.raises(ControlStartError, match="already running"):
            ControlServer(h.engine).start()  # a live engine answers there
        assert request(server.path, "health", timeout=5)["code"] == 1  # no price yet
        assert [p.name for p in server.path.parent.iterdir() if p.name.startswith(".c")] == []
        server.stop()
        assert not server.path.exists()
        with pytest.raises(NoEngine, match="no engine is running"):
            request(server.path, "status", timeout=5)


def test_a_stale_socket_is_replaced_and_a_foreign_file_refused() -> None:
    with running() as h:
        path = socket_path(h.engine.config)
        dead = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        dead.bind(str(path))
        dead.close()  # the file stays: a crashed engine's socket
        with pytest.raises(NoEngine, match="stale"):
            request(path, "status", timeout=5)
        server = start_control(h.engine)
        try:
            assert request(path, "status", timeout=5)["mode"] == "paper"
        finally:
            server.stop()
        check_control(h.engine.config)  # gone: the path is free again
        path.write_text("not a socket")
        with pytest.raises(ControlStartError, match="not a socket"):
            start_control(h.engine)
        assert path.read_text() == "not a socket"  # never replaced
        assert not h.engine.orders.is_alive()  # no engine runs without its control socket


def test_bad_requests_get_error_replies_and_the_server_goes_on() -> None:
    with controlled() as (_, server):
        for line, expected in ((b"not json\n", "not a line of JSON"),
                               (b'{"command": "launch"}\n', "command: unknown"),
                               (b'{"command": "status", "args": [1]}\n', "args: must be"),
                               (b"x" * 70000 + b"\n", "longer than 65536 bytes")):
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
                conn.settimeout(10)
                conn.connect(str(server.path))
                conn.sendall(line)
                reply = json.loads(conn.makefile("rb").readline())
            assert reply["ok"] is False and reply["exit"] == 2
            assert expected in reply["error"]
        assert request(server.path, "status", timeout=5)["trading"]["state"] == "ACTIVE"


# -- reading ---------------------------------------------------------------------------


def test_status_and_positions(capsys: pytest.CaptureFixture[str]) -> None:
    with controlled() as (h, _):
        cli = cli_of(h, capsys)
        call = h.option()
        h.quote(call, 150_00)
        done = cli.json("submit", "BUY", call.tradingsymbol, str(call.lot_size))
        assert (done["outcome"], done["action"], done["strategy"]) == (
            "completed", "entry", "manual")
        assert done["filled_quantities"] == [call.lot_size] and done["saga_id"]
        status = cli.json("status")
        port = h.engine.portfolio_snapshot
        assert status["trading"] == {"state": "ACTIVE", "reason": "started",
                                     "draining": False}
        assert status["mode"] == "paper" and status["uptime_s"] > 0
        assert status["positions"]["count"] == 1
        assert status["pnl"] == {"realised_paise": port.realised,
                                 "unrealised_paise": port.unrealised,
                                 "charges_paise": port.charges, "net_paise": port.net_pnl}
        assert status["pnl"]["charges_paise"] > 0
        assert status["cash"]["free_paise"] == port.cash
        assert status["cash"]["conservation_error_paise"] == 0
        assert status["sagas"]["in_flight"] == 0
        assert status["sagas"]["stats"]["sagas_completed"] == 1
        orders = status["rate_limits"]["classes"]["orders"]
        assert orders["granted"] >= 1 and orders["windows"][0]["limit"] == 1000
        assert status["rate_limits"]["orders_today"] >= 1
        assert status["reconciliation"]["mode"] == "paper"
        assert status["reconciliation"]["startup"] == "skipped"
        prices = status["prices"]
        assert prices["instruments"] == 1 and prices["stale"] is None
        assert 0 <= prices["newest_age_s"] <= prices["oldest_age_s"] < 120
        assert status["journal"]["failed"] is False and status["journal"]["events"] > 1
        assert status["alerts"] == [] and status["failures"] == []
        [row] = cli.json("positions")["positions"]
        assert (row["strategy"], row["instrument"], row["quantity"]) == (
            "manual", call.key, call.lot_size)
        assert row["last_price_paise"] == 150_00
        assert row["unrealised_paise"] == call.lot_size * 150_00 - row["cost_paise"]
        code, out, _ = cli("status")
        assert code == 0 and "ACTIVE (started)" in out and call.key in out
        code, out, _ = cli("positions")
        assert code == 0 and call.key in out and "manual" in out


def test_alerts_include_the_hook_and_survive_a_broken_one() -> None:
    hooked = [Alert("memory", "warning", "RSS 900 MB"),
              {"name": "orders", "severity": "critical", "message": "6% failed"}, "plain"]
    with controlled(alerts=lambda: hooked) as (h, server):
        h.engine.orders.tell(SetTradingState(TradingState.HALTED, "test"))
        wait_until(lambda: h.engine.orders_snapshot.state is TradingState.HALTED)
        names = [(a["name"], a["severity"]) for a in
                 request(server.path, "status", timeout=5)["alerts"]]
        assert names == [("halted", "critical"), ("memory", "warning"),
                         ("orders", "critical"), ("alert", "warning")]

    def broken() -> list[Alert]:
        raise RuntimeError("no alert module")

    with controlled(alerts=broken) as (h, server):
        [alert] = request(server.path, "status", timeout=5)["alerts"]
        assert alert["name"] == "alerts_unavailable" and "no alert module" in alert["message"]


def test_orders_sagas_halt_and_resume(capsys: pytest.CaptureFixture[str]) -> None:
    with controlled(paper={"stuck_ratio": Decimal(1)}, engine={"fill_timeout_s": 30.0},
                    control={"timeout_s": 1.0}) as (h, _):
        cli = cli_of(h, capsys)
        call = h.option()
        h.quote(call, 150_00)
        running_ = cli.json("submit", "BUY", call.tradingsymbol, str(call.lot_size),
                            "--price", "150.05", code=3)
        assert running_["outcome"] == "running" and running_["price_paise"] == 150_05
        saga_id = running_["saga_id"]
        wait_until(lambda: h.engine.broker_snapshot.working_orders == 1, what="working")
        [order] = cli.json("orders")["orders"]
        assert (order["saga_id"], order["kind"], order["strategy"], order["side"]) == (
            saga_id, "ENTRY", "manual", "BUY")
        assert (order["status"], order["quantity"], order["filled"]) == (
            "WORKING", call.lot_size, 0)
        [saga] = cli.json("sagas")["sagas"]
        assert saga["saga_id"] == saga_id and saga["step"].startswith("WORKING")
        code, out, _ = cli("sagas")
        assert code == 0 and saga_id in out and call.tradingsymbol in out
        halted = cli.json("halt", "--reason", "test stop")
        assert (halted["cancels"], halted["exits"], halted["sagas_in_flight"]) == (1, 0, 1)
        assert [s["saga_id"] for s in halted["sagas"]] == [saga_id]
        assert halted["done"] and halted["trading_state"] == "HALTED"
        assert "test stop" in halted["trading_reason"]
        assert h.engine.orders_snapshot.in_flight == 0
        assert h.engine.broker_snapshot.working_orders == 0  # the cancel was confirmed
        assert cli.json("orders")["orders"] == []
        code, out, _ = cli("sagas")
        assert code == 0 and "no sagas in flight" in out
        refused = cli.json("submit", "BUY", call.tradingsymbol, str(call.lot_size), code=1)
        assert refused["outcome"] == "refused" and "HALTED" in refused["reason"]
        resumed = cli.json("resume")
        assert (resumed["previous_state"], resumed["state"]) == ("HALTED", "ACTIVE")
        assert resumed["reason"] == "resumed by the operator"
        assert h.engine.orders_snapshot.state is TradingState.ACTIVE


def test_halt_with_flatten_closes_every_position(capsys: pytest.CaptureFixture[str]) -> None:
    with controlled() as (h, _):
        cli = cli_of(h, capsys)
        options = [h.option(InstrumentKind.CE, k) for k in (0, 1)]
        for option in options:
            h.quote(option, 150_00)
            assert cli("submit", "BUY", option.tradingsymbol, str(option.lot_size))[0] == 0
        h.submit(SubmitEntry.single("t", options[0], Side.SELL, options[0].lot_size))
        h.events.wait_for_kind(SagaCompleted, 3)
        assert h.engine.portfolio_snapshot.open_positions == 3
        code, out, err = cli("halt", "--flatten", "--reason", "end of day")
        assert code == 0, (out, err)
        assert "exits started     3" in out and "positions after   0" in out
        assert "done: nothing in flight, no position open" in out
        assert h.engine.orders_snapshot.in_flight == 0
        assert h.engine.portfolio_snapshot.open_positions == 0
        assert h.engine.orders_snapshot.state is TradingState.HALTED
        assert "end of day" in h.engine.orders_snapshot.state_reason


def test_halt_that_does_not_settle_in_time_exits_1(capsys: pytest.CaptureFixture[str]) -> None:
    with controlled(control={"halt_timeout_s": 0.001}) as (h, _):
        cli = cli_of(h, capsys)
        for k in (-1, 0, 1):
            option = h.option(InstrumentKind.PE, k)
            h.quote(option, 150_00)
            assert cli("submit", "BUY", option.tradingsymbol, str(option.lot_size))[0] == 0
        halted = cli.json("halt", "--flatten", code=1)
        assert not halted["done"] and halted["exits"] == 3
        assert halted["still_open"]["sagas_in_flight"] >= 1 or halted["still_open"]["positions"]
        wait_until(lambda: h.engine.portfolio_snapshot.open_positions == 0,
                   what="the exits finish after the command gave up")


def test_submit_sell_of_a_whole_manual_position_closes_it(
        capsys: pytest.CaptureFixture[str]) -> None:
    with controlled() as (h, _):
        cli = cli_of(h, capsys)
        call = h.option()
        h.quote(call, 150_00)
        assert cli("submit", "BUY", call.tradingsymbol, str(call.lot_size))[0] == 0
        partial = cli("submit", "SELL", call.tradingsymbol, str(2 * call.lot_size))
        assert partial[0] == 1 and "closes the whole position only" in partial[2]
        h.quote(call, 170_00)
        closed = cli.json("submit", "SELL", call.tradingsymbol, str(call.lot_size))
        assert (closed["action"], closed["outcome"]) == ("exit", "completed")
        assert h.engine.portfolio_snapshot.open_positions == 0
        assert h.engine.portfolio_snapshot.realised > 0
        short = cli.json("submit", "sell", call.tradingsymbol, str(call.lot_size))
        assert (short["action"], short["outcome"]) == ("entry", "completed")
        [row] = cli.json("positions")["positions"]
        assert row["quantity"] == -call.lot_size


def test_bad_input_names_the_value(capsys: pytest.CaptureFixture[str]) -> None:
    with controlled() as (h, _):
        cli = cli_of(h, capsys)
        call = h.option()
        h.quote(call, 150_00)
        for argv, expected in (
                (("NOPE",), "unknown instrument NFO:NOPE"),
                ((call.tradingsymbol, "--exchange", "XYZ"), "exchange: must be one of"),
                ((call.tradingsymbol, "--product", "ABC"), "product: must be one of"),
                ((call.tradingsymbol, "--price", "150.03"), "tick size"),
                ((call.tradingsymbol, "--price", "150.001"), "whole paise")):
            code, _, err = cli("submit", "BUY", *argv[:1], str(call.lot_size), *argv[1:])
            assert code == 2 and expected in err and "Traceback" not in err, (argv, err)
        code, _, err = cli("submit", "BUY", call.tradingsymbol, str(call.lot_size + 1))
        assert code == 2 and "lot size" in err and str(call.lot_size + 1) in err
        for qty in ("abc", "0", "-5"):
            with pytest.raises(SystemExit) as exit_:
                cli("submit", "BUY", call.tradingsymbol, qty)
            assert exit_.value.code == 2
            assert f"QTY must be a positive whole number, got {qty!r}" in \
                capsys.readouterr().err
        with pytest.raises(SystemExit):
            cli("submit", "HOLD", call.tradingsymbol, "65")
        assert "must be BUY or SELL, got 'HOLD'" in capsys.readouterr().err
        assert h.engine.orders_snapshot.stats["sagas_started"] == 0


# -- health ----------------------------------------------------------------------------


def test_health_codes(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, out, _ = Cli(capsys, str(tmp_path))("health")
    assert code == 2 and out.startswith("down: no engine is running") and out.count("\n") == 1
    with controlled() as (h, _):
        cli = cli_of(h, capsys)
        code, out, _ = cli("health")
        assert (code, out.strip()) == (1, "degraded: stale prices: no price received yet")
        h.quote(h.option(), 150_00)
        code, out, _ = cli("health")
        assert code == 0 and out.startswith("healthy: ACTIVE") and out.count("\n") == 1
        h.engine.orders.tell(SetTradingState(TradingState.HALTED, "checking health"))
        wait_until(lambda: h.engine.orders_snapshot.state is TradingState.HALTED)
        code, out, _ = cli("health")
        assert code == 1 and "trading HALTED (checking health)" in out
        h.engine.supervisor.tell(ActorFailed("PriceActor", "RuntimeError: test failure"))
        wait_until(lambda: bool(h.engine.failures()), what="the failure published")
        code, out, _ = cli("health")
        assert (code, out.strip()) == (2, "down: PriceActor failed: RuntimeError: test failure")


# -- live: the start-up reconciliation gates resume ------------------------------------


def test_resume_waits_for_a_clean_live_start_up_unless_forced(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = live_config(tmp_path, KITESAGA_SYNC_RESOLVE_DRIFTS="false")
    with simulator(config) as sim:
        zenv = zerodha_env(sim)
        store_token(sim, config, zenv)
        session = LiveSession.connect(config, zenv)
        chain = session.instruments.options("NIFTY", min(session.instruments.expiries("NIFTY")))
        held = min(chain, key=lambda i: i.instrument_token)
        reply = requests.post(f"{sim.url}/_sim/positions", json={  # held before the start
            "exchange": held.exchange.value, "tradingsymbol": held.tradingsymbol,
            "quantity": -held.lot_size, "product": "NRML", "price": 100}, timeout=5)
        assert reply.status_code == 200, reply.text
        engine = Engine(config, run_strategies=False, session=session).start()
        server = start_control(engine)
        try:
            wait_until(lambda: engine.sync_snapshot.startup != "pending", 15, what="start-up")
            cli = Cli(capsys, str(tmp_path))
            code, _, err = cli("resume")
            assert code == 1 and "start-up reconciliation with the broker is drift" in err
            assert "--force" in err
            assert engine.orders_snapshot.state is TradingState.HALTED
            status = cli.json("status")
            rec = status["reconciliation"]
            assert (rec["mode"], rec["startup"]) == ("live", "drift")
            assert [(d["kind"], d["key"]) for d in rec["drifts"]] == [
                ("POSITION_MISSING_IN_BOOK", held.key)]
            assert {"halted", "reconciliation_drift"} <= {a["name"] for a in status["alerts"]}
            code, out, _ = cli("health")
            assert code == 1 and "start-up reconciliation drift" in out
            forced = cli.json("resume", "--force")
            assert forced["state"] == "ACTIVE" and forced["forced"]
            assert "--force" in forced["reason"]
            assert engine.orders_snapshot.state is TradingState.ACTIVE
        finally:
            server.stop()
            engine.stop(drain=False)
            pykka.ActorRegistry.stop_all()
