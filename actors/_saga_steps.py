"""The saga steps OrderActor runs: place, await, apply, complete or compensate.

A mixin, so that the step logic reads in one place; it runs only on the
OrderActor thread and touches only OrderActor state.
"""

from __future__ import annotations

import heapq
import time
from typing import TYPE_CHECKING, Any

import structlog

from actors._base import Wake, WakeTimer
from actors._saga import LegOrder, Role, Saga, SagaOutcome
from messages import (
    ApplyFill,
    CancelBrokerOrder,
    CheckMargins,
    EndpointClass,
    FindOrdersByTag,
    Inbox,
    Money,
    OrderLeg,
    OrderRequest,
    OrderState,
    OrderStatus,
    OrderType,
    PlaceOrder,
    Priority,
    QueryOrder,
    ReleaseCash,
    RequestPermit,
    SagaCompensated,
    SagaCompleted,
    SagaKind,
)

if TYPE_CHECKING:
    from actors.config import EngineConfig

__all__ = ["SagaSteps"]

GatewayCall = PlaceOrder | CancelBrokerOrder | QueryOrder | FindOrdersByTag | CheckMargins
"""Every broker call OrderActor makes; each goes through a RateLimitActor permit."""

_log = structlog.get_logger("kitesaga.saga")

CANCELLED_BY_REQUEST = "cancelled by request"

MAX_UNDO_ATTEMPTS = 5
"""Closing orders tried per leg while compensating (one tag suffix each)."""


