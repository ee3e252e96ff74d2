"""KiteGatewayActor: the gateway interface (as PaperBrokerActor) over Kite Connect."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import structlog

from actors._base import EngineActor, Wake, WakeTimer
from actors._published import Published
from actors.broker._charges import ChargeSchedule
from actors.config._schema import Config
from actors.kite._calls import CallError, Failure, PermittedCalls, _Call
from actors.kite._convert import (
    VARIETY,
    place_params,
)
from actors.kite._fills import FillTracking
from actors.kite._margins import MarginCheck
from actors.kite._protect import GttProtection
from actors.kite._stream import OrderUpdateFrame, TickerConnected, TickerDisconnected
from actors.kite._tracked import Tracked
from messages import (
    CancelBrokerOrder,
    CheckMargins,
    EndpointClass,
    FindOrdersByTag,
    Inbox,
    OrderOutcomeUnknown,
    OrderPlaced,
    OrderRejected,
    OrdersFound,
    OrderUpdated,
    PermitRefused,
    PlaceOrder,
    Price,
    Priority,
    ProtectPosition,
    QueryOrder,
    RemoveProtection,
    RequestPermit,
    SetTradingState,
    TradingState,
)

__all__ = ["GatewaySnapshot", "KiteGatewayActor"]

_log = structlog.get_logger("kitesaga.kite")

_COUNTERS = ("calls", "call_errors", "throttled", "orders_placed", "orders_rejected",
             "unknown_outcomes", "fills", "foreign_updates", "bad_replies", "polls",
             "charges_fallbacks", "unhandled_messages", "gtt_placed", "gtt_failed",
             "gtt_deleted", "gtt_adopted")


@dataclass(frozen=True, slots=True)
class GatewaySnapshot:
    """What the Kite gateway has done, published after every message.

    ``working`` counts our orders not yet terminal; ``token_dead`` is True
    once the broker answered TokenException (new entries are halted);
    ``unprotected`` lists positions whose GTT could not be placed.
    """

    counts: Mapping[str, int]
    working: int
    ticker_connected: bool
    token_dead: bool
    protected: int
    unprotected: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class _Again:
    """Private: a saga's call answered 429 (so not executed), on its new permit."""

    message: PlaceOrder | CancelBrokerOrder | CheckMargins
    attempt: int


