"""Live-mode behaviours of issue 3 that had no test of their own: the real kiteconnect
client against the Kite simulator over loopback, real actors, no mocks."""

from __future__ import annotations

import logging
import re
import secrets
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pykka
import pytest
from structlog.testing import capture_logs

from actors._system import Engine, _Forward
from actors.cli import main
from actors.config import load_config
from actors.control import request, start_control
from actors.kite import KiteStream, LiveSession, TokenStore
from actors.kite._token import token_path
from actors.log import REDACTED, get_logger
from messages import SagaCompleted, SubmitExit, TradingState
from tests.live_support import (
    LiveHarness,
    as_user,
    live_config,
    live_engine,
    simulator,
    store_token,
    zerodha_env,
)
from tests.support import Recorder, wait_until
from tests.test_kite_live import broker_positions, buy, gateway

# saga id (6 base-36 characters), leg index, role (E entry, X exit, U..Z undo attempts)
TAG = re.compile(r"[0-9A-Z]{6}[0-9][EXUVWYZ]")


def feed_counts(h: LiveHarness) -> dict[str, int]:
    counts: dict[str, int] = h.engine.feed.proxy().counts.get()  # type: ignore[union-attr]
    return counts


# -- 1. the ticker cannot be reached at all ------------------------------------------------


@contextmanager
def engine_without_ticker(tmp_path: Path, **env: str) -> Iterator[LiveHarness]:
    """A live engine on the simulator whose ticker address has nothing listening."""
    config = live_config(tmp_path, **env)
    with simulator(config) as server, socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))  # bound, never listening: every connect is refused
        zenv = {**zerodha_env(server),
                "ZERODHA_WS_ROOT": f"ws://127.0.0.1:{closed.getsockname()[1]}"}
        store_token(server, config, zenv)
        events = Recorder()
        engine = Engine(config, run_strategies=False, listeners=(events,),
                        session=LiveSession.connect(config, zenv)).start()
        try:
            wait_until(lambda: engine.orders_snapshot.state is TradingState.ACTIVE, 15,
                       what="the start-up reconciliation")
            yield LiveHarness(server, engine, events, zenv)
        finally:
            engine.stop(drain=False)
            pykka.ActorRegistry.stop_all()


def test_an_unreachable_ticker_is_said_once_while_it_retries_and_trading_goes_on(
        tmp_path: Path) -> None:
    with capture_logs() as logs, engine_without_ticker(
            tmp_path, KITESAGA_LIVE_TICKER_STALE_S="1",
            KITESAGA_LIVE_TICKER_RECONNECT_MAX_DELAY_S="5") as h:

        def said() -> list[dict[str, Any]]:
            return [e for e in list(logs) if e.get("alert") == "ticker_unreachable"]

        def attempts() -> int:
            return max((e["attempt"] for e in list(logs)
                        if e["event"] == "ticker_reconnecting"), default=0)

        wait_until(lambda: bool(said()), timeout=10, what="the unreachable ticker reported")
        retried, rounds = attempts(), feed_counts(h)["rest_rounds"]
        option = h.option()
        h.priced(option)
        buy(h, option)
        [done] = h.ended(1)
        assert isinstance(done, SagaCompleted)  # traded on REST prices, fills by polling
        assert gateway(h).counts["polls"] >= 1 and h.stats()["requests"]["quote"] >= 1
        # two more reconnect attempts and several feed refreshes (each one a REST round,
        # each one checking whether to say it) later: still said only once
        wait_until(lambda: attempts() >= retried + 2
                   and feed_counts(h)["rest_rounds"] >= rounds + 5, timeout=20,
                   what="two more ticker reconnect attempts and five more REST rounds")
        assert h.engine.stream.stats["connects"] == 0  # type: ignore[union-attr]
        [alert] = said()
        assert alert["log_level"] == "error" and "keeps retrying" in alert["action"]


def test_a_ticker_refused_at_start_up_is_retried(tmp_path: Path) -> None:
    # the feed names itself as the stream's status receiver before starting it: a
    # refusal in the first instant of start-up reaches a live actor (it once raised on
    # the reactor thread and ended the reconnects for the session)
    with live_engine(tmp_path, faults="ticker_refuse=1",
                     KITESAGA_LIVE_TICKER_RECONNECT_MAX_DELAY_S="5") as h:
        stream: Any = h.engine.stream
        wait_until(lambda: stream.stats["disconnects"] >= 3, timeout=20,
                   what="the refused ticker retried")
        assert stream.stats["connects"] == 0


