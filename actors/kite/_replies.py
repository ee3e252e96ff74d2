"""Readers of the broker's replies SyncActor and the gateway compare with the book.

Each ``parse_*`` validates what it takes from a Kite reply and raises
``BrokerReplyError`` naming the field and the value; the rows are immutable.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from actors.kite._convert import BrokerReplyError, as_ist, rupees
from messages import OrderStatus

__all__ = ["BrokerGtt", "BrokerOrder", "BrokerPosition", "parse_gtts", "parse_orders",
           "parse_positions"]


@dataclass(frozen=True, slots=True)
class BrokerPosition:
    """One row of the broker's net positions."""

    instrument_token: int
    key: str
    product: str
    quantity: int
    average_price: int = 0  # paise; 0 when the broker gave none


@dataclass(frozen=True, slots=True)
class BrokerOrder:
    """One row of the broker's order book."""

    order_id: str
    tag: str
    status: OrderStatus
    instrument_token: int
    key: str
    side: str
    pending: int
    placed_at: datetime


@dataclass(frozen=True, slots=True)
class BrokerGtt:
    """One GTT trigger: its first order's side and quantity (every leg closes the same)."""

    trigger_id: int
    status: str
    instrument_token: int
    key: str
    side: str
    quantity: int


def _row(value: Any, where: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise BrokerReplyError(f"{where}: expected an object, got {value!r}"[:300])
    return value


def _text(row: Mapping[str, Any], name: str, where: str) -> str:
    value = row.get(name)
    if not isinstance(value, str) or not value:
        raise BrokerReplyError(f"{where}.{name}: expected a text, got {value!r}"[:300])
    return value


def _whole(row: Mapping[str, Any], name: str, where: str, low: int | None = 0) -> int:
    value = row.get(name)
    if type(value) is float and value.is_integer():
        value = int(value)
    if type(value) is not int or (low is not None and value < low):
        bound = "" if low is None else f" >= {low}"
        raise BrokerReplyError(f"{where}.{name}: expected an integer{bound}, got {value!r}"[:300])
    return value


def _list(reply: Any, where: str) -> list[Any]:
    if not isinstance(reply, list):
        raise BrokerReplyError(f"{where}: expected a list, got {reply!r}"[:300])
    return reply


def _key(row: Mapping[str, Any], where: str) -> str:
    return f"{_text(row, 'exchange', where)}:{_text(row, 'tradingsymbol', where)}"


def _side(row: Mapping[str, Any], where: str) -> str:
    side = row.get("transaction_type")
    if side not in ("BUY", "SELL"):
        raise BrokerReplyError(f"{where}.transaction_type: expected BUY or SELL, got {side!r}")
    return str(side)


def parse_positions(reply: Any) -> tuple[BrokerPosition, ...]:
    """The ``net`` rows of ``GET /portfolio/positions``."""
    rows = _list(_row(reply, "positions").get("net"), "positions.net")
    out = []
    for i, raw in enumerate(rows):
        where = f"positions.net[{i}]"
        row = _row(raw, where)
        average = row.get("average_price")
        out.append(BrokerPosition(_whole(row, "instrument_token", where, 1), _key(row, where),
                                  _text(row, "product", where),
                                  _whole(row, "quantity", where, None),
                                  0 if average is None else
                                  rupees(average, f"{where}.average_price").paise))
    return tuple(out)


def parse_orders(reply: Any) -> tuple[BrokerOrder, ...]:
    """The rows of ``GET /orders`` (every order of the day)."""
    out = []
    for i, raw in enumerate(_list(reply, "orders")):
        where = f"orders[{i}]"
        row = _row(raw, where)
        status_text = row.get("status")
        try:
            status = OrderStatus(status_text)
        except ValueError:
            raise BrokerReplyError(f"{where}.status: not a Kite order status, got "
                                   f"{status_text!r}") from None
        tag = row.get("tag")
        if tag is not None and not isinstance(tag, str):
            raise BrokerReplyError(f"{where}.tag: expected a text, got {tag!r}"[:300])
        order_id = row.get("order_id")
        if not isinstance(order_id, str | int) or isinstance(order_id, bool) or not order_id:
            raise BrokerReplyError(f"{where}.order_id: expected an id, got {order_id!r}")
        pending = 0 if status.is_terminal else _whole(row, "pending_quantity", where)
        out.append(BrokerOrder(str(order_id), tag or "", status,
                               _whole(row, "instrument_token", where, 1), _key(row, where),
                               _side(row, where), pending,
                               as_ist(row.get("order_timestamp"), f"{where}.order_timestamp")))
    return tuple(out)


def parse_gtts(reply: Any) -> tuple[BrokerGtt, ...]:
    """The triggers of ``GET /gtt/triggers``."""
    out = []
    for i, raw in enumerate(_list(reply, "gtts")):
        where = f"gtts[{i}]"
        row = _row(raw, where)
        condition = _row(row.get("condition"), f"{where}.condition")
        orders = _list(row.get("orders"), f"{where}.orders")
        if not orders:
            raise BrokerReplyError(f"{where}.orders: expected at least one order, got []")
        first = _row(orders[0], f"{where}.orders[0]")
        out.append(BrokerGtt(_whole(row, "id", where, 1), _text(row, "status", where),
                             _whole(condition, "instrument_token", f"{where}.condition", 1),
                             _key(condition, f"{where}.condition"),
                             _side(first, f"{where}.orders[0]"),
                             _whole(first, "quantity", f"{where}.orders[0]", 1)))
    return tuple(out)
