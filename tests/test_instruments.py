"""The instruments table (Kite's dump) and the synthetic market's own dump."""

from __future__ import annotations

from dataclasses import replace
from datetime import date, timedelta
from decimal import Decimal

import pytest

from actors.config._schema import CalendarConfig, MarketConfig
from actors.market import COLUMNS, InstrumentTable, MarketCalendar, synthetic_dump_csv
from messages import Exchange, Instrument, InstrumentKind, Money

HEADER = ",".join(COLUMNS)
DUMP = (
    HEADER + "\n"
    "519937,2031,M&M,MAHINDRA & MAHINDRA,3000.5,,0,0.05,1,EQ,NSE,NSE\n"
    "4267265,16669,BAJAJ-AUTO,BAJAJ AUTO,0,,0,0.05,1,EQ,NSE,NSE\n"
    "256265,1001,NIFTY 50,NIFTY 50,0,,0,0,0,EQ,INDICES,NSE\n"
    "260105,1016,NIFTY BANK,,0,,0,0.05,0,EQ,INDICES,NSE\n"
    "13874690,54198,NIFTY26DECFUT,NIFTY,0,2026-12-29,0,0.1,65,FUT,NFO-FUT,NFO\n"
    "10001,10001,NIFTY26DEC24050PE,NIFTY,0,2026-12-08,24050.0,0.05,65,PE,NFO-OPT,NFO\n"
    "10002,10002,NIFTY26DEC24000CE,NIFTY,0,2026-12-08,24000.0,0.05,65,CE,NFO-OPT,NFO\n"
    "10003,10003,NIFTY26DEC24000PE,NIFTY,0,2026-12-08,24000.0,0.05,65,PE,NFO-OPT,NFO\n"
    "10004,10004,NIFTY26DEC24050CE,NIFTY,0,2026-12-08,24050.0,0.05,65,CE,NFO-OPT,NFO\n"
    "10005,10005,NIFTY26D1524000CE,NIFTY,0,2026-12-15,24000,0.05,65,CE,NFO-OPT,NFO\n"
)
EXPIRY = date(2026, 12, 8)
GOOD_ROW = "519937,2031,M&M,MAHINDRA & MAHINDRA,0,,0,0.05,1,EQ,NSE,NSE"


@pytest.fixture
def table() -> InstrumentTable:
    return InstrumentTable.from_csv(DUMP)


# --- parsing -------------------------------------------------------------------------------


def test_real_symbols_with_punctuation_parse(table: InstrumentTable) -> None:
    mm = table.by_symbol("NSE", "M&M")
    assert mm.instrument_token == 519937
    assert mm.name == "MAHINDRA & MAHINDRA"
    assert mm.kind is InstrumentKind.EQ
    assert mm.lot_size == 1
    assert mm.tick_size == Money(5)
    bajaj = table.by_symbol(Exchange.NSE, "BAJAJ-AUTO")
    assert bajaj.instrument_token == 4267265
    assert table.get(4267265) is bajaj
    assert bajaj.key == "NSE:BAJAJ-AUTO"


def test_options_carry_strike_in_paise_expiry_and_lot(table: InstrumentTable) -> None:
    call = table.get(10002)
    assert call.kind is InstrumentKind.CE
    assert call.exchange is Exchange.NFO
    assert call.strike == Money(2_400_000)
    assert call.expiry == EXPIRY
    assert call.lot_size == 65
    future = table.by_symbol("NFO", "NIFTY26DECFUT")
    assert future.kind is InstrumentKind.FUT
    assert future.tick_size == Money(10)
    assert future.strike is None


def test_indices_are_equities_of_lot_one(table: InstrumentTable) -> None:
    nifty = table.underlying_index("NIFTY")
    assert nifty.tradingsymbol == "NIFTY 50"
    assert nifty.kind is InstrumentKind.EQ
    assert nifty.lot_size == 1
    assert nifty.tick_size == Money(5)  # the dump said 0
    assert table.is_index(256265)
    assert not table.is_index(519937)
    bank = table.underlying_index("BANKNIFTY")
    assert bank.instrument_token == 260105
    assert bank.name == "NIFTY BANK"  # empty name falls back to the symbol
    with pytest.raises(
        ValueError, match="name: no index instrument 'NIFTY FIN SERVICE' for underlying FINNIFTY"
    ):
        table.underlying_index("FINNIFTY")


def test_option_chain_is_sorted_by_strike_call_first(table: InstrumentTable) -> None:
    chain = table.options("NIFTY", EXPIRY)
    assert [i.instrument_token for i in chain] == [10002, 10003, 10004, 10001]
    assert table.expiries("NIFTY") == [EXPIRY, date(2026, 12, 15)]
    assert table.options("NIFTY", date(2026, 12, 1)) == []
    assert table.options("BANKNIFTY", EXPIRY) == []


