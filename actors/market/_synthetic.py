"""The built-in simulated market: seeded random walks and Black-Scholes options.

Every underlying index follows a geometric random walk with zero drift,
``S' = S * exp(-sigma^2 dt / 2 + sigma sqrt(dt) Z)``, where ``dt`` is elapsed
simulated time in trading years (``seconds / (252 * 6.25 * 3600)``) and ``Z``
is standard normal. Options are priced by Black-Scholes (no dividends) on
that spot, with time to expiry measured to the session close on the expiry
day in calendar years, and a volatility smile

    iv = base_iv * (1 + smile_curvature * ln(K / S)^2 * 100)

so that out-of-the-money strikes carry a higher implied volatility than the
money (curvature 0.8: +19 % of base iv five per cent away from the spot).
Futures are quoted at the forward ``S * exp(r T)``. Equities (everything else,
``SYNnnnn`` included) walk independently. Prices are integer paise on the
instrument's tick; bid and ask sit ``max(spread_ticks * tick, mid * spread_bps
/ 10000)`` either side of the mid, rounded to the tick. Indices carry no bid
or ask (Kite's index quotes have no depth).
"""

from __future__ import annotations

import math
import random
from datetime import datetime, time
from decimal import Decimal

from actors.config._schema import MarketConfig
from actors.market._calendar import IST
from actors.market._instruments import InstrumentTable
from messages import Instrument, InstrumentKind, Money, Price

__all__ = ["SyntheticMarket", "black_scholes", "smile_volatility"]

_SECONDS_PER_TRADING_YEAR = 252 * 6.25 * 3600  # random-walk clock: 252 sessions of 6.25 hours
_SECONDS_PER_CALENDAR_YEAR = 365 * 24 * 3600  # option time to expiry
_MIN_EXPIRY_SECONDS = 60.0  # time-to-expiry floor: an expiring option keeps a value > 0
_EXPIRY_CLOSE = time(15, 30)  # options expire at the session close (IST) of the expiry day
_SMILE_SCALE = 100.0  # the "* 100" of the smile formula
_BPS = 10_000.0  # basis points per unit
_PAISE_PER_RUPEE = 100.0
_EQUITY_ANNUAL_VOLATILITY = 0.25  # random walk of equities (and indices with no config)
_EQUITY_DEFAULT_PAISE = 10_000.0  # an equity whose dump row has no last_price starts here
_SQRT2 = math.sqrt(2.0)

_INDEX, _EQUITY, _OPTION, _FUTURE = range(4)


def _cdf(x: float) -> float:
    """The standard normal cumulative distribution function."""
    return 0.5 * math.erfc(-x / _SQRT2)


def _bs(spot: float, strike: float, years: float, rate: float, vol: float, call: bool) -> float:
    sd = vol * math.sqrt(years)
    d1 = (math.log(spot / strike) + (rate + 0.5 * vol * vol) * years) / sd
    d2 = d1 - sd
    discounted = strike * math.exp(-rate * years)
    if call:
        return spot * _cdf(d1) - discounted * _cdf(d2)
    return discounted * _cdf(-d2) - spot * _cdf(-d1)


def black_scholes(
    spot: float, strike: float, years: float, rate: float, vol: float, *, call: bool
) -> float:
    """The Black-Scholes price of a European call (or put), without dividends.

    ``spot`` and ``strike`` in the same unit (the result is in that unit),
    ``years`` to expiry, continuous ``rate`` and ``vol`` annualised; all but
    ``rate`` must be finite and > 0 (``ValueError`` naming the argument).
    """
    for field, value in (("spot", spot), ("strike", strike), ("years", years), ("vol", vol)):
        if not math.isfinite(value) or value <= 0:
            raise ValueError(f"{field}: must be a finite number > 0, got {value!r}")
    if not math.isfinite(rate):
        raise ValueError(f"rate: must be finite, got {rate!r}")
    return max(0.0, _bs(spot, strike, years, rate, vol, call))


def smile_volatility(base_iv: float, curvature: float, strike: float, spot: float) -> float:
    """``base_iv * (1 + curvature * ln(strike / spot)^2 * 100)``: the market's smile."""
    moneyness = math.log(strike / spot)
    return base_iv * (1.0 + curvature * moneyness * moneyness * _SMILE_SCALE)


