"""The WebSocket ticker, both faces: the simulator's TickerHub and the engine's KiteStream.

KiteStream wraps the real ``kiteconnect.KiteTicker`` (Twisted underneath; one
reactor per process, never stopped here), so these tests check the hub's
encoding against the official client's decoding end to end.
"""

from __future__ import annotations

import asyncio
import json
import os
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from datetime import date, datetime, timedelta
from typing import Any, TypeVar

import aiohttp
import pytest
from aiohttp import web
from kiteconnect import KiteTicker

from actors.config import load_config
from actors.kite import KiteStream, OrderUpdateFrame, TickerConnected, TickerDisconnected
from actors.kite._stream import tick_to_price
from actors.kitesim._ticker import (
    MAX_INSTRUMENTS,
    PacketQuote,
    TickerHub,
    encode_frame,
    encode_packet,
    price_scale,
)
from actors.market import IST, InstrumentTable, MarketCalendar, synthetic_dump_csv
from messages import (
    Exchange,
    Instrument,
    InstrumentKind,
    Money,
    Price,
    PriceRejected,
    RecordPrices,
)
from tests.support import Recorder, wait_until

T = TypeVar("T")
API_KEY, ACCESS_TOKEN = "simkey", "simtoken"
T0 = datetime(2026, 11, 25, 10, 0, 0, tzinfo=IST)
NOT_IST = "America/New_York"


# --- fixtures --------------------------------------------------------------------------------


@pytest.fixture(scope="module", autouse=True)
def local_time_not_ist() -> Iterator[None]:
    """KiteTicker's naive local timestamps must come back right wherever the process runs."""
    old = os.environ.get("TZ")
    os.environ["TZ"] = NOT_IST
    time.tzset()
    yield
    if old is None:
        del os.environ["TZ"]
    else:
        os.environ["TZ"] = old
    time.tzset()


@pytest.fixture(scope="module")
def table() -> InstrumentTable:
    config = load_config(None, env={})
    calendar = MarketCalendar(config.calendar)
    return InstrumentTable.from_csv(synthetic_dump_csv(config.market, date(2026, 11, 25), calendar))


@pytest.fixture(scope="module")
def three(table: InstrumentTable) -> tuple[Instrument, Instrument, Instrument]:
    """An equity, an option and an index (whose tokens KiteTicker divides by 100)."""
    equity = table.by_symbol("NSE", "RELIANCE")
    option = table.options("NIFTY", table.expiries("NIFTY")[0])[0]
    index = table.underlying_index("NIFTY")
    assert table.is_index(index.instrument_token)
    for instrument in (equity, option, index):
        assert price_scale(instrument.instrument_token) == 1
    return equity, option, index


class HubServer:
    """A TickerHub mounted at "/" on port 0, on its own loop in a background thread."""

    def __init__(self, hub: TickerHub) -> None:
        self.hub = hub
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._thread.start()
        self._runner: web.AppRunner | None = None
        self.port: int = self.run(self._start())
        self.url = f"ws://127.0.0.1:{self.port}"

    async def _start(self) -> int:
        app = web.Application()
        app.router.add_get("/", self.hub.handle)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=1)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", 0).start()
        return int(self._runner.addresses[0][1])

    def run(self, coro: Awaitable[T]) -> T:
        async def wrap() -> T:
            return await coro
        return asyncio.run_coroutine_threadsafe(wrap(), self.loop).result(10)

    def call(self, fn: Callable[..., T], *args: Any) -> T:
        async def wrap() -> T:
            return fn(*args)
        return self.run(wrap())

    def stats(self) -> dict[str, int]:
        return self.call(self.hub.stats)

    def publish(self, *prices: Price) -> None:
        self.call(self.hub.publish_prices, prices)

    def close(self) -> None:
        assert self._runner is not None
        self.run(self.hub.drop_connections())
        self.run(self._runner.cleanup())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(5)
        self.loop.close()


