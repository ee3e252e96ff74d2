"""What an entry costs before it is placed: the price cap and the cash to reserve."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from decimal import Decimal

from messages import Money, OrderLeg, OrderType, Price, Side

__all__ = ["ROUNDING_SLACK_PAISE", "capped_leg", "reserve_amount"]

_HUNDRED = Decimal(100)
ROUNDING_SLACK_PAISE = 6
"""Per lot: charges are rounded per fill, so fills in parts may cost a few paise
more than one fill of the whole; the reservation covers one paisa per component."""


def capped_leg(leg: OrderLeg, prices: Mapping[int, Price], buffer_pct: Decimal) -> OrderLeg:
    """A buy that could fill at any price becomes one with a price cap.

    MARKET → LIMIT and SL-M → SL at the reference price (ask, or trigger)
    plus ``buffer_pct``, rounded up to the tick: the fill can never cost more
    than the cash reserved for it. Other legs are returned as they are.
    """
    if leg.side is not Side.BUY or leg.order_type not in (OrderType.MARKET, OrderType.SL_M):
        return leg
    if leg.trigger_price is not None:
        reference = leg.trigger_price.paise
    else:
        reference = prices[leg.instrument.instrument_token].fill_price(Side.BUY).paise
    tick = leg.instrument.tick_size.paise
    raw = int(Decimal(reference) * (_HUNDRED + buffer_pct) / _HUNDRED)
    cap = Money(-(-raw // tick) * tick)
    kind = OrderType.LIMIT if leg.trigger_price is None else OrderType.SL
    return OrderLeg(leg.instrument, leg.side, leg.quantity, kind, leg.product, cap,
                    leg.trigger_price)


def reserve_amount(legs: tuple[OrderLeg, ...], prices: Mapping[int, Price],
                   charges: Callable[[OrderLeg, int], int], margin_pct: Decimal,
                   margins: dict[int, int]) -> int:
    """Cash to reserve, in paise: for a buy, its capped value and the charges on it;
    for a short, its margin (recorded per unit in ``margins``). A fill can then
    never draw on free cash. ``charges`` may raise ValueError (no rate in force)."""
    total = 0
    for leg in legs:
        token = leg.instrument.instrument_token
        if leg.side is Side.BUY and leg.limit_price is not None:
            value = leg.quantity * leg.limit_price.paise
            lots = leg.quantity // leg.instrument.lot_size
            total += value + charges(leg, value) + lots * ROUNDING_SLACK_PAISE
        else:
            price = leg.limit_price.paise if leg.limit_price is not None else \
                prices[token].fill_price(leg.side).paise
            basis = leg.instrument.strike.paise if leg.instrument.strike else price
            per_unit = int(basis * margin_pct / _HUNDRED)
            margins[token] = per_unit
            total += leg.quantity * per_unit
    return total
