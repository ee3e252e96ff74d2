"""Kite orders in the simulator: the order record, its validation and its JSON.

:func:`order_terms` validates placement (or modification) form fields the
way Kite does and returns the terms a :class:`SimOrder` is built from;
:func:`order_json` and :func:`trade_json` render Kite's order and trade dicts.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from actors.kitesim._kite import KiteError, field_int, field_money, field_str, kite_time, rupees
from actors.market import InstrumentTable
from messages import Instrument, Money, OrderLeg, OrderStatus, OrderType, Product, Side

__all__ = ["MAX_TAG_LENGTH", "SIM_USER_ID", "SimOrder", "SimTrade", "order_json",
           "order_terms", "trade_json"]

SIM_USER_ID = "KS0001"
"""The simulated account's Kite user id."""

MAX_TAG_LENGTH = 20
"""Kite's longest order tag."""

_VALIDITIES = ("DAY", "IOC")
_MAX_PROTECTION_PCT = 100  # market_protection: -1 (automatic) or 1..100 %


@dataclass(slots=True, eq=False)
class SimOrder:
    """One Kite order; mutable, owned by :class:`SimExchange`."""

    order_id: str
    instrument: Instrument
    side: Side
    product: Product
    order_type: OrderType
    validity: str
    quantity: int
    price: Money | None
    trigger_price: Money | None
    disclosed_quantity: int
    market_protection: int
    tag: str
    placed_at: datetime
    status: OrderStatus = OrderStatus.PUT_ORDER_REQUEST_RECEIVED
    status_message: str | None = None
    exchange_order_id: str | None = None
    exchange_at: datetime | None = None
    engine_id: str | None = None
    filled: int = 0
    value: int = 0  # paise traded
    cancelled: int = 0
    modifications: int = 0
    stuck: bool = False
    history: list[dict[str, Any]] = field(default_factory=list)
    fill_ids: set[str] = field(default_factory=set)


@dataclass(frozen=True, slots=True)
class SimTrade:
    """One execution of an order."""

    trade_id: str
    order: SimOrder
    quantity: int
    price: Money
    at: datetime


def order_json(order: SimOrder) -> dict[str, Any]:
    """The order as Kite's order book shows it."""
    terminal = order.status.is_terminal
    average = (2 * order.value + order.filled) // (2 * order.filled) if order.filled else 0
    return {
        "placed_by": SIM_USER_ID, "order_id": order.order_id,
        "exchange_order_id": order.exchange_order_id, "parent_order_id": None,
        "status": order.status.value, "status_message": order.status_message,
        "status_message_raw": order.status_message,
        "order_timestamp": kite_time(order.placed_at),
        "exchange_update_timestamp": kite_time(order.exchange_at),
        "exchange_timestamp": kite_time(order.exchange_at), "variety": "regular",
        "modified": order.modifications > 0, "exchange": order.instrument.exchange.value,
        "tradingsymbol": order.instrument.tradingsymbol,
        "instrument_token": order.instrument.instrument_token,
        "order_type": order.order_type.value, "transaction_type": order.side.value,
        "validity": order.validity, "validity_ttl": 0, "product": order.product.value,
        "quantity": order.quantity, "disclosed_quantity": order.disclosed_quantity,
        "price": rupees(order.price), "trigger_price": rupees(order.trigger_price),
        "average_price": rupees(average), "filled_quantity": order.filled,
        "pending_quantity": 0 if terminal else order.quantity - order.filled,
        "cancelled_quantity": order.cancelled,
        "market_protection": order.market_protection, "meta": {},
        "tag": order.tag or None, "tags": [order.tag] if order.tag else None,
        "guid": f"{order.order_id}-{order.placed_at:%H%M%S}"}

def trade_json(trade: SimTrade) -> dict[str, Any]:
    """The trade as Kite's trade book shows it."""
    order = trade.order
    return {"trade_id": trade.trade_id, "order_id": order.order_id,
            "exchange_order_id": order.exchange_order_id,
            "tradingsymbol": order.instrument.tradingsymbol,
            "exchange": order.instrument.exchange.value,
            "instrument_token": order.instrument.instrument_token,
            "transaction_type": order.side.value, "product": order.product.value,
            "average_price": rupees(trade.price), "quantity": trade.quantity,
            "fill_timestamp": kite_time(trade.at), "order_timestamp": kite_time(trade.at),
            "exchange_timestamp": kite_time(trade.at)}


