"""KiteStream: the engine's streaming-quotes adapter over kiteconnect's KiteTicker.

The real ``kiteconnect.KiteTicker`` does the protocol (binary packets, order
updates, auto-reconnect with exponential back-off, resubscribe); this module
turns what it delivers into kitesaga messages:

* tick batches -> one ``RecordPrices`` (valid ticks) plus one ``PriceRejected``
  per tick that cannot be a Price, to ``prices_to``;
* order-update text frames -> :class:`OrderUpdateFrame` to ``orders_to``;
* connection changes -> :class:`TickerConnected` / :class:`TickerDisconnected`
  to ``status_to``.

These three message classes are the adapter's private protocol to the gateway
and the feed that own a KiteStream; they are not part of ``messages``.

Twisted's reactor runs once per process, on a daemon thread started by the
first KiteStream; it is never
stopped (it cannot restart). Every KiteTicker call runs on the reactor thread;
callbacks only build messages and ``tell`` them.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from types import MappingProxyType
from typing import Any, Final, Protocol, cast
from urllib.parse import urlsplit

import pykka
import structlog
from autobahn.twisted.websocket import connectWS  # type: ignore[import-untyped]
from kiteconnect import KiteTicker
from twisted.internet import reactor as _reactor
from twisted.internet.ssl import optionsForClientTLS

from actors._price import parse_quote
from actors.market import IST
from messages import Inbox, Price, PriceRejected, RecordPrices

__all__ = [
    "MODES",
    "KiteStream",
    "OrderUpdateFrame",
    "TickerConnected",
    "TickerDisconnected",
    "tick_to_price",
    "tls_options",
]

_log = structlog.get_logger("kitesaga.ticker")

MODES: Final = ("ltp", "quote", "full")
_MAX_INSTRUMENTS: Final = 3000  # Kite's limit per connection


def tls_options(url: str) -> Any:
    """A TLS client context that verifies the server's certificate against the
    system's roots and its name against ``url``'s host."""
    host = urlsplit(url).hostname
    if not host:
        raise ValueError(f"ws_root: no host in {url!r}")
    return optionsForClientTLS(host)


class _Reactor(Protocol):
    running: bool

    def callFromThread(self, f: Callable[..., object], *args: object) -> None: ...  # noqa: N802


_REACTOR = cast(_Reactor, _reactor)
_REACTOR_CLAIMS = itertools.count()  # next() is atomic: the first caller starts the reactor


@dataclass(frozen=True, slots=True)
class OrderUpdateFrame:
    """A broker order update from the ticker's text frames (Kite's order dict)."""

    data: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class TickerConnected:
    """The ticker connection opened; ``reconnect`` is False only the first time."""

    reconnect: bool


@dataclass(frozen=True, slots=True)
class TickerDisconnected:
    """The ticker connection closed or could not open; KiteTicker retries unless stopped."""

    reason: str


def tick_to_price(tick: Mapping[str, Any], received_ts: datetime) -> Price | PriceRejected:
    """One KiteTicker tick dict -> Price, or PriceRejected saying why not.

    KiteTicker builds ``exchange_timestamp`` with ``datetime.fromtimestamp``: a
    naive datetime in this process's local time, made aware here (and
    expressed in IST). Ticks without it (ltp and quote modes) are rejected
    (``exchange_ts: missing``). Bid and ask come from depth level 1 (full mode).
    """
    exchange_ts = tick.get("exchange_timestamp")
    if isinstance(exchange_ts, datetime):
        exchange_ts = exchange_ts.astimezone(IST)  # naive is read as local time
    depth = tick.get("depth") or {}
    buy, sell = depth.get("buy") or (), depth.get("sell") or ()
    return parse_quote(
        tick.get("instrument_token", 0),  # parse_quote rejects anything but an int > 0
        tick.get("last_price"),
        exchange_ts,
        received_ts,
        bid=buy[0].get("price") if buy else None,
        ask=sell[0].get("price") if sell else None,
    )


class KiteStream:
    """One KiteTicker connection streaming ``tokens`` in ``mode`` (default full).

    Contract:
    - ``start`` connects in the background and returns at once; it works
      whether or not the Twisted reactor already runs in this process.
    - ``set_tokens`` and ``stop`` may be called from any thread; they run on
      the reactor thread. ``set_tokens`` subscribes new tokens (and sets
      ``mode`` on them), unsubscribes dropped ones, and raises ``ValueError``
      beyond ``max_instruments``. The set is remembered: KiteTicker
      resubscribes it, modes included, after every reconnect.
    - Reconnects forever (exponential back-off up to ``reconnect_max_delay_s``).
    - ``stop`` closes the connection and stops retrying; it never stops the
      reactor. A stopped stream cannot be started again.
    - The API key and access token are never logged (the URL carries them).
    """

    def __init__(
        self,
        api_key: str,
        access_token: str,
        ws_root: str,
        *,
        prices_to: Inbox,
        orders_to: Inbox,
        status_to: Inbox | None = None,
        mode: str = "full",
        max_instruments: int = _MAX_INSTRUMENTS,
        reconnect_max_delay_s: int = 60,
        received_clock: Callable[[], datetime] | None = None,
        reconnect_initial_delay_s: float | None = None,
    ) -> None:
        if mode not in MODES:
            raise ValueError(f"mode: must be one of {', '.join(MODES)}, got {mode!r}")
        if not 0 < max_instruments <= _MAX_INSTRUMENTS:
            raise ValueError(
                f"max_instruments: must be 1..{_MAX_INSTRUMENTS}, got {max_instruments!r}")
        if reconnect_initial_delay_s is not None and not reconnect_initial_delay_s > 0:
            raise ValueError(f"reconnect_initial_delay_s: must be > 0, "
                             f"got {reconnect_initial_delay_s!r}")
        self._prices_to = prices_to
        self._orders_to = orders_to
        self._status_to = status_to
        self._mode = mode
        self._max = max_instruments
        self._clock = received_clock or (lambda: datetime.now(IST))
        self._initial_delay = reconnect_initial_delay_s
        self._tokens: frozenset[int] = frozenset()
        self._started = self._stopped = self._open = False
        self._counts = dict.fromkeys(
            ("ticks", "rejected", "order_updates", "connects", "disconnects"), 0)
        ticker: Any = KiteTicker(api_key, access_token, root=ws_root, reconnect=True,
                                 reconnect_max_delay=reconnect_max_delay_s)
        # KiteTicker caps reconnect_max_tries at 300; None is Twisted's "forever", which
        # KiteTicker's factory also understands (send_noreconnect checks `is not None`).
        ticker.reconnect_max_tries = None
        create_connection = ticker._create_connection

        def create_and_tune(url: str, **kwargs: Any) -> None:
            create_connection(url, **kwargs)
            if self._initial_delay is not None:  # before connectWS: the first retry uses it
                ticker.factory.initialDelay = ticker.factory.delay = self._initial_delay

        ticker._create_connection = create_and_tune
        ticker.on_ticks = self._on_ticks
        ticker.on_open = self._on_open
        ticker.on_close = self._on_close
        ticker.on_error = self._on_error
        ticker.on_reconnect = self._on_reconnect
        ticker.on_noreconnect = self._on_noreconnect
        ticker.on_order_update = self._on_order_update
        self._ticker = ticker

    # -- the caller's side (any thread) ---------------------------------------------

    @property
    def connected(self) -> bool:
        """True while the WebSocket is open."""
        return self._open

    @property
    def stats(self) -> dict[str, int]:
        """ticks (received), rejected, order_updates, connects, disconnects."""
        return dict(self._counts)

    def start(self, status_to: Inbox | None = None) -> None:
        """Connect in the background; starts the reactor thread if nothing runs it yet.
        ``status_to`` (if given) replaces the constructor's: the actor that starts the
        stream from its ``on_start`` names itself, so no status is sent before it exists."""
        if self._started:
            raise RuntimeError("KiteStream.start: already started")
        self._started = True
        if status_to is not None:
            self._status_to = status_to
        if _REACTOR.running or next(_REACTOR_CLAIMS) > 0:
            _REACTOR.callFromThread(self._connect)  # queued until the reactor runs
        else:
            self._connect(threaded=True)  # connectWS now, then reactor.run on a daemon thread

    def set_tokens(self, tokens: frozenset[int]) -> None:
        """Stream exactly ``tokens`` from now on (thread-safe)."""
        tokens = frozenset(tokens)
        if len(tokens) > self._max:
            raise ValueError(f"tokens: at most {self._max} instruments, got {len(tokens)}")
        for token in tokens:
            if type(token) is not int or token <= 0:
                raise ValueError(f"tokens: must be integers > 0, got {token!r}")
        self._tokens = tokens
        _REACTOR.callFromThread(self._sync_tokens)

    def stop(self) -> None:
        """Close the connection and stop retrying (thread-safe); the reactor keeps running."""
        _REACTOR.callFromThread(self._stop)

    # -- the reactor thread ---------------------------------------------------------

    def _connect(self, threaded: bool = False) -> None:
        # KiteTicker.connect, except that wss:// verifies the server's certificate and
        # host name: the access token travels in the URL (KiteTicker's own context
        # factory verifies nothing).
        if self._stopped:
            return
        ticker = self._ticker
        ticker._create_connection(ticker.socket_url, useragent=ticker._user_agent(),
                                  proxy=None, headers={"X-Kite-Version": "3"})
        context = tls_options(ticker.socket_url) if ticker.factory.isSecure else None
        connectWS(ticker.factory, contextFactory=context, timeout=ticker.connect_timeout)
        if threaded and not _REACTOR.running:
            run: Any = getattr(_reactor, "run")  # noqa: B009 - the reactor is untyped here
            thread = threading.Thread(target=run, kwargs={"installSignalHandlers": False},
                                      name="kite-reactor", daemon=True)
            thread.start()
        _log.info("ticker_connecting", mode=self._mode)

    def _stop(self) -> None:
        if self._stopped:
            return
        self._stopped = True
        if getattr(self._ticker, "factory", None) is not None:
            self._close()
        _log.info("ticker_stopped")

    def _close(self) -> None:
        """Stop retrying; close the socket if open (a handshake in flight: see _on_open)."""
        self._ticker.stop_retry()
        if self._ticker.is_connected():
            self._ticker._close(1000, "stopped")

    def _sync_tokens(self) -> None:
        """Make the connection's subscriptions equal ``self._tokens`` in ``self._mode``."""
        if self._stopped:
            return
        want, mode, ticker = self._tokens, self._mode, self._ticker
        held: dict[int, str] = ticker.subscribed_tokens
        if not ticker.is_connected():
            held.clear()  # KiteTicker.resubscribe sends these, in their modes, on connect
            held.update(dict.fromkeys(want, mode))
            return
        new = sorted(want - held.keys())
        gone = sorted(held.keys() - want)
        remode = sorted(t for t in want & held.keys() if held[t] != mode)
        try:
            if gone:
                ticker.unsubscribe(gone)
            if new:
                ticker.subscribe(new)
                ticker.set_mode(mode, new)
            if remode:
                ticker.set_mode(mode, remode)
        except Exception:  # noqa: BLE001 - autobahn's send raises bare Exception
            _log.exception("ticker_subscribe_failed")  # KiteTicker closed the socket
            held.clear()
            held.update(dict.fromkeys(want, mode))
        _log.info("ticker_tokens", subscribed=len(want), added=len(new), removed=len(gone))

    def _tell_status(self, message: TickerConnected | TickerDisconnected) -> None:
        if self._status_to is not None:
            self._tell(self._status_to, message)

    def _tell(self, inbox: Inbox, message: object) -> None:
        try:
            inbox.tell(message)
        except pykka.ActorDeadError:
            _log.warning("ticker_inbox_dead", message=type(message).__name__)
        except Exception:  # noqa: BLE001  (a receiver's bug must not end the reconnects)
            _log.exception("ticker_inbox_failed", message=type(message).__name__)

    # KiteTicker callbacks: (ticker, ...) on the reactor thread.

    def _on_open(self, _ticker: Any) -> None:
        if self._stopped:  # stop() raced the handshake, whose success re-armed retrying
            self._close()
            return
        self._open = True
        self._counts["connects"] += 1
        reconnect = self._counts["connects"] > 1
        if not reconnect:  # on reconnects KiteTicker has already resubscribed
            self._ticker.resubscribe()
        self._sync_tokens()
        _log.info("ticker_connected", reconnect=reconnect, tokens=len(self._tokens))
        self._tell_status(TickerConnected(reconnect=reconnect))

    def _on_close(self, _ticker: Any, code: int | None, reason: str | None) -> None:
        was_open, self._open = self._open, False
        self._counts["disconnects"] += 1
        text = f"{code}: {reason}" if reason else f"{code}"
        _log.warning("ticker_disconnected", code=code, reason=reason, was_open=was_open,
                     retrying=not self._stopped)
        self._tell_status(TickerDisconnected(text[:200]))

    def _on_error(self, _ticker: Any, code: int | None, reason: object) -> None:
        # code 0: the server's {"type": "error"} frame; otherwise an unclean close,
        # which on_close reports next.
        _log.warning("ticker_error", code=code, reason=str(reason)[:200])

    def _on_reconnect(self, _ticker: Any, attempts: int) -> None:
        _log.info("ticker_reconnecting", attempt=attempts)

    def _on_noreconnect(self, _ticker: Any) -> None:
        _log.error("ticker_gave_up")
        self._tell_status(TickerDisconnected("reconnect attempts exhausted"))

    def _on_ticks(self, _ticker: Any, ticks: list[Mapping[str, Any]]) -> None:
        received = self._clock()
        prices: list[Price] = []
        for tick in ticks:
            result = tick_to_price(tick, received)
            if isinstance(result, Price):
                prices.append(result)
            else:
                self._counts["rejected"] += 1
                self._tell(self._prices_to, result)
        self._counts["ticks"] += len(ticks)
        if prices:
            self._tell(self._prices_to, RecordPrices(tuple(prices)))

    def _on_order_update(self, _ticker: Any, data: Mapping[str, Any]) -> None:
        self._counts["order_updates"] += 1
        self._tell(self._orders_to, OrderUpdateFrame(MappingProxyType(dict(data))))