def test_len_contains_iter_and_reference_price(table: InstrumentTable) -> None:
    assert len(table) == 10
    assert 519937 in table
    assert 123 not in table
    assert "519937" not in table
    tokens = [i.instrument_token for i in table]
    assert tokens == sorted(tokens)
    assert table.reference_price(519937) == Money(300050)
    assert table.reference_price(4267265) is None


def test_unknown_instruments_are_named(table: InstrumentTable) -> None:
    with pytest.raises(ValueError) as by_token:
        table.get(123)
    assert str(by_token.value) == "instrument_token: unknown instrument 123"
    with pytest.raises(ValueError) as by_symbol:
        table.by_symbol("NSE", "FOO")
    assert str(by_symbol.value) == "tradingsymbol: unknown instrument NSE:FOO"
    with pytest.raises(ValueError, match="exchange: must be one of"):
        table.by_symbol("NYSE", "M&M")


def test_crlf_and_byte_order_mark_are_accepted() -> None:
    text = "\ufeff" + DUMP.replace("\n", "\r\n") + "\r\n"
    assert len(InstrumentTable.from_csv(text)) == 10


@pytest.mark.parametrize(
    ("column", "value", "problem"),
    [
        ("instrument_token", "abc", "must be an integer"),
        ("instrument_token", "0", "must be > 0"),
        ("exchange_token", "x1", "must be an integer"),
        ("tradingsymbol", "", "must not be empty"),
        ("last_price", "nan", "must be a finite number"),
        ("expiry", "2026-13-01", "must be a date"),
        ("tick_size", "0", "must be > 0"),
        ("tick_size", "-0.05", "must be a finite number >= 0"),
        ("lot_size", "abc", "must be an integer"),
        ("lot_size", "0", "must be > 0"),
        ("instrument_type", "XX", "must be one of"),
        ("exchange", "NCO", "must be one of"),
    ],
)
def test_bad_row_names_row_column_and_value(column: str, value: str, problem: str) -> None:
    cells = GOOD_ROW.split(",")
    cells[COLUMNS.index(column)] = value
    text = f"{HEADER}\n{GOOD_ROW.replace('519937', '1')}\n{','.join(cells)}\n"
    with pytest.raises(ValueError) as error:
        InstrumentTable.from_csv(text)
    message = str(error.value)
    assert message.startswith(f"row 2, column {column}: {problem}")
    assert message.endswith(f"got {value!r}")


def test_option_without_strike_or_expiry_is_rejected() -> None:
    no_strike = "1,1,NIFTY26DECCE,NIFTY,0,2026-12-08,0,0.05,65,CE,NFO-OPT,NFO"
    with pytest.raises(ValueError, match="row 1, column strike: an option needs a strike"):
        InstrumentTable.from_csv(f"{HEADER}\n{no_strike}\n")
    no_expiry = "1,1,NIFTY26DEC1CE,NIFTY,0,,24000,0.05,65,CE,NFO-OPT,NFO"
    with pytest.raises(ValueError, match="row 1, column expiry: an option needs an expiry"):
        InstrumentTable.from_csv(f"{HEADER}\n{no_expiry}\n")


def test_structural_errors() -> None:
    with pytest.raises(ValueError, match="header: expected columns"):
        InstrumentTable.from_csv("token,symbol\n1,M&M\n")
    with pytest.raises(ValueError, match="header"):
        InstrumentTable.from_csv("")
    with pytest.raises(ValueError, match="row 1: expected 12 columns, got 3"):
        InstrumentTable.from_csv(f"{HEADER}\n1,2,3\n")
    duplicate = f"{HEADER}\n{GOOD_ROW}\n{GOOD_ROW.replace('M&M', 'MM')}\n"
    with pytest.raises(ValueError, match=r"row 2, column instrument_token: duplicate.*519937"):
        InstrumentTable.from_csv(duplicate)
    same_symbol = f"{HEADER}\n{GOOD_ROW}\n{GOOD_ROW.replace('519937', '2')}\n"
    with pytest.raises(ValueError, match=r"row 2, column tradingsymbol: duplicate.*NSE:M&M"):
        InstrumentTable.from_csv(same_symbol)


def test_table_from_instruments_rejects_duplicates() -> None:
    mm = Instrument(1, Exchange.NSE, "M&M", "M&M", InstrumentKind.EQ, 1, Money(5))
    other = replace(mm, tradingsymbol="OTHER")
    assert len(InstrumentTable([mm])) == 1
    with pytest.raises(ValueError, match="instrument_token: duplicate instrument 1"):
        InstrumentTable([mm, other])
    with pytest.raises(ValueError, match="tradingsymbol: duplicate instrument NSE:M&M"):
        InstrumentTable([mm, replace(mm, instrument_token=2)])
    with pytest.raises(ValueError, match="instrument_token: unknown instrument 9"):
        InstrumentTable([mm], index_tokens=[9])