@pytest.fixture
def server(table: InstrumentTable) -> Iterator[HubServer]:
    hub = TickerHub(table, lambda key, token: (key, token) == (API_KEY, ACCESS_TOKEN),
                    heartbeat_s=0.3)
    server = HubServer(hub)
    yield server
    server.close()


class Stream:
    """A started KiteStream with recorders for its three outputs."""

    def __init__(self, url: str, *, token: str = ACCESS_TOKEN, mode: str = "full") -> None:
        self.prices, self.orders, self.status = Recorder(), Recorder(), Recorder()
        self.stream = KiteStream(API_KEY, token, url, prices_to=self.prices,
                                 orders_to=self.orders, status_to=self.status, mode=mode,
                                 reconnect_max_delay_s=5, reconnect_initial_delay_s=0.1)
        self.stream.start()

    def connects(self) -> list[TickerConnected]:
        return self.status.of(TickerConnected)

    def wait_connected(self, count: int = 1) -> None:
        self.status.wait_for_kind(TickerConnected, count)

    def seen(self) -> list[Price]:
        return [p for batch in self.prices.of(RecordPrices) for p in batch.prices]

    def wait_prices(self, *expected: Price) -> list[Price]:
        """Wait until a Price with each expected token and exchange_ts has arrived."""
        want = {(p.instrument_token, p.exchange_ts) for p in expected}

        def arrived(_: list[Any]) -> bool:
            return want <= {(p.instrument_token, p.exchange_ts) for p in self.seen()}
        self.prices.wait_for(arrived)
        return [p for p in self.seen() if (p.instrument_token, p.exchange_ts) in want]


@pytest.fixture
def streams(server: HubServer) -> Iterator[Callable[..., Stream]]:
    made: list[Stream] = []

    def make(**kwargs: Any) -> Stream:
        made.append(Stream(server.url, **kwargs))
        return made[-1]
    yield make
    for stream in made:
        stream.stream.stop()
    wait_until(lambda: server.stats()["connections"] == 0, what="streams closed")
    for stream in made:
        wait_until(lambda s=stream: not s.stream.connected, what="stream reports closed")


def quote(instrument: Instrument, rupees: str, at: datetime, spread: bool = True) -> Price:
    last = Money.from_rupees(rupees)
    bid = Money(last.paise - 5) if spread else None
    ask = Money(last.paise + 5) if spread else None
    return Price(instrument.instrument_token, last, at, at, bid, ask)


def assert_same_quote(got: Price, sent: Price) -> None:
    assert (got.instrument_token, got.last, got.bid, got.ask) == (
        sent.instrument_token, sent.last, sent.bid, sent.ask)
    assert got.exchange_ts == sent.exchange_ts
    assert got.exchange_ts.utcoffset() == timedelta(hours=5, minutes=30)


# --- the encoder against KiteTicker's own parser -------------------------------------------------


def parse(*packets: bytes) -> list[dict[str, Any]]:
    ticks: list[dict[str, Any]] = KiteTicker("k", "t")._parse_binary(encode_frame(packets))
    return ticks


def test_full_packet_decodes_field_by_field_in_kitetickers_parser() -> None:
    ts, traded = int(T0.timestamp()), int(T0.timestamp()) - 3
    q = PacketQuote(token=738561, last=140025, exchange_ts=ts, open=139000, high=141000,
                    low=138500, close=139500, last_qty=7, average=140010, volume=1234,
                    buy_qty=500, sell_qty=600, last_trade_ts=traded, oi=11, oi_high=22, oi_low=3,
                    bids=((10, 140020, 2), (20, 140015, 3)), asks=((30, 140030, 4),))
    packet = encode_packet(q, "full")
    assert len(packet) == 184
    [tick] = parse(packet)
    assert tick["mode"] == "full" and tick["tradable"] is True
    assert tick["instrument_token"] == 738561
    assert tick["last_price"] == 1400.25
    assert (tick["last_traded_quantity"], tick["volume_traded"]) == (7, 1234)
    assert tick["average_traded_price"] == 1400.10
    assert (tick["total_buy_quantity"], tick["total_sell_quantity"]) == (500, 600)
    assert tick["ohlc"] == {"open": 1390.0, "high": 1410.0, "low": 1385.0, "close": 1395.0}
    assert (tick["oi"], tick["oi_day_high"], tick["oi_day_low"]) == (11, 22, 3)
    assert tick["exchange_timestamp"] == datetime.fromtimestamp(ts)
    assert tick["last_trade_time"] == datetime.fromtimestamp(traded)
    assert tick["depth"]["buy"][:2] == [{"quantity": 10, "price": 1400.20, "orders": 2},
                                        {"quantity": 20, "price": 1400.15, "orders": 3}]
    assert tick["depth"]["sell"][0] == {"quantity": 30, "price": 1400.30, "orders": 4}
    assert tick["depth"]["sell"][1:] == [{"quantity": 0, "price": 0.0, "orders": 0}] * 4
    assert len(tick["depth"]["buy"]) == len(tick["depth"]["sell"]) == 5


