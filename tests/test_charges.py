"""Charges against hand-worked contract notes (default schedule from configuration).

Every expected figure below is worked out by hand in the comments: each
component rounded to the paisa half-up, total = sum of the rounded components.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest

from actors.broker import Charges, ChargeSchedule, segment_for
from actors.config._schema import ChargeRate, ChargesConfig
from messages import Exchange, Instrument, InstrumentKind, Money, Product, Side

BEFORE_BUDGET = date(2026, 3, 10)
BUDGET = date(2026, 4, 1)


@pytest.fixture
def schedule() -> ChargeSchedule:
    return ChargeSchedule(ChargesConfig())


def rupees(text: str) -> Money:
    return Money.from_rupees(Decimal(text))


def note(brokerage: str, stt: str, transaction: str, sebi: str, stamp: str, gst: str) -> Charges:
    return Charges.of(rupees(brokerage), rupees(stt), rupees(transaction), rupees(sebi),
                      rupees(stamp), rupees(gst))


def test_option_buy_contract_note(schedule: ChargeSchedule) -> None:
    # Buy 65 NIFTY CE @ ₹100 on 2026-03-10: turnover 65 * 100 = ₹6,500
    # brokerage   flat                          = 20.00
    # STT         buy side 0%                   =  0.00
    # transaction 6500 * 0.03503% = 2.27695     →  2.28
    # SEBI        6500 * 10 / 1e7 = 0.0065      →  0.01
    # stamp       6500 * 0.003%   = 0.195       →  0.20
    # GST         18% * (20 + 2.28 + 0.01) = 4.0122 → 4.01
    # total       20 + 0 + 2.28 + 0.01 + 0.20 + 4.01 = 26.50
    charges = schedule.charges(BEFORE_BUDGET, "options", Side.BUY, rupees("6500"), True)
    assert charges == note("20.00", "0", "2.28", "0.01", "0.20", "4.01")
    assert charges.total == rupees("26.50")


def test_option_sell_contract_note_before_and_after_budget(schedule: ChargeSchedule) -> None:
    # Sell 65 NIFTY CE @ ₹120 on 2026-03-10: turnover ₹7,800
    # brokerage   flat                          = 20.00
    # STT         7800 * 0.1%      = 7.80       →  7.80
    # transaction 7800 * 0.03503%  = 2.73234    →  2.73
    # SEBI        7800 * 10 / 1e7  = 0.0078     →  0.01
    # stamp       sell side                     =  0.00
    # GST         18% * (20 + 2.73 + 0.01) = 4.0932 → 4.09
    # total       20 + 7.80 + 2.73 + 0.01 + 0 + 4.09 = 34.63
    before = schedule.charges(BEFORE_BUDGET, "options", Side.SELL, rupees("7800"), True)
    assert before == note("20.00", "7.80", "2.73", "0.01", "0", "4.09")
    assert before.total == rupees("34.63")
    # The same sell on 2026-04-01: STT 7800 * 0.15% = 11.70, the rest unchanged:
    # total 20 + 11.70 + 2.73 + 0.01 + 0 + 4.09 = 38.53
    after = schedule.charges(BUDGET, "options", Side.SELL, rupees("7800"), True)
    assert after == note("20.00", "11.70", "2.73", "0.01", "0", "4.09")
    assert after.total == rupees("38.53")
    # The last day of the old rate still uses 0.1%.
    assert schedule.charges(date(2026, 3, 31), "options", Side.SELL, rupees("7800"),
                            True).stt == rupees("7.80")


def test_option_fill_without_brokerage(schedule: ChargeSchedule) -> None:
    # A later fill of the same order: the ₹6,500 buy above without brokerage
    # GST 18% * (0 + 2.28 + 0.01) = 0.4122 → 0.41; total 2.28 + 0.01 + 0.20 + 0.41 = 2.90
    charges = schedule.charges(BEFORE_BUDGET, "options", Side.BUY, rupees("6500"), False)
    assert charges == note("0", "0", "2.28", "0.01", "0.20", "0.41")
    assert charges.total == rupees("2.90")


def test_futures_brokerage_is_capped_at_flat(schedule: ChargeSchedule) -> None:
    # Buy 65 NIFTY FUT @ ₹24,000.50 on 2026-03-10: turnover ₹15,60,032.50
    # brokerage   min(0.03% * 1560032.50 = 468.01, 20)   = 20.00
    # STT         buy side                               =  0.00
    # transaction 1560032.50 * 0.00173% = 26.98856225    → 26.99
    # SEBI        1560032.50 * 10 / 1e7 = 1.5600325      →  1.56
    # stamp       1560032.50 * 0.002%   = 31.20065       → 31.20
    # GST         18% * (20 + 26.99 + 1.56) = 8.739      →  8.74
    # total       20 + 0 + 26.99 + 1.56 + 31.20 + 8.74 = 88.49
    charges = schedule.charges(BEFORE_BUDGET, "futures", Side.BUY, rupees("1560032.50"), True)
    assert charges == note("20.00", "0", "26.99", "1.56", "31.20", "8.74")
    assert charges.total == rupees("88.49")


def test_futures_brokerage_pct_below_flat_and_stt_change(schedule: ChargeSchedule) -> None:
    # Sell futures worth ₹50,000 on 2026-03-10:
    # brokerage   min(0.03% * 50000 = 15.00, 20)     = 15.00
    # STT         50000 * 0.02%    = 10.00           → 10.00
    # transaction 50000 * 0.00173% = 0.865 (half-up) →  0.87
    # SEBI        50000 * 10 / 1e7 = 0.05            →  0.05
    # GST         18% * (15 + 0.87 + 0.05) = 2.8656 →  2.87
    # total       15 + 10 + 0.87 + 0.05 + 0 + 2.87 = 28.79
    before = schedule.charges(BEFORE_BUDGET, "futures", Side.SELL, rupees("50000"), True)
    assert before == note("15.00", "10.00", "0.87", "0.05", "0", "2.87")
    assert before.total == rupees("28.79")
    # From 2026-04-01 futures STT is 0.05%: 25.00; total 15 + 25 + 0.87 + 0.05 + 2.87 = 43.79
    after = schedule.charges(BUDGET, "futures", Side.SELL, rupees("50000"), True)
    assert after.stt == rupees("25.00")
    assert after.total == rupees("43.79")


def test_equity_intraday_contract_note(schedule: ChargeSchedule) -> None:
    # Buy equity worth ₹1,00,000 intraday on 2026-03-10:
    # brokerage   min(0.03% * 100000 = 30, 20)   = 20.00
    # transaction 100000 * 0.00297% = 2.97       →  2.97
    # SEBI        100000 * 10 / 1e7 = 0.10       →  0.10
    # stamp       100000 * 0.003%   = 3.00       →  3.00
    # GST         18% * (20 + 2.97 + 0.10) = 4.1526 → 4.15
    # total       20 + 0 + 2.97 + 0.10 + 3.00 + 4.15 = 30.22
    charges = schedule.charges(BEFORE_BUDGET, "equity_intraday", Side.BUY, rupees("100000"),
                               True)
    assert charges == note("20.00", "0", "2.97", "0.10", "3.00", "4.15")
    assert charges.total == rupees("30.22")


def test_unknown_segment_is_an_error_naming_it(schedule: ChargeSchedule) -> None:
    with pytest.raises(ValueError, match="'currency'"):
        schedule.charges(BEFORE_BUDGET, "currency", Side.BUY, rupees("100"), True)


def test_date_before_the_schedule_is_an_error_naming_segment_and_date(
        schedule: ChargeSchedule) -> None:
    with pytest.raises(ValueError, match=r"'options'.*2024-09-30"):
        schedule.charges(date(2024, 9, 30), "options", Side.BUY, rupees("100"), True)


def test_rate_row_is_the_latest_in_force(schedule: ChargeSchedule) -> None:
    assert schedule.rate(date(2026, 3, 31), "options").effective_from == date(2024, 10, 1)
    assert schedule.rate(BUDGET, "options").effective_from == BUDGET
    assert schedule.rate(date(2030, 1, 1), "options").stt_sell_pct == Decimal("0.15")


def test_two_rows_for_one_date_are_a_configuration_error() -> None:
    row = ChargesConfig().rates[0]
    with pytest.raises(ValueError, match="two rows"):
        ChargeSchedule(ChargesConfig(rates=(row, row)))


def test_configured_rows_not_code_decide_the_rates() -> None:
    d = Decimal
    row = ChargeRate(date(2020, 1, 1), "options", d("10"), None, d("0"), d("0"), d("0"),
                     d("0"), d("0"), d("0"))
    charges = ChargeSchedule(ChargesConfig(rates=(row,))).charges(
        BEFORE_BUDGET, "options", Side.SELL, rupees("1000"), True)
    assert charges.total == rupees("10")


def test_charges_total_must_be_the_sum() -> None:
    with pytest.raises(ValueError, match="total"):
        Charges(Money(1), Money(0), Money(0), Money(0), Money(0), Money(0), Money(2))
    with pytest.raises(ValueError, match="stt"):
        Charges.of(Money(1), Money(-1), Money(0), Money(0), Money(0), Money(0))


def test_segment_for_instrument_kinds() -> None:
    expiry = date(2026, 12, 29)
    ce = Instrument(1, Exchange.NFO, "NIFTY26DEC24000CE", "NIFTY", InstrumentKind.CE, 65,
                    Money(5), expiry, Money(2400000))
    pe = Instrument(2, Exchange.NFO, "NIFTY26DEC24000PE", "NIFTY", InstrumentKind.PE, 65,
                    Money(5), expiry, Money(2400000))
    fut = Instrument(3, Exchange.NFO, "NIFTY26DECFUT", "NIFTY", InstrumentKind.FUT, 65,
                     Money(10), expiry)
    eq = Instrument(4, Exchange.NSE, "INFY", "INFOSYS", InstrumentKind.EQ, 1, Money(5))
    assert segment_for(ce, Product.NRML) == "options"
    assert segment_for(pe, Product.MIS) == "options"
    assert segment_for(fut, Product.NRML) == "futures"
    assert segment_for(eq, Product.MIS) == "equity_intraday"
    assert segment_for(eq, Product.CNC) == "equity_intraday"  # delivery is not modelled
