"""Start-up for the paper broker: its account and its orders, rebuilt from the journal.

The paper broker lives in the engine's process, so a crash kills it too. Like
an exchange that cancels a disconnected member's working orders, the rebuilt
broker holds every journaled order it restores as terminal: COMPLETE if its
journaled fills cover it, else CANCELLED with those fills. Fills the broker
made that never reached the journal died with it (they never happened
durably). The account is settled from the journaled fills, and the order and
fill id counters continue after the highest journaled ids, so no id is ever
reused.

:class:`PaperBook` is the compact form start-up (and a journal snapshot) keeps:
the account and the counters, folded fill by fill, without every order ever
placed. :func:`restore_orders` rebuilds a fresh :class:`MatchingEngine` from it
plus the orders of the unfinished sagas (the only ones start-up looks up).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from actors.broker._account import BrokerAccount
from actors.broker._charges import segment_for
from actors.broker._matching import MatchingEngine, _Order
from messages import Fill, Money, OrderLeg, OrderRequest, OrderStatus, Side, from_dict

if TYPE_CHECKING:
    from actors._journaled import OrderRecord

__all__ = ["PaperBook", "restore_orders"]


def _numeric(text: str) -> int:
    return int(text) if text.isdigit() else 0


def _pairs(name: str, value: Any) -> dict[int, int]:
    if not isinstance(value, list) or not all(
            isinstance(p, list) and len(p) == 2 and all(type(v) is int for v in p)
            for p in value):
        raise ValueError(f"paper.{name}: must be a list of [token, integer] pairs, "
                         f"got {value!r}")
    return {token: amount for token, amount in value}


class PaperBook:
    """The paper broker's account and id counters, folded from journaled fills.

    Contract:
    - :meth:`placed` notes a broker order id; :meth:`fill` settles one
      journaled fill of a journaled order (a dict holding its ``leg`` as
      :func:`messages.to_dict` wrote it, and ``margin``, the short margin per
      unit, set here from the order's first fill). Cash is kept as the change
      from the opening cash, so :meth:`restore_orders` adds the opening.
    - Fills are settled in journal order (the order the engine applied them).
    - :meth:`to_body` is plain JSON; ``PaperBook.from_body`` rebuilds an equal
      book (``==`` compares the bodies) or raises ValueError naming the field.
    """

    def __init__(self, short_margin_pct: Decimal) -> None:
        self._pct = short_margin_pct
        self.account = BrokerAccount(Money(0), short_margin_pct)
        self.next_order_id = 0
        self.next_fill_id = 0

    def placed(self, broker_order_id: str) -> None:
        """The broker named an order: its id is never issued again."""
        self.next_order_id = max(self.next_order_id, _numeric(broker_order_id) + 1)

    def fill(self, order: dict[str, Any], fill: Mapping[str, Any]) -> None:
        """Settle ``fill`` (a journaled Fill body) of ``order``."""
        side = Side(fill["side"])
        price = fill["price"]
        if order.get("margin") is None:
            if side is Side.BUY:
                order["margin"] = 0
            else:
                leg: OrderLeg = from_dict(dict(order["leg"]))
                order["margin"] = self.account.margin_per_unit(leg, Money(price)).paise
        self.account.settle(fill["instrument_token"], side, fill["quantity"],
                            Money(price * fill["quantity"]), Money(fill["charges"]),
                            Money(order["margin"]))
        self.next_fill_id = max(self.next_fill_id, _numeric(fill["fill_id"]) + 1)

    def to_body(self) -> dict[str, Any]:
        """The book as plain JSON."""
        account = self.account
        return {"cash": account.funds.paise, "pct": str(self._pct),
                "positions": [[t, q] for t, q in account._positions.items()],
                "margins": [[t, m] for t, m in account._margin.items()],
                "next_order_id": self.next_order_id, "next_fill_id": self.next_fill_id}

    @classmethod
    def from_body(cls, body: Mapping[str, Any]) -> PaperBook:
        """Rebuild a book from :meth:`to_body`."""
        if not isinstance(body, Mapping):
            raise ValueError(f"paper: must be a mapping, got {type(body).__name__}")
        try:
            pct = Decimal(body["pct"])
        except (KeyError, TypeError, ArithmeticError):
            raise ValueError(f"paper.pct: must be a decimal text, got "
                             f"{body.get('pct')!r}") from None
        book = cls(pct)
        for name in ("cash", "next_order_id", "next_fill_id"):
            if type(body.get(name)) is not int:
                raise ValueError(f"paper.{name}: must be an integer, got {body.get(name)!r}")
        account = book.account
        account._cash = body["cash"]
        account._positions = _pairs("positions", body.get("positions"))
        account._margin = _pairs("margins", body.get("margins"))
        account._margin_total = sum(account._margin.values())
        book.next_order_id, book.next_fill_id = body["next_order_id"], body["next_fill_id"]
        return book

    def copy(self) -> PaperBook:
        """An independent book equal to this one."""
        return PaperBook.from_body(self.to_body())

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, PaperBook):
            return NotImplemented
        return self.to_body() == other.to_body()

    __hash__ = None  # type: ignore[assignment]  # mutable


def restore_orders(engine: MatchingEngine, orders: Iterable[OrderRecord],
                   book: PaperBook | None = None, opening: int | None = None) -> int:
    """Rebuild ``engine`` (fresh, untouched) from journaled orders; return how many.

    Without ``book`` the account is settled from the fills of ``orders`` (every
    journaled order is needed for that). With ``book`` (start-up) the account
    is the book's, its cash counted from ``opening`` (default: the engine's
    configured cash), and ``orders`` (the unfinished sagas') are only
    registered, so that the broker answers look-ups by their tags.
    """
    if book is not None:
        account = engine.account
        account._cash = (account.funds.paise if opening is None else opening) + \
            book.account.funds.paise
        account._positions = dict(book.account._positions)
        account._margin = dict(book.account._margin)
        account._margin_total = sum(account._margin.values())
        engine._next_order_id = max(engine._next_order_id, book.next_order_id)
        engine._next_fill_id = max(engine._next_fill_id, book.next_fill_id)
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
            if book is None:
                engine.account.settle(fill.instrument_token, fill.side, fill.quantity,
                                      fill.value, fill.charges, margin)
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