def test_quote_ltp_and_index_packets_decode_in_kitetickers_parser() -> None:
    ts = int(T0.timestamp())
    q = PacketQuote(token=10000000, last=2400050, exchange_ts=ts, open=2390000, high=2410000,
                    low=2380000, close=2395000)
    ltp, quote_, index_quote, index_full = (
        encode_packet(q, "ltp"), encode_packet(q, "quote"),
        encode_packet(q, "quote", index=True), encode_packet(q, "full", index=True))
    assert [len(p) for p in (ltp, quote_, index_quote, index_full)] == [8, 44, 28, 32]
    t_ltp, t_quote, t_iq, t_if = parse(ltp, quote_, index_quote, index_full)
    assert t_ltp == {"tradable": True, "mode": "ltp", "instrument_token": 10000000,
                     "last_price": 24000.5}
    assert t_quote["mode"] == "quote" and "exchange_timestamp" not in t_quote
    assert t_quote["ohlc"] == {"open": 23900.0, "high": 24100.0, "low": 23800.0, "close": 23950.0}
    for tick in (t_iq, t_if):
        assert tick["last_price"] == 24000.5
        assert tick["ohlc"] == {"high": 24100.0, "low": 23800.0, "open": 23900.0,
                                "close": 23950.0}
    assert (t_iq["mode"], t_if["mode"]) == ("quote", "full")
    assert "exchange_timestamp" not in t_iq
    assert t_if["exchange_timestamp"] == datetime.fromtimestamp(ts)


def test_prices_are_scaled_as_kiteticker_divides_by_segment() -> None:
    """KiteTicker reads the segment from token & 0xff: cds /1e7, bcd and nco /1e4."""
    for token, scale in ((20000003, 100_000), (20000006, 100), (20000012, 100), (738561, 1)):
        assert price_scale(token) == scale
        [tick] = parse(encode_packet(PacketQuote(token=token, last=425, exchange_ts=0), "ltp"))
        assert tick["last_price"] == 4.25
    too_big = PacketQuote(token=20000003, last=100_000, exchange_ts=0)  # 1,000 rupees at 1e7
    with pytest.raises(ValueError, match="does not fit"):
        encode_packet(too_big, "ltp")
    with pytest.raises(ValueError, match="mode"):
        encode_packet(too_big, "turbo")


def test_a_naive_local_exchange_timestamp_becomes_the_right_aware_instant() -> None:
    assert datetime.now().astimezone().utcoffset() != timedelta(hours=5, minutes=30)
    naive = datetime.fromtimestamp(T0.timestamp())  # what KiteTicker builds
    tick = {"instrument_token": 738561, "last_price": 1400.25, "exchange_timestamp": naive,
            "depth": {"buy": [{"price": 1400.2}], "sell": [{"price": 1400.3}]}}
    price = tick_to_price(tick, T0)
    assert isinstance(price, Price)
    assert price.exchange_ts == T0 and price.exchange_ts.tzinfo == IST
    assert (price.bid, price.ask) == (Money(140020), Money(140030))
    missing = tick_to_price({**tick, "exchange_timestamp": None}, T0)
    assert isinstance(missing, PriceRejected) and missing.reason.startswith("exchange_ts: missing")


