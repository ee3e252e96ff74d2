"""Reference strategies that trade the simulated market: momentum and a straddle."""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal

from actors.strategy._base import Intent, Strategy, StrategyContext
from messages import Instrument, InstrumentKind, OrderLeg, Price, Product, Side, SubmitEntry

__all__ = ["MomentumStrategy", "StraddleStrategy", "atm_option"]


def atm_option(ctx: StrategyContext, underlying: str, kind: InstrumentKind,
               spot: int, now: datetime) -> Instrument | None:
    """The nearest-expiry option of ``kind`` whose strike is closest to ``spot``."""
    expiries = [e for e in ctx.instruments.expiries(underlying) if e >= now.date()]
    if not expiries:
        return None
    chain = [i for i in ctx.instruments.options(underlying, min(expiries)) if i.kind is kind]
    if not chain:
        return None
    return min(chain, key=lambda i: abs((i.strike.paise if i.strike else 0) - spot))


class MomentumStrategy(Strategy):
    """Buys the ATM call after a rise of ``threshold_pct`` over ``lookback`` index ticks,
    the ATM put after a fall; intraday (MIS), one lot per ``lots``.

    The engine's duplicate guard stops a second entry while one is open;
    ``max_per_minute`` is the strategy's own brake.
    """

    name = "momentum"

    def __init__(self, underlying: str, lookback: int, threshold_pct: Decimal,
                 max_per_minute: int) -> None:
        self._underlying = underlying
        self._window: deque[int] = deque(maxlen=lookback)
        self._threshold = threshold_pct
        self._max = max_per_minute
        self._sent: deque[datetime] = deque(maxlen=max(1, max_per_minute))

    def watch(self, ctx: StrategyContext) -> frozenset[int]:
        return frozenset({ctx.instruments.underlying_index(self._underlying).instrument_token})

    def on_tick(self, price: Price, ctx: StrategyContext) -> Sequence[Intent]:
        spot = price.last.paise
        self._window.append(spot)
        if len(self._window) < (self._window.maxlen or 1):
            return ()
        first = self._window[0]
        move = Decimal(spot - first) * 100 / Decimal(first)
        if abs(move) < self._threshold:
            return ()
        now = price.exchange_ts
        if len(self._sent) == self._max and (now - self._sent[0]).total_seconds() < 60:
            return ()
        kind = InstrumentKind.CE if move > 0 else InstrumentKind.PE
        option = atm_option(ctx, self._underlying, kind, spot, now)
        if option is None:
            return ()
        self._sent.append(now)
        self._window.clear()
        return (SubmitEntry.single(self.name, option, Side.BUY, option.lot_size * ctx.lots,
                                   product=Product.MIS, exit_rules=ctx.exit_rules),)


class StraddleStrategy(Strategy):
    """Buys the ATM call and put together (a two-leg, all-or-nothing entry)
    every ``every_s`` simulated seconds."""

    name = "straddle"

    def __init__(self, underlying: str, every_s: float) -> None:
        self._underlying = underlying
        self._every = every_s
        self._last: datetime | None = None

    def watch(self, ctx: StrategyContext) -> frozenset[int]:
        return frozenset({ctx.instruments.underlying_index(self._underlying).instrument_token})

    def on_tick(self, price: Price, ctx: StrategyContext) -> Sequence[Intent]:
        now = price.exchange_ts
        if self._last is not None and (now - self._last).total_seconds() < self._every:
            return ()
        call = atm_option(ctx, self._underlying, InstrumentKind.CE, price.last.paise, now)
        put = atm_option(ctx, self._underlying, InstrumentKind.PE, price.last.paise, now)
        if call is None or put is None:
            return ()
        self._last = now
        legs = tuple(OrderLeg(i, Side.BUY, i.lot_size * ctx.lots, product=Product.MIS)
                     for i in (call, put))
        return (SubmitEntry(self.name, legs, ctx.exit_rules),)
