"""The paper broker's matching engine, exercised directly (it is pure: no threads)."""

from __future__ import annotations

import random
from datetime import date, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from actors.broker import ChargeSchedule, MatchingEngine, PlaceOutcome, PlaceResult
from actors.config._schema import ChargesConfig, PaperConfig
from messages import (
    Exchange,
    Fill,
    Instrument,
    InstrumentKind,
    Money,
    OrderLeg,
    OrderRequest,
    OrderState,
    OrderStatus,
    OrderType,
    Price,
    Side,
)

IST = ZoneInfo("Asia/Kolkata")
NOW = datetime(2026, 3, 10, 10, 0, tzinfo=IST)
EXPIRY = date(2026, 12, 29)
CE = Instrument(1, Exchange.NFO, "NIFTY26DEC24000CE", "NIFTY", InstrumentKind.CE, 65, Money(5),
                EXPIRY, Money(2400000))
FUT = Instrument(2, Exchange.NFO, "NIFTY26DECFUT", "NIFTY", InstrumentKind.FUT, 65, Money(10),
                 EXPIRY)
SCHEDULE = ChargeSchedule(ChargesConfig())
NO_SLIP = PaperConfig(slippage_bps=Decimal(0))


def rs(text: str) -> Money:
    return Money.from_rupees(Decimal(text))


def quote(last: str, bid: str | None = None, ask: str | None = None,
          inst: Instrument = CE, at: datetime = NOW) -> Price:
    return Price(inst.instrument_token, rs(last), at, at,
                 None if bid is None else rs(bid), None if ask is None else rs(ask))


def make(paper: PaperConfig | None = None, cash: str = "1000000", seed: int = 7,
         cap: int = 100_000) -> MatchingEngine:
    return MatchingEngine(paper or PaperConfig(), SCHEDULE, rs(cash), Decimal("15"), seed,
                          terminal_cap=cap)


def req(tag: str, side: Side, lots: int = 1, order_type: OrderType = OrderType.MARKET,
        limit: str | None = None, trigger: str | None = None,
        inst: Instrument = CE) -> OrderRequest:
    leg = OrderLeg(inst, side, lots * inst.lot_size, order_type,
                   limit_price=None if limit is None else rs(limit),
                   trigger_price=None if trigger is None else rs(trigger))
    return OrderRequest(tag, leg)


def placed(result: PlaceResult) -> OrderState:
    assert result.outcome is PlaceOutcome.PLACED, result
    assert result.state is not None
    return result.state


def test_market_buy_fills_at_ask_plus_slippage_rounded_up_to_tick() -> None:
    engine = make()  # 5 bps: 100.10 * 1.0005 = 100.15005 → up to the tick → 100.20
    state = placed(engine.place(req("a1", Side.BUY), NOW, quote("100", "100.00", "100.10")))
    assert state.status is OrderStatus.COMPLETE and state.filled_quantity == 65
    assert [f.price for f in state.fills] == [rs("100.20")] and state.average_price == rs("100.20")


def test_market_sell_fills_at_bid_minus_slippage_rounded_down() -> None:
    engine = make()  # 100.10 * 0.9995 = 100.04995 → down to the tick → 100.00
    placed(engine.place(req("b1", Side.BUY), NOW, quote("100", "100.00", "100.10")))
    state = placed(engine.place(req("s1", Side.SELL), NOW, quote("100", "100.10", "100.20")))
    assert [f.price for f in state.fills] == [rs("100.00")]
    # 0.05 * 0.9995 rounds down to 0; the floor is one tick
    state = placed(engine.place(req("s2", Side.SELL), NOW, quote("0.05", "0.05", "0.10")))
    assert state.fills[0].price == CE.tick_size


def test_market_without_quote_fills_at_last_and_without_slippage_at_the_quote() -> None:
    engine = make(NO_SLIP)
    state = placed(engine.place(req("a1", Side.BUY), NOW, quote("101.50")))
    assert state.fills[0].price == rs("101.50")
    state = placed(engine.place(req("a2", Side.BUY), NOW, quote("101.50", "101.45", "101.55")))
    assert state.fills[0].price == rs("101.55")


def test_no_price_is_a_rejection() -> None:
    result = make().place(req("a1", Side.BUY), NOW, None)  # any order type
    assert result.outcome is PlaceOutcome.REJECTED
    assert result.reason == "no market price for NFO:NIFTY26DEC24000CE"
    assert result.broker_order_id is None