class KiteGatewayActor(FillTracking, MarginCheck, GttProtection, PermittedCalls, EngineActor):
    """The live broker: PaperBrokerActor's message set over ``kiteconnect``.

    Contract (the gateway interface, see PaperBrokerActor):
    * ``PlaceOrder`` (delivered by its permit) → ``OrderPlaced`` |
      ``OrderRejected`` (nothing placed: the broker said no, or 429 more
      than ``retries_on_429`` times) | ``OrderOutcomeUnknown`` (timeout,
      dropped connection, 5xx: the order may exist; never placed again here).
    * Later states go to ``listener`` as ``OrderUpdated`` with the fills new
      since the last push; a terminal status is pushed only once every fill
      of the order is (trades fetched, charges from the charges API).
    * ``CancelBrokerOrder`` → cancel, then the order's status is fetched and
      pushed: a cancel is confirmed by the status only.
    * ``QueryOrder`` → ``OrderUpdated`` (order_history, every fill so far);
      ``FindOrdersByTag`` → ``OrdersFound`` (the order list, every fill).
    * ``CheckMargins`` (delivered by its permit) → ``MarginsChecked`` from
      the basket-margins API against the account's net margin.
    * ``ProtectPosition`` / ``RemoveProtection`` keep two-leg GTTs.
    * Updates come from the ticker (``OrderUpdateFrame``); an order silent
      for ``engine.poll_interval_s`` is polled (one ``orders`` call for all).
    * Every REST call holds a RateLimitActor permit; a 429 is reported with
      ``CallThrottled``. A TokenException halts new entries (``halt_to``)
      once and raises an alert; exits and cancels keep being tried.
    """

    def __init__(self, kite: Any, config: Config, listener: Inbox, limiter: Inbox,
                 halt_to: Inbox | None, prices: Callable[[], Mapping[int, Price]],
                 today: Callable[[], datetime],
                 snapshot: Published[GatewaySnapshot] | None = None) -> None:
        super().__init__()
        self._kite = kite
        self._config = config
        self._limits = config.rate_limits
        self._listener = listener
        self._limiter = limiter
        self._halt_to = halt_to
        self._prices = prices
        self._today = today
        self._schedule = ChargeSchedule(config.charges)
        self._poll_s = config.engine.poll_interval_s
        self._counts: dict[str, int] = dict.fromkeys(_COUNTERS, 0)
        self._jobs = {}
        self._next_job = 0
        self._orders: dict[str, Tracked] = {}     # broker order id -> ours
        self._tags: dict[str, Tracked] = {}       # tag -> ours, from placement on
        self._pending: dict[str, PlaceOrder] = {}  # tag -> placement not yet answered
        self._ticker_up = False
        self._token_dead = False
        self._polling = False  # one poll of the order list in flight at a time
        self._init_protection(config.live)
        self.snapshot: Published[GatewaySnapshot] = snapshot or Published(self._build())

    def on_start(self) -> None:
        self._me: Inbox = self.actor_ref
        self._timer = WakeTimer(self.actor_ref)

    def on_stop(self) -> None:
        self._timer.cancel()

    def receive(self, message: Any) -> Any:
        if isinstance(message, _Call):
            self._on_call(message)
        elif isinstance(message, OrderUpdateFrame):
            self._on_row(message.data)
        elif isinstance(message, PlaceOrder):
            self._place(message, 0)
        elif isinstance(message, _Again):
            self._retry(message)
        elif isinstance(message, CancelBrokerOrder):
            self._cancel(message, 0)
        elif isinstance(message, QueryOrder):
            self._query(message)
        elif isinstance(message, FindOrdersByTag):
            self._find(message)
        elif isinstance(message, CheckMargins):
            self._check_margins(message, 0)
        elif isinstance(message, ProtectPosition):
            self._protect(message)
        elif isinstance(message, RemoveProtection):
            self._unprotect(message)
        elif isinstance(message, PermitRefused):
            self._permit_refused(message)
        elif isinstance(message, Wake):
            self._timer.fired(message)
            self._poll()
        elif isinstance(message, TickerConnected | TickerDisconnected):
            self._ticker_up = isinstance(message, TickerConnected)
        else:
            self._counts["unhandled_messages"] += 1
            self.unhandled(message)
        self._arm_poll()
        self.snapshot.publish(self._build())
        self.send_replies()
        return None

    # -- placing and cancelling ---------------------------------------------------

    def _place(self, message: PlaceOrder, attempt: int) -> None:
        request = message.request
        if request.tag not in self._tags:
            self._tags[request.tag] = Tracked(request.tag, request.leg)
        result, error = self._invoke(EndpointClass.ORDERS, "place_order",
                                     place_params(request))
        if error is None:
            order_id = str(result)
            self._counts["orders_placed"] += 1
            tracked = self._tags[request.tag]
            tracked.order_id = order_id
            tracked.seen = time.monotonic()
            self._orders[order_id] = tracked
            self.reply_after_publish(message.reply_to, OrderPlaced(request.tag, order_id))
            return
        if error.failure is Failure.THROTTLED and attempt < self._limits.retries_on_429:
            self._again(message, attempt + 1, Priority.ENTRY if request.tag.endswith("E")
                        else Priority.EXIT)
        elif error.failure is Failure.UNKNOWN:
            self._counts["unknown_outcomes"] += 1
            self.reply_after_publish(message.reply_to,
                                     OrderOutcomeUnknown(request.tag, error.message))
        else:
            self._counts["orders_rejected"] += 1
            self._tags.pop(request.tag, None)
            self.reply_after_publish(message.reply_to, OrderRejected(request.tag, error.message))

    def _again(self, message: PlaceOrder | CancelBrokerOrder | CheckMargins, attempt: int,
               priority: Priority) -> None:
        if isinstance(message, CheckMargins):
            key, endpoint = message.saga_id, EndpointClass.OTHER
        else:
            key = message.request.tag if isinstance(message, PlaceOrder) else message.tag
            endpoint = EndpointClass.ORDERS
        self._limiter.tell(RequestPermit(f"again:{key}", endpoint, priority, self._me,
                                         then=_Again(message, attempt), then_to=self._me))

    def _retry(self, again: _Again) -> None:
        if isinstance(again.message, PlaceOrder):
            self._place(again.message, again.attempt)
        elif isinstance(again.message, CheckMargins):
            self._check_margins(again.message, again.attempt)
        else:
            self._cancel(again.message, again.attempt)

    def _permit_refused(self, message: PermitRefused) -> None:
        kind, _, tag = message.request_id.partition(":")
        if kind == "gw":
            self._call_refused(message)
        elif kind == "again" and tag in self._tags and self._tags[tag].order_id is None:
            self._tags.pop(tag)
            self._counts["orders_rejected"] += 1
            self.reply_after_publish(self._listener, OrderRejected(tag, message.reason))

    def _cancel(self, message: CancelBrokerOrder, attempt: int) -> None:
        _, error = self._invoke(EndpointClass.ORDERS, "cancel_order", {
            "variety": VARIETY, "order_id": message.broker_order_id})
        if error is not None and error.failure is Failure.THROTTLED \
                and attempt < self._limits.retries_on_429:
            self._again(message, attempt + 1, Priority.CANCEL)
            return
        # done, refused (e.g. already complete) or unknown: the status decides
        self._history(message.broker_order_id, Priority.CANCEL, message.reply_to)

    # -- reading orders -------------------------------------------------------------

    def _query(self, message: QueryOrder) -> None:
        rows, error = self._invoke(EndpointClass.OTHER, "order_history",
                                   {"order_id": message.broker_order_id})
        self._history_read(message.broker_order_id, rows, error, message.reply_to)

    def _history(self, order_id: str, priority: Priority, reply_to: Inbox | None) -> None:
        self._request(EndpointClass.OTHER, priority, "order_history", {"order_id": order_id},
                      lambda rows, error: self._history_read(order_id, rows, error, reply_to))

    def _history_read(self, order_id: str, rows: Any, error: CallError | None,
                      reply_to: Inbox | None) -> None:
        if error is not None or not isinstance(rows, list) or not rows:
            _log.warning("order_history_unavailable", order_id=order_id,
                         error=error.message if error else f"reply {rows!r}"[:200])
            return
        tracked = self._on_row(rows[-1], Priority.CANCEL)
        if tracked is not None and reply_to is not None and reply_to != self._listener:
            tracked.when_settled(lambda: self._reply_all(tracked, reply_to))

    def _find(self, message: FindOrdersByTag) -> None:
        if message.tag not in self._tags and message.leg is not None:
            # intended by an earlier run of the engine: what is found is that leg's order
            self._tags[message.tag] = Tracked(message.tag, message.leg)
        rows, error = self._invoke(EndpointClass.OTHER, "orders", {})
        if error is not None or not isinstance(rows, list):
            # cannot tell yet: the saga asks again on its next deadline
            _log.warning("find_by_tag_failed", tag=message.tag,
                         error=error.message if error else "not a list")
            return
        found = [t for row in rows if isinstance(row, Mapping) and row.get("tag") == message.tag
                 for t in [self._on_row(row, Priority.EXIT)] if t is not None]
        waiting = [len(found)]

        def one_settled() -> None:
            waiting[0] -= 1
            if waiting[0] == 0:
                self.reply_after_publish(message.reply_to, OrdersFound(
                    message.tag, tuple(t.full_state() for t in found)))

        if not found:
            self.reply_after_publish(message.reply_to, OrdersFound(message.tag, ()))
        for tracked in found:
            tracked.when_settled(one_settled)

    def _reply_all(self, tracked: Tracked, to: Inbox) -> None:
        self.reply_after_publish(to, OrderUpdated(tracked.full_state()))

    # -- polling ----------------------------------------------------------------------

    def _arm_poll(self) -> None:
        if any(not t.terminal_pushed for t in self._orders.values()):
            self._timer.arm(time.monotonic() + self._poll_s)

    def _poll(self) -> None:
        now = time.monotonic()
        # an order whose trades are being fetched is not silent: polling the order list
        # for it would only take the permits its own trades fetch waits for
        silent = [t for t in self._orders.values()
                  if not t.terminal_pushed and not t.fetching and now - t.seen >= self._poll_s]
        if silent and not self._polling:
            self._polling = True
            self._counts["polls"] += 1
            self._request(EndpointClass.OTHER, Priority.EXIT, "orders", {}, self._polled)


    def _polled(self, rows: Any, error: CallError | None) -> None:
        self._polling = False
        if error is None and isinstance(rows, list):
            for row in rows:
                self._on_row(row)

    # -- the session ------------------------------------------------------------------

    def _session_dead(self, error: CallError) -> None:
        if self._token_dead:
            return
        self._token_dead = True
        _log.error("alert", alert="broker_session_expired", error=error.message,
                   action="new entries HALTED; run `kitesaga login` and restart")
        if self._halt_to is not None:
            self._halt_to.tell(SetTradingState(
                TradingState.HALTED, "broker session expired (TokenException): kitesaga login"))

    def _build(self) -> GatewaySnapshot:
        return GatewaySnapshot(
            dict(self._counts), sum(1 for t in self._orders.values() if not t.terminal_pushed),
            self._ticker_up, self._token_dead, len(self._gtts), tuple(sorted(self._unprotected)))

