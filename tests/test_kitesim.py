"""The Kite Connect simulator, driven by the real kiteconnect client over real HTTP."""

from __future__ import annotations

import asyncio
import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from datetime import date, datetime
from pathlib import Path
from typing import IO, Any

import aiohttp
import pytest
import requests
from kiteconnect import KiteConnect
from kiteconnect import exceptions as kex

from actors.broker import ChargeSchedule
from actors.config import ChargesConfig
from actors.kitesim import SimServer, parse_faults
from actors.market import InstrumentTable
from messages import Money, Side
from tests.kitesim_support import (
    client,
    last_status,
    place,
    running,
    sim_config,
    wait_status,
)
from tests.support import wait_until


def _raw(server: SimServer, method: str, path: str, **kwargs: Any) -> requests.Response:
    session = requests.Session()
    session.trust_env = False
    return session.request(method, server.url + path, timeout=5, **kwargs)


def _nifty_option(kite: KiteConnect) -> dict[str, Any]:
    rows = [r for r in kite.instruments("NFO") if r["instrument_type"] == "CE"]
    rows.sort(key=lambda r: r["strike"])
    return rows[len(rows) // 2]


# -- session and auth ---------------------------------------------------------------------

def test_session_checksum_login_and_logout() -> None:
    with running() as (server, _):
        login = _raw(server, "GET", f"/connect/login?v=3&api_key={server.api_key}",
                     allow_redirects=False)
        assert login.status_code == 302
        assert "request_token=" in login.headers["Location"]
        assert "status=success" in login.headers["Location"]
        kite = KiteConnect(server.api_key, root=server.url)
        kite.reqsession.trust_env = False
        session = kite.generate_session("any-request-token", server.api_secret)
        assert session["access_token"] and session["user_id"] == kite.profile()["user_id"]
        assert isinstance(session["login_time"], datetime)
        for key in ("user_name", "email", "user_type", "broker", "exchanges", "products",
                    "order_types", "api_key", "public_token", "refresh_token"):
            assert key in session
        kite.invalidate_access_token()
        with pytest.raises(kex.TokenException):
            kite.profile()
        with pytest.raises(kex.TokenException) as bad:
            KiteConnect(server.api_key, root=server.url).generate_session("rt", "wrong-secret")
        assert bad.value.code == 403
        assert _raw(server, "GET", "/connect/login?v=3&api_key=nope").status_code == 400


def test_auth_is_required_with_a_version_header() -> None:
    with running() as (server, kite):
        for token in ("not-a-token", None):
            anonymous = KiteConnect(server.api_key, root=server.url)
            anonymous.reqsession.trust_env = False
            anonymous.set_access_token(token)
            with pytest.raises(kex.TokenException) as refused:
                anonymous.profile()
            assert refused.value.code == 403
        headers = {"Authorization": f"token {server.api_key}:{kite.access_token}"}
        no_version = _raw(server, "GET", "/user/profile", headers=headers)
        assert no_version.status_code == 400
        assert no_version.json()["error_type"] == "InputException"
        assert no_version.headers["Content-Type"].startswith("application/json")
        missing = _raw(server, "GET", "/no/such/route", headers={**headers, "X-Kite-Version": "3"})
        assert missing.status_code == 404 and missing.json()["status"] == "error"
        with pytest.raises(kex.GeneralException) as unknown:
            kite.order_history("123")
        assert unknown.value.code == 404


def test_profile_and_funds() -> None:
    with running() as (_, kite):
        assert kite.profile()["user_id"]
        equity = kite.margins("equity")
        assert equity["net"] == 1_000_000.0 and equity["available"]["cash"] == 1_000_000.0
        assert kite.margins()["equity"] == equity
        with pytest.raises(kex.InputException):
            kite.margins("crypto")


# -- market data ----------------------------------------------------------------------------

def test_quotes_have_kite_fields_and_batch_limits() -> None:
    with running() as (_, kite):
        quote = kite.quote("NSE:M&M", "NSE:BAJAJ-AUTO", "NSE:NOSUCH")
        assert set(quote) == {"NSE:M&M", "NSE:BAJAJ-AUTO"}
        mm = quote["NSE:M&M"]
        for key in ("instrument_token", "timestamp", "last_trade_time", "last_price",
                    "last_quantity", "buy_quantity", "sell_quantity", "volume", "average_price",
                    "oi", "oi_day_high", "oi_day_low", "net_change", "lower_circuit_limit",
                    "upper_circuit_limit", "ohlc", "depth"):
            assert key in mm
        assert isinstance(mm["timestamp"], datetime)
        assert len(mm["depth"]["buy"]) == 5 and len(mm["depth"]["sell"]) == 5
        assert mm["depth"]["buy"][0]["price"] < mm["last_price"] < mm["depth"]["sell"][0]["price"]
        assert mm["ohlc"]["low"] <= mm["ohlc"]["high"]
        ltp = kite.ltp(["NSE:M&M"])["NSE:M&M"]
        assert ltp["instrument_token"] == mm["instrument_token"] and ltp["last_price"] > 0
        assert "ohlc" in kite.ohlc("NSE:INFY")["NSE:INFY"]
        with pytest.raises(kex.InputException, match="500"):
            kite.quote(["NSE:M&M"] * 501)
        assert kite.ltp(["NSE:M&M"] * 1000)
        for call in (kite.ltp, kite.ohlc):
            with pytest.raises(kex.InputException, match="1000"):
                call(["NSE:M&M"] * 1001)


def test_instruments_dump_parses_and_filters_by_exchange() -> None:
    with running() as (server, kite):
        dump = _raw(server, "GET", "/instruments", headers={
            "X-Kite-Version": "3",
            "Authorization": f"token {server.api_key}:{kite.access_token}"})
        assert dump.headers["Content-Type"].startswith("text/csv")
        table = InstrumentTable.from_csv(dump.text)
        assert table.by_symbol("NSE", "M&M").lot_size == 1
        assert table.by_symbol("NSE", "BAJAJ-AUTO").tradingsymbol == "BAJAJ-AUTO"
        nfo = kite.instruments("NFO")
        assert nfo and all(r["exchange"] == "NFO" for r in nfo)
        assert len(kite.instruments()) == len(table)


# -- orders --------------------------------------------------------------------------------

def test_market_order_completes_with_trail_trades_and_positions() -> None:
    with running() as (_, kite):
        order_id = place(kite, quantity=2, tag="entry1")
        order = wait_status(kite, order_id, "COMPLETE")
        assert order["filled_quantity"] == 2 and order["pending_quantity"] == 0
        assert order["average_price"] > 0 and order["tag"] == "entry1"
        assert isinstance(order["order_timestamp"], datetime)
        for key in ("exchange_order_id", "parent_order_id", "status_message",
                    "exchange_timestamp", "variety", "instrument_token", "validity",
                    "disclosed_quantity", "trigger_price", "cancelled_quantity", "guid",
                    "market_protection"):
            assert key in order
        trail = [row["status"] for row in kite.order_history(order_id)]
        assert trail == ["PUT ORDER REQUEST RECEIVED", "VALIDATION PENDING", "OPEN PENDING",
                         "OPEN", "COMPLETE"]
        trades = kite.order_trades(order_id)
        assert sum(t["quantity"] for t in trades) == 2
        assert trades[0]["average_price"] == order["average_price"]
        assert {t["trade_id"] for t in kite.trades()} == {t["trade_id"] for t in trades}
        sell_id = place(kite, side="SELL", quantity=1)
        sold = wait_status(kite, sell_id, "COMPLETE")
        positions = kite.positions()
        realised = positions["net"][0]["realised"]
        assert realised == pytest.approx(sold["average_price"] - order["average_price"])
        for book in ("net", "day"):
            (row,) = positions[book]
            assert row["tradingsymbol"] == "M&M" and row["quantity"] == 1
            assert row["buy_quantity"] == 2 and row["sell_quantity"] == 1
            assert row["day_buy_quantity"] == 2 and row["last_price"] > 0
            for key in ("overnight_quantity", "multiplier", "average_price", "close_price",
                        "value", "pnl", "m2m", "unrealised", "realised", "buy_price",
                        "buy_value", "sell_price", "sell_value", "day_sell_value"):
                assert key in row
        assert kite.holdings() == []
        assert kite.margins("equity")["net"] < 1_000_000.0


@pytest.mark.parametrize(("extra", "match"), [
    ({"market_protection": None}, "market_protection"),
    ({"order_type": "SL-M", "trigger_price": 1.0, "market_protection": None},
     "market_protection"),
    ({"tag": "x" * 21}, "tag"),
    ({"order_type": "LIMIT", "price": 100.03}, "tick"),
    ({"symbol": "NIFTY 50"}, "index"),
    ({"symbol": "NOSUCH"}, "not found"),
])
def test_invalid_orders_are_input_exceptions(extra: dict[str, Any], match: str) -> None:
    with running() as (_, kite):
        args: dict[str, Any] = {"market_protection": -1, **extra}  # None: not sent
        symbol = args.pop("symbol", "M&M")
        order_type = args.pop("order_type", "MARKET")
        with pytest.raises(kex.InputException, match=match) as refused:
            kite.place_order("regular", "NSE", symbol, "BUY", 1, "MIS", order_type, **args)
        assert refused.value.code == 400
        assert kite.orders() == []


def test_variety_and_lot_are_validated() -> None:
    with running() as (_, kite):
        option = _nifty_option(kite)
        with pytest.raises(kex.InputException, match="lot"):
            place(kite, option["tradingsymbol"], exchange="NFO", quantity=1)
        with pytest.raises(kex.InputException, match="variety"):
            kite.place_order("amo", "NSE", "M&M", "BUY", 1, "MIS", "MARKET", market_protection=-1)


def test_rms_rejection_still_returns_an_order_id() -> None:
    with running() as (_, kite):
        order_id = place(kite, quantity=1000)  # 30 lakh of M&M on a 10 lakh account
        order = wait_status(kite, order_id, "REJECTED")
        assert "insufficient funds" in order["status_message"]
        assert kite.order_trades(order_id) == []


def test_limit_order_rests_modifies_and_cancel_is_confirmed() -> None:
    with running() as (_, kite):
        last = kite.ltp("NSE:M&M")["NSE:M&M"]["last_price"]
        away = float(round(last / 2))
        order_id = place(kite, order_type="LIMIT", price=away, tag="rest")
        wait_status(kite, order_id, "OPEN")
        assert kite.modify_order("regular", order_id, price=away - 1, quantity=3) == order_id
        modified = wait_status(kite, order_id, "OPEN")
        assert modified["price"] == away - 1 and modified["quantity"] == 3
        assert kite.cancel_order("regular", order_id) == order_id
        cancelled = wait_status(kite, order_id, "CANCELLED")
        assert cancelled["cancelled_quantity"] == 3 and cancelled["filled_quantity"] == 0
        trail = [row["status"] for row in kite.order_history(order_id)]
        assert trail[-2:] == ["CANCEL PENDING", "CANCELLED"]
        assert "MODIFY PENDING" in trail
        with pytest.raises(kex.OrderException):
            kite.cancel_order("regular", order_id)
        with pytest.raises(kex.OrderException):
            kite.modify_order("regular", order_id, price=away)


def test_the_order_book_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("actors.kitesim._exchange.ORDERS_KEPT", 3)
    with running("reject=1") as (_, kite):
        order_ids = [place(kite) for _ in range(5)]
        wait_until(lambda: all(o["status"] == "REJECTED" for o in kite.orders()), 10,
                   "every order rejected")
        assert [o["order_id"] for o in kite.orders()] == order_ids[-3:]
        with pytest.raises(kex.GeneralException):
            kite.order_history(order_ids[0])


def test_more_than_25_modifications_are_refused() -> None:
    with running() as (_, kite):
        last = kite.ltp("NSE:INFY")["NSE:INFY"]["last_price"]
        price = float(round(last / 2))
        order_id = place(kite, "INFY", order_type="LIMIT", price=price)
        wait_status(kite, order_id, "OPEN")
        for step in range(25):
            kite.modify_order("regular", order_id, price=price - step - 1)
        with pytest.raises(kex.OrderException, match="modifications") as refused:
            kite.modify_order("regular", order_id, price=price)
        assert refused.value.code == 400
        assert last_status(kite, order_id) == "OPEN"


# -- GTT, margins, charges ---------------------------------------------------------------

def test_gtt_two_leg_crud_and_trigger() -> None:
    with running() as (_, kite):
        last = kite.ltp("NSE:INFY")["NSE:INFY"]["last_price"]
        legs = [{"transaction_type": "SELL", "quantity": 1, "order_type": "LIMIT",
                 "product": "CNC", "price": round(last * 0.5)},
                {"transaction_type": "SELL", "quantity": 1, "order_type": "LIMIT",
                 "product": "CNC", "price": round(last * 1.5)}]
        far = [round(last * 0.5), round(last * 1.5)]
        trigger_id = kite.place_gtt("two-leg", "INFY", "NSE", far, last, legs)["trigger_id"]
        gtt = kite.get_gtt(trigger_id)
        assert gtt["status"] == "active" and gtt["type"] == "two-leg"
        assert gtt["condition"]["trigger_values"] == far and len(gtt["orders"]) == 2
        for key in ("id", "user_id", "created_at", "updated_at", "expires_at"):
            assert key in gtt
        assert [g["id"] for g in kite.get_gtts()] == [trigger_id]
        with pytest.raises(kex.InputException):
            kite.place_gtt("two-leg", "INFY", "NSE", [far[1], far[0]], last, legs)
        # move the stop above the market: the next market step fires the first leg
        stop = [round(last * 1.4), round(last * 1.5)]
        assert kite.modify_gtt(trigger_id, "two-leg", "INFY", "NSE", stop, last, legs)[
            "trigger_id"] == trigger_id
        wait_until(lambda: kite.get_gtt(trigger_id)["status"] == "triggered", 10, "GTT fires")
        result = kite.get_gtt(trigger_id)["orders"][0]["result"]
        assert result["order_result"]["status"] == "success"
        fired = next(o for o in kite.orders() if o["order_id"] ==
                     result["order_result"]["order_id"])
        assert fired["order_type"] == "LIMIT" and fired["tag"] is None
        assert fired["transaction_type"] == "SELL"
        kite.delete_gtt(trigger_id)
        assert kite.get_gtts() == [] and kite.get_gtt(trigger_id)["status"] == "deleted"
        with pytest.raises(kex.GeneralException):
            kite.delete_gtt(trigger_id)


def test_order_margins_basket_and_charges() -> None:
    with running() as (server, kite):
        option = _nifty_option(kite)
        lot = option["lot_size"]
        premium = kite.ltp(f"NFO:{option['tradingsymbol']}")[
            f"NFO:{option['tradingsymbol']}"]["last_price"]
        buy = {"exchange": "NFO", "tradingsymbol": option["tradingsymbol"],
               "transaction_type": "BUY", "variety": "regular", "product": "NRML",
               "order_type": "LIMIT", "quantity": lot, "price": premium}
        sell = {**buy, "transaction_type": "SELL"}
        bought, sold = kite.order_margins([buy, sell])
        assert bought["option_premium"] == pytest.approx(premium * lot)
        assert bought["total"] == pytest.approx(premium * lot) and bought["span"] == 0
        assert sold["span"] == pytest.approx(option["strike"] * lot * 0.15)
        for key in ("type", "exposure", "additional", "bo", "cash", "var", "pnl", "leverage"):
            assert key in bought
        charges = bought["charges"]
        assert charges["brokerage"] == 20.0 and charges["gst"]["total"] > 0
        assert charges["total"] == pytest.approx(
            sum(charges[k] for k in ("transaction_tax", "exchange_turnover_charge",
                                     "sebi_turnover_charge", "brokerage", "stamp_duty"))
            + charges["gst"]["total"])
        basket = kite.basket_order_margins([buy, sell])
        assert basket["initial"]["total"] == pytest.approx(bought["total"] + sold["total"])
        assert len(basket["orders"]) == 2 and "final" in basket
        trade_date = date.fromisoformat(_raw(server, "GET", "/_sim/clock").json()["now"][:10])
        note = {"order_id": "1", "exchange": "NFO", "tradingsymbol": option["tradingsymbol"],
                "transaction_type": "SELL", "variety": "regular", "product": "NRML",
                "order_type": "LIMIT", "quantity": lot, "average_price": 100.0}
        (charged,) = kite.get_virtual_contract_note([note])
        assert charged["order_id"] == "1"
        expected = ChargeSchedule(ChargesConfig()).charges(
            trade_date, "options", Side.SELL, Money.from_rupees(100 * lot), True)
        assert charged["charges"]["total"] == float(expected.total.rupees)
        assert charged["charges"]["transaction_tax"] == float(expected.stt.rupees)
        with pytest.raises(kex.InputException):
            kite.order_margins([{**buy, "tradingsymbol": "NOSUCH"}])


# -- rate limits, faults, sim routes ------------------------------------------------------

def test_quote_rate_limit_breach_is_429_and_counted() -> None:
    with running(KITESAGA_SIM_QUOTE_PER_S="1") as (server, kite):
        errors = []
        for _ in range(3):
            try:
                kite.ltp("NSE:M&M")
            except kex.NetworkException as error:
                errors.append(error)
        assert errors and all(e.code == 429 for e in errors)
        assert "Too many requests" in str(errors[0])
        stats = server.stats()
        assert stats["breaches"]["count"] == len(errors)
        assert stats["throttled"]["quote"] == len(errors)
        assert stats["breaches"]["recent"][0]["class"] == "quote"
        assert stats["requests"]["quote"] == 3


def test_fault_5xx_fails_calls_and_places_nothing() -> None:
    with running("error_5xx=1") as (server, kite):
        with pytest.raises((kex.NetworkException, kex.GeneralException)) as failed:
            place(kite)
        assert failed.value.code in (500, 503)
        server.set_faults("")
        assert kite.orders() == []
        assert server.stats()["fault_counts"]["error_5xx"] == 1


def test_fault_burst_429_is_not_a_breach() -> None:
    with running("burst_429=2") as (server, kite):
        for _ in range(2):
            with pytest.raises(kex.NetworkException) as throttled:
                kite.profile()
            assert throttled.value.code == 429
        assert kite.profile()["user_id"]
        stats = server.stats()
        assert stats["breaches"]["count"] == 0 and stats["throttled"]["other"] == 2


def test_fault_token_expired_invalidates_tokens() -> None:
    with running() as (server, kite):
        server.set_faults("token_expired=1")
        with pytest.raises(kex.TokenException):
            kite.profile()
        with pytest.raises(kex.TokenException):
            client(server).orders()
        server.set_faults("")
        with pytest.raises(kex.TokenException):
            kite.profile()  # the old token died with the fault
        assert client(server).profile()["user_id"]


def test_fault_reject_rejects_placed_orders() -> None:
    with running("reject=1") as (_, kite):
        order_id = place(kite, tag="rej")
        order = wait_status(kite, order_id, "REJECTED")
        assert order["status_message"] and order["tag"] == "rej"


def test_fault_drop_response_places_the_order_but_loses_the_answer() -> None:
    with running("drop_response=1") as (server, kite):
        with pytest.raises(requests.exceptions.ConnectionError):
            place(kite, tag="lost1")
        server.set_faults("")
        (order,) = kite.orders()
        assert order["tag"] == "lost1"
        wait_status(kite, order["order_id"], "COMPLETE")
        assert server.stats()["orders_per_tag"] == {"lost1": 1}


def test_fault_stuck_orders_stay_open_pending_and_cancel_late() -> None:
    with running("stuck=1,stuck_cancel_s=1") as (server, kite):
        order_id = place(kite)
        wait_until(lambda: server.stats()["fault_counts"]["stuck"] == 1, 5, "order stuck")
        assert last_status(kite, order_id) == "OPEN PENDING"
        kite.cancel_order("regular", order_id)
        assert last_status(kite, order_id) == "CANCEL PENDING"
        wait_status(kite, order_id, "CANCELLED")
        assert kite.order_trades(order_id) == []


def test_fault_latency_delays_answers() -> None:
    with running("latency_ms=300,latency_jitter_ms=50") as (server, kite):
        started = time.monotonic()
        assert kite.profile()["user_id"]
        assert time.monotonic() - started >= 0.3
        server.set_faults("")
        started = time.monotonic()
        kite.profile()
        assert time.monotonic() - started < 0.3


def test_bad_fault_specs_are_refused() -> None:
    for spec, named in (("reject=2", "reject=2"), ("nope=1", "nope"), ("latency_ms", "name=value"),
                        ("seed=1,seed=2", "twice"), ("token_expired=0.5", "token_expired")):
        with pytest.raises(ValueError, match=named):
            parse_faults(spec)
    with pytest.raises(ValueError, match="stuck"):
        SimServer(sim_config(), faults="stuck=x")
    assert parse_faults(" latency_ms=5 , reject=0.5 ").reject == 0.5
    with running() as (server, _):
        with pytest.raises(ValueError, match="burst_429"):
            server.set_faults("burst_429=-1")
        answer = _raw(server, "POST", "/_sim/faults", json={"spec": "error_5xx=7"})
        assert answer.status_code == 400 and "error_5xx" in answer.json()["message"]
        assert _raw(server, "POST", "/_sim/faults", json={"spec": "latency_ms=1"}).ok
        assert server.stats()["faults"] == "latency_ms=1"


def test_sim_clock_stats_and_booked_positions() -> None:
    with running() as (server, kite):
        clock = _raw(server, "GET", "/_sim/clock").json()
        start, now = datetime.fromisoformat(clock["start"]), datetime.fromisoformat(clock["now"])
        assert start.tzinfo is not None and now >= start and clock["speed"] == 300.0
        booked = _raw(server, "POST", "/_sim/positions", json={
            "exchange": "NSE", "tradingsymbol": "BAJAJ-AUTO", "quantity": -2, "product": "MIS",
            "price": 8500}).json()
        (row,) = kite.positions()["net"]
        assert row["tradingsymbol"] == "BAJAJ-AUTO" and row["quantity"] == -2
        (trade,) = kite.trades()
        assert trade["trade_id"] == booked["trade_id"] and trade["average_price"] == 8500.0
        stats = _raw(server, "GET", "/_sim/stats").json()
        assert stats == server.stats()
        assert stats["open_positions"]["count"] == 1
        assert stats["open_positions"]["positions"][0]["quantity"] == -2
        assert stats["orders_by_status"] == {"COMPLETE": 1}
        for key in ("requests", "throttled", "breaches", "orders_per_tag", "ticker", "faults"):
            assert key in stats


# -- the ticker's wiring ---------------------------------------------------------------------

async def _ticker_session(server: SimServer, token: str, instrument: int
                          ) -> tuple[bool, bool, int]:
    url = f"{server.ws_url}/?api_key={server.api_key}&access_token={token}"
    order_seen = binary_seen = False
    async with aiohttp.ClientSession() as http, http.ws_connect(url) as ws:
        await ws.send_str(json.dumps({"a": "subscribe", "v": [instrument]}))
        await ws.send_str(json.dumps({"a": "mode", "v": ["full", [instrument]]}))
        await asyncio.get_running_loop().run_in_executor(None, place, client(server, token))
        deadline = time.monotonic() + 10
        while not (order_seen and binary_seen) and time.monotonic() < deadline:
            message = await ws.receive(timeout=10)
            if message.type is aiohttp.WSMsgType.TEXT:
                order_seen |= json.loads(message.data).get("type") == "order"
            elif message.type is aiohttp.WSMsgType.BINARY:
                binary_seen |= len(message.data) > 1
        await asyncio.get_running_loop().run_in_executor(
            None, server.set_faults, "ticker_disconnect=1")
        closed = await ws.receive(timeout=10)
        while closed.type in (aiohttp.WSMsgType.BINARY, aiohttp.WSMsgType.TEXT):
            closed = await ws.receive(timeout=10)
    refused = 0
    await asyncio.get_running_loop().run_in_executor(None, server.set_faults, "ticker_refuse=1")
    async with aiohttp.ClientSession() as http:
        try:
            async with http.ws_connect(url):
                pass
        except aiohttp.WSServerHandshakeError as error:
            refused = error.status
    return order_seen, binary_seen, refused


def test_ticker_gets_prices_and_orders_and_obeys_ticker_faults() -> None:
    with running() as (server, kite):
        instrument = kite.ltp("NSE:M&M")["NSE:M&M"]["instrument_token"]
        order_seen, binary_seen, refused = asyncio.run(
            _ticker_session(server, kite.access_token, instrument))
        assert order_seen and binary_seen
        assert refused == 503
        assert server.stats()["ticker"]["drops"] >= 1


# -- the command line ------------------------------------------------------------------------

def _script() -> list[str]:
    script = Path(sys.executable).with_name("kitesaga")
    return [str(script)] if script.exists() else [sys.executable, "-m", "actors.cli"]


def _env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KITESAGA_")}
    env["KITESAGA_ENGINE_STATE_DIR"] = str(tmp_path / "state")
    return env


def _first_line(stream: IO[str], timeout: float) -> str:
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: lines.put(stream.readline()), daemon=True).start()
    return lines.get(timeout=timeout)