def test_insufficient_funds_for_a_buy_is_rejected_with_need_and_available() -> None:
    engine = make(NO_SLIP, cash="1000")
    result = engine.place(req("a1", Side.BUY), NOW, quote("100", "99.95", "100"))
    assert result.outcome is PlaceOutcome.REJECTED
    # need = 6500 + 26.50 charges (see test_charges) = 6526.50
    assert result.reason == "insufficient funds: need ₹6,526.50, available ₹1,000.00"
    assert engine.find_by_tag("a1") == []


def test_short_sell_needs_margin_on_strike_and_long_inventory_needs_none() -> None:
    # margin = 15% of strike 24,000 = 3,600 per unit * 65 = 2,34,000
    engine = make(NO_SLIP, cash="200000")
    result = engine.place(req("s1", Side.SELL), NOW, quote("100", "100", "100.05"))
    assert result.outcome is PlaceOutcome.REJECTED
    assert result.reason == "insufficient funds: need ₹234,000.00, available ₹200,000.00"
    placed(engine.place(req("b1", Side.BUY), NOW, quote("100", "100", "100.05")))
    state = placed(engine.place(req("s2", Side.SELL), NOW, quote("100", "100", "100.05")))
    assert state.status is OrderStatus.COMPLETE
    assert engine.account.position(CE.instrument_token) == 0


def test_short_margin_is_blocked_and_released_when_covered() -> None:
    engine = make(NO_SLIP)
    placed(engine.place(req("s1", Side.SELL, 2), NOW, quote("100", "100", "100.05")))
    assert engine.account.short_margin(CE.instrument_token) == rs("3600") * 130
    assert engine.account.blocked == rs("3600") * 130
    placed(engine.place(req("b1", Side.BUY), NOW, quote("100", "100", "100.05")))
    assert engine.account.short_margin(CE.instrument_token) == rs("3600") * 65
    placed(engine.place(req("b2", Side.BUY), NOW, quote("100", "100", "100.05")))
    assert engine.account.short_margin(CE.instrument_token) == Money(0)
    assert engine.account.blocked == Money(0)


def test_non_option_short_margin_is_on_price() -> None:
    engine = make(NO_SLIP, cash="100000")
    # 15% of 24,000 * 65 = 2,34,000 > 1,00,000: refused
    result = engine.place(req("s1", Side.SELL, inst=FUT), NOW,
                          quote("24000", "24000", "24000.10", inst=FUT))
    assert result.outcome is PlaceOutcome.REJECTED
    # 15% of 10,000 * 65 = 97,500 <= 1,00,000: accepted
    placed(engine.place(req("s2", Side.SELL, inst=FUT), NOW,
                        quote("10000", "10000", "10000.10", inst=FUT)))
    assert engine.account.short_margin(FUT.instrument_token) == rs("1500") * 65


def test_limit_buy_rests_then_fills_when_crossed_at_the_ask() -> None:
    engine = make()
    state = placed(engine.place(req("l1", Side.BUY, order_type=OrderType.LIMIT, limit="99"),
                                NOW, quote("100", "99.95", "100.05")))
    assert state.status is OrderStatus.OPEN and state.fills == ()
    assert engine.account.blocked_for(state.broker_order_id) > rs("6435")
    assert engine.on_price(quote("99.50", "99.40", "99.45"), NOW) == []
    [update] = engine.on_price(quote("98.90", "98.80", "98.85"), NOW)
    assert update.status is OrderStatus.COMPLETE
    assert [f.price for f in update.fills] == [rs("98.85")]  # min(ask, limit), no slippage
    assert engine.account.blocked == Money(0)
    # a marketable limit fills at once, at the quote
    state = placed(engine.place(req("l2", Side.SELL, order_type=OrderType.LIMIT, limit="99"),
                                NOW, quote("100", "99.95", "100.05")))
    assert state.status is OrderStatus.COMPLETE
    assert state.fills[0].price == rs("99.95")


