"""Start-up for the paper broker: its account and its orders, rebuilt from the journal.

The paper broker lives in the engine's process, so a crash kills it too. Like
an exchange that cancels a disconnected member's working orders, the rebuilt
broker holds every journaled order as terminal: COMPLETE if its journaled
fills cover it, else CANCELLED with those fills. Fills the broker made that
never reached the journal died with it (they never happened durably). The
account is settled from the journaled fills, and the order and fill id
counters continue after the highest restored ids, so no id is ever reused.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from actors.broker._charges import segment_for
from actors.broker._matching import MatchingEngine, _Order
from messages import Fill, Money, OrderLeg, OrderRequest, OrderStatus

if TYPE_CHECKING:
    from actors._durable import OrderRecord

__all__ = ["restore_orders"]


def _numeric(text: str) -> int:
    return int(text) if text.isdigit() else 0


def restore_orders(engine: MatchingEngine, orders: Iterable[OrderRecord]) -> int:
    """Rebuild ``engine`` (fresh, untouched) from journaled orders; return how many."""
    restored = 0
    for record in orders:
        if record.broker_order_id is None:
            continue  # never named by the broker: it died with the process, if it existed
        leg: OrderLeg = record.leg
        fills: list[Fill] = sorted(record.fills, key=lambda f: _numeric(f.fill_id))
        filled = sum(f.quantity for f in fills)
        status = OrderStatus.COMPLETE if filled >= leg.quantity else OrderStatus.CANCELLED
        reference = fills[0].price if fills else leg.limit_price or Money(1)
        margin = engine.account.margin_per_unit(leg, reference)
        order = _Order(record.broker_order_id, OrderRequest(record.tag, leg),
                       segment_for(leg.instrument, leg.product), status, leg.order_type,
                       leg.limit_price, margin, Money(0))
        for fill in fills:
            order.fills.append(fill)
            order.filled += fill.quantity
            order.value += fill.value.paise
            engine.account.settle(fill.instrument_token, fill.side, fill.quantity, fill.value,
                                  fill.charges, margin)
            engine._next_fill_id = max(engine._next_fill_id, _numeric(fill.fill_id) + 1)
        order.reported = len(order.fills)
        if status is OrderStatus.CANCELLED:
            order.reason = "the engine restarted: working orders were cancelled"
        engine._orders[order.order_id] = order
        engine._by_tag.setdefault(record.tag, {})[order.order_id] = None
        engine._terminal.append(order.order_id)
        engine._next_order_id = max(engine._next_order_id,
                                    _numeric(record.broker_order_id) + 1)
        restored += 1
    return restored
