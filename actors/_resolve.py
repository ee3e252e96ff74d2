"""Resolving a position drift: what the book must do so that it follows the broker.

Pure functions, no I/O. SyncActor reads the broker (positions, and for a book
position the broker lacks, the day's trades and orders), calls :func:`plan`,
and sends the resulting :class:`messages.ReconcilePosition` to OrderActor.

The rules (docs/sagas.md, "Reconciliation"):

* The broker's quantity is the authority.
* Quantity the broker holds beyond the book is ADOPTED as ``EXTERNAL`` at the
  broker's average price: it was paid for outside the book, so free cash does
  not move (the portfolio books a capital transfer).
* Quantity the book holds beyond the broker is removed ONLY with evidence:
  broker trades of the closing side that the engine did not place (a tag that
  is not the engine's), not applied before. Each such trade is applied as a
  real fill (the book's own money moves), to the strategies holding the
  position, largest first. Without enough evidence the rest of the drift
  stands (reported; at start-up new entries stay HALTED).
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from actors._drift import BrokerPosition
from actors.kite._convert import BrokerReplyError, fill_from_trade
from messages import (
    EXTERNAL,
    ExitRules,
    Fill,
    Money,
    Product,
    ReconcilePosition,
    Side,
    StrategyFill,
)

__all__ = ["BrokerTrade", "Plan", "foreign_trades", "plan"]


@dataclass(frozen=True, slots=True)
class BrokerTrade:
    """One trade of the broker's day book, as a Fill (its id is the trade id)."""

    fill: Fill
    tag: str


def foreign_trades(trades: Any, orders: Any, ours: Callable[[str], bool]) -> list[BrokerTrade]:
    """The day's trades whose order the engine did not place (``GET /trades`` joined
    with ``GET /orders`` on the order id), oldest first. A bad row raises
    BrokerReplyError naming the field."""
    if not isinstance(trades, list) or not isinstance(orders, list):
        raise BrokerReplyError(f"trades/orders: expected lists, got {type(trades).__name__} "
                               f"and {type(orders).__name__}")
    tags: dict[str, str] = {}
    for i, row in enumerate(orders):
        if not isinstance(row, Mapping) or "order_id" not in row:
            raise BrokerReplyError(f"orders[{i}]: expected an object with an order_id, "
                                   f"got {row!r}"[:300])
        tags[str(row["order_id"])] = str(row.get("tag") or "")
    out = []
    for i, row in enumerate(trades):
        if not isinstance(row, Mapping):
            raise BrokerReplyError(f"trades[{i}]: expected an object, got {row!r}"[:300])
        token = row.get("instrument_token")
        if type(token) is not int or token <= 0:
            raise BrokerReplyError(f"trades[{i}].instrument_token: expected an integer > 0, "
                                   f"got {token!r}")
        fill = fill_from_trade(row, token, Money(0))
        tag = tags.get(fill.broker_order_id, "")
        if not ours(tag):
            out.append(BrokerTrade(fill, tag))
    out.sort(key=lambda t: (t.fill.timestamp, t.fill.fill_id))
    return out


@dataclass(frozen=True, slots=True)
class Plan:
    """What :func:`plan` decided: the message for OrderActor (None: nothing to do),
    the book's net quantity once it is applied, and what stays unexplained."""

    message: ReconcilePosition | None
    expected: int
    unexplained: str = ""


def _sign(quantity: int) -> int:
    return (quantity > 0) - (quantity < 0)


def plan(token: int, book: Mapping[str, int], broker: list[BrokerPosition],
         trades: list[BrokerTrade] | None, applied: Collection[str], rules: ExitRules,
         now: datetime, reason: str) -> Plan:
    """Make the book's positions in ``token`` (``book``: strategy → signed quantity)
    follow the broker's rows for it. ``trades`` are the foreign trades (None: not read;
    only needed when the book holds more than the broker); ``applied`` the trade ids
    already sent. See the module doc."""
    held = {s: q for s, q in book.items() if q}
    ours = sum(held.values())
    theirs = sum(row.quantity for row in broker)
    rows = [row for row in broker if row.quantity]
    product = _product(rows[0].product if rows else "")
    evidence: list[StrategyFill] = []
    net = ours
    if ours and (_sign(theirs) != _sign(ours) or abs(theirs) < abs(ours)):
        closing = Side.SELL if ours > 0 else Side.BUY
        need = abs(ours) - (abs(theirs) if _sign(theirs) == _sign(ours) else 0)
        holders = sorted(((s, abs(q)) for s, q in held.items() if _sign(q) == _sign(ours)),
                         key=lambda sq: (-sq[1], sq[0]))
        for trade in trades or ():
            if need <= 0:
                break
            fill = trade.fill
            if fill.side is not closing or fill.fill_id in applied:
                continue
            pieces = _split(fill, holders)
            evidence.extend(pieces)
            need -= fill.quantity
            net -= _sign(ours) * fill.quantity
    adopt: Fill | None = None
    rest = theirs - net
    unexplained = ""
    if rest and (net == 0 or (_sign(net) == _sign(theirs) and abs(theirs) > abs(net))):
        price = next((row.average_price for row in rows if row.average_price > 0), 0)
        if price > 0:
            side = Side.BUY if rest > 0 else Side.SELL
            adopt = Fill(f"X{now:%y%m%d}-{token}-{ours:+d}-{theirs:+d}", "external", token,
                         side, abs(rest), Money(price), Money(0), now)
            net += rest
        else:
            unexplained = f"the broker gives no average price to adopt {rest:+d} at"
    elif rest:
        unexplained = (f"{net:+d} in the book against {theirs:+d} at the broker: no broker "
                       "trade the engine did not place explains the difference")
    message = None
    if evidence or adopt is not None:
        message = ReconcilePosition(token, product, tuple(evidence), adopt, rules, reason[:500],
                                    ours)
    return Plan(message, net, unexplained)


def _product(text: str) -> Product:
    try:
        return Product(text)
    except ValueError:
        return Product.NRML


def _split(fill: Fill, holders: list[tuple[str, int]]) -> list[StrategyFill]:
    """``fill`` over the strategies holding the position (taking from ``holders``);
    what exceeds them all goes to EXTERNAL (the trade crossed through zero)."""
    left, pieces = fill.quantity, []
    for i, (strategy, quantity) in enumerate(holders):
        if left <= 0:
            break
        take = min(left, quantity)
        if take <= 0:
            continue
        holders[i] = (strategy, quantity - take)
        pieces.append((strategy, take))
        left -= take
    if left > 0:
        pieces.append((EXTERNAL, left))
    out = []
    for n, (strategy, quantity) in enumerate(pieces):
        fill_id = fill.fill_id if n == 0 else f"{fill.fill_id}.{n}"
        out.append(StrategyFill(strategy, Fill(fill_id, fill.broker_order_id,
                                               fill.instrument_token, fill.side, quantity,
                                               fill.price, fill.charges, fill.timestamp)))
    return out
