"""GTT (good till triggered) triggers, as Kite keeps them.

``single``: one trigger value and one order; it fires when the last price
crosses the value from the side ``condition.last_price`` was on. ``two-leg``
(OCO): trigger values ``[stop, target]`` (stop < target) and two orders; the
first fires when the last price is at or below the stop, the second at or
above the target. Orders are LIMIT orders (as Kite's GTT takes them). A fired
trigger becomes ``triggered`` and carries the placed order's result.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from actors.kitesim._kite import KiteError, field_int, field_money, field_str, kite_time, rupees
from actors.market import InstrumentTable
from messages import Instrument, Money

__all__ = ["FIRST_GTT_ID", "GTT_LIFETIME", "GttBook", "GttOrder", "GttTrigger"]

FIRST_GTT_ID = 100_001
"""First trigger id: Kite's are plain integers."""

GTT_LIFETIME = timedelta(days=365)
"""A GTT expires a year after it was created (Kite's rule)."""

_LEGS = {"single": 1, "two-leg": 2}
_SIDES = ("BUY", "SELL")
_PRODUCTS = ("CNC", "NRML", "MIS", "MTF")


@dataclass(frozen=True, slots=True)
class GttOrder:
    """One order a trigger places, validated against the instruments table."""

    instrument: Instrument
    transaction_type: str
    quantity: int
    product: str
    price: Money

    def form(self) -> dict[str, str]:
        """The order as the form fields of a Kite placement (LIMIT, DAY, no tag)."""
        return {"exchange": self.instrument.exchange.value,
                "tradingsymbol": self.instrument.tradingsymbol,
                "transaction_type": self.transaction_type, "quantity": str(self.quantity),
                "product": self.product, "order_type": "LIMIT", "validity": "DAY",
                "price": str(self.price.rupees)}


@dataclass(slots=True, eq=False)
class GttTrigger:
    """One trigger and its state; mutable, owned by :class:`GttBook`."""

    trigger_id: int
    kind: str
    instrument: Instrument
    trigger_values: list[Money]
    last_price: Money
    orders: list[GttOrder]
    created_at: datetime
    updated_at: datetime
    status: str = "active"
    results: list[dict[str, Any] | None] = field(default_factory=list)


def _json(fields: Mapping[str, Any], name: str) -> Any:
    text = field_str(fields, name)
    try:
        return json.loads(text)
    except ValueError:
        raise KiteError.input(f"Invalid `{name}`: not valid JSON") from None


