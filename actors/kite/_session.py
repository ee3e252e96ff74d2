"""Starting live mode: the token, the client, the clock, the instruments, the cash.

Everything here runs once, before any actor starts, on the starting thread:
blocking I/O is fine and a failure stops the start with a clear error
(``LiveStartError``, exit 2), never a half-started engine.
"""

from __future__ import annotations

import csv
import io
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, TypeVar

import requests
import structlog
from kiteconnect import KiteConnect
from kiteconnect import exceptions as kite_errors

from actors.config._schema import Config, RateLimitsConfig
from actors.kite._convert import BrokerReplyError, rupees
from actors.kite._token import StoredToken, valid_access_token
from actors.log import register_secret
from actors.market import COLUMNS, IST, Clock, InstrumentTable, SimClock, WallClock
from messages import EndpointClass, InstrumentKind, Money

__all__ = ["API_ROOT_ENV", "WS_ROOT_ENV", "LiveSession", "LiveStartError", "chain_tokens",
           "load_instruments", "new_client", "watch_function"]

T = TypeVar("T")

_log = structlog.get_logger("kitesaga.live")

API_ROOT_ENV = "ZERODHA_API_ROOT"
SECRET_ENV = ("ZERODHA_API_KEY", "ZERODHA_API_SECRET", "ZERODHA_TOKEN_KEY")
"""Never printed, never logged: the structlog processor redacts their values."""
WS_ROOT_ENV = "ZERODHA_WS_ROOT"


class LiveStartError(ValueError):
    """Live mode cannot start; the message says why and what to do."""


def new_client(api_key: str, access_token: str, root: str, timeout: float) -> Any:
    """A ``KiteConnect`` client that no proxy variable can divert."""
    kite = KiteConnect(api_key, access_token=access_token, root=root, timeout=timeout)
    kite.reqsession.trust_env = False
    return kite


@dataclass(frozen=True, slots=True)
class LiveSession:
    """What a live engine needs from the broker before its actors start.

    ``client()`` makes a fresh client (one per owning actor: each owns its
    HTTP session). ``cash`` is the equity segment's net margin at start.
    ``calls`` are the broker calls start-up made (class, monotonic time when
    answered), for RateLimitActor's windows.
    """

    token: StoredToken
    calls: tuple[tuple[EndpointClass, float], ...]
    api_root: str
    ws_root: str
    timeout: float
    clock: Clock
    instruments: InstrumentTable
    cash: Money

    def client(self) -> Any:
        """A new client for one actor."""
        return new_client(self.token.api_key, self.token.access_token, self.api_root,
                          self.timeout)

    @classmethod
    def connect(cls, config: Config, env: Mapping[str, str] | None = None) -> LiveSession:
        """Check the token, then read the clock, the instruments and the margin."""
        env = os.environ if env is None else env
        token = valid_access_token(config, env)  # TokenError: missing, expired, unreadable
        for secret in (token.access_token, token.api_key, *(
                env.get(name, "") for name in SECRET_ENV)):
            if secret:
                register_secret(secret)
        api_root = env.get(API_ROOT_ENV) or config.live.api_root
        ws_root = env.get(WS_ROOT_ENV) or config.live.ws_root
        timeout = config.live.request_timeout_s
        kite = new_client(token.api_key, token.access_token, api_root, timeout)
        calls: list[tuple[EndpointClass, float]] = []
        limits = config.rate_limits
        try:
            clock = _clock(config, api_root, timeout)
            instruments = _patiently(lambda: load_instruments(
                kite, config.live.exchanges, config.live.instruments_cache_max, calls), limits)
            margins = _patiently(lambda: kite.margins("equity"), limits)
            calls.append((EndpointClass.OTHER, time.monotonic()))
            cash = rupees(margins.get("net") if isinstance(margins, dict) else None,
                          "margins.equity.net")
        except kite_errors.TokenException as exc:
            raise LiveStartError(f"the broker refused the stored token ({exc}); run "
                                 "`kitesaga login`") from None
        except (kite_errors.KiteException, requests.RequestException, BrokerReplyError) as exc:
            raise LiveStartError(f"cannot reach the broker at {api_root}: "
                                 f"{type(exc).__name__}: {exc}"[:500]) from None
        _log.info("live_session", api_root=api_root, instruments=len(instruments),
                  cash=str(cash), expires_at=token.expires_at.isoformat())
        return cls(token, tuple(calls), api_root, ws_root, timeout, clock, instruments, cash)


