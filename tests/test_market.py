"""The simulated market: determinism, quote invariants, option pricing and speed."""

from __future__ import annotations

import itertools
import math
import statistics
import time
from dataclasses import replace
from datetime import date, datetime, timedelta
from decimal import Decimal

import pytest

from actors.config._schema import CalendarConfig, MarketConfig
from actors.market import (
    IST,
    InstrumentTable,
    MarketCalendar,
    SyntheticMarket,
    black_scholes,
    smile_volatility,
    synthetic_dump_csv,
)
from messages import InstrumentKind, Price

TRADE_DATE = date(2026, 12, 2)  # a Wednesday; the NIFTY weekly expires Tuesday 2026-12-08
START = datetime(2026, 12, 2, 9, 15, tzinfo=IST)
EXPIRY_CLOSE = datetime(2026, 12, 8, 15, 30, tzinfo=IST)
YEAR_SECONDS = 365 * 24 * 3600


def make_table(config: MarketConfig) -> InstrumentTable:
    calendar = MarketCalendar(CalendarConfig())
    return InstrumentTable.from_csv(synthetic_dump_csv(config, TRADE_DATE, calendar))


def run(market: SyntheticMarket, steps: int, every_s: float = 1.0) -> list[list[Price]]:
    return [market.step(START + timedelta(seconds=i * every_s)) for i in range(steps)]


def mid(price: Price) -> float:
    assert price.bid is not None
    assert price.ask is not None
    return (price.bid.paise + price.ask.paise) / 2


def chain_quotes(
    market: SyntheticMarket, table: InstrumentTable
) -> dict[tuple[int, InstrumentKind], Price]:
    (expiry,) = table.expiries("NIFTY")
    quotes = {}
    for option in table.options("NIFTY", expiry):
        quote = market.quote(option.instrument_token)
        assert quote is not None
        assert option.strike is not None
        quotes[(option.strike.paise, option.kind)] = quote
    return quotes


# --- determinism ---------------------------------------------------------------------------


def test_same_seed_gives_identical_prices() -> None:
    config = MarketConfig(seed=7, extra_instruments=20)
    table = make_table(config)
    first = run(SyntheticMarket(config, table, START), 50)
    second = run(SyntheticMarket(config, table, START), 50)
    assert first == second
    assert first[0] != first[-1]  # and it does move


def test_different_seed_gives_different_prices() -> None:
    config = MarketConfig(seed=1)
    table = make_table(config)
    one = run(SyntheticMarket(config, table, START), 20)
    two = run(SyntheticMarket(replace(config, seed=2), table, START), 20)
    assert one[0] == two[0]  # no time has passed at the first step: both at the configured spot
    assert one[-1] != two[-1]


def test_underlying_path_does_not_depend_on_extra_equities() -> None:
    small = MarketConfig(extra_instruments=0)
    large = replace(small, extra_instruments=30)
    a = SyntheticMarket(small, make_table(small), START)
    b = SyntheticMarket(large, make_table(large), START)
    run(a, 30, 10.0)
    run(b, 30, 10.0)
    assert a.spot("NIFTY") == b.spot("NIFTY")
    assert a.spot("BANKNIFTY") == b.spot("BANKNIFTY")


# --- quote invariants ----------------------------------------------------------------------


def test_every_quote_is_positive_on_tick_with_bid_below_ask() -> None:
    config = MarketConfig(extra_instruments=50)
    table = make_table(config)
    market = SyntheticMarket(config, table, START)
    steps = run(market, 300, 1800.0)  # 6 simulated days: up to expiry afternoon
    assert EXPIRY_CLOSE - timedelta(hours=1) < steps[-1][0].exchange_ts < EXPIRY_CLOSE
    for prices in steps:
        assert len(prices) == len(table)
        for price in prices:
            instrument = table.get(price.instrument_token)
            tick = instrument.tick_size.paise
            assert price.last.paise >= tick
            assert price.last.paise % tick == 0
            assert price.exchange_ts == price.received_ts
            if table.is_index(price.instrument_token):
                assert price.bid is None
                assert price.ask is None
                continue
            assert price.bid is not None
            assert price.ask is not None
            assert tick <= price.bid.paise < price.ask.paise
            assert price.bid.paise <= price.last.paise <= price.ask.paise
            assert price.bid.paise % tick == 0
            assert price.ask.paise % tick == 0


def test_quotes_stay_valid_after_expiry_and_with_no_spread() -> None:
    config = MarketConfig(spread_ticks=0, spread_bps=Decimal("0"))
    table = make_table(config)
    market = SyntheticMarket(config, table, START)
    market.step(START)
    after = market.step(EXPIRY_CLOSE + timedelta(hours=1))
    for price in after:
        assert price.last.paise > 0
        if price.bid is not None and price.ask is not None:
            assert price.bid.paise < price.ask.paise