def test_cli_serves_until_sigterm(tmp_path: Path) -> None:
    proc = subprocess.Popen([*_script(), "sim", "--port", "0", "--speed", "100", "--seed", "3",
                             "--api-secret", "s3cret-value"],
                            cwd=tmp_path, env=_env(tmp_path), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        line = _first_line(proc.stdout, 30)  # type: ignore[arg-type]
        assert line.startswith("kitesaga sim listening on http://127.0.0.1:")
        assert "api_key=kitesim" in line and "s3cret-value" not in line
        url = line.split()[4]
        session = requests.Session()
        session.trust_env = False
        clock = session.get(url + "/_sim/clock", timeout=5).json()
        assert clock["speed"] == 100.0
    finally:
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=20)
    assert proc.returncode == 0, err
    assert "Traceback" not in err and "s3cret-value" not in out + err


def test_cli_bad_faults_exit_2_with_a_message(tmp_path: Path) -> None:
    done = subprocess.run([*_script(), "sim", "--port", "0", "--faults", "reject=lots"],
                          cwd=tmp_path, env=_env(tmp_path), capture_output=True, text=True,
                          timeout=60, check=False)
    assert done.returncode == 2
    assert "--faults" in done.stderr and "reject" in done.stderr
    assert "Traceback" not in done.stderr