def _patiently(call: Callable[[], T], limits: RateLimitsConfig) -> T:
    """``call()``, made again after a 429 (the broker did not execute it) with the
    limiter's back-off, at most ``retries_on_429`` times: a quick restart must not
    fail on the budget the previous run spent. Start-up runs before any actor, so
    this wait blocks nothing else."""
    delay, attempt = limits.backoff_initial_s, 0
    while True:
        try:
            return call()
        except kite_errors.NetworkException as exc:
            attempt += 1
            if exc.code != 429 or attempt > limits.retries_on_429:
                raise
            _log.warning("startup_call_throttled", attempt=attempt, retry_in_s=delay)
            time.sleep(delay)  # back-off before the retry, not synchronisation
            delay = min(delay * 2, limits.backoff_max_s)


def _clock(config: Config, api_root: str, timeout: float) -> Clock:
    if config.live.clock == "wall":
        return WallClock()
    # a dress rehearsal: follow the simulator's market clock
    reply = requests.get(f"{api_root.rstrip('/')}/_sim/clock", timeout=timeout)
    reply.raise_for_status()
    data = reply.json()
    if isinstance(data, dict) and isinstance(data.get("data"), dict):  # Kite's envelope
        data = data["data"]
    try:
        now = datetime.fromisoformat(str(data["now"]))
        speed = float(data["speed"])
    except (KeyError, TypeError, ValueError) as exc:
        raise BrokerReplyError(f"/_sim/clock: unreadable reply ({exc})") from None
    return SimClock(now, speed)


def load_instruments(kite: Any, exchanges: tuple[str, ...], limit: int,
                     calls: list[tuple[EndpointClass, float]] | None = None) -> InstrumentTable:
    """Today's instruments dump of ``exchanges``, at most ``limit`` instruments.
    Rows the engine cannot use are skipped and counted, not fatal. Each call
    made is appended to ``calls``."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(COLUMNS)
    for exchange in exchanges:
        rows = kite.instruments(exchange)
        if calls is not None:
            calls.append((EndpointClass.OTHER, time.monotonic()))
        for row in rows:
            writer.writerow([_cell(row.get(column)) for column in COLUMNS])
    skipped: list[str] = []
    table = InstrumentTable.from_csv(out.getvalue(), skipped.append, limit)
    if skipped:
        _log.warning("instruments_skipped", count=len(skipped), first=skipped[0][:200])
    if not len(table):
        raise BrokerReplyError(f"instruments: no usable instrument on {', '.join(exchanges)}")
    return table


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, date):
        return value.isoformat()
    return str(value)


def chain_tokens(instruments: InstrumentTable, name: str, spot_paise: int | None,
                 strikes: int, today: date) -> frozenset[int]:
    """The nearest expiry's options of ``name`` within ``strikes`` strikes of the spot."""
    if spot_paise is None:
        return frozenset()
    expiries = [e for e in instruments.expiries(name) if e >= today]
    if not expiries:
        return frozenset()
    chain = instruments.options(name, expiries[0])
    by_strike = sorted({o.strike.paise for o in chain if o.strike is not None},
                       key=lambda s: abs(s - spot_paise))[:2 * strikes + 1]
    near = set(by_strike)
    return frozenset(o.instrument_token for o in chain
                     if o.strike is not None and o.strike.paise in near
                     and o.kind in (InstrumentKind.CE, InstrumentKind.PE))


def watch_function(instruments: InstrumentTable, base: frozenset[int], underlyings: tuple[str, ...],
                   strikes: int, prices: Callable[[], Mapping[int, Any]],
                   positions: Callable[[], frozenset[int]],
                   today: Callable[[], datetime]) -> Callable[[], frozenset[int]]:
    """What the live feed streams: ``base`` (the strategies' instruments), the
    option chains near each underlying's spot, and every open position."""
    def watch() -> frozenset[int]:
        book = prices()
        tokens = set(base) | positions()
        day = today().astimezone(IST).date()
        for name in underlyings:
            try:
                index = instruments.underlying_index(name)
            except ValueError:
                continue
            tokens.add(index.instrument_token)
            price = book.get(index.instrument_token)
            spot = price.last.paise if price is not None else None
            tokens |= chain_tokens(instruments, name, spot, strikes, day)
        return frozenset(tokens)
    return watch