def test_limit_sell_fills_when_bid_reaches_limit() -> None:
    engine = make()
    state = placed(engine.place(req("l1", Side.SELL, order_type=OrderType.LIMIT, limit="101"),
                                NOW, quote("100", "99.95", "100.05")))
    assert engine.on_price(quote("100.90", "100.95", "101.05"), NOW) == []
    assert engine.on_price(quote("200", "199.95", "200.05", inst=FUT), NOW) == []  # other token
    [update] = engine.on_price(quote("101.20", "101.10", "101.25"), NOW)
    assert update.broker_order_id == state.broker_order_id
    assert update.fills[0].price == rs("101.10")


def test_sl_buy_triggers_on_last_then_acts_as_limit() -> None:
    engine = make()
    state = placed(engine.place(
        req("t1", Side.BUY, order_type=OrderType.SL, limit="112", trigger="110"),
        NOW, quote("105", "104.95", "105.05")))
    assert state.status is OrderStatus.TRIGGER_PENDING
    assert engine.on_price(quote("108", "107.95", "108.05"), NOW) == []
    [triggered] = engine.on_price(quote("110", "112.95", "113"), NOW)  # ask above the limit
    assert triggered.status is OrderStatus.OPEN and triggered.fills == ()
    [done] = engine.on_price(quote("111", "111.90", "112"), NOW)
    assert done.status is OrderStatus.COMPLETE
    assert done.fills[0].price == rs("112")


def test_sl_m_sell_triggers_then_fills_as_market() -> None:
    engine = make()
    placed(engine.place(req("b1", Side.BUY), NOW, quote("95", "94.95", "95.05")))
    state = placed(engine.place(
        req("t1", Side.SELL, order_type=OrderType.SL_M, trigger="90"),
        NOW, quote("95", "94.95", "95.05")))
    assert state.status is OrderStatus.TRIGGER_PENDING
    assert engine.on_price(quote("90.05", "90", "90.10"), NOW) == []
    # bid 89.90 * 0.9995 = 89.85505 → down to the tick → 89.85
    [done] = engine.on_price(quote("90", "89.90", "90"), NOW)
    assert done.status is OrderStatus.COMPLETE
    assert done.fills[0].price == rs("89.85")


def test_stop_already_crossed_is_rejected() -> None:
    result = make().place(req("t1", Side.BUY, order_type=OrderType.SL_M, trigger="100"),
                          NOW, quote("100.50", "100.45", "100.55"))
    assert result.outcome is PlaceOutcome.REJECTED
    assert "already crossed" in result.reason


def test_cancel_open_order_releases_its_hold_and_terminal_is_unchanged() -> None:
    engine = make()
    state = placed(engine.place(req("l1", Side.BUY, order_type=OrderType.LIMIT, limit="90"),
                                NOW, quote("100", "99.95", "100.05")))
    assert engine.account.blocked > Money(0)
    cancelled = engine.cancel(state.broker_order_id, NOW)
    assert cancelled.status is OrderStatus.CANCELLED
    assert cancelled.filled_quantity == 0 and cancelled.pending_quantity == 0
    assert engine.account.blocked == Money(0)
    assert engine.on_price(quote("80", "79.95", "80.05"), NOW) == []
    assert engine.working_orders == 0
    # a terminal order is returned as it is
    state = placed(engine.place(req("a1", Side.BUY), NOW, quote("100", "99.95", "100.05")))
    again = engine.cancel(state.broker_order_id, NOW)
    assert again.status is OrderStatus.COMPLETE
    assert again.filled_quantity == 65 and again.fills == ()
    with pytest.raises(ValueError, match="no order"):
        engine.query("999")
    with pytest.raises(ValueError, match="no order"):
        engine.cancel("999", NOW)


def test_order_ids_are_numeric_and_increasing_and_fill_ids_unique() -> None:
    engine, fills, ids = make(PaperConfig(partial_fill_ratio=Decimal("0.5"))), list[Fill](), []
    for i in range(40):
        side = Side.BUY if i % 2 == 0 else Side.SELL
        result = engine.place(req(f"o{i}", side, 3), NOW, quote("100", "99.95", "100.05"))
        assert result.state is not None
        ids.append(int(result.state.broker_order_id))
        fills.extend(result.state.fills)
        for update in engine.on_price(quote("90", "80", "80.05") if i % 2 == 0
                                      else quote("120", "130", "130.05"), NOW):
            fills.extend(update.fills)
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    assert len({f.fill_id for f in fills}) == len(fills) > 40