def test_a_failing_status_receiver_does_not_end_the_reconnects(tmp_path: Path) -> None:
    config = live_config(tmp_path)
    with simulator(config, faults="ticker_refuse=1") as server:  # a 503 to the upgrade
        env = zerodha_env(server)
        token = store_token(server, config, env)
        unwired = _Forward()  # raises RuntimeError on every tell
        stream = KiteStream(server.api_key, token, server.ws_url, prices_to=Recorder(),
                            orders_to=Recorder(), status_to=unwired,
                            reconnect_max_delay_s=5, reconnect_initial_delay_s=0.1)
        with capture_logs() as logs:
            stream.start()
            try:
                wait_until(lambda: stream.stats["disconnects"] >= 3, timeout=6,
                           what="the stream kept retrying")
            finally:
                stream.stop()
        assert any(e["event"] == "ticker_inbox_failed" for e in logs)


# -- 2. the instruments cache is bounded ----------------------------------------------------


def test_the_instruments_cache_keeps_at_most_its_limit_and_says_what_it_skipped(
        tmp_path: Path) -> None:
    limit = 5
    config = live_config(tmp_path, KITESAGA_LIVE_INSTRUMENTS_CACHE_MAX=str(limit))
    with simulator(config) as server:
        env = zerodha_env(server)
        store_token(server, config, env)
        with capture_logs() as logs:
            session = LiveSession.connect(config, env)
        kite = session.client()
        rows = [*as_user(lambda: kite.instruments("NSE")),
                *as_user(lambda: kite.instruments("NFO"))]
        assert len(rows) > limit
        table = session.instruments
        assert len(table) == limit
        # the first `limit` rows of the dump are kept, in the dump's order
        assert sorted(f"{i.exchange.value}:{i.tradingsymbol}" for i in table) == sorted(
            f"{r['exchange']}:{r['tradingsymbol']}" for r in rows[:limit])
        # the rest are skipped, counted and named in one warning
        [skipped] = [e for e in logs if e["event"] == "instruments_skipped"]
        assert skipped["log_level"] == "warning"
        assert skipped["count"] == len(rows) - limit
        assert f"beyond the cache's limit of {limit} instruments" in skipped["first"]
        [started] = [e for e in logs if e["event"] == "live_session"]
        assert started["instruments"] == limit
        # a real symbol beyond the limit is not known to the engine: refused like a made-up one
        beyond = rows[limit]
        with pytest.raises(ValueError, match="unknown instrument"):
            table.by_symbol(beyond["exchange"], beyond["tradingsymbol"])
        kept = rows[0]
        assert table.by_symbol(kept["exchange"], kept["tradingsymbol"]).instrument_token == \
            kept["instrument_token"]


# -- 3. UNPROTECTED in status, through the real path ---------------------------------------


def test_a_filled_entry_whose_gtt_fails_is_unprotected_in_status(tmp_path: Path) -> None:
    # other calls at 1/s: the GTT calls that follow a fill wait about a second for their
    # permits after the fill's last call (its charges), time enough to break the broker
    # between the fill and the GTT; no other call is due then (the ticker is up)
    # (order polls every 5 s: at 1/s, polls every 0.5 s would take every permit)
    with live_engine(tmp_path, KITESAGA_RATE_LIMITS_OTHER_PER_S="1",
                     KITESAGA_ENGINE_POLL_INTERVAL_S="5", KITESAGA_ENGINE_FILL_TIMEOUT_S="10",
                     KITESAGA_LIVE_MARGIN_CHECK="false") as h:
        option = h.option()
        h.priced(option)
        buy(h, option)
        [entry] = h.ended(1)
        h.server.set_faults("error_5xx=1")
        key = f"t:{option.instrument_token}"
        wait_until(lambda: h.engine.orders_snapshot.unprotected == (key,), timeout=15,
                   what="the position marked UNPROTECTED")
        h.server.set_faults("")
        assert isinstance(entry, SagaCompleted)
        assert gateway(h).unprotected == (key,) and gateway(h).counts["gtt_placed"] == 0
        assert broker_positions(h) == {option.tradingsymbol: option.lot_size}  # it is real
        control = start_control(h.engine)
        try:
            status = request(control.path, "status", {}, timeout=10)
            health = request(control.path, "health", {}, timeout=10)
        finally:
            control.stop()
        [alert] = [a for a in status["alerts"] if a["name"] == "unprotected_positions"]
        assert alert["severity"] == "critical" and key in alert["message"]
        assert [p["instrument"] for p in status["positions"]["open"]] == [option.key]
        assert status["sagas"]["stats"]["unprotected"] == 1
        assert health["code"] == 1 and "1 unprotected position(s)" in health["line"]


