"""TickerHub: the simulator's WebSocket ticker, speaking KiteTicker's protocol (aiohttp).

Clients connect to ``GET /?api_key=..&access_token=..`` and send text frames
``{"a": "subscribe"|"unsubscribe", "v": [tokens]}`` and ``{"a": "mode", "v":
["ltp"|"quote"|"full", [tokens]]}``. The hub sends binary frames of packets
(:func:`encode_frame`, :func:`encode_packet`), 1-byte heartbeats when idle, and
text frames ``{"type": "order"|"error", "data": ...}``. Prices are integers:
paise, scaled the way KiteTicker divides them for the segment in the token's
low byte (:func:`price_scale`).
"""

from __future__ import annotations

import asyncio
import json
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any, Final

import structlog
from aiohttp import WSMsgType, web

from actors.kitesim._packets import (
    MODES,
    PacketQuote,
    encode_frame,
    encode_packet,
    price_scale,
)
from actors.market import IST, InstrumentTable
from messages import Price

__all__ = ["HEARTBEAT_INTERVAL_S", "MAX_BACKLOG_FRAMES", "MAX_INSTRUMENTS", "MODES",
           "PacketQuote", "TickerHub", "encode_frame", "encode_packet", "price_scale"]

_USAGE: Final = ('expected {"a": "subscribe"|"unsubscribe", "v": [tokens]} or '
                 '{"a": "mode", "v": ["ltp"|"quote"|"full", [tokens]]}')

_log = structlog.get_logger("kitesaga.kitesim.ticker")

HEARTBEAT_INTERVAL_S: Final = 1.0
"""A connection that has sent nothing for this long gets a 1-byte heartbeat frame."""
MAX_INSTRUMENTS: Final = 3000
"""Kite's limit of subscribed instruments per connection."""
MAX_BACKLOG_FRAMES: Final = 1000
"""A client this many frames behind is cut off (it reconnects and resubscribes)."""

_HEARTBEAT: Final = b"\x00"
_DEPTH_LOTS: Final = 10  # level-1 quantity: this many lots
_UINT32_MAX: Final = 0xFFFFFFFF  # tokens travel as uint32

@dataclass(slots=True)
class _Day:
    """One token's running day: the fields a Price lacks, made plausible."""

    day: date
    open: int
    high: int
    low: int
    volume: int = 0
    turnover: int = 0  # paise x quantity, for the average traded price
    price: Price | None = None  # the last one published
    quote: PacketQuote | None = None


@dataclass(eq=False, slots=True)
class _Conn:
    ws: web.WebSocketResponse
    transport: asyncio.Transport | None
    modes: dict[int, str] = field(default_factory=dict)
    backlog: deque[tuple[bytes | str, int, int]] = field(default_factory=deque)
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    writer: asyncio.Task[None] | None = None
    closed: bool = False


