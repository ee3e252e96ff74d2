"""When an order trades: the crossing rules of the paper matching engine."""

from __future__ import annotations

from messages import Money, OrderLeg, OrderType, Price, Side

__all__ = ["crossing_price", "triggered"]


def triggered(side: Side, trigger: Money, last: Money) -> bool:
    """A stop triggers when the last price reaches it: up for a buy, down for a sell."""
    return last >= trigger if side is Side.BUY else last <= trigger


def crossing_price(leg: OrderLeg, price: Price | None) -> Money | None:
    """Where ``leg`` would trade now: any MARKET order; a LIMIT whose price the quote
    crosses (at the quote, bounded by the limit); None otherwise."""
    if price is None or leg.order_type not in (OrderType.MARKET, OrderType.LIMIT):
        return None
    quote = price.fill_price(leg.side)
    if leg.order_type is OrderType.MARKET or leg.limit_price is None:
        return quote
    if leg.side is Side.BUY:
        return quote if quote.paise <= leg.limit_price.paise else None
    return quote if quote.paise >= leg.limit_price.paise else None
