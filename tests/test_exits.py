"""ExitPlan: exit rules compiled into paise thresholds, checked per tick.

Every threshold is checked exactly in paise: at the threshold the rule fires,
one paisa on the safe side it does not.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest

from actors._exits import ExitPlan
from messages import Exchange, ExitRules, Instrument, InstrumentKind, Money, Product

IST = ZoneInfo("Asia/Kolkata")
EXPIRY = date(2026, 12, 1)
BEFORE_EXPIRY = datetime(2026, 11, 25, 10, 0, tzinfo=IST)

OPTION = Instrument(10_000_123, Exchange.NFO, "NIFTY26DEC24000CE", "NIFTY", InstrumentKind.CE,
                    65, Money(5), expiry=EXPIRY, strike=Money(24000_00))
EQUITY = Instrument(30_000_001, Exchange.NSE, "M&M", "M&M", InstrumentKind.EQ, 1, Money(5))


def plan(rules: ExitRules, long: bool = True, entry: int = 100_00,
         product: Product = Product.NRML, instrument: Instrument = OPTION) -> ExitPlan:
    return ExitPlan.compile(rules, instrument, product, long, entry)


def no_expiry(**rules: object) -> ExitRules:
    return ExitRules(exit_on_expiry_day=False, **rules)  # type: ignore[arg-type]


# -- stop-loss ---------------------------------------------------------------------


def test_long_stop_loss_fires_at_threshold_exactly() -> None:
    p = plan(no_expiry(stop_loss_pct=Decimal(10)), entry=150_00)
    assert p.stop == 135_00
    assert p.check(135_01, 150_00, BEFORE_EXPIRY) is None
    assert p.check(135_00, 150_00, BEFORE_EXPIRY) == "stop-loss"
    assert p.check(1, 150_00, BEFORE_EXPIRY) == "stop-loss"


def test_short_stop_loss_is_a_rise() -> None:
    p = plan(no_expiry(stop_loss_pct=Decimal(10)), long=False, entry=150_00)
    assert p.stop == 165_00
    assert p.check(164_99, 150_00, BEFORE_EXPIRY) is None
    assert p.check(165_00, 150_00, BEFORE_EXPIRY) == "stop-loss"
    assert p.check(100_00, 100_00, BEFORE_EXPIRY) is None  # a fall is a gain for a short


def test_stop_threshold_rounds_half_up_to_the_paisa() -> None:
    # 105 paise * 0.9 = 94.5 -> 95; 333 * 0.9 = 299.7 -> 300
    assert plan(no_expiry(stop_loss_pct=Decimal(10)), entry=105).stop == 95
    p = plan(no_expiry(stop_loss_pct=Decimal(10)), entry=333)
    assert p.stop == 300
    assert p.check(301, 333, BEFORE_EXPIRY) is None
    assert p.check(300, 333, BEFORE_EXPIRY) == "stop-loss"
    # fractional percentages stay exact (Decimal, no float drift)
    assert plan(no_expiry(stop_loss_pct=Decimal("0.1")), entry=100_00).stop == 99_90


# -- take-profit -------------------------------------------------------------------


def test_long_take_profit_fires_at_threshold_exactly() -> None:
    p = plan(no_expiry(take_profit_pct=Decimal(40)), entry=150_00)
    assert p.target == 210_00
    assert p.check(209_99, 209_99, BEFORE_EXPIRY) is None
    assert p.check(210_00, 210_00, BEFORE_EXPIRY) == "take-profit"


def test_short_take_profit_is_a_fall() -> None:
    p = plan(no_expiry(take_profit_pct=Decimal(40)), long=False, entry=150_00)
    assert p.target == 90_00
    assert p.check(90_01, 90_01, BEFORE_EXPIRY) is None
    assert p.check(90_00, 90_00, BEFORE_EXPIRY) == "take-profit"
    assert p.check(300_00, 150_00, BEFORE_EXPIRY) is None  # no stop configured


def test_stop_loss_is_named_before_take_profit() -> None:
    rules = no_expiry(stop_loss_pct=Decimal(10), take_profit_pct=Decimal(10))
    p = plan(rules, entry=100_00)
    assert p.check(90_00, 100_00, BEFORE_EXPIRY) == "stop-loss"
    assert p.check(110_00, 110_00, BEFORE_EXPIRY) == "take-profit"
    assert p.check(100_00, 100_00, BEFORE_EXPIRY) is None


# -- trailing stop -----------------------------------------------------------------


def test_long_trailing_stop_needs_activation_then_gives_back() -> None:
    rules = no_expiry(trail_activation_pct=Decimal(20), trail_giveback_pct=Decimal(10))
    p = plan(rules, entry=100_00)
    assert p.trail_activation == 120_00
    # not activated: peak 119.95 -> a deep fall is not a trailing stop
    peak = p.new_peak(100_00, 119_95)
    assert peak == 119_95
    assert p.check(50_00, peak, BEFORE_EXPIRY) is None
    # activated at exactly 120.00: the trigger is 10% below the peak
    peak = p.new_peak(peak, 120_00)
    assert p.check(108_01, peak, BEFORE_EXPIRY) is None
    assert p.check(108_00, peak, BEFORE_EXPIRY) == "trailing-stop"
    # the peak ratchets up and never down
    peak = p.new_peak(peak, 150_00)
    assert p.new_peak(peak, 140_00) == 150_00
    assert p.check(135_01, peak, BEFORE_EXPIRY) is None
    assert p.check(135_00, peak, BEFORE_EXPIRY) == "trailing-stop"


def test_short_trailing_stop_is_mirrored() -> None:
    rules = no_expiry(trail_activation_pct=Decimal(20), trail_giveback_pct=Decimal(10))
    p = plan(rules, long=False, entry=100_00)
    assert p.trail_activation == 80_00
    peak = p.new_peak(100_00, 80_05)
    assert peak == 80_05
    assert p.check(200_00, peak, BEFORE_EXPIRY) is None  # not activated
    peak = p.new_peak(peak, 80_00)
    assert peak == 80_00
    assert p.check(87_99, peak, BEFORE_EXPIRY) is None
    assert p.check(88_00, peak, BEFORE_EXPIRY) == "trailing-stop"
    peak = p.new_peak(peak, 50_00)
    assert p.new_peak(peak, 60_00) == 50_00  # the best price for a short is the lowest
    assert p.check(54_99, peak, BEFORE_EXPIRY) is None
    assert p.check(55_00, peak, BEFORE_EXPIRY) == "trailing-stop"


def test_trailing_stop_trigger_rounds_half_up() -> None:
    rules = no_expiry(trail_activation_pct=Decimal(1), trail_giveback_pct=Decimal(10))
    p = plan(rules, entry=100)
    # peak 105 paise: trigger 94.5 -> 95
    assert p.check(96, 105, BEFORE_EXPIRY) is None
    assert p.check(95, 105, BEFORE_EXPIRY) == "trailing-stop"


# -- square-off (intraday only) ----------------------------------------------------


def test_square_off_only_for_mis_at_or_after_the_time() -> None:
    rules = no_expiry(square_off_at=time(15, 15))
    mis = plan(rules, product=Product.MIS, instrument=EQUITY)
    day = date(2026, 11, 25)
    assert mis.check(100_00, 100_00, datetime.combine(day, time(15, 14, 59), IST)) is None
    assert mis.check(100_00, 100_00, datetime.combine(day, time(15, 15), IST)) == "square-off"
    assert mis.check(100_00, 100_00, datetime.combine(day, time(15, 29), IST)) == "square-off"
    for product in (Product.NRML, Product.CNC):
        held = plan(rules, product=product, instrument=EQUITY)
        assert held.square_off_at is None
        assert held.check(100_00, 100_00, datetime.combine(day, time(15, 29), IST)) is None


def test_square_off_time_is_read_in_ist_whatever_the_timestamp_zone() -> None:
    mis = plan(no_expiry(square_off_at=time(15, 15)), product=Product.MIS, instrument=EQUITY)
    # 09:44:59 UTC is 15:14:59 IST; 09:45 UTC is 15:15 IST
    assert mis.check(100_00, 100_00, datetime(2026, 11, 25, 9, 44, 59, tzinfo=UTC)) is None
    assert mis.check(100_00, 100_00, datetime(2026, 11, 25, 9, 45, tzinfo=UTC)) == "square-off"


def test_price_rules_are_named_before_square_off() -> None:
    rules = no_expiry(stop_loss_pct=Decimal(10), square_off_at=time(15, 15))
    mis = plan(rules, product=Product.MIS, instrument=EQUITY)
    late = datetime(2026, 11, 25, 15, 20, tzinfo=IST)
    assert mis.check(90_00, 100_00, late) == "stop-loss"
    assert mis.check(95_00, 100_00, late) == "square-off"


# -- expiry day --------------------------------------------------------------------


def test_expiry_day_exit_fires_on_expiry_day_only() -> None:
    p = plan(ExitRules())  # exit_on_expiry_day defaults to True; no square-off time
    assert p.expiry == EXPIRY
    assert p.check(100_00, 100_00, datetime.combine(date(2026, 11, 30), time(15, 29),
                                                   IST)) is None
    assert p.check(100_00, 100_00, datetime.combine(EXPIRY, time(9, 15), IST)) == "expiry-day"


def test_expiry_day_exit_waits_for_the_square_off_time() -> None:
    p = plan(ExitRules(square_off_at=time(15, 0)))  # NRML: no intraday square-off
    assert p.square_off_at is None
    assert p.check(100_00, 100_00, datetime.combine(EXPIRY, time(14, 59, 59), IST)) is None
    assert p.check(100_00, 100_00, datetime.combine(EXPIRY, time(15, 0), IST)) == "expiry-day"


def test_expiry_day_exit_can_be_disabled_and_equity_has_none() -> None:
    on_expiry = datetime.combine(EXPIRY, time(15, 20), IST)
    assert plan(no_expiry()).check(100_00, 100_00, on_expiry) is None
    assert plan(ExitRules(), instrument=EQUITY).expiry is None
    assert plan(ExitRules(), instrument=EQUITY).check(100_00, 100_00, on_expiry) is None


# -- nothing fires -----------------------------------------------------------------


@pytest.mark.parametrize("long", [True, False])
def test_no_rule_fires_inside_every_band(long: bool) -> None:
    rules = ExitRules(stop_loss_pct=Decimal(25), take_profit_pct=Decimal(40),
                      trail_activation_pct=Decimal(15), trail_giveback_pct=Decimal(8),
                      square_off_at=time(15, 15), exit_on_expiry_day=True)
    p = plan(rules, long=long, entry=100_00, product=Product.NRML)
    for last in (76_00, 90_00, 100_00, 110_00, 114_95, 85_05):
        peak = p.new_peak(100_00, last)
        assert p.check(last, peak, BEFORE_EXPIRY) is None, last


def test_no_rules_never_fire() -> None:
    p = plan(no_expiry(), product=Product.MIS)
    assert (p.stop, p.target, p.trail_activation, p.square_off_at, p.expiry) == (
        None, None, None, None, None)
    for last in (1, 100_00, 10_000_00):
        assert p.check(last, last, datetime.combine(EXPIRY, time(15, 29), IST)) is None