class SagaSteps:
    """Step logic shared by entry and exit sagas (mixed into OrderActor)."""

    _config: EngineConfig
    _portfolio: Inbox
    _gateway: Inbox
    _limiter: Inbox
    _me: Inbox
    _sagas: dict[str, Saga]
    _by_tag: dict[str, tuple[Saga, LegOrder]]
    _stats: dict[str, int]
    _deadlines: list[tuple[float, int, str]]
    _seq: int
    _timer: WakeTimer

    if TYPE_CHECKING:  # provided by OrderActor
        def _emit(self, saga: Saga | None, event: Any) -> None: ...

        def _book_fill(self, saga: Saga, order: LegOrder, position_quantity: int) -> None: ...

        def _book_settle(self, saga: Saga) -> None: ...

        def _journal_order(self, saga: Saga, order: LegOrder, then: tuple[Inbox, Any]) -> None:
            ...

        def _journal_placed(self, saga: Saga, order: LegOrder) -> None: ...

        def _journal_end(self, saga: Saga, outcome: SagaOutcome) -> None: ...

    # -- placing ---------------------------------------------------------------

    def _place(self, saga: Saga, index: int, role: Role, leg: OrderLeg, attempt: int = 0) -> None:
        """Place one order, once: the permit's grant delivers PlaceOrder to the gateway."""
        order = saga.new_order(index, role, leg, attempt)
        self._by_tag[order.tag] = (saga, order)
        saga.step = f"PLACING {order.tag}"
        lane = Priority.ENTRY if role is Role.OPEN else Priority.EXIT
        self._stats["orders"] += 1
        self._call(order.tag, PlaceOrder(OrderRequest(order.tag, order.leg), self._me), lane,
                   (saga, order))
        self._arm(saga, self._config.fill_timeout_s)

    def _permit_refused(self, request_id: str, reason: str) -> None:
        tag, _, purpose = request_id.partition(":")
        found = self._by_tag.get(tag)
        if found is None:
            return
        saga, order = found
        if purpose == "":
            order.terminal = None
            self._stats["orders"] -= 1
            self._order_failed(saga, order, f"no rate-limit permit: {reason}")
        else:
            self._arm(saga, self._config.poll_interval_s)

    # -- broker answers ------------------------------------------------------------

    def _placed(self, tag: str, broker_order_id: str, state: OrderState | None) -> None:
        found = self._by_tag.get(tag)
        if found is None:
            return
        saga, order = found
        if order.broker_order_id is None:
            order.broker_order_id = broker_order_id
            self._journal_placed(saga, order)
        saga.step = f"WORKING {tag}"
        if state is not None:
            self._updated(state)
        if (saga.reason == CANCELLED_BY_REQUEST and order.terminal is None
                and order.role is not Role.UNDO):
            self._timed_out(saga)

    def _rejected(self, tag: str, reason: str) -> None:
        found = self._by_tag.get(tag)
        if found is not None and found[1].broker_order_id is None:
            self._order_failed(found[0], found[1], f"rejected: {reason}")

    def _unknown(self, tag: str, reason: str) -> None:
        found = self._by_tag.get(tag)
        if found is None:
            return
        saga, order = found
        order.unknown = True
        saga.step = f"RESOLVING {tag}"
        _log.warning("order_outcome_unknown", saga=saga.saga_id, tag=tag, reason=reason)
        self._stats["unknown_outcomes"] += 1
        self._call(f"{tag}:f", FindOrdersByTag(tag, self._me, order.leg), Priority.EXIT)

    def _found(self, tag: str, orders: tuple[OrderState, ...]) -> None:
        found = self._by_tag.get(tag)
        if found is None:
            return
        saga, order = found
        if not orders:
            self._order_failed(saga, order, "placement unconfirmed: no order under its tag")
            return
        if len(orders) > 1:
            self._stats["invariant_violations"] += 1
            _log.error("several_orders_for_tag", tag=tag, count=len(orders))
        order.unknown = False
        self._updated(orders[0])

    def _updated(self, state: OrderState) -> None:
        found = self._by_tag.get(state.tag)
        if found is None:
            self._stats["foreign_updates"] += 1
            if state.fills:
                self._stats["invariant_violations"] += 1
                _log.error("fill_without_saga", tag=state.tag, order=state.broker_order_id,
                           fills=len(state.fills))
            return
        saga, order = found
        if order.broker_order_id is None:  # found by tag: the broker named it at last
            order.broker_order_id = state.broker_order_id
            self._journal_placed(saga, order)
        new = order.take_new(state.fills)
        last_fill_of_saga = (
            state.status is OrderStatus.COMPLETE and order.role is Role.OPEN
            and order.index == len(saga.legs) - 1 and order.filled == order.leg.quantity
            and saga.reason != CANCELLED_BY_REQUEST)
        for i, fill in enumerate(new):
            saga.charges += fill.charges.paise
            margin = saga.margins.get(fill.instrument_token, 0) if order.role is Role.OPEN else 0
            self._stats["fills"] += 1
            saga.unacked += 1
            saga.pending_fills[fill.fill_id] = order
            release = last_fill_of_saga and i == len(new) - 1
            saga.release_sent = saga.release_sent or release
            self._portfolio.tell(ApplyFill(saga.saga_id, saga.strategy, fill, Money(margin),
                                           self._me, release))
            saga.step = f"APPLYING {order.tag}"
        if state.status.is_terminal and order.terminal is None:
            order.terminal = state.status
            if state.reason:
                saga.reason = saga.reason or state.reason
        self._maybe_leg_done(saga, order)

    def _fill_applied(self, saga_id: str, fill_id: str, realised: int,
                      position_quantity: int) -> None:
        saga = self._sagas.get(saga_id)
        order = saga.pending_fills.pop(fill_id, None) if saga is not None else None
        if saga is None or order is None:
            return
        saga.unacked -= 1
        saga.realised += realised
        self._book_fill(saga, order, position_quantity)
        if saga.current is not None:
            self._maybe_leg_done(saga, saga.current)

    # -- deadlines -----------------------------------------------------------------

    def _arm(self, saga: Saga, seconds: float) -> None:
        due = time.monotonic() + seconds
        saga.due = due
        self._seq += 1
        heapq.heappush(self._deadlines, (due, self._seq, saga.saga_id))
        self._timer.arm(due)

    def _on_wake(self, msg: Wake) -> None:
        self._timer.fired(msg)
        now = time.monotonic()
        while self._deadlines and self._deadlines[0][0] <= now:
            due, _, saga_id = heapq.heappop(self._deadlines)
            saga = self._sagas.get(saga_id)
            if saga is not None and saga.due == due:
                saga.due = None
                self._timed_out(saga)
        while self._deadlines and self._deadlines[0][2] not in self._sagas:
            heapq.heappop(self._deadlines)
        if self._deadlines:
            self._timer.arm(self._deadlines[0][0])


    def _timed_out(self, saga: Saga) -> None:
        order = saga.current
        if saga.step.startswith("RELEASING") or order is None or order.terminal is not None:
            return
        if order.unknown:
            self._call(f"{order.tag}:f", FindOrdersByTag(order.tag, self._me, order.leg),
                       Priority.EXIT)
            self._arm(saga, self._backoff(order))
        elif order.broker_order_id is None:
            self._arm(saga, self._config.poll_interval_s)
        elif not order.cancel_sent:
            order.cancel_sent = True
            saga.step = f"CANCELLING {order.tag}"
            self._stats["cancels"] += 1
            self._call(f"{order.tag}:c",
                       CancelBrokerOrder(order.broker_order_id, order.tag, self._me),
                       Priority.CANCEL)
            self._arm(saga, self._config.cancel_timeout_s)
        else:
            self._call(f"{order.tag}:q", QueryOrder(order.broker_order_id, order.tag, self._me),
                       Priority.CANCEL)
            self._arm(saga, self._backoff(order))
        if time.monotonic() > saga.deadline and saga.outcome is None:
            self._stats["late_sagas"] += 1
            _log.error("saga_past_deadline", saga=saga.saga_id, step=saga.step)

    def _backoff(self, order: LegOrder) -> float:
        """The wait before the next look-up of ``order``: ``poll_interval_s``, doubled
        by each look-up, at most ``poll_max_interval_s`` (many sagas waiting on a slow
        broker must not spend the whole call budget asking)."""
        wait: float = min(self._config.poll_interval_s * float(2 ** min(order.asks, 16)),
                          self._config.poll_max_interval_s)
        order.asks += 1
        return wait

    def _call(self, request_id: str, call: GatewayCall, lane: Priority,
              placing: tuple[Saga, LegOrder] | None = None) -> None:
        """Make one broker call under a permit: RateLimitActor delivers ``call`` to
        the gateway when its slot comes; only a refusal comes back here. A
        placement's order record is journaled before its permit is asked for."""
        endpoint = EndpointClass.ORDERS if isinstance(call, PlaceOrder | CancelBrokerOrder) \
            else EndpointClass.OTHER
        permit = RequestPermit(request_id, endpoint, lane, self._me, then=call,
                               then_to=self._gateway,
                               merge=isinstance(call, QueryOrder | FindOrdersByTag))
        if placing is None:
            self._limiter.tell(permit)
        else:
            self._journal_order(placing[0], placing[1], (self._limiter, permit))

    # -- leg outcomes ----------------------------------------------------------------

    def _maybe_leg_done(self, saga: Saga, order: LegOrder) -> None:
        if order is not saga.current or order.terminal is None or saga.unacked:
            return
        saga.current = None
        if order.role is Role.OPEN:
            if order.filled == order.leg.quantity:
                saga.opened.append(order)
                self._next_open(saga)
            elif order.filled and len(saga.legs) == 1:
                saga.opened.append(order)
                self._release(saga, SagaOutcome.COMPLETED)
            else:
                if order.filled:
                    saga.opened.append(order)
                self._order_failed(saga, order, saga.reason or f"order {order.terminal.value}")
        elif order.role is Role.UNDO:
            rest = order.leg.quantity - order.filled
            if rest:
                self._retry_undo(saga, order, rest)
            else:
                self._next_undo(saga)
        else:  # CLOSE
            outcome = SagaOutcome.COMPLETED if order.filled else SagaOutcome.COMPENSATED
            if not order.filled:
                saga.reason = saga.reason or f"exit order {order.terminal.value}"
            self._finish(saga, outcome)

    def _next_open(self, saga: Saga) -> None:
        index = len(saga.opened)
        if index < len(saga.legs):
            self._place(saga, index, Role.OPEN, saga.legs[index])
        else:
            self._release(saga, SagaOutcome.COMPLETED)

    def _order_failed(self, saga: Saga, order: LegOrder, reason: str) -> None:
        saga.current = None
        saga.reason = saga.reason or reason
        if order.role is Role.CLOSE:
            self._finish(saga, SagaOutcome.COMPENSATED)
            return
        if order.role is Role.UNDO:
            self._retry_undo(saga, order, order.leg.quantity - order.filled)
            return
        _log.info("saga_compensating", saga=saga.saga_id, reason=saga.reason)
        saga.undo = [o for o in saga.opened if o.filled]
        saga.opened = []
        self._next_undo(saga)

    def _next_undo(self, saga: Saga) -> None:
        if not saga.undo:
            self._release(saga, SagaOutcome.COMPENSATED)
            return
        source = saga.undo.pop(0)
        self._place(saga, source.index, Role.UNDO, _closing_leg(source.leg, source.filled))

    def _retry_undo(self, saga: Saga, order: LegOrder, rest: int) -> None:
        if order.attempt + 1 >= MAX_UNDO_ATTEMPTS:
            self._stats["undo_abandoned"] += 1
            saga.reason += f"; {rest} of leg {order.index} left open for the exit rules"
            _log.error("compensation_incomplete", saga=saga.saga_id, leg=order.index, rest=rest)
            self._next_undo(saga)
            return
        self._place(saga, order.index, Role.UNDO, _closing_leg(order.leg, rest, flip=False),
                    order.attempt + 1)

    def _release(self, saga: Saga, outcome: SagaOutcome) -> None:
        if saga.release_sent:  # the last ApplyFill released the reservation already
            self._finish(saga, outcome)
            return
        saga.outcome = outcome
        saga.step = "RELEASING"
        self._portfolio.tell(ReleaseCash(saga.saga_id, self._me))

    def _released(self, saga_id: str) -> None:
        saga = self._sagas.get(saga_id)
        if saga is not None and saga.outcome is not None:
            self._finish(saga, saga.outcome)

    def _finish(self, saga: Saga, outcome: SagaOutcome) -> None:
        self._journal_end(saga, outcome)
        saga.outcome = outcome
        saga.step = outcome.value
        self._sagas.pop(saga.saga_id, None)
        self._book_settle(saga)
        for order in saga.orders:
            self._by_tag.pop(order.tag, None)
        event: Any
        if outcome is SagaOutcome.COMPLETED:
            self._stats["sagas_completed"] += 1
            filled = tuple(o.filled for o in saga.orders if o.role is not Role.UNDO)
            event = SagaCompleted(saga.saga_id, saga.kind, filled)
        else:
            self._stats["sagas_compensated"] += 1
            cost = saga.charges - saga.realised if saga.kind is SagaKind.ENTRY else 0
            _log.warning("saga_compensated", saga=saga.saga_id, kind=saga.kind.value,
                         strategy=saga.strategy, reason=saga.reason, realised_cost=cost)
            event = SagaCompensated(saga.saga_id, saga.kind, saga.reason or "compensated",
                                    Money(cost))
        self._emit(saga, event)


def _closing_leg(leg: OrderLeg, quantity: int, flip: bool = True) -> OrderLeg:
    side = leg.side.opposite if flip else leg.side
    return OrderLeg(leg.instrument, side, quantity, OrderType.MARKET, leg.product)