class GttBook:
    """Every GTT of the day, by id.

    Contract: ``create``/``modify`` validate like Kite (type, trigger values,
    orders, instrument, lot and tick) and raise :class:`KiteError`; unknown
    ids are a 404. Only an ``active`` trigger may be modified; ``delete``
    marks it ``deleted`` (still readable by id, no longer listed).
    :meth:`due` returns the triggers a last price fires and marks them
    ``triggered``; :meth:`record` stores each placed order's result.
    """

    def __init__(self, instruments: InstrumentTable, user_id: str) -> None:
        self._instruments = instruments
        self._user_id = user_id
        self._triggers: dict[int, GttTrigger] = {}
        self._next_id = FIRST_GTT_ID

    def create(self, fields: Mapping[str, Any], now: datetime) -> int:
        """Validate and register a trigger; its id."""
        kind, instrument, values, last, orders = self._parse(fields)
        trigger = GttTrigger(self._next_id, kind, instrument, values, last, orders, now, now,
                             results=[None] * len(orders))
        self._next_id += 1
        self._triggers[trigger.trigger_id] = trigger
        return trigger.trigger_id

    def modify(self, trigger_id: int, fields: Mapping[str, Any], now: datetime) -> int:
        """Replace an active trigger's condition and orders."""
        trigger = self._get(trigger_id)
        if trigger.status != "active":
            raise KiteError.input(f"GTT {trigger_id} is {trigger.status}; only an active GTT "
                                  "can be modified")
        kind, instrument, values, last, orders = self._parse(fields)
        trigger.kind, trigger.instrument, trigger.trigger_values = kind, instrument, values
        trigger.last_price, trigger.orders, trigger.updated_at = last, orders, now
        trigger.results = [None] * len(orders)
        return trigger_id

    def delete(self, trigger_id: int, now: datetime) -> int:
        """Mark a trigger deleted (an already deleted one is a 404)."""
        trigger = self._get(trigger_id)
        if trigger.status == "deleted":
            raise KiteError.not_found(f"GTT {trigger_id} not found")
        trigger.status, trigger.updated_at = "deleted", now
        return trigger_id

    def get(self, trigger_id: int) -> dict[str, Any]:
        """The trigger as Kite returns it."""
        return self._json(self._get(trigger_id))

    def listed(self) -> list[dict[str, Any]]:
        """Every trigger not deleted, newest first (as Kite lists them)."""
        return [self._json(t) for t in reversed(self._triggers.values())
                if t.status != "deleted"]

    def due(self, prices: Mapping[int, Money], now: datetime) -> list[tuple[GttTrigger, int]]:
        """Active triggers the last ``prices`` fire: (trigger, index of its order)."""
        fired: list[tuple[GttTrigger, int]] = []
        for trigger in self._triggers.values():
            last = prices.get(trigger.instrument.instrument_token)
            if trigger.status != "active" or last is None:
                continue
            leg = self._leg(trigger, last)
            if leg is not None:
                trigger.status, trigger.updated_at = "triggered", now
                fired.append((trigger, leg))
        return fired

    def record(self, trigger: GttTrigger, leg: int, last: Money, now: datetime,
               order_id: str | None, error: str = "") -> None:
        """Store the result of the order a fired trigger placed."""
        order = trigger.orders[leg]
        trigger.results[leg] = {
            "account_id": self._user_id, "exchange": order.instrument.exchange.value,
            "tradingsymbol": order.instrument.tradingsymbol, "validity": "DAY",
            "price": rupees(order.price), "quantity": order.quantity,
            "timestamp": kite_time(now), "triggered_at": rupees(last),
            "order_result": {"status": "success" if order_id else "failed",
                             "order_id": order_id or "", "rejection_reason": error},
            "order_type": "LIMIT", "transaction_type": order.transaction_type,
            "product": order.product, "meta": ""}

    @staticmethod
    def _leg(trigger: GttTrigger, last: Money) -> int | None:
        values = trigger.trigger_values
        if trigger.kind == "two-leg":
            if last <= values[0]:
                return 0
            return 1 if last >= values[1] else None
        above = values[0] > trigger.last_price
        return 0 if (last >= values[0] if above else last <= values[0]) else None

    def _get(self, trigger_id: int) -> GttTrigger:
        trigger = self._triggers.get(trigger_id)
        if trigger is None:
            raise KiteError.not_found(f"GTT {trigger_id} not found")
        return trigger

    def _parse(self, fields: Mapping[str, Any]
               ) -> tuple[str, Instrument, list[Money], Money, list[GttOrder]]:
        kind = field_str(fields, "type")
        if kind not in _LEGS:
            raise KiteError.input(f"Invalid `type`: must be single or two-leg, got {kind!r}")
        condition, orders = _json(fields, "condition"), _json(fields, "orders")
        if not isinstance(condition, dict):
            raise KiteError.input("Invalid `condition`: must be a JSON object")
        instrument = self._instrument(condition)
        values = condition.get("trigger_values")
        if not isinstance(values, list) or len(values) != _LEGS[kind]:
            raise KiteError.input(f"Invalid `trigger_values`: a {kind} GTT takes "
                                  f"{_LEGS[kind]}, got {values!r}")
        triggers = [self._money({"trigger_value": v}, "trigger_value") for v in values]
        if kind == "two-leg" and not triggers[0] < triggers[1]:
            raise KiteError.input("Invalid `trigger_values`: the stop (first) must be below "
                                  f"the target (second), got {values!r}")
        last = self._money(condition, "last_price")
        if not isinstance(orders, list) or len(orders) != _LEGS[kind]:
            raise KiteError.input(f"Invalid `orders`: a {kind} GTT takes {_LEGS[kind]} "
                                  f"orders, got {orders!r}")
        return kind, instrument, triggers, last, [self._order(o, instrument) for o in orders]

    def _instrument(self, fields: Mapping[str, Any]) -> Instrument:
        exchange, symbol = field_str(fields, "exchange"), field_str(fields, "tradingsymbol")
        try:
            return self._instruments.by_symbol(exchange, symbol)
        except ValueError:
            raise KiteError.input(f"Instrument {exchange}:{symbol} not found") from None

    @staticmethod
    def _money(fields: Mapping[str, Any], name: str) -> Money:
        value = field_money(fields, name, required=True)
        if value is None:
            raise KiteError.input(f"Invalid `{name}`: must be > 0")
        return value

    def _order(self, raw: Any, instrument: Instrument) -> GttOrder:
        if not isinstance(raw, dict):
            raise KiteError.input("Invalid `orders`: each order must be a JSON object")
        named = raw.get("exchange") is not None or raw.get("tradingsymbol") is not None
        if named and self._instrument(raw) != instrument:
            raise KiteError.input("Invalid `orders`: an order's instrument must be the "
                                  "condition's")
        side = field_str(raw, "transaction_type").upper()
        product = field_str(raw, "product").upper()
        order_type = field_str(raw, "order_type").upper()
        if side not in _SIDES or product not in _PRODUCTS:
            raise KiteError.input(f"Invalid `orders`: transaction_type {side!r} or product "
                                  f"{product!r}")
        if order_type != "LIMIT":
            raise KiteError.input(f"Invalid `order_type` {order_type!r}: GTT orders are LIMIT")
        quantity = field_int(raw, "quantity")
        price = self._money(raw, "price")
        try:
            instrument.check_quantity("quantity", quantity or 0)
            instrument.check_price("price", price)
        except ValueError as error:
            raise KiteError.input(f"Invalid `orders`: {error}") from None
        return GttOrder(instrument, side, quantity or 0, product, price)

    def _json(self, t: GttTrigger) -> dict[str, Any]:
        exchange, symbol = t.instrument.exchange.value, t.instrument.tradingsymbol
        orders = [{"exchange": exchange, "tradingsymbol": symbol, "product": o.product,
                   "order_type": "LIMIT", "transaction_type": o.transaction_type,
                   "quantity": o.quantity, "price": rupees(o.price), "result": result}
                  for o, result in zip(t.orders, t.results, strict=True)]
        return {
            "id": t.trigger_id, "user_id": self._user_id, "parent_trigger": None,
            "type": t.kind, "created_at": kite_time(t.created_at),
            "updated_at": kite_time(t.updated_at),
            "expires_at": kite_time(t.created_at + GTT_LIFETIME), "status": t.status,
            "condition": {"exchange": exchange, "tradingsymbol": symbol,
                          "instrument_token": t.instrument.instrument_token,
                          "trigger_values": [rupees(v) for v in t.trigger_values],
                          "last_price": rupees(t.last_price)},
            "orders": orders, "meta": None}