def test_terminal_orders_beyond_the_cap_are_forgotten_oldest_first() -> None:
    engine = make(cap=3)
    states = [placed(engine.place(req(f"a{i}", Side.BUY), NOW, quote("10", "9.95", "10.05")))
              for i in range(5)]
    assert engine.known_orders == 3
    with pytest.raises(ValueError):
        engine.query(states[0].broker_order_id)
    assert engine.find_by_tag("a1") == []
    assert engine.query(states[4].broker_order_id).status is OrderStatus.COMPLETE
    working = placed(engine.place(req("l1", Side.BUY, order_type=OrderType.LIMIT, limit="5"),
                                  NOW, quote("10", "9.95", "10.05")))
    assert engine.known_orders == 4  # working orders are never evicted
    assert engine.query(working.broker_order_id).status is OrderStatus.OPEN


def test_partial_fill_rests_the_rest_as_limit_at_the_fill_price() -> None:
    engine = make(PaperConfig(partial_fill_ratio=Decimal(1)))
    state = placed(engine.place(req("p1", Side.BUY, 3), NOW, quote("100", "99.95", "100.10")))
    assert state.status is OrderStatus.OPEN
    assert 0 < state.filled_quantity < 195 and state.filled_quantity % 65 == 0
    [first] = state.fills
    assert first.price == rs("100.20")
    assert engine.on_price(quote("101", "100.95", "101.05"), NOW) == []  # above the limit
    [update] = engine.on_price(quote("100", "100.10", "100.15"), NOW)
    assert update.status is OrderStatus.COMPLETE
    assert update.filled_quantity == 195
    [second] = update.fills  # only the new fill
    assert second.quantity == 195 - first.quantity and second.price == rs("100.15")
    assert [f.fill_id for f in engine.query(update.broker_order_id).fills] == \
        [first.fill_id, second.fill_id]
    # charges on every fill; brokerage on the order's first fill only
    assert first.charges == SCHEDULE.charges(NOW.date(), "options", Side.BUY, first.value,
                                             True).total
    assert second.charges == SCHEDULE.charges(NOW.date(), "options", Side.BUY, second.value,
                                              False).total
    assert first.charges > rs("20") > second.charges
    # a single lot cannot be split: it fills whole
    state = placed(engine.place(req("p2", Side.BUY), NOW, quote("100", "99.95", "100.10")))
    assert state.status is OrderStatus.COMPLETE


def test_trade_date_for_charges_is_the_ist_date() -> None:
    engine = make(NO_SLIP)
    # 2026-03-31 20:00 UTC is 2026-04-01 01:30 IST: the budget's 0.15% STT applies.
    late = datetime(2026, 3, 31, 20, 0, tzinfo=ZoneInfo("UTC"))
    placed(engine.place(req("b1", Side.BUY), late, quote("120", "120", "120", at=late)))
    state = placed(engine.place(req("s1", Side.SELL), late, quote("120", "120", "120", at=late)))
    assert state.fills[0].charges == SCHEDULE.charges(
        date(2026, 4, 1), "options", Side.SELL, rs("7800"), True).total == rs("38.53")


def test_rejection_registers_nothing_and_unknown_outcome_is_found_by_tag() -> None:
    engine = make(PaperConfig(reject_ratio=Decimal(1)))
    result = engine.place(req("r1", Side.BUY), NOW, quote("100", "99.95", "100.05"))
    assert result.outcome is PlaceOutcome.REJECTED and "reject_ratio" in result.reason
    assert engine.find_by_tag("r1") == [] and engine.known_orders == 0
    assert engine.account.funds == rs("1000000")
    # an unknown outcome is registered, keeps working and is found by its tag
    engine = make(PaperConfig(unknown_outcome_ratio=Decimal(1)))
    result = engine.place(req("u1", Side.BUY), NOW, quote("100", "99.95", "100.05"))
    assert result.outcome is PlaceOutcome.UNKNOWN and result.reason
    [found] = engine.find_by_tag("u1")
    assert found.broker_order_id == result.broker_order_id
    assert found.status is OrderStatus.COMPLETE and len(found.fills) == 1