class TickerHub:
    """Kite's WebSocket ticker for the simulator, on one asyncio loop.

    Contract: every method runs on the server's event loop thread (no locks).
    ``handle`` refuses before the upgrade (HTTP 403 for bad credentials, 503
    while ``refuse_new``; both counted in ``refused``) or serves one
    connection. ``publish_prices`` sends each connection ONE binary frame with
    the packets of its subscribed tokens that changed, in each token's mode;
    ``publish_order`` sends the order update to every connection. Sends never
    block the caller: each connection has a bounded backlog drained by its own
    writer task; a client :data:`MAX_BACKLOG_FRAMES` behind is cut off
    (counted in ``drops``). Malformed client frames are counted
    (``bad_frames``) and answered with an error frame, never a close. A mode
    frame sends the current packets of its tokens at once. Day fields a Price
    lacks (open/high/low, close = the day's first price, volume, average,
    depth quantities) are kept per token here; oi is 0, depth beyond level 1
    empty. Times travel as whole epoch seconds (sub-second parts truncated).
    """

    def __init__(self, instruments: InstrumentTable, authorize: Callable[[str, str], bool],
                 *, heartbeat_s: float = HEARTBEAT_INTERVAL_S,
                 max_backlog: int = MAX_BACKLOG_FRAMES) -> None:
        self._instruments = instruments
        self._authorize = authorize
        self._heartbeat_s = heartbeat_s
        self._max_backlog = max_backlog
        self._conns: set[_Conn] = set()
        self._days: dict[int, _Day] = {}
        self._unencodable_logged: set[int] = set()
        self.refuse_new = False
        self._counts = dict.fromkeys(
            ("connects_total", "frames_sent", "ticks_sent", "order_updates_sent", "drops",
             "refused", "bad_frames", "heartbeats_sent", "unencodable"), 0)

    # -- connections -------------------------------------------------------------

    async def handle(self, request: web.Request) -> web.StreamResponse:
        """Serve one ticker connection until it closes."""
        if self.refuse_new:
            self._counts["refused"] += 1
            _log.info("ticker_refused", reason="refuse_new")
            return web.Response(status=503, text="ticker is not accepting connections")
        api_key = request.query.get("api_key", "")
        access_token = request.query.get("access_token", "")
        if not self._authorize(api_key, access_token):
            self._counts["refused"] += 1
            _log.info("ticker_refused", reason="bad credentials")  # never log the credentials
            return web.Response(status=403, text="invalid api_key or access_token")
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        conn = _Conn(ws, request.transport)
        self._conns.add(conn)
        self._counts["connects_total"] += 1
        conn.writer = asyncio.get_running_loop().create_task(self._write(conn))
        try:
            async for message in ws:
                if message.type is WSMsgType.TEXT:
                    self._on_text(conn, message.data)
                elif message.type is WSMsgType.BINARY:
                    self._bad(conn, "binary frames are not understood")
                elif message.type is WSMsgType.ERROR:
                    break
        finally:
            self._close(conn)
        return ws

    def _close(self, conn: _Conn, abort: bool = False) -> None:
        """Forget ``conn``; ``abort``: also cut its TCP connection (no close handshake)."""
        conn.closed = True
        self._conns.discard(conn)
        conn.backlog.clear()
        if conn.writer is not None and conn.writer is not asyncio.current_task():
            conn.writer.cancel()
        if abort and conn.transport is not None:
            conn.transport.abort()

    async def drop_connections(self) -> int:
        """Fault: cut every connection without a close handshake; how many were cut."""
        conns = list(self._conns)
        for conn in conns:
            self._close(conn, abort=True)
        self._counts["drops"] += len(conns)
        _log.info("ticker_connections_dropped", count=len(conns))
        await asyncio.sleep(0)  # let the writers see their cancellation
        return len(conns)

    # -- client frames -------------------------------------------------------------

    def _on_text(self, conn: _Conn, text: str) -> None:
        try:
            frame = json.loads(text)
        except (ValueError, RecursionError):
            frame = None
        action, value = (frame.get("a"), frame.get("v")) if isinstance(frame, dict) else ("", 0)
        mode = "quote"
        if action == "mode":
            mode, value = value if isinstance(value, list) and len(value) == 2 else ("", 0)
        tokens = _tokens(value)
        if tokens is None or mode not in MODES or action not in ("subscribe", "unsubscribe",
                                                                 "mode"):
            self._bad(conn, _USAGE)
        elif action == "subscribe":
            self._subscribe(conn, tokens)
        elif action == "unsubscribe":
            for token in tokens:
                conn.modes.pop(token, None)
        else:
            changed = [token for token in tokens if token in conn.modes]
            for token in changed:
                conn.modes[token] = mode
            self._send_packets(conn, changed)  # the current quotes, in the new mode

    def _subscribe(self, conn: _Conn, tokens: list[int]) -> None:
        refused = 0
        for token in tokens:
            if token in conn.modes:
                continue
            if len(conn.modes) >= MAX_INSTRUMENTS:
                refused += 1
                continue
            conn.modes[token] = "quote"
        if refused:
            self._error(conn, f"subscribe: at most {MAX_INSTRUMENTS} instruments per "
                              f"connection; {refused} not subscribed")

    def _bad(self, conn: _Conn, problem: str) -> None:
        self._counts["bad_frames"] += 1
        self._error(conn, problem)

    def _error(self, conn: _Conn, problem: str) -> None:
        self._enqueue(conn, json.dumps({"type": "error", "data": problem}), 0, 0)

    # -- publication ---------------------------------------------------------------

    def publish_prices(self, prices: Iterable[Price]) -> None:
        """Update the day state and send each connection its changed, subscribed tokens."""
        changed: list[int] = []
        for price in prices:
            token = price.instrument_token
            if self._update(price) and token not in changed:
                changed.append(token)
        if not changed:
            return
        cache: dict[tuple[int, str], bytes | None] = {}
        for conn in list(self._conns):
            self._send_packets(conn, [t for t in changed if t in conn.modes], cache)

    def _send_packets(self, conn: _Conn, tokens: Sequence[int],
                      cache: dict[tuple[int, str], bytes | None] | None = None) -> None:
        cache = {} if cache is None else cache
        packets: list[bytes] = []
        for token in tokens:
            key = (token, conn.modes[token])
            if key not in cache:
                cache[key] = self._packet(*key)
            packet = cache[key]
            if packet is not None:
                packets.append(packet)
        if packets:
            self._enqueue(conn, encode_frame(packets), len(packets), 0)

    def _packet(self, token: int, mode: str) -> bytes | None:
        day = self._days.get(token)
        if day is None or day.quote is None:
            return None
        try:
            return encode_packet(day.quote, mode, self._instruments.is_index(token))
        except ValueError as exc:
            self._counts["unencodable"] += 1
            if token not in self._unencodable_logged:
                self._unencodable_logged.add(token)
                _log.warning("ticker_unencodable_price", token=token, problem=str(exc))
            return None

    def _update(self, price: Price) -> bool:
        token, last = price.instrument_token, price.last.paise
        today = price.exchange_ts.astimezone(IST).date()
        day = self._days.get(token)
        if day is None or day.day != today:
            day = self._days[token] = _Day(today, last, last, last)
        elif price == day.price:
            return False
        day.price = price
        day.high, day.low = max(day.high, last), min(day.low, last)
        lot = self._instruments.get(token).lot_size if token in self._instruments else 1
        day.volume += lot
        day.turnover += last * lot
        ts = int(price.exchange_ts.timestamp())
        depth = lot * _DEPTH_LOTS
        bids = ((depth, price.bid.paise, 1),) if price.bid is not None else ()
        asks = ((depth, price.ask.paise, 1),) if price.ask is not None else ()
        quote = PacketQuote(
            token=token, last=last, exchange_ts=ts, open=day.open, high=day.high, low=day.low,
            close=day.open, last_qty=lot, average=round(day.turnover / day.volume),
            volume=day.volume, buy_qty=depth if bids else 0, sell_qty=depth if asks else 0,
            last_trade_ts=ts, bids=bids, asks=asks)
        day.quote = quote
        return True

    def publish_order(self, order: Mapping[str, Any]) -> None:
        """Send ``{"type": "order", "data": order}`` to every connection."""
        text = json.dumps({"type": "order", "data": dict(order)}, default=str)
        for conn in list(self._conns):
            self._enqueue(conn, text, 0, 1)

    # -- sending ---------------------------------------------------------------

    def _enqueue(self, conn: _Conn, frame: bytes | str, ticks: int, orders: int) -> None:
        if conn.closed:
            return
        if len(conn.backlog) >= self._max_backlog:
            self._counts["drops"] += 1
            _log.warning("ticker_client_too_slow", backlog=len(conn.backlog))
            self._close(conn, abort=True)
            return
        conn.backlog.append((frame, ticks, orders))
        conn.wake.set()

    async def _write(self, conn: _Conn) -> None:
        """The connection's writer: drains the backlog; heartbeats when idle."""
        counts, ws = self._counts, conn.ws
        try:
            while not conn.closed:
                if not conn.backlog:
                    conn.wake.clear()
                    try:
                        await asyncio.wait_for(conn.wake.wait(), self._heartbeat_s)
                    except TimeoutError:
                        await ws.send_bytes(_HEARTBEAT)
                        counts["heartbeats_sent"] += 1
                    continue
                frame, ticks, orders = conn.backlog.popleft()
                if isinstance(frame, bytes):
                    await ws.send_bytes(frame)
                else:
                    await ws.send_str(frame)
                counts["frames_sent"] += 1
                counts["ticks_sent"] += ticks
                counts["order_updates_sent"] += orders
        except (ConnectionError, RuntimeError) as exc:
            _log.info("ticker_send_failed", error=str(exc))
            self._close(conn, abort=True)

    def stats(self) -> dict[str, int]:
        """Counters: connections, connects_total, subscriptions, frames_sent (heartbeats
        apart), ticks_sent (packets), order_updates_sent, drops (connections cut:
        the fault or a too-slow client), refused, bad_frames, heartbeats_sent,
        unencodable (prices that do not fit the token's segment scaling)."""
        return {
            "connections": len(self._conns),
            "subscriptions": sum(len(conn.modes) for conn in self._conns),
            **self._counts,
        }


def _tokens(value: object) -> list[int] | None:
    """The instrument tokens in a frame's ``v``, or None if it is not a list of them."""
    if not isinstance(value, list):
        return None
    for token in value:
        if type(token) is not int or not 0 < token <= _UINT32_MAX:
            return None
    return value