def _check_config(config: MarketConfig) -> None:
    """Reject values the pricing cannot use (the loader validates too; this is the boundary)."""
    positive: list[tuple[str, Decimal | int]] = [("market.base_iv", config.base_iv)]
    non_negative: list[tuple[str, Decimal | int]] = [
        ("market.smile_curvature", config.smile_curvature),
        ("market.spread_ticks", config.spread_ticks),
        ("market.spread_bps", config.spread_bps),
    ]
    for u in config.underlyings:
        positive.append((f"market.underlyings.{u.name}.spot_rupees", u.spot_rupees))
        non_negative.append((f"market.underlyings.{u.name}.annual_volatility", u.annual_volatility))
    checks = [(f, float(v), float(v) > 0) for f, v in positive]
    checks += [(f, float(v), float(v) >= 0) for f, v in non_negative]
    checks.append(("market.risk_free_rate", float(config.risk_free_rate), True))
    for field, value, in_range in checks:
        if not in_range or not math.isfinite(value):
            raise ValueError(f"{field}: out of range, got {value!r}")


class _Walk:
    """A geometric random walk's state (value in paise)."""

    __slots__ = ("sigma", "value")

    def __init__(self, value: float, sigma: float) -> None:
        self.value = value
        self.sigma = sigma


class _Entry:
    """Per-instrument constants, computed once."""

    __slots__ = ("call", "expiry_ts", "instrument", "kind", "strike", "tick", "token", "walk")

    def __init__(
        self, kind: int, instrument: Instrument, walk: _Walk, expiry_ts: float = 0.0
    ) -> None:
        self.kind = kind
        self.instrument = instrument
        self.token = instrument.instrument_token
        self.tick = instrument.tick_size.paise
        self.walk = walk
        self.strike = float(instrument.strike.paise) if instrument.strike is not None else 0.0
        self.call = instrument.kind is InstrumentKind.CE
        self.expiry_ts = expiry_ts


