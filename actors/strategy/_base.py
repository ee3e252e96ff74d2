"""The Strategy interface: ticks and bars in, order intents out."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from messages import ExitRules, Price, SubmitEntry, SubmitExit

if TYPE_CHECKING:
    from actors._portfolio import PortfolioSnapshot
    from actors.market import InstrumentTable

__all__ = ["Bar", "Intent", "Strategy", "StrategyContext"]

Intent = SubmitEntry | SubmitExit
"""What a strategy may ask for: open a position or close one."""


@dataclass(frozen=True, slots=True)
class Bar:
    """One minute of one instrument's validated prices, in paise."""

    instrument_token: int
    start: datetime
    open: int
    high: int
    low: int
    close: int
    ticks: int


@dataclass(frozen=True, slots=True)
class StrategyContext:
    """What a strategy may read. Nothing here can change engine state.

    ``portfolio`` returns the latest immutable snapshot the PortfolioActor
    published.
    """

    instruments: InstrumentTable
    exit_rules: ExitRules
    lots: int
    now: Callable[[], datetime]
    portfolio: Callable[[], PortfolioSnapshot]


class Strategy(ABC):
    """A trading idea run by the StrategyHostActor.

    Contract: a strategy sees only the context and the prices it is given,
    and returns intents (messages) that OrderActor validates, risk-checks and
    may refuse. It never touches actor state, never blocks, and must be
    cheap: it runs on the host's thread for every tick it watches.
    """

    name: str = "strategy"

    @abstractmethod
    def watch(self, ctx: StrategyContext) -> frozenset[int]:
        """Instrument tokens whose ticks and bars this strategy wants."""

    def on_tick(self, price: Price, ctx: StrategyContext) -> Sequence[Intent]:
        """React to a validated tick of a watched instrument."""
        return ()

    def on_bar(self, bar: Bar, ctx: StrategyContext) -> Sequence[Intent]:
        """React to a completed one-minute bar of a watched instrument."""
        return ()