def test_polls_do_not_starve_an_entry_fetching_its_own_trades(tmp_path: Path) -> None:
    # OTHER budget (1/s) below the poll rate (2/s): the order list was polled, at EXIT
    # priority, for an order whose trades fetch (ENTRY) was waiting, so the fetch never
    # got a permit and the saga never ended
    with live_engine(tmp_path, KITESAGA_RATE_LIMITS_OTHER_PER_S="1",
                     KITESAGA_ENGINE_POLL_INTERVAL_S="0.5",
                     KITESAGA_ENGINE_FILL_TIMEOUT_S="10") as h:
        for n, offset in enumerate((0, 1, 2), start=1):
            option = h.option(offset=offset)
            h.priced(option)
            buy(h, option)
            ended = h.ended(n, timeout=25)
            assert all(isinstance(e, SagaCompleted) for e in ended), ended
        assert sorted(broker_positions(h).values()) == [option.lot_size] * 3


# -- 4. order tags -----------------------------------------------------------------------


def test_order_tags_are_short_alphanumeric_and_carry_the_saga_id(tmp_path: Path) -> None:
    with live_engine(tmp_path) as h:
        option = h.option()
        h.priced(option)
        buy(h, option)
        h.ended(1)
        h.engine.orders.tell(SubmitExit("t", option.instrument_token, "manual"))
        entry, leave = h.ended(2)
        assert isinstance(entry, SagaCompleted) and isinstance(leave, SagaCompleted)
        kite: Any = h.engine.live.client()  # type: ignore[union-attr]
        tags = sorted(o["tag"] for o in as_user(kite.orders))
        assert tags == sorted([f"{entry.saga_id}0E", f"{leave.saga_id}0X"])
        assert sorted(h.stats()["orders_per_tag"]) == tags
        for tag in tags:
            assert TAG.fullmatch(tag) and tag.isascii() and tag.isalnum(), tag
            assert len(tag) == 8  # Kite allows 20


# -- 5. the API key and the request token never reach the log ----------------------------


@pytest.mark.usefixtures("restore_logging")
def test_login_redacts_the_api_key_and_the_request_token_in_its_log(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    api_key = f"appkey{secrets.token_hex(6)}"
    request_token = f"reqtok{secrets.token_hex(8)}"
    config = live_config(tmp_path / "sim", KITESAGA_SIM_API_KEY=api_key)
    state = tmp_path / "state"
    with simulator(config) as server:
        env = zerodha_env(server)
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        capsys.readouterr()  # the simulator's own start-up lines name its (rehearsal) key
        # the real `kitesaga login`, in-process: it configures the log in the state dir
        assert main(["login", "--request-token", request_token, "--state-dir", str(state)]) == 0
        out = capsys.readouterr()
        # then lines carrying both values, as a client's debug line or a careless call would
        get_logger("kitesaga.probe").warning(
            "session_probe", url=f"{server.url}/connect/login?v=3&api_key={api_key}",
            note=f"exchanging {request_token}", nested={"params": [api_key, request_token]})
        logging.getLogger("kiteconnect.connect").warning(
            "Request: POST %s/session/token %s", server.url,
            {"api_key": api_key, "request_token": request_token})
    stored = load_config(None, env={"KITESAGA_STATE_DIR": str(state)})
    access_token = TokenStore(token_path(stored), env).load().access_token
    text = (state / "kitesaga.log").read_text()
    assert "login_succeeded" in text and "session_probe" in text and "session/token" in text
    for secret in (api_key, request_token, access_token, env["ZERODHA_API_SECRET"]):
        assert secret not in text, "a secret reached the log"
        assert secret not in out.out + out.err, "a secret reached the console"
    assert text.count(REDACTED) >= 5
