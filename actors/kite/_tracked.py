"""One of our broker orders as the Kite gateway knows it (gateway-private)."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Any

from actors.kite._convert import BrokerReplyError, KiteOrder
from messages import Fill, Money, OrderLeg, OrderState, OrderStatus

__all__ = ["Tracked"]


class Tracked:
    """The gateway's record of one order it placed (one thread: the gateway's).

    Contract: ``emitted_qty`` is the quantity of the fills taken so far and
    never exceeds the order's quantity; a trade id is taken once. A pushed
    state never says terminal while the broker reports more filled quantity
    than the fills taken (the saga would end before its fills), and a
    terminal status, once seen, is never replaced by an older row's.
    Charges: the order's total so far comes from the broker (or the local
    schedule); each batch of new fills carries the difference, split by
    quantity, so the fills of an order add up to its charges.
    """

    __slots__ = ("_unpushed", "average", "broker_filled", "charges_paise", "emitted_qty",
                 "fetching", "fills", "last_pushed", "leg", "order_id", "quantity", "reason",
                 "seen", "status", "tag", "terminal_pushed", "trade_ids", "turnover_paise",
                 "waiters")

    def __init__(self, tag: str, leg: OrderLeg) -> None:
        self.tag = tag
        self.leg = leg
        self.order_id: str | None = None
        self.status = OrderStatus.PUT_ORDER_REQUEST_RECEIVED
        self.quantity = leg.quantity
        self.broker_filled = 0
        self.average: Money | None = None
        self.reason = ""
        self.fills: list[Fill] = []
        self._unpushed: list[Fill] = []
        self.trade_ids: set[str] = set()
        self.emitted_qty = 0
        self.turnover_paise = 0
        self.charges_paise = 0
        self.fetching = False
        self.seen = time.monotonic()
        self.waiters: list[Callable[[], None]] = []
        self.terminal_pushed = False
        self.last_pushed: tuple[OrderStatus, int] | None = None

    def take(self, order: KiteOrder) -> None:
        """Take the broker's latest view (an older row never undoes a terminal status)."""
        if not (self.status.is_terminal and not order.status.is_terminal):
            self.status = order.status
        self.broker_filled = max(self.broker_filled, order.filled_quantity)
        self.quantity = order.quantity
        self.average = order.average_price or self.average
        self.reason = order.reason or self.reason

    def needs_trades(self) -> bool:
        """The broker reports filled quantity whose trades are not taken yet."""
        return self.broker_filled > self.emitted_qty

    def new_trades(self, rows: list[Any]) -> list[Mapping[str, Any]]:
        """The trade rows not taken yet (rows without a trade id are skipped)."""
        return [row for row in rows if isinstance(row, Mapping)
                and row.get("trade_id") is not None
                and str(row["trade_id"]) not in self.trade_ids]

    def check_room(self, fills: list[Fill]) -> None:
        """Refuse trades that would fill more than the order's quantity."""
        total = self.emitted_qty + sum(f.quantity for f in fills)
        if total > self.quantity:
            raise BrokerReplyError(f"trades: {total} filled exceeds the order's quantity "
                                   f"{self.quantity}")

    def add_fills(self, fills: list[Fill], total_charges: Money) -> list[Fill]:
        """Take new fills (validated, see :meth:`check_room`), each carrying its share
        of the charges new since the last batch, split by quantity."""
        self.check_room(fills)
        delta = max(0, total_charges.paise - self.charges_paise)
        total_qty = sum(f.quantity for f in fills)
        shares = [delta * f.quantity // total_qty for f in fills]
        shares[-1] += delta - sum(shares)
        fills = [replace(f, charges=Money(share)) for f, share in zip(fills, shares, strict=True)]
        for fill in fills:
            self.trade_ids.add(fill.fill_id)
            self.emitted_qty += fill.quantity
            self.turnover_paise += fill.price.paise * fill.quantity
        self.charges_paise += delta
        self.fills.extend(fills)
        self._unpushed.extend(fills)
        return fills

    def _status(self) -> OrderStatus:
        settled = self.emitted_qty == self.broker_filled
        return self.status if settled or not self.status.is_terminal else OrderStatus.OPEN

    def _state(self, fills: tuple[Fill, ...], status: OrderStatus) -> OrderState:
        average = Money(self.turnover_paise // self.emitted_qty) if self.emitted_qty else None
        return OrderState(self.order_id or "?", self.tag, status, self.quantity,
                          self.emitted_qty, average, fills, self.reason)

    def push_state(self) -> OrderState | None:
        """The state to push to the listener, with the fills not pushed before;
        None when nothing changed since the last push."""
        if self.order_id is None:
            return None
        status = self._status()
        key = (status, self.emitted_qty)
        if key == self.last_pushed and not self._unpushed:
            return None
        fills, self._unpushed = tuple(self._unpushed), []
        self.last_pushed = key
        self.terminal_pushed = status.is_terminal
        return self._state(fills, status)

    def full_state(self) -> OrderState:
        """The state with every fill so far (answers to queries and look-ups)."""
        return self._state(tuple(self.fills), self._status())

    def when_settled(self, then: Callable[[], None]) -> None:
        """Run ``then`` once every reported fill is taken (now, if it is)."""
        if self.fetching or self.needs_trades():
            self.waiters.append(then)
        else:
            then()

    def run_waiters(self) -> None:
        """Run (once) everything waiting for the fills to be taken."""
        waiters, self.waiters = self.waiters, []
        for then in waiters:
            then()