class SyntheticMarket:
    """A deterministic simulated market that quotes every instrument of a table.

    Contract: prices depend only on ``config``, the table and the sequence of
    times given to :meth:`step` (same seed and same steps: identical prices;
    the underlyings' paths do not depend on how many equities are listed).
    Every quote is on its instrument's tick, at least one tick, and for
    tradable instruments ``tick <= bid <= last <= ask`` with ``bid < ask``.
    Options and futures must be written on a configured underlying, whose
    index must be in the table (``ValueError`` otherwise). Owned by one actor:
    not thread-safe, no locks.
    """

    def __init__(
        self,
        config: MarketConfig,
        table: InstrumentTable,
        start: datetime,
        *,
        session_close: time = _EXPIRY_CLOSE,
    ) -> None:
        if not isinstance(start, datetime) or start.utcoffset() is None:
            raise ValueError(f"start: must be a timezone-aware datetime, got {start!r}")
        _check_config(config)
        self._rate = float(config.risk_free_rate)
        self._base_iv = float(config.base_iv)
        self._curvature = float(config.smile_curvature)
        self._spread_ticks = config.spread_ticks
        self._spread_fraction = float(config.spread_bps) / _BPS
        self._rng = random.Random(config.seed)
        self._equity_rng = random.Random(self._rng.getrandbits(64))
        self._spots: dict[str, _Walk] = {}
        self._index_of: dict[str, Instrument] = {}
        index_tokens: dict[int, str] = {}
        for underlying in config.underlyings:
            spot = float(underlying.spot_rupees) * _PAISE_PER_RUPEE
            self._spots[underlying.name] = _Walk(spot, float(underlying.annual_volatility))
            index = table.underlying_index(underlying.name)
            self._index_of[underlying.name] = index
            index_tokens[index.instrument_token] = underlying.name
        self._equity_walks: list[_Walk] = []
        self._entries = [self._entry(i, table, index_tokens, session_close) for i in table]
        self._by_token = {entry.token: entry for entry in self._entries}
        self._now = start
        self._last_ts = start.timestamp()
        self._quotes: dict[int, Price] = {}

    def _entry(
        self,
        instrument: Instrument,
        table: InstrumentTable,
        index_tokens: dict[int, str],
        session_close: time,
    ) -> _Entry:
        name = index_tokens.get(instrument.instrument_token)
        if name is not None:
            return _Entry(_INDEX, instrument, self._spots[name])
        if instrument.kind is InstrumentKind.EQ:
            reference = table.reference_price(instrument.instrument_token)
            start = float(reference.paise) if reference is not None else _EQUITY_DEFAULT_PAISE
            walk = _Walk(start, _EQUITY_ANNUAL_VOLATILITY)
            self._equity_walks.append(walk)
            return _Entry(_EQUITY, instrument, walk)
        walk_of = self._spots.get(instrument.name)
        if walk_of is None or instrument.expiry is None:
            raise ValueError(
                f"instrument_token: {instrument.instrument_token} ({instrument.key}) is written "
                f"on {instrument.name}, which market.underlyings does not configure"
            )
        expiry_ts = datetime.combine(instrument.expiry, session_close, IST).timestamp()
        kind = _OPTION if instrument.is_option else _FUTURE
        return _Entry(kind, instrument, walk_of, expiry_ts)

    @property
    def now(self) -> datetime:
        """The simulated time of the last step (``start`` before the first)."""
        return self._now

    def step(self, now: datetime) -> list[Price]:
        """Advance the walks to ``now`` (aware, not before the last step); quote everything.

        Returns one Price per instrument of the table, in token order, each
        with ``exchange_ts = received_ts = now``.
        """
        if not isinstance(now, datetime) or now.utcoffset() is None:
            raise ValueError(f"now: must be a timezone-aware datetime, got {now!r}")
        ts = now.timestamp()
        elapsed = ts - self._last_ts
        if elapsed < 0:
            raise ValueError(
                f"now: {now.isoformat()} is before the last step {self._now.isoformat()}"
            )
        if elapsed > 0:
            years = elapsed / _SECONDS_PER_TRADING_YEAR
            self._walk(list(self._spots.values()), self._rng, years)
            self._walk(self._equity_walks, self._equity_rng, years)
        self._now = now
        self._last_ts = ts
        return self._quote_all(now, ts)

    @staticmethod
    def _walk(walks: list[_Walk], rng: random.Random, years: float) -> None:
        root = math.sqrt(years)
        gauss = rng.gauss
        exp = math.exp
        for walk in walks:
            sigma = walk.sigma
            walk.value *= exp(-0.5 * sigma * sigma * years + sigma * root * gauss(0.0, 1.0))

    def _quote_all(self, now: datetime, ts: float) -> list[Price]:
        rate, base_iv, curvature = self._rate, self._base_iv, self._curvature
        spread_ticks, fraction = self._spread_ticks, self._spread_fraction
        log, exp, bs = math.log, math.exp, _bs
        quotes = self._quotes
        prices: list[Price] = []
        append = prices.append
        for entry in self._entries:
            kind = entry.kind
            spot = entry.walk.value
            if kind == _OPTION:
                years = max(entry.expiry_ts - ts, _MIN_EXPIRY_SECONDS) / _SECONDS_PER_CALENDAR_YEAR
                moneyness = log(entry.strike / spot)
                vol = base_iv * (1.0 + curvature * moneyness * moneyness * _SMILE_SCALE)
                mid = bs(spot, entry.strike, years, rate, vol, entry.call)
            elif kind == _FUTURE:
                years = max(entry.expiry_ts - ts, 0.0) / _SECONDS_PER_CALENDAR_YEAR
                mid = spot * exp(rate * years)
            else:
                mid = spot
            instrument = entry.instrument
            last = instrument.round_to_tick(int(mid + 0.5))
            if kind == _INDEX:
                price = Price(entry.token, last, now, now)
            else:
                tick = entry.tick
                half = max(spread_ticks * tick, mid * fraction)
                bid = instrument.round_to_tick(int(mid - half + 0.5))
                ask = instrument.round_to_tick(int(mid + half + 0.5))
                if ask.paise <= bid.paise:
                    ask = Money(bid.paise + tick)
                price = Price(entry.token, last, now, now, bid, ask)
            quotes[entry.token] = price
            append(price)
        return prices

    def spot(self, name: str) -> int:
        """The current spot of underlying ``name`` in paise, on its index's tick."""
        walk = self._spots.get(name)
        if walk is None:
            raise ValueError(f"name: unknown underlying {name}")
        return self._index_of[name].round_to_tick(int(walk.value + 0.5)).paise

    def quote(self, token: int) -> Price | None:
        """The last Price computed for ``token`` (None before the first step)."""
        return self._quotes.get(token)

    def implied_volatility(self, token: int) -> float:
        """The smile's volatility of option ``token`` at the current spot."""
        entry = self._by_token.get(token)
        if entry is None or entry.kind != _OPTION:
            raise ValueError(f"instrument_token: not an option of this market, got {token}")
        return smile_volatility(self._base_iv, self._curvature, entry.strike, entry.walk.value)
