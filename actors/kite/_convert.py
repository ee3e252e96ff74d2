"""Kite Connect's dicts to kitesaga's types and back: pure functions, no I/O.

Every reader of a broker reply validates what it takes and raises
``BrokerReplyError`` (a ValueError) naming the field and the value: a bad
broker reply is bad input like any other and must not become a fill.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, datetime
from decimal import ROUND_DOWN, ROUND_UP, Decimal
from typing import Any

from actors.market._calendar import IST
from messages import (
    Fill,
    Instrument,
    Money,
    OrderLeg,
    OrderRequest,
    OrderStatus,
    OrderType,
    Side,
)

__all__ = [
    "BrokerReplyError",
    "KiteOrder",
    "as_ist",
    "charges_params",
    "fill_from_trade",
    "gtt_params",
    "margin_params",
    "order_from_kite",
    "place_params",
    "rupees",
]

VARIETY = "regular"
"""The only variety the engine places (see kite-connect-facts.md)."""


class BrokerReplyError(ValueError):
    """A broker reply lacks a field or carries a value that cannot be right."""


def _field(row: Mapping[str, Any], name: str) -> Any:
    if not isinstance(row, Mapping):
        raise BrokerReplyError(f"reply: expected an object, got {type(row).__name__}")
    if name not in row or row[name] is None:
        raise BrokerReplyError(f"{name}: missing from the broker's reply")
    return row[name]


def _int(row: Mapping[str, Any], name: str) -> int:
    value = _field(row, name)
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise BrokerReplyError(f"{name}: expected an integer, got {value!r}")
    try:
        number = Decimal(str(value))
    except ArithmeticError:
        raise BrokerReplyError(f"{name}: expected an integer, got {value!r}") from None
    if not number.is_finite() or number != number.to_integral_value() or number < 0:
        raise BrokerReplyError(f"{name}: expected an integer >= 0, got {value!r}")
    return int(number)


def rupees(value: Any, name: str) -> Money:
    """A broker amount in rupees (float, int or text) as Money, refusing NaN and worse."""
    if isinstance(value, bool) or not isinstance(value, int | float | str | Decimal):
        raise BrokerReplyError(f"{name}: expected rupees, got {value!r}")
    try:
        return Money.from_rupees(Decimal(str(value)), field=name)
    except (ArithmeticError, ValueError) as exc:
        raise BrokerReplyError(f"{name}: expected rupees, got {value!r} ({exc})") from None


def as_ist(value: Any, name: str) -> datetime:
    """A broker timestamp (naive IST datetime, or "YYYY-MM-DD HH:MM:SS") made aware."""
    if isinstance(value, str):
        try:
            value = datetime.strptime(value, "%Y-%m-%d %H:%M:%S")
        except ValueError:
            raise BrokerReplyError(f"{name}: expected YYYY-MM-DD HH:MM:SS, got {value!r}") \
                from None
    if not isinstance(value, datetime):
        raise BrokerReplyError(f"{name}: expected a timestamp, got {value!r}")
    return value.replace(tzinfo=IST) if value.tzinfo is None else value.astimezone(IST)


class KiteOrder:
    """The parts of a Kite order dict the engine acts on (validated)."""

    __slots__ = ("average_price", "filled_quantity", "order_id", "quantity", "reason",
                 "status", "tag", "tradingsymbol")

    def __init__(self, order_id: str, tag: str, status: OrderStatus, quantity: int,
                 filled_quantity: int, average_price: Money | None, reason: str,
                 tradingsymbol: str) -> None:
        self.order_id = order_id
        self.tag = tag
        self.status = status
        self.quantity = quantity
        self.filled_quantity = filled_quantity
        self.average_price = average_price
        self.reason = reason
        self.tradingsymbol = tradingsymbol


def order_from_kite(row: Mapping[str, Any]) -> KiteOrder:
    """Read one order dict (from /orders, an order-history row or a ticker update)."""
    order_id = str(_field(row, "order_id"))
    raw_status = _field(row, "status")
    try:
        status = OrderStatus(str(raw_status))
    except ValueError:
        raise BrokerReplyError(f"status: not a Kite order status, got {raw_status!r}") from None
    quantity = _int(row, "quantity")
    filled = _int(row, "filled_quantity") if row.get("filled_quantity") is not None else 0
    if quantity <= 0 or filled > quantity:
        raise BrokerReplyError(f"filled_quantity: {filled} of quantity {quantity} is impossible")
    average = row.get("average_price")
    price = rupees(average, "average_price") if average not in (None, 0, 0.0, "0") else None
    tag = row.get("tag")
    reason = str(row.get("status_message") or "")[:500]
    return KiteOrder(order_id, str(tag) if tag else "", status, quantity, filled, price,
                     reason, str(row.get("tradingsymbol") or ""))


def fill_from_trade(row: Mapping[str, Any], instrument_token: int, charges: Money) -> Fill:
    """One Kite trade as a Fill carrying ``charges``."""
    side = str(_field(row, "transaction_type"))
    if side not in (Side.BUY.value, Side.SELL.value):
        raise BrokerReplyError(f"transaction_type: expected BUY or SELL, got {side!r}")
    quantity = _int(row, "quantity")
    if quantity <= 0:
        raise BrokerReplyError(f"quantity: a trade needs a quantity > 0, got {quantity}")
    stamp = row.get("fill_timestamp") or row.get("exchange_timestamp") or _field(
        row, "order_timestamp")
    return Fill(str(_field(row, "trade_id")), str(_field(row, "order_id")), instrument_token,
                Side(side), quantity, rupees(_field(row, "average_price"), "average_price"),
                charges, as_ist(stamp, "fill_timestamp"))


def place_params(request: OrderRequest) -> dict[str, Any]:
    """``KiteConnect.place_order`` keyword arguments for ``request`` (regular variety);
    every MARKET and SL-M order carries ``market_protection``."""
    leg = request.leg
    params: dict[str, Any] = {
        "variety": VARIETY,
        "exchange": leg.instrument.exchange.value,
        "tradingsymbol": leg.instrument.tradingsymbol,
        "transaction_type": leg.side.value,
        "quantity": leg.quantity,
        "product": leg.product.value,
        "order_type": leg.order_type.value,
        "validity": "DAY",
        "tag": request.tag,
    }
    if leg.limit_price is not None:
        params["price"] = float(leg.limit_price.rupees)
    if leg.trigger_price is not None:
        params["trigger_price"] = float(leg.trigger_price.rupees)
    if leg.order_type in (OrderType.MARKET, OrderType.SL_M):
        params["market_protection"] = request.market_protection
    return params


def margin_params(legs: tuple[OrderLeg, ...], prices: Mapping[int, Money]) -> list[dict[str, Any]]:
    """The JSON list ``order_margins``/``basket_order_margins`` take for ``legs``."""
    rows = []
    for leg in legs:
        price = leg.limit_price or prices.get(leg.instrument.instrument_token)
        rows.append({
            "exchange": leg.instrument.exchange.value,
            "tradingsymbol": leg.instrument.tradingsymbol,
            "transaction_type": leg.side.value,
            "variety": VARIETY,
            "product": leg.product.value,
            "order_type": leg.order_type.value,
            "quantity": leg.quantity,
            "price": float(price.rupees) if price is not None else 0,
            "trigger_price": float(leg.trigger_price.rupees) if leg.trigger_price else 0,
        })
    return rows


def charges_params(order_id: str, leg: OrderLeg, quantity: int,
                   average: Money) -> list[dict[str, Any]]:
    """The JSON list ``get_virtual_contract_note`` takes: one executed order so far."""
    return [{
        "order_id": order_id,
        "exchange": leg.instrument.exchange.value,
        "tradingsymbol": leg.instrument.tradingsymbol,
        "transaction_type": leg.side.value,
        "variety": VARIETY,
        "product": leg.product.value,
        "order_type": leg.order_type.value,
        "quantity": quantity,
        "average_price": float(average.rupees),
    }]


def _on_tick(instrument: Instrument, paise: Decimal, up: bool) -> Money:
    tick = instrument.tick_size.paise
    steps = (paise / tick).quantize(Decimal(1), rounding=ROUND_UP if up else ROUND_DOWN)
    return Money(max(int(steps) * tick, tick))


def gtt_params(instrument: Instrument, side: Side, quantity: int, product: str,
               stop: Money, target: Money, last: Money, buffer_pct: Decimal) -> dict[str, Any]:
    """``KiteConnect.place_gtt`` keyword arguments for a two-leg (OCO) GTT.

    The triggers lie ``buffer_pct`` beyond the engine's own stop and target
    (the engine's exit acts first; the GTT is the backstop). Each leg is a
    LIMIT order at its trigger, ``buffer_pct`` further through the market so
    it fills when triggered. Trigger values go low to high, as Kite wants.
    """
    widen = buffer_pct / Decimal(100)
    closing_sell = side is Side.SELL  # a long position closes with a SELL
    low, high = (stop, target) if closing_sell else (target, stop)
    low_trigger = _on_tick(instrument, Decimal(low.paise) * (1 - widen), up=False)
    high_trigger = _on_tick(instrument, Decimal(high.paise) * (1 + widen), up=True)
    if closing_sell:  # sell: accept a little less than the trigger
        limits = [_on_tick(instrument, Decimal(t.paise) * (1 - widen), up=False)
                  for t in (low_trigger, high_trigger)]
    else:  # buy back: accept a little more
        limits = [_on_tick(instrument, Decimal(t.paise) * (1 + widen), up=True)
                  for t in (low_trigger, high_trigger)]
    orders = [{
        "exchange": instrument.exchange.value,
        "tradingsymbol": instrument.tradingsymbol,
        "transaction_type": side.value,
        "quantity": quantity,
        "order_type": OrderType.LIMIT.value,
        "product": product,
        "price": float(limit.rupees),
    } for limit in limits]
    return {
        "trigger_type": "two-leg",
        "tradingsymbol": instrument.tradingsymbol,
        "exchange": instrument.exchange.value,
        "trigger_values": [float(low_trigger.rupees), float(high_trigger.rupees)],
        "last_price": float(last.rupees),
        "orders": orders,
    }


def ist_date(moment: datetime) -> date:
    """The Indian trade date of an aware moment."""
    return moment.astimezone(IST).date()
