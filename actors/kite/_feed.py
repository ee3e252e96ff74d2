"""LiveFeedActor: prices from KiteTicker, with REST polling while the ticker is down."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any, Protocol

import structlog

from actors._base import EngineActor, Wake, WakeTimer
from actors._price import parse_quote
from actors.config._schema import Config
from actors.kite._calls import CallError, PermittedCalls, _Call
from actors.kite._convert import BrokerReplyError, as_ist
from actors.kite._stream import TickerConnected, TickerDisconnected
from actors.market import InstrumentTable
from messages import (
    EndpointClass,
    Inbox,
    PermitRefused,
    Price,
    PriceRejected,
    Priority,
    RecordPrices,
)

__all__ = ["LiveFeedActor", "Streamer", "batches"]

_log = structlog.get_logger("kitesaga.feed")


class Streamer(Protocol):
    """What the feed needs of a ticker connection (``KiteStream``)."""

    @property
    def connected(self) -> bool:
        """True while the connection is open."""

    def start(self, status_to: Inbox | None = None) -> None:
        """Connect (and keep reconnecting); connection news goes to ``status_to``."""

    def set_tokens(self, tokens: frozenset[int]) -> None:
        """Stream exactly these instruments."""

    def stop(self) -> None:
        """Close for good."""


def batches(keys: list[str], size: int) -> list[list[str]]:
    """``keys`` in consecutive batches of at most ``size``."""
    return [keys[i:i + size] for i in range(0, len(keys), size)]


class LiveFeedActor(PermittedCalls, EngineActor):
    """Keeps PriceActor fed with the instruments the engine watches.

    Contract:
    * ``watch()`` (the strategies' instruments, the option chains near the
      spot, the open positions) is re-read every ``live.rest_poll_interval_s``
      and streamed through the ticker (``Streamer.set_tokens``).
    * While the ticker is down, or has sent nothing for ``live.ticker_stale_s``,
      the same instruments are polled over REST: ``quote`` in batches of at
      most ``rate_limits.quote_max_instruments`` (or ``ltp``, at most
      ``rate_limits.ltp_max_instruments``), each call on a QUOTE permit, one
      round in flight at a time. Every price passes ``parse_quote``; what
      fails is reported to PriceActor as PriceRejected.
    * A ticker that cannot be reached at all is reported once (an alert); the
      stream keeps retrying in the background.
    * ``TickerConnected``/``TickerDisconnected`` are forwarded to ``gateway``
      (it polls orders while the ticker is down).
    """

    def __init__(self, kite: Any, stream: Streamer | None, config: Config, limiter: Inbox,
                 prices_to: Inbox, gateway: Inbox | None, instruments: InstrumentTable,
                 watch: Callable[[], frozenset[int]], now: Callable[[], datetime],
                 ticks_seen: Callable[[], int] = lambda: 0) -> None:
        super().__init__()
        self._kite = kite
        self._stream = stream
        self._live = config.live
        self._limits = config.rate_limits
        self._limiter = limiter
        self._prices_to = prices_to
        self._gateway = gateway
        self._instruments = instruments
        self._watch = watch
        self._now = now
        self._ticks_seen = ticks_seen
        self._tokens: frozenset[int] = frozenset()
        self._counts: dict[str, int] = dict.fromkeys(
            ("calls", "call_errors", "throttled", "rest_rounds", "rest_prices",
             "rest_rejected"), 0)
        self._jobs = {}
        self._next_job = 0
        self._in_flight = 0
        self._last_ticks = -1
        self._last_tick_change = time.monotonic()
        self._ever_connected = False
        self._started = time.monotonic()
        self._said_unreachable = False

    def on_start(self) -> None:
        self._me: Inbox = self.actor_ref
        self._timer = WakeTimer(self.actor_ref)
        self._refresh()
        if self._stream is not None:
            self._stream.start(status_to=self.actor_ref)  # TickerConnected/Disconnected
        self._timer.arm(time.monotonic() + self._live.rest_poll_interval_s)

    def on_stop(self) -> None:
        self._timer.cancel()
        if self._stream is not None:
            self._stream.stop()

    def receive(self, message: Any) -> Any:
        if isinstance(message, _Call):
            self._on_call(message)
        elif isinstance(message, Wake):
            self._timer.fired(message)
            self._refresh()
            self._timer.arm(time.monotonic() + self._live.rest_poll_interval_s)
        elif isinstance(message, TickerConnected | TickerDisconnected):
            self._ticker_changed(message)
        elif isinstance(message, PermitRefused):
            self._call_refused(message)
        else:
            self.unhandled(message)
        return None

    def _session_dead(self, error: CallError) -> None:
        # the gateway halts entries on a dead session; the feed keeps trying (REST prices
        # come back once `kitesaga login` has run and the engine restarted)
        _log.error("alert", alert="broker_session_expired", source="feed", error=error.message)

    @property
    def counts(self) -> Mapping[str, int]:
        """Calls, REST rounds, REST prices and rejections so far (a copy)."""
        return dict(self._counts)

    def _ticker_changed(self, message: TickerConnected | TickerDisconnected) -> None:
        if isinstance(message, TickerConnected):
            self._ever_connected = True
            _log.info("ticker_connected", reconnect=message.reconnect)
        else:
            _log.warning("ticker_disconnected", reason=message.reason)
        if self._gateway is not None:
            self._gateway.tell(message)

    def _streaming(self) -> bool:
        """True while ticks flow (the connection is up and not silent too long)."""
        now = time.monotonic()
        seen = self._ticks_seen()
        if seen != self._last_ticks:
            self._last_ticks, self._last_tick_change = seen, now
        up = self._stream is not None and self._stream.connected
        return up and (not self._tokens or now - self._last_tick_change < self._live.ticker_stale_s)

    def _refresh(self) -> None:
        tokens = self._watch()
        if tokens != self._tokens:
            self._tokens = tokens
            if self._stream is not None:
                self._stream.set_tokens(tokens)
        if self._streaming():
            return
        if not self._ever_connected and not self._said_unreachable and \
                time.monotonic() - self._started > self._live.ticker_stale_s:
            self._said_unreachable = True
            _log.error("alert", alert="ticker_unreachable",
                       action="trading on REST prices within the quote budget; the ticker "
                              "keeps retrying in the background")
        if self._in_flight == 0 and self._tokens:
            self._poll_rest()

    def _poll_rest(self) -> None:
        keys = [self._instruments.get(t).key for t in sorted(self._tokens)
                if t in self._instruments]
        ltp = self._live.rest_price_call == "ltp"
        size = self._limits.ltp_max_instruments if ltp else self._limits.quote_max_instruments
        self._counts["rest_rounds"] += 1
        for batch in batches(keys, size):
            self._in_flight += 1
            self._request(EndpointClass.QUOTE, Priority.READ, "ltp" if ltp else "quote", {},
                          self._got_quotes, args=tuple(batch))

    def _got_quotes(self, data: Any, error: CallError | None) -> None:
        self._in_flight -= 1
        if error is not None or not isinstance(data, Mapping):
            _log.warning("rest_prices_failed", error=error.message if error else "not an object")
            return
        received = self._now()
        prices: list[Price] = []
        ltp = self._live.rest_price_call == "ltp"
        for key, row in data.items():
            result = _price_of(key, row, received, ltp)
            if isinstance(result, Price):
                prices.append(result)
            else:
                self._counts["rest_rejected"] += 1
                self._prices_to.tell(result)
        self._counts["rest_prices"] += len(prices)
        if prices:
            self._prices_to.tell(RecordPrices(tuple(prices)))


def _price_of(key: str, row: Any, received: datetime, ltp: bool) -> Price | PriceRejected:
    """One REST quote (or ltp) row as a Price. An ltp row has no exchange
    timestamp, so it is stamped with the time it was received; a quote row
    without one is rejected."""
    if not isinstance(row, Mapping) or type(row.get("instrument_token")) is not int:
        return PriceRejected(0, f"quote {key}: no instrument_token")
    token = row["instrument_token"]
    stamp = row.get("timestamp")
    if stamp is None and not ltp:
        return PriceRejected(token, "exchange_ts: missing from the quote")
    try:
        exchange_ts = as_ist(stamp, "timestamp") if stamp is not None else received
    except BrokerReplyError as exc:
        return PriceRejected(token, str(exc)[:200])
    raw_depth = row.get("depth")
    depth: Mapping[str, Any] = raw_depth if isinstance(raw_depth, Mapping) else {}
    return parse_quote(token, row.get("last_price"), exchange_ts, received,
                       _best(depth, "buy"), _best(depth, "sell"))


def _best(depth: Mapping[str, Any], side: str) -> Any:
    levels = depth.get(side)
    if isinstance(levels, list) and levels and isinstance(levels[0], Mapping):
        return levels[0].get("price")
    return None