def test_step_timestamps_and_quote_lookup() -> None:
    config = MarketConfig()
    table = make_table(config)
    market = SyntheticMarket(config, table, START)
    token = table.underlying_index("NIFTY").instrument_token
    assert market.quote(token) is None
    assert market.now == START
    later = START + timedelta(minutes=5)
    prices = market.step(later)
    assert market.now == later
    assert {p.exchange_ts for p in prices} == {later}
    by_token = {p.instrument_token: p for p in prices}
    assert market.quote(token) == by_token[token]
    assert by_token[token].last.paise == market.spot("NIFTY")
    assert [p.instrument_token for p in prices] == sorted(by_token)


def test_spread_is_ticks_or_bps_whichever_wider() -> None:
    config = MarketConfig(spread_ticks=2, spread_bps=Decimal("10"))
    table = make_table(config)
    market = SyntheticMarket(config, table, START)
    market.step(START)
    mm = market.quote(table.by_symbol("NSE", "M&M").instrument_token)  # ₹3,000: bps win
    assert mm is not None
    assert mm.bid is not None
    assert mm.ask is not None
    assert mm.ask.paise - mm.bid.paise == 2 * 300  # 10 bps of 300,000 paise each side
    syn = replace(config, extra_instruments=1)
    syn_table = make_table(syn)
    syn_market = SyntheticMarket(syn, syn_table, START)
    syn_market.step(START)
    cheap = syn_market.quote(syn_table.by_symbol("NSE", "SYN0001").instrument_token)  # ₹100
    assert cheap is not None
    assert cheap.bid is not None
    assert cheap.ask is not None
    assert cheap.ask.paise - cheap.bid.paise == 2 * 2 * 5  # two ticks each side win


def test_bad_times_are_rejected() -> None:
    config = MarketConfig()
    table = make_table(config)
    market = SyntheticMarket(config, table, START)
    market.step(START + timedelta(seconds=10))
    with pytest.raises(ValueError, match=r"now: .* is before the last step"):
        market.step(START)
    with pytest.raises(ValueError, match="now: must be a timezone-aware"):
        market.step(datetime(2026, 12, 2, 10, 0))
    with pytest.raises(ValueError, match="start: must be a timezone-aware"):
        SyntheticMarket(config, table, datetime(2026, 12, 2, 9, 15))
    with pytest.raises(ValueError, match="name: unknown underlying FOO"):
        market.spot("FOO")


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"base_iv": Decimal("0")}, "market.base_iv"),
        ({"spread_ticks": -1}, "market.spread_ticks"),
        ({"spread_bps": Decimal("NaN")}, "market.spread_bps"),
        ({"smile_curvature": Decimal("-0.1")}, "market.smile_curvature"),
    ],
)
def test_unusable_config_is_rejected(change: dict[str, object], field: str) -> None:
    config = MarketConfig()
    table = make_table(config)
    with pytest.raises(ValueError, match=f"{field}: out of range"):
        SyntheticMarket(replace(config, **change), table, START)  # type: ignore[arg-type]


def test_options_need_a_configured_underlying() -> None:
    config = MarketConfig()
    table = make_table(config)
    nifty_only = replace(config, underlyings=config.underlyings[:1])
    with pytest.raises(ValueError, match=r"written on BANKNIFTY, which market.underlyings"):
        SyntheticMarket(nifty_only, table, START)


# --- option pricing ------------------------------------------------------------------------


def test_call_rises_and_put_falls_with_spot() -> None:
    config = MarketConfig()
    table = make_table(config)
    low = SyntheticMarket(config, table, START)
    nifty, bank = config.underlyings
    richer = replace(config, underlyings=(replace(nifty, spot_rupees=Decimal("24200")), bank))
    high = SyntheticMarket(richer, table, START)
    low.step(START)
    high.step(START)
    assert high.spot("NIFTY") > low.spot("NIFTY")
    cheap, dear = chain_quotes(low, table), chain_quotes(high, table)
    for (strike, kind), quote in cheap.items():
        if kind is InstrumentKind.CE:
            assert mid(dear[(strike, kind)]) > mid(quote), strike
        else:
            assert mid(dear[(strike, kind)]) < mid(quote), strike
    prices = [
        black_scholes(s, 24000.0, 0.02, 0.065, 0.14, call=True) for s in (23800, 24000, 24200)
    ]
    assert prices == sorted(prices)
    assert prices[0] < prices[-1]


def test_put_call_parity_on_mids() -> None:
    config = MarketConfig()
    table = make_table(config)
    market = SyntheticMarket(config, table, START)
    market.step(START)
    spot = market.spot("NIFTY")
    years = (EXPIRY_CLOSE - START).total_seconds() / YEAR_SECONDS
    rate = float(config.risk_free_rate)
    quotes = chain_quotes(market, table)
    strikes = sorted({strike for strike, _ in quotes})
    assert len(strikes) == 2 * config.strikes_each_side + 1
    for strike in strikes:
        call, put = quotes[(strike, InstrumentKind.CE)], quotes[(strike, InstrumentKind.PE)]
        parity = spot - strike * math.exp(-rate * years)
        assert mid(call) - mid(put) == pytest.approx(parity, abs=3 * 5), strike


