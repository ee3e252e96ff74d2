"""Kite dicts to our types and back, and the gateway's record of an order: pure, no I/O."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Any

import pytest

from actors.kite._convert import (
    BrokerReplyError,
    as_ist,
    charges_params,
    fill_from_trade,
    gtt_params,
    margin_params,
    order_from_kite,
    place_params,
)
from actors.kite._feed import _price_of, batches
from actors.kite._tracked import Tracked
from actors.market import IST
from messages import (
    Instrument,
    Money,
    OrderLeg,
    OrderRequest,
    OrderStatus,
    OrderType,
    Price,
    PriceRejected,
    Product,
    Side,
)

CALL = Instrument((35010 << 8) | 2, "NFO", "NIFTY26DEC24000CE", "NIFTY", "CE", 65, Money(5),
                  date(2026, 12, 29), Money(2_400_000))
LEG = OrderLeg(CALL, Side.BUY, 130, OrderType.LIMIT, Product.NRML, Money(100_05))
NOW = datetime(2026, 11, 25, 10, 0, tzinfo=IST)


def row(**over: Any) -> dict[str, Any]:
    base = {"order_id": "1001", "status": "OPEN", "quantity": 130, "filled_quantity": 0,
            "average_price": 0, "tag": "AB12CD0E", "tradingsymbol": CALL.tradingsymbol}
    return {**base, **over}


def trade(trade_id: str, quantity: int, price: float = 100.0) -> dict[str, Any]:
    return {"trade_id": trade_id, "order_id": "1001", "transaction_type": "BUY",
            "quantity": quantity, "average_price": price,
            "fill_timestamp": "2026-11-25 10:00:01"}


def fills(*trades: tuple[str, int]) -> list[Any]:
    return [fill_from_trade(trade(t, q), CALL.instrument_token, Money(0)) for t, q in trades]


@pytest.mark.parametrize(("bad", "field"), [
    ({"status": None}, "status"),
    ({"status": "LOST IN SPACE"}, "status"),
    ({"filled_quantity": 131}, "filled_quantity"),
    ({"quantity": "1.5"}, "quantity"),
    ({"average_price": float("nan")}, "average_price"),
    ({"order_id": None}, "order_id"),
])
def test_a_bad_order_dict_names_the_field(bad: dict[str, Any], field: str) -> None:
    with pytest.raises(BrokerReplyError, match=field):
        order_from_kite(row(**bad))


def test_an_order_dict_is_read() -> None:
    order = order_from_kite(row(status="COMPLETE", filled_quantity=130, average_price=100.5,
                                status_message=None))
    assert (order.status, order.filled_quantity, order.average_price) == (
        OrderStatus.COMPLETE, 130, Money(100_50))
    assert order.reason == ""


def test_timestamps_are_read_as_ist() -> None:
    assert as_ist("2026-11-25 10:00:00", "t") == NOW
    assert as_ist(datetime(2026, 11, 25, 10, 0), "t") == NOW
    with pytest.raises(BrokerReplyError, match="order_timestamp"):
        as_ist("25/11/2026", "order_timestamp")


def test_trades_become_fills_and_bad_ones_are_refused() -> None:
    fill = fill_from_trade(trade("T1", 65), CALL.instrument_token, Money(12))
    assert (fill.fill_id, fill.quantity, fill.price, fill.timestamp) == (
        "T1", 65, Money(100_00), datetime(2026, 11, 25, 10, 0, 1, tzinfo=IST))
    with pytest.raises(BrokerReplyError, match="transaction_type"):
        fill_from_trade({**trade("T2", 65), "transaction_type": "HOLD"}, 1, Money(0))
    with pytest.raises(BrokerReplyError, match="quantity"):
        fill_from_trade(trade("T3", 0), 1, Money(0))


def test_market_protection_goes_on_market_and_sl_m_orders_only() -> None:
    market = OrderLeg(CALL, Side.SELL, 65, OrderType.MARKET, Product.NRML)
    slm = OrderLeg(CALL, Side.SELL, 65, OrderType.SL_M, Product.NRML, trigger_price=Money(90_00))
    assert place_params(OrderRequest("AB12CD0X", market, 5))["market_protection"] == 5
    assert place_params(OrderRequest("AB12CD0X", slm))["market_protection"] == -1
    limit = place_params(OrderRequest("AB12CD0E", LEG))
    assert "market_protection" not in limit
    assert (limit["variety"], limit["price"], limit["tag"]) == ("regular", 100.05, "AB12CD0E")


def test_margin_and_charges_params() -> None:
    market = OrderLeg(CALL, Side.BUY, 65, OrderType.MARKET, Product.NRML)
    [params] = margin_params((market,), {CALL.instrument_token: Money(99_00)})
    assert (params["price"], params["quantity"], params["variety"]) == (99.0, 65, "regular")
    [note] = charges_params("1001", LEG, 65, Money(100_10))
    assert (note["order_id"], note["quantity"], note["average_price"]) == ("1001", 65, 100.1)


@pytest.mark.parametrize("side", [Side.SELL, Side.BUY])
def test_a_gtt_brackets_the_price_beyond_the_engine_s_own_levels(side: Side) -> None:
    # a long closes with SELL: stop below, target above; a short mirrors it
    stop, target = (Money(75_00), Money(140_00)) if side is Side.SELL else (
        Money(130_00), Money(60_00))
    params = gtt_params(CALL, side, 65, "NRML", stop, target, Money(100_00), Decimal(1))
    low, high = params["trigger_values"]
    assert low < 100 < high
    assert low <= min(stop, target).paise / 100 and high >= max(stop, target).paise / 100
    for value in (low, high, *(o["price"] for o in params["orders"])):
        assert round(value * 100) % 5 == 0  # on the 0.05 tick
    assert params["trigger_type"] == "two-leg" and len(params["orders"]) == 2
    assert {o["transaction_type"] for o in params["orders"]} == {side.value}


def test_charges_of_an_order_are_split_over_its_fills_and_add_up() -> None:
    tracked = Tracked("AB12CD0E", LEG)
    tracked.order_id = "1001"
    tracked.take(order_from_kite(row(filled_quantity=65)))
    first = tracked.add_fills(fills(("T1", 65)), Money(25_00))
    tracked.take(order_from_kite(row(status="COMPLETE", filled_quantity=130)))
    second = tracked.add_fills(fills(("T2", 30), ("T3", 35)), Money(41_01))
    charges = [f.charges.paise for f in (*first, *second)]
    assert sum(charges) == 41_01 and charges[0] == 25_00
    with pytest.raises(BrokerReplyError, match="exceeds"):
        tracked.add_fills(fills(("T4", 65)), Money(50_00))


def test_a_terminal_state_is_not_pushed_before_its_fills() -> None:
    tracked = Tracked("AB12CD0E", LEG)
    tracked.order_id = "1001"
    tracked.take(order_from_kite(row(status="COMPLETE", filled_quantity=130)))
    early = tracked.push_state()
    assert early is not None and early.status is OrderStatus.OPEN and early.fills == ()
    assert tracked.needs_trades()
    tracked.add_fills(fills(("T1", 130)), Money(30_00))
    done = tracked.push_state()
    assert done is not None and done.status is OrderStatus.COMPLETE and len(done.fills) == 1
    assert tracked.push_state() is None  # nothing new
    tracked.take(order_from_kite(row(status="OPEN", filled_quantity=0)))  # an older row
    assert tracked.status is OrderStatus.COMPLETE
    assert tracked.full_state().fills == done.fills


def test_rest_quotes_become_prices_or_rejections() -> None:
    quote = {"instrument_token": 5, "last_price": 101.5, "timestamp": "2026-11-25 10:00:00",
             "depth": {"buy": [{"price": 101.45}], "sell": [{"price": 101.55}]}}
    price = _price_of("NSE:X", quote, NOW, ltp=False)
    assert isinstance(price, Price) and price.exchange_ts == NOW
    assert (price.bid, price.ask) == (Money(101_45), Money(101_55))
    no_stamp = _price_of("NSE:X", {"instrument_token": 5, "last_price": 101.5}, NOW, ltp=False)
    assert isinstance(no_stamp, PriceRejected) and "exchange_ts" in no_stamp.reason
    ltp = _price_of("NSE:X", {"instrument_token": 5, "last_price": 101.5}, NOW, ltp=True)
    assert isinstance(ltp, Price) and ltp.exchange_ts == NOW  # stamped when received
    assert isinstance(_price_of("NSE:X", {"last_price": 1}, NOW, ltp=True), PriceRejected)
    nan = _price_of("NSE:X", {"instrument_token": 5, "last_price": float("nan")}, NOW, True)
    assert isinstance(nan, PriceRejected) and "last" in nan.reason


def test_batches_respect_the_size() -> None:
    keys = [f"NSE:S{i}" for i in range(1001)]
    assert [len(b) for b in batches(keys, 500)] == [500, 500, 1]
    assert batches([], 500) == []
