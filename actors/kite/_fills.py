"""Our orders' states and fills as the broker reports them (a Kite gateway mixin)."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any

import structlog

from actors.broker._charges import ChargeSchedule, segment_for
from actors.kite._calls import CallError
from actors.kite._convert import (
    BrokerReplyError,
    charges_params,
    fill_from_trade,
    order_from_kite,
    rupees,
)
from actors.kite._tracked import Tracked
from messages import EndpointClass, Fill, Money, OrderUpdated, Priority

if TYPE_CHECKING:
    from actors.config._schema import Config
    from actors.kite._calls import Continuation
    from messages import Inbox

__all__ = ["FillTracking"]

_log = structlog.get_logger("kitesaga.kite")


class FillTracking:
    """Mixin: turns order dicts (ticker frames, order_history, the order list)
    into OrderUpdated pushes with the order's new fills.

    Contract: a state is pushed when its status or filled quantity changed; new
    trades are fetched (``order_trades``) and their charges read from the
    charges API (the local schedule when that fails, counted) before the state
    that reports them is pushed; an order of ours is matched by id or, before
    its id is known (a lost placement answer), by tag; anything else is
    counted as foreign and ignored; a malformed reply is counted and logged,
    never turned into a fill.
    """

    _config: Config
    _counts: dict[str, int]
    _orders: dict[str, Tracked]
    _tags: dict[str, Tracked]
    _listener: Inbox
    _schedule: ChargeSchedule
    _today: Callable[[], datetime]

    if TYPE_CHECKING:
        def _request(self, endpoint: EndpointClass, priority: Priority, method: str,
                     kwargs: Mapping[str, Any], then: Continuation,
                     args: tuple[Any, ...] = ()) -> None: ...

        def reply_after_publish(self, to: Inbox | None, message: Any) -> None: ...

    def _on_row(self, row: Any, lane: Priority | None = None) -> Tracked | None:
        """Take one order dict from any source; fetch its new trades if it has any, in
        ``lane`` (default: the order's own, ENTRY or EXIT). A saga waiting on the order
        (a look-up by tag, a cancel's confirmation) passes its own, more urgent lane, so
        that its calls never starve the fetch that would settle it."""
        try:
            order = order_from_kite(row)
        except BrokerReplyError as exc:
            self._counts["bad_replies"] += 1
            _log.error("bad_broker_order", error=str(exc))
            return None
        tracked = self._orders.get(order.order_id) or self._tags.get(order.tag)
        if tracked is None:
            self._counts["foreign_updates"] += 1
            return None
        if tracked.order_id is None:  # the placement's answer was lost; found by tag
            tracked.order_id = order.order_id
        if tracked.order_id != order.order_id:
            self._counts["foreign_updates"] += 1
            _log.error("second_order_for_tag", tag=order.tag, order_id=order.order_id)
            return None
        self._orders[order.order_id] = tracked
        tracked.seen = time.monotonic()
        tracked.take(order)
        if tracked.needs_trades() and not tracked.fetching:
            self._fetch_trades(tracked, lane)
        elif not tracked.fetching:
            self._push(tracked)
        return tracked

    def _fetch_trades(self, tracked: Tracked, lane: Priority | None = None) -> None:
        tracked.fetching = True
        if lane is None:
            lane = Priority.ENTRY if tracked.tag.endswith("E") else Priority.EXIT
        self._request(EndpointClass.OTHER, lane, "order_trades", {"order_id": tracked.order_id},
                      lambda rows, error: self._got_trades(tracked, rows, error))

    def _got_trades(self, tracked: Tracked, rows: Any, error: CallError | None) -> None:
        if error is not None or not isinstance(rows, list):
            tracked.fetching = False  # the next update or poll tries again
            _log.warning("trades_unavailable", order_id=tracked.order_id,
                         error=error.message if error else "not a list")
            return
        token = tracked.leg.instrument.instrument_token
        try:  # each trade read and validated once; charges are attached later
            new = [fill_from_trade(row, token, Money(0)) for row in tracked.new_trades(rows)]
            tracked.check_room(new)
        except (BrokerReplyError, KeyError, TypeError, ValueError) as exc:
            self._counts["bad_replies"] += 1
            tracked.fetching = False
            _log.error("bad_broker_trade", order_id=tracked.order_id, error=str(exc)[:300])
            return
        if not new:
            self._settled(tracked)
            return
        quantity = tracked.emitted_qty + sum(f.quantity for f in new)
        turnover = tracked.turnover_paise + sum(f.value.paise for f in new)
        if self._config.live.broker_charges:
            average = Money(turnover // quantity)
            self._request(EndpointClass.OTHER, Priority.EXIT, "get_virtual_contract_note",
                          {"params": charges_params(tracked.order_id or "", tracked.leg,
                                                    quantity, average)},
                          lambda note, err: self._got_charges(tracked, new, note, err, turnover))
        else:
            self._got_charges(tracked, new, None, None, turnover)

    def _got_charges(self, tracked: Tracked, new: list[Fill], note: Any,
                     error: CallError | None, turnover: int) -> None:
        total: Money | None = None
        if error is None and isinstance(note, list) and note:
            try:
                total = rupees(note[0]["charges"]["total"], "charges.total")
            except (BrokerReplyError, KeyError, TypeError) as exc:
                _log.warning("bad_charges_reply", error=str(exc)[:200])
        if total is None:
            self._counts["charges_fallbacks"] += 1
            leg = tracked.leg
            total = self._schedule.charges(
                self._today().date(), segment_for(leg.instrument, leg.product), leg.side,
                Money(turnover), True).total
        fills = tracked.add_fills(new, total)
        self._counts["fills"] += len(fills)
        self._settled(tracked)

    def _settled(self, tracked: Tracked) -> None:
        tracked.fetching = False
        if tracked.needs_trades():  # more filled meanwhile (or trades lag the order)
            self._fetch_trades(tracked)
            return
        self._push(tracked)
        tracked.run_waiters()

    def _push(self, tracked: Tracked) -> None:
        state = tracked.push_state()
        if state is not None:
            self.reply_after_publish(self._listener, OrderUpdated(state))
        if tracked.terminal_pushed and tracked.order_id is not None:
            self._orders.pop(tracked.order_id, None)