def order_terms(instruments: InstrumentTable, fields: Mapping[str, Any],
                base: SimOrder | None) -> dict[str, Any]:
    """Validated order terms from Kite's form fields, as :class:`SimOrder` keywords.

    A placement (``base`` None) needs exchange, tradingsymbol, transaction_type,
    product, order_type and quantity; a modification takes what it sends over
    ``base``'s terms. Checks: a tradable known instrument, the lot and the tick,
    prices the order type needs, ``market_protection`` (-1 or 1..100) on MARKET
    and SL-M, an SL trigger on the near side of its price, a tag of at most
    ``MAX_TAG_LENGTH`` characters. Any failure is a 400 InputException.
    """

    def text(name: str, old: str) -> str:
        value = field_str(fields, name, required=base is None and not old, default=old)
        return value.upper() if name != "tradingsymbol" else value

    if base is None:
        exchange, symbol = text("exchange", ""), text("tradingsymbol", "")
        try:
            instrument = instruments.by_symbol(exchange, symbol)
        except ValueError:
            raise KiteError.input(f"Instrument {exchange}:{symbol} not found") from None
        if instruments.is_index(instrument.instrument_token):
            raise KiteError.input(f"{instrument.key} is an index: it cannot be traded")
        tag = field_str(fields, "tag", required=False)
        if len(tag) > MAX_TAG_LENGTH:
            raise KiteError.input(f"Invalid `tag`: at most {MAX_TAG_LENGTH} characters, "
                                  f"got {len(tag)}")
    else:
        instrument, tag = base.instrument, base.tag
    try:
        side = Side(text("transaction_type", base.side.value if base else ""))
        product = Product(text("product", base.product.value if base else ""))
        order_type = OrderType(text("order_type", base.order_type.value if base else ""))
    except ValueError as error:
        raise KiteError.input(f"Invalid order: {error}") from None
    validity = text("validity", base.validity if base else "DAY")
    if validity not in _VALIDITIES:
        raise KiteError.input(f"Invalid `validity`: the simulator takes "
                              f"{' or '.join(_VALIDITIES)}, got {validity!r}")
    quantity = field_int(fields, "quantity", required=base is None,
                         default=base.quantity if base else None) or 0
    price = field_money(fields, "price")
    trigger = field_money(fields, "trigger_price")
    if base is not None:
        price = price if "price" in fields else base.price
        trigger = trigger if "trigger_price" in fields else base.trigger_price
    protection = field_int(fields, "market_protection", required=False,
                           default=base.market_protection if base else 0) or 0
    disclosed = field_int(fields, "disclosed_quantity", required=False,
                          default=base.disclosed_quantity if base else 0) or 0
    market_like = order_type in (OrderType.MARKET, OrderType.SL_M)
    if market_like and protection != -1 and not 1 <= protection <= _MAX_PROTECTION_PCT:
        raise KiteError.input(f"market_protection is required for {order_type.value} orders:"
                              f" -1 (automatic) or 1..100 %, got {protection}")
    try:
        OrderLeg(instrument, side, quantity, order_type, product,
                 None if market_like else price,
                 trigger if order_type in (OrderType.SL, OrderType.SL_M) else None)
    except ValueError as error:
        raise KiteError.input(f"Invalid order: {error}") from None
    if order_type is OrderType.SL and price is not None and trigger is not None and (
            trigger > price if side is Side.BUY else trigger < price):
        raise KiteError.input(f"Invalid `trigger_price`: a stop-loss {side.value} order's "
                              f"trigger must be on the near side of its price")
    return {"instrument": instrument, "side": side, "product": product,
            "order_type": order_type, "validity": validity, "quantity": quantity,
            "price": None if market_like else price,
            "trigger_price": trigger if order_type in (OrderType.SL, OrderType.SL_M)
            else None,
            "disclosed_quantity": disclosed, "market_protection": protection, "tag": tag}
