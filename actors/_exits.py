"""Exit rules, compiled once per position into integer thresholds, checked per tick."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time
from decimal import ROUND_HALF_UP, Decimal
from typing import TYPE_CHECKING

from actors.market._calendar import IST
from messages import ExitRules, Instrument, Product

if TYPE_CHECKING:
    from actors.config import ExitsConfig

__all__ = ["ExitPlan", "configured_rules"]


def configured_rules(exits: ExitsConfig) -> ExitRules:
    """The exit rules ``[exits]`` gives every new (or adopted) position."""
    return ExitRules(exits.stop_loss_pct, exits.take_profit_pct, exits.trail_activation_pct,
                     exits.trail_giveback_pct, exits.square_off_at, exits.exit_on_expiry_day)

_HUNDRED = Decimal(100)


def _scaled(price: int, pct: Decimal, up: bool) -> int:
    factor = (_HUNDRED + pct) / _HUNDRED if up else (_HUNDRED - pct) / _HUNDRED
    return int((Decimal(price) * factor).quantize(Decimal(1), rounding=ROUND_HALF_UP))


@dataclass(frozen=True, slots=True)
class ExitPlan:
    """A position's exit rules turned into paise thresholds for its direction.

    Contract: ``check`` is pure and O(1); it names the first rule that fires
    (stop-loss, take-profit, trailing stop, square-off for intraday
    products, expiry day at the square-off time) or returns None. For a
    short position every comparison is mirrored.
    ``peak`` is the best price seen since entry (highest for a long,
    lowest for a short); the caller keeps it with :meth:`new_peak`.
    """

    long: bool
    entry: int
    stop: int | None
    target: int | None
    trail_activation: int | None
    giveback: Decimal | None
    square_off_at: time | None
    expiry: date | None
    expiry_exit_at: time | None

    @classmethod
    def compile(cls, rules: ExitRules, instrument: Instrument, product: Product, long: bool,
                entry_price: int) -> ExitPlan:
        """Build the plan for a position opened at ``entry_price`` paise."""
        loss_up = not long  # a loss is a rise for a short
        stop = None if rules.stop_loss_pct is None else _scaled(
            entry_price, rules.stop_loss_pct, loss_up)
        target = None if rules.take_profit_pct is None else _scaled(
            entry_price, rules.take_profit_pct, long)
        activation = None if rules.trail_activation_pct is None else _scaled(
            entry_price, rules.trail_activation_pct, long)
        square_off = rules.square_off_at if product is Product.MIS else None
        expiry = instrument.expiry if rules.exit_on_expiry_day else None
        expiry_at = (rules.square_off_at or time(0)) if expiry is not None else None
        return cls(long, entry_price, stop, target, activation, rules.trail_giveback_pct,
                   square_off, expiry, expiry_at)

    def new_peak(self, peak: int, last: int) -> int:
        """The best price so far after a tick at ``last``."""
        return max(peak, last) if self.long else min(peak, last)

    def check(self, last: int, peak: int, now: datetime) -> str | None:
        """The rule that fires at price ``last`` (paise) and time ``now``, if any."""
        if self.long:
            if self.stop is not None and last <= self.stop:
                return "stop-loss"
            if self.target is not None and last >= self.target:
                return "take-profit"
        else:
            if self.stop is not None and last >= self.stop:
                return "stop-loss"
            if self.target is not None and last <= self.target:
                return "take-profit"
        if self.trail_activation is not None and self.giveback is not None:
            active = peak >= self.trail_activation if self.long else peak <= self.trail_activation
            if active:
                trigger = _scaled(peak, self.giveback, not self.long)
                if (last <= trigger) if self.long else (last >= trigger):
                    return "trailing-stop"
        if self.square_off_at is not None or self.expiry is not None:
            local = now.astimezone(IST)
            clock = local.time()
            if self.square_off_at is not None and clock >= self.square_off_at:
                return "square-off"
            if (self.expiry is not None and self.expiry_exit_at is not None
                    and local.date() >= self.expiry and clock >= self.expiry_exit_at):
                return "expiry-day"
        return None