# --- KiteStream against the hub ---------------------------------------------------------------


def test_full_mode_ticks_become_prices(server: HubServer, streams: Callable[..., Stream],
                                       three: tuple[Instrument, ...]) -> None:
    equity, option, index = three
    first = (quote(equity, "1400.25", T0), quote(option, "120.5", T0),
             quote(index, "24000.05", T0, spread=False))
    server.publish(*first)
    s = streams()
    s.wait_connected()
    assert s.connects() == [TickerConnected(reconnect=False)]
    s.stream.set_tokens(frozenset(p.instrument_token for p in first))
    for got, sent in zip(sorted(s.wait_prices(*first), key=lambda p: p.instrument_token),
                         sorted(first, key=lambda p: p.instrument_token), strict=True):
        assert_same_quote(got, sent)  # the snapshot sent when the mode was set
    later = T0 + timedelta(seconds=1)
    second = (quote(equity, "1401", later), quote(option, "119.95", later),
              quote(index, "24001.5", later, spread=False))
    server.publish(*second)
    got = {p.instrument_token: p for p in s.wait_prices(*second)}
    for sent in second:
        assert_same_quote(got[sent.instrument_token], sent)
    assert not s.prices.of(PriceRejected)
    assert s.stream.connected and s.stream.stats["ticks"] == 6


def test_quote_mode_ticks_are_rejected_for_the_missing_timestamp(
        server: HubServer, streams: Callable[..., Stream], three: tuple[Instrument, ...]) -> None:
    equity, _, index = three
    server.publish(quote(equity, "1400", T0), quote(index, "24000", T0, spread=False))
    s = streams(mode="quote")
    s.wait_connected()
    s.stream.set_tokens(frozenset({equity.instrument_token, index.instrument_token}))
    rejected = s.prices.wait_for_kind(PriceRejected, 2)
    assert {r.instrument_token for r in rejected} == {equity.instrument_token,
                                                      index.instrument_token}
    assert all(r.reason.startswith("exchange_ts: missing") for r in rejected)
    assert not s.prices.of(RecordPrices) and s.stream.stats["rejected"] == 2


def test_order_updates_arrive_as_frames(server: HubServer, streams: Callable[..., Stream]) -> None:
    s = streams()
    s.wait_connected()
    order = {"order_id": "260101000000001", "status": "COMPLETE", "filled_quantity": 65,
             "average_price": 120.5, "order_timestamp": "2026-11-25 10:00:00", "tag": "s1"}
    server.call(server.hub.publish_order, order)
    [frame] = s.orders.wait_for_kind(OrderUpdateFrame)
    assert dict(frame.data) == order
    assert server.stats()["order_updates_sent"] == 1


def test_a_dropped_connection_reconnects_and_resubscribes_in_the_same_mode(
        server: HubServer, streams: Callable[..., Stream], three: tuple[Instrument, ...]) -> None:
    equity, option, _ = three
    first = (quote(equity, "1400", T0), quote(option, "120", T0))
    server.publish(*first)
    s = streams()
    s.wait_connected()
    s.stream.set_tokens(frozenset(p.instrument_token for p in first))
    s.wait_prices(*first)
    assert server.run(server.hub.drop_connections()) == 1
    s.status.wait_for_kind(TickerDisconnected)
    s.wait_connected(2)
    assert s.connects() == [TickerConnected(False), TickerConnected(True)]
    later = T0 + timedelta(seconds=5)
    second = (quote(equity, "1402", later), quote(option, "121", later))
    wait_until(lambda: server.stats()["subscriptions"] == 2, what="resubscribed")
    server.publish(*second)
    s.wait_prices(*second)  # full mode again: no rejections
    assert not s.prices.of(PriceRejected)
    stats = server.stats()
    assert (stats["connects_total"], stats["drops"], stats["connections"]) == (2, 1, 1)
    assert s.stream.stats["connects"] == 2 and s.stream.stats["disconnects"] == 1