def test_stuck_order_stays_open_pending_and_can_be_cancelled() -> None:
    engine = make(PaperConfig(stuck_ratio=Decimal(1)))
    state = placed(engine.place(req("k1", Side.BUY), NOW, quote("100", "99.95", "100.05")))
    assert state.status is OrderStatus.OPEN_PENDING and state.fills == ()
    assert engine.account.blocked_for(state.broker_order_id) > Money(0)
    assert engine.on_price(quote("100", "99.95", "100.05"), NOW) == []
    cancelled = engine.cancel(state.broker_order_id, NOW)
    assert cancelled.status is OrderStatus.CANCELLED and cancelled.filled_quantity == 0
    assert engine.account.blocked == Money(0)


FAULTY = PaperConfig(partial_fill_ratio=Decimal("0.3"), reject_ratio=Decimal("0.2"),
                     unknown_outcome_ratio=Decimal("0.2"), stuck_ratio=Decimal("0.2"))


def run_script(engine: MatchingEngine, steps: int, seed: int) -> list[object]:
    """A reproducible mix of orders and prices; returns everything the engine said."""
    script = random.Random(seed)
    said, now = list[object](), NOW
    for i in range(steps):
        now += timedelta(seconds=1)
        mid = Decimal(script.randrange(1600, 2400)) * 5 / 100  # on the 0.05 tick
        tick = quote(str(mid), str(mid - Decimal("0.05")), str(mid + Decimal("0.05")), at=now)
        side = script.choice((Side.BUY, Side.SELL))
        order_type = script.choice((OrderType.MARKET, OrderType.LIMIT))
        limit = str(mid + side.sign * Decimal(script.randrange(-20, 20)) * 5 / 100) \
            if order_type is OrderType.LIMIT else None
        result = engine.place(req(f"x{i}", side, script.randint(1, 4), order_type, limit),
                              now, tick)
        said.append(result)
        said.extend(engine.on_price(tick, now))
        if result.state is not None and script.random() < 0.2:
            said.append(engine.cancel(result.state.broker_order_id, now))
    return said


def test_seeded_fault_injection_is_reproducible() -> None:
    first = run_script(make(FAULTY, seed=11), 150, 3)
    assert run_script(make(FAULTY, seed=11), 150, 3) == first
    outcomes = {r.outcome for r in first if isinstance(r, PlaceResult)}
    assert outcomes == set(PlaceOutcome)
    assert run_script(make(FAULTY, seed=12), 150, 3) != first


def all_fills(said: list[object]) -> dict[str, Fill]:
    fills: dict[str, Fill] = {}
    for item in said:
        state = item.state if isinstance(item, PlaceResult) else item
        if isinstance(state, OrderState):
            for fill in state.fills:
                assert fill.fill_id not in fills, "a fill was pushed twice"
                fills[fill.fill_id] = fill
    return fills


@settings(max_examples=40, deadline=None)
@given(engine_seed=st.integers(0, 10_000), script_seed=st.integers(0, 10_000))
def test_funds_are_conserved(engine_seed: int, script_seed: int) -> None:
    engine = make(FAULTY, cash="5000000", seed=engine_seed)
    fills = all_fills(run_script(engine, 60, script_seed))
    bought = sum(f.value.paise for f in fills.values() if f.side is Side.BUY)
    sold = sum(f.value.paise for f in fills.values() if f.side is Side.SELL)
    charges = sum(f.charges.paise for f in fills.values())
    account = engine.account
    assert account.funds.paise - rs("5000000").paise == -bought + sold - charges
    assert account.available + account.blocked == account.funds
    position = sum(f.side.sign * f.quantity for f in fills.values())
    assert account.position(CE.instrument_token) == position
    if position >= 0:
        assert account.short_margin(CE.instrument_token) == Money(0)
    for state in [s for i in range(60) for s in engine.find_by_tag(f"x{i}")]:
        engine.cancel(state.broker_order_id, NOW)
    assert engine.working_orders == 0
    assert account.blocked == account.short_margin(CE.instrument_token)


def test_bad_configuration_is_refused() -> None:
    with pytest.raises(ValueError, match="reject_ratio"):
        make(PaperConfig(reject_ratio=Decimal("1.5")))
    with pytest.raises(ValueError, match="short_margin_pct"):
        MatchingEngine(PaperConfig(), SCHEDULE, rs("1"), Decimal(-1), 1)
    with pytest.raises(ValueError, match="timezone-aware"):
        make().place(req("a1", Side.BUY), datetime(2026, 3, 10, 10, 0),
                     quote("100", "99.95", "100.05"))