def test_smile_out_of_the_money_iv_exceeds_at_the_money() -> None:
    config = MarketConfig()
    table = make_table(config)
    market = SyntheticMarket(config, table, START)
    (expiry,) = table.expiries("NIFTY")
    chain = table.options("NIFTY", expiry)
    by_strike = {(o.strike.paise if o.strike else 0, o.kind): o.instrument_token for o in chain}
    atm = market.implied_volatility(by_strike[(2_400_000, InstrumentKind.CE)])
    otm_call = market.implied_volatility(by_strike[(2_450_000, InstrumentKind.CE)])
    otm_put = market.implied_volatility(by_strike[(2_350_000, InstrumentKind.PE)])
    assert atm == pytest.approx(float(config.base_iv))
    assert otm_call > atm
    assert otm_put > atm
    k, s = 2_450_000, 2_400_000
    expected = 0.14 * (1 + 0.8 * math.log(k / s) ** 2 * 100)
    assert smile_volatility(0.14, 0.8, k, s) == pytest.approx(expected)
    with pytest.raises(ValueError, match="not an option"):
        market.implied_volatility(table.underlying_index("NIFTY").instrument_token)


def test_quotes_are_priced_on_the_smile() -> None:
    config = MarketConfig()
    table = make_table(config)
    market = SyntheticMarket(config, table, START)
    market.step(START)
    spot = float(market.spot("NIFTY"))
    years = (EXPIRY_CLOSE - START).total_seconds() / YEAR_SECONDS
    rate, base = float(config.risk_free_rate), float(config.base_iv)
    curvature = float(config.smile_curvature)
    quotes = chain_quotes(market, table)
    for strike, kind in ((2_450_000, InstrumentKind.CE), (2_350_000, InstrumentKind.PE)):
        call = kind is InstrumentKind.CE
        vol = smile_volatility(base, curvature, strike, spot)
        on_smile = black_scholes(spot, strike, years, rate, vol, call=call)
        flat = black_scholes(spot, strike, years, rate, base, call=call)
        assert mid(quotes[(strike, kind)]) == pytest.approx(on_smile, abs=3 * 5)
        assert mid(quotes[(strike, kind)]) > flat + 3 * 5


def test_black_scholes_validates_and_bounds() -> None:
    call = black_scholes(100.0, 100.0, 0.5, 0.05, 0.2, call=True)
    put = black_scholes(100.0, 100.0, 0.5, 0.05, 0.2, call=False)
    assert call == pytest.approx(6.8887, abs=1e-3)  # the textbook value
    assert call - put == pytest.approx(100.0 - 100.0 * math.exp(-0.025))
    with pytest.raises(ValueError, match="years: must be a finite number > 0"):
        black_scholes(100.0, 100.0, 0.0, 0.05, 0.2, call=True)
    with pytest.raises(ValueError, match="vol: "):
        black_scholes(100.0, 100.0, 1.0, 0.05, math.nan, call=True)


# --- the random walk -----------------------------------------------------------------------


def test_realised_volatility_matches_config() -> None:
    config = MarketConfig(seed=3, strikes_each_side=1)
    market = SyntheticMarket(config, make_table(config), START)
    every_s = 60.0
    spots = []
    for i in range(3000):
        market.step(START + timedelta(seconds=i * every_s))
        spots.append(market.spot("NIFTY"))
    returns = [math.log(b / a) for a, b in itertools.pairwise(spots)]
    years_per_step = every_s / (252 * 6.25 * 3600)
    realised = statistics.pstdev(returns) / math.sqrt(years_per_step)
    assert realised == pytest.approx(float(config.underlyings[0].annual_volatility), rel=0.1)


# --- speed ---------------------------------------------------------------------------------


def test_a_thousand_instruments_step_in_milliseconds() -> None:
    config = MarketConfig(extra_instruments=1000)
    table = make_table(config)
    market = SyntheticMarket(config, table, START)
    market.step(START)
    steps = 20
    began = time.perf_counter()
    for i in range(1, steps + 1):
        prices = market.step(START + timedelta(seconds=i))
    per_step = (time.perf_counter() - began) / steps
    assert len(prices) >= 1000 + 2 * (1 + 2 * (2 * config.strikes_each_side + 1))
    assert len({p.instrument_token for p in prices}) == len(prices)
    assert per_step < 0.05, f"{per_step * 1000:.1f} ms per step"


def test_futures_are_quoted_at_the_forward() -> None:
    config = MarketConfig()
    calendar = MarketCalendar(CalendarConfig())
    future_row = "30000001,30000001,NIFTY26DECFUT,NIFTY,0,2026-12-29,0,0.1,65,FUT,NFO-FUT,NFO\n"
    table = InstrumentTable.from_csv(synthetic_dump_csv(config, TRADE_DATE, calendar) + future_row)
    market = SyntheticMarket(config, table, START)
    market.step(START)
    quote = market.quote(30000001)
    assert quote is not None
    years = (datetime(2026, 12, 29, 15, 30, tzinfo=IST) - START).total_seconds() / YEAR_SECONDS
    forward = market.spot("NIFTY") * math.exp(float(config.risk_free_rate) * years)
    assert quote.last.paise % 10 == 0
    assert quote.last.paise == pytest.approx(forward, abs=10)
    assert quote.last.paise > market.spot("NIFTY")