def test_bad_credentials_are_refused_before_the_upgrade(
        server: HubServer, streams: Callable[..., Stream]) -> None:
    s = streams(token="wrong")
    s.status.wait_for_kind(TickerDisconnected)
    assert "403" in s.status.of(TickerDisconnected)[0].reason
    wait_until(lambda: server.stats()["refused"] >= 1, what="refusal counted")
    assert not s.connects() and not s.stream.connected
    assert server.stats()["connects_total"] == 0


def test_refuse_new_then_accept_lets_the_retry_connect_and_subscribe(
        server: HubServer, streams: Callable[..., Stream], three: tuple[Instrument, ...]) -> None:
    equity = three[0]
    server.hub.refuse_new = True  # a plain flag; the loop reads it per request
    s = streams()
    s.stream.set_tokens(frozenset({equity.instrument_token}))  # remembered until connected
    wait_until(lambda: server.stats()["refused"] >= 2, what="refused and retried")
    assert not s.connects() and server.stats()["connections"] == 0
    server.publish(quote(equity, "1400", T0))
    server.hub.refuse_new = False
    s.wait_connected()
    assert s.connects() == [TickerConnected(reconnect=False)]
    s.wait_prices(quote(equity, "1400", T0))
    assert server.stats()["connects_total"] == 1


def test_unsubscribed_tokens_stop_ticking(server: HubServer, streams: Callable[..., Stream],
                                          three: tuple[Instrument, ...]) -> None:
    equity, option, _ = three
    first = (quote(equity, "1400", T0), quote(option, "120", T0))
    server.publish(*first)
    s = streams()
    s.wait_connected()
    s.stream.set_tokens(frozenset(p.instrument_token for p in first))
    s.wait_prices(*first)
    s.stream.set_tokens(frozenset({equity.instrument_token}))
    wait_until(lambda: server.stats()["subscriptions"] == 1, what="unsubscribed")
    later = T0 + timedelta(seconds=1)
    server.publish(quote(equity, "1401", later), quote(option, "121", later))
    s.wait_prices(quote(equity, "1401", later))
    last_batch = s.prices.of(RecordPrices)[-1]
    assert [p.instrument_token for p in last_batch.prices] == [equity.instrument_token]
    assert all(p.exchange_ts == T0 for p in s.seen() if p.instrument_token ==
               option.instrument_token)
    with pytest.raises(ValueError, match="at most 3000"):
        s.stream.set_tokens(frozenset(range(1, 3002)))


# --- the hub with a raw WebSocket client ------------------------------------------------------


async def receive_until(ws: aiohttp.ClientWebSocketResponse,
                        want: Callable[[aiohttp.WSMessage], bool]) -> aiohttp.WSMessage:
    async with asyncio.timeout(5):
        while True:
            message = await ws.receive()
            if want(message):
                return message


def is_error(message: aiohttp.WSMessage) -> bool:
    return message.type is aiohttp.WSMsgType.TEXT and json.loads(message.data)["type"] == "error"