# --- the synthetic dump --------------------------------------------------------------------


@pytest.fixture
def calendar() -> MarketCalendar:
    return MarketCalendar(CalendarConfig())


def synthetic(config: MarketConfig, trade_date: date, calendar: MarketCalendar) -> InstrumentTable:
    return InstrumentTable.from_csv(synthetic_dump_csv(config, trade_date, calendar))


def test_synthetic_chain_strikes_around_the_money(calendar: MarketCalendar) -> None:
    config = MarketConfig()
    table = synthetic(config, date(2026, 12, 2), calendar)
    for underlying in config.underlyings:
        (expiry,) = table.expiries(underlying.name)
        chain = table.options(underlying.name, expiry)
        n = config.strikes_each_side
        assert len(chain) == 2 * (2 * n + 1)
        step = Money.from_rupees(underlying.strike_step_rupees).paise
        atm = Money.from_rupees(underlying.spot_rupees).paise
        strikes = sorted({i.strike.paise for i in chain if i.strike is not None})
        assert strikes == [atm + k * step for k in range(-n, n + 1)]
        assert sum(i.kind is InstrumentKind.CE for i in chain) == 2 * n + 1
        tokens = sorted(i.instrument_token for i in chain)
        assert tokens == [(underlying.token_base + k) << 8 | 2  # Kite: segment NFO = 2
                          for k in range(1, len(chain) + 1)]
        for option in chain:
            assert option.lot_size == underlying.lot_size
            assert option.tick_size == Money.from_rupees(config.tick_size_rupees)
            assert option.exchange is Exchange.NFO
        index = table.underlying_index(underlying.name)
        assert index.instrument_token == underlying.token_base << 8 | 9  # INDICES = 9
        assert table.reference_price(index.instrument_token) == Money.from_rupees(
            underlying.spot_rupees
        )


def test_synthetic_symbols_use_the_monthly_style(calendar: MarketCalendar) -> None:
    table = synthetic(MarketConfig(), date(2026, 12, 2), calendar)
    call = table.by_symbol("NFO", "NIFTY26DEC24000CE")
    assert call.strike == Money(2_400_000)
    assert call.expiry == date(2026, 12, 8)
    assert table.by_symbol("NFO", "BANKNIFTY26DEC51000PE").lot_size == 30
    assert table.underlying_index("BANKNIFTY").tradingsymbol == "NIFTY BANK"


def test_synthetic_expiry_is_a_tuesday_trading_day_on_or_after_trade_date(
    calendar: MarketCalendar,
) -> None:
    config = MarketConfig()
    day = date(2026, 1, 1)
    while day.year == 2026:
        if calendar.is_trading_day(day):
            table = synthetic(config, day, calendar)
            (expiry,) = table.expiries("NIFTY")
            assert expiry >= day
            assert expiry - day < timedelta(days=14)
            assert calendar.is_trading_day(expiry)
            tuesday = expiry + timedelta(days=(1 - expiry.weekday()) % 7)
            assert expiry.weekday() == 1 or not calendar.is_trading_day(tuesday), (day, expiry)
        day += timedelta(days=5)


def test_synthetic_chain_follows_config(calendar: MarketCalendar) -> None:
    (nifty, _) = MarketConfig().underlyings
    odd = replace(
        nifty, spot_rupees=Decimal("24030"), lot_size=75, strike_step_rupees=Decimal("100")
    )
    config = MarketConfig(underlyings=(odd,), strikes_each_side=2, tick_size_rupees=Decimal("0.10"))
    table = synthetic(config, date(2026, 12, 2), calendar)
    (expiry,) = table.expiries("NIFTY")
    chain = table.options("NIFTY", expiry)
    strikes = [i.strike.paise // 100 for i in chain if i.kind is InstrumentKind.CE and i.strike]
    assert strikes == [23800, 23900, 24000, 24100, 24200]
    assert {i.lot_size for i in chain} == {75}
    assert {i.tick_size for i in chain} == {Money(10)}


def test_synthetic_dump_lists_real_and_extra_equities(calendar: MarketCalendar) -> None:
    config = MarketConfig(extra_instruments=25)
    table = synthetic(config, date(2026, 12, 2), calendar)
    for symbol in ("M&M", "BAJAJ-AUTO", "SYN0001", "SYN0025"):
        equity = table.by_symbol("NSE", symbol)
        assert equity.lot_size == 1
        assert equity.kind is InstrumentKind.EQ
        assert equity.tick_size == Money(5)
        assert not table.is_index(equity.instrument_token)
        assert table.reference_price(equity.instrument_token) is not None
    with pytest.raises(ValueError, match="unknown instrument NSE:SYN0026"):
        table.by_symbol("NSE", "SYN0026")
    chains = 2 * (1 + 2 * (2 * config.strikes_each_side + 1))
    assert len(table) == chains + 4 + 25