def test_malformed_frames_are_counted_and_the_connection_stays_up(
        server: HubServer, three: tuple[Instrument, ...]) -> None:
    equity = three[0]
    server.publish(quote(equity, "1400", T0))
    bad_frames = ["not json", "[1, 2]", '{"a": "subscribe", "v": "x"}', '{"a": "bogus"}',
                  '{"a": "subscribe", "v": [true]}', '{"a": "mode", "v": ["turbo", [1]]}',
                  '{"a": "mode", "v": ["full"]}']

    async def scenario() -> bytes:
        url = f"{server.url}/?api_key={API_KEY}&access_token={ACCESS_TOKEN}"
        async with aiohttp.ClientSession() as session, session.ws_connect(url) as ws:
            for frame in bad_frames:
                await ws.send_str(frame)
                await receive_until(ws, is_error)
            await ws.send_bytes(b"\x01\x02")
            await receive_until(ws, is_error)
            await ws.send_str(json.dumps({"a": "subscribe", "v": [equity.instrument_token]}))
            await ws.send_str(json.dumps({"a": "mode", "v": ["ltp", [equity.instrument_token]]}))
            message = await receive_until(ws, lambda m: m.type is aiohttp.WSMsgType.BINARY
                                          and len(m.data) > 1)
            heartbeat = await receive_until(ws, lambda m: m.type is aiohttp.WSMsgType.BINARY)
            assert heartbeat.data == b"\x00"
            return bytes(message.data)

    frame = asyncio.run(scenario())
    [tick] = KiteTicker("k", "t")._parse_binary(frame)
    assert tick == {"tradable": True, "mode": "ltp", "instrument_token": equity.instrument_token,
                    "last_price": 1400.0}
    stats = server.stats()
    assert stats["bad_frames"] == len(bad_frames) + 1
    assert stats["connects_total"] == 1 and stats["heartbeats_sent"] >= 1


def test_at_most_3000_instruments_per_connection(server: HubServer) -> None:
    async def scenario() -> tuple[str, int]:
        url = f"{server.url}/?api_key={API_KEY}&access_token={ACCESS_TOKEN}"
        async with aiohttp.ClientSession() as session, session.ws_connect(url) as ws:
            await ws.send_str(json.dumps({"a": "subscribe", "v": list(range(1, 3001))}))
            await ws.send_str(json.dumps({"a": "subscribe", "v": [5000, 5001, 1]}))
            error = await receive_until(ws, is_error)
            subscribed = server.stats()["subscriptions"]
            return json.loads(error.data)["data"], subscribed

    problem, subscribed = asyncio.run(scenario())
    assert f"at most {MAX_INSTRUMENTS}" in problem and "2 not subscribed" in problem
    assert subscribed == MAX_INSTRUMENTS
    assert server.stats()["bad_frames"] == 0


def test_a_client_too_far_behind_is_cut_off_and_unencodable_prices_are_counted(
        table: InstrumentTable) -> None:
    # a currency future: its token's low byte (3) makes KiteTicker divide by 1e7
    cds_like = Instrument(1234 << 8 | 3, Exchange.CDS, "USDINR26DECFUT", "USDINR",
                          InstrumentKind.FUT, 1, Money(1), date(2026, 12, 29))
    hub = TickerHub(InstrumentTable([*table, cds_like]), lambda key, token: True,
                    max_backlog=3)
    server = HubServer(hub)
    try:

        async def scenario() -> aiohttp.WSMsgType:
            url = f"{server.url}/?api_key=k&access_token=t"
            async with aiohttp.ClientSession() as session, session.ws_connect(url) as ws:
                await ws.send_str(json.dumps({"a": "subscribe",
                                              "v": [cds_like.instrument_token]}))
                wait = asyncio.get_running_loop().run_in_executor
                await wait(None, wait_until, lambda: server.stats()["subscriptions"] == 1)
                await wait(None, server.publish, quote(cds_like, "1000", T0))
                await wait(None, server.call, lambda: [hub.publish_order({"n": n})
                                                       for n in range(5)])
                message = await receive_until(ws, lambda m: m.type in (
                    aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.ERROR))
                return message.type

        asyncio.run(scenario())
        stats = server.stats()
        assert (stats["drops"], stats["connections"], stats["unencodable"]) == (1, 0, 1)
        assert stats["order_updates_sent"] == 0
    finally:
        server.close()


def test_wss_verifies_the_server_certificate_and_host() -> None:
    from twisted.internet._sslverify import ClientTLSOptions

    from actors.kite._stream import tls_options
    options = tls_options("wss://ws.kite.trade?api_key=k&access_token=t")
    assert isinstance(options, ClientTLSOptions)  # verifying (KiteTicker's own does not)
    assert options._hostnameASCII == "ws.kite.trade"
    with pytest.raises(ValueError, match="no host"):
        tls_options("wss://")
