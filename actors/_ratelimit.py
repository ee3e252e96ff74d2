"""RateLimitActor: every broker call waits for its permit here.

One budget per Kite endpoint class (see kite-connect-facts.md), enforced with
sliding windows of grant times. Requests queue in priority lanes; the actor
never sleeps or spins: when the next slot is in the future it arms one
wake-up timer and goes back to its inbox.
"""

from __future__ import annotations

import heapq
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from types import MappingProxyType
from typing import Any

import pykka
import structlog

from actors._base import EngineActor, Wake, WakeTimer
from actors._published import Published
from actors.config._schema import RateLimitsConfig
from messages import (
    CallThrottled,
    EndpointClass,
    PermitGranted,
    PermitRefused,
    Priority,
    RequestPermit,
)

__all__ = ["DAILY_EXEMPT", "RateBook", "RateLimitActor", "WindowUsage", "ist_today"]

_log = structlog.get_logger("kitesaga.ratelimit")

_IST = timezone(timedelta(hours=5, minutes=30), "IST")

DAILY_EXEMPT = frozenset({Priority.CANCEL, Priority.EXIT})
"""Lanes the daily order budget never refuses: reducing risk must stay possible."""


def ist_today() -> date:
    """Today's date in India (the broker's day, which has no daylight saving)."""
    return datetime.now(_IST).date()


@dataclass(frozen=True, slots=True)
class WindowUsage:
    """Grants in one endpoint's sliding window of ``span_s`` seconds, at publish time."""

    endpoint: EndpointClass
    span_s: float
    limit: int
    used: int


@dataclass(frozen=True, slots=True)
class RateBook:
    """RateLimitActor's published state: an immutable snapshot any thread may read.

    ``queued`` counts waiting requests per endpoint and lane; ``refused`` counts
    PermitRefused replies (the daily order budget); ``orders_today`` is the
    number of order permits granted on ``day`` (cancels and exits included);
    ``coalesced`` counts requests merged into an equal one already waiting.
    """

    granted: Mapping[EndpointClass, int]
    queued: Mapping[EndpointClass, Mapping[Priority, int]]
    refused: int
    windows: tuple[WindowUsage, ...]
    orders_today: int
    orders_per_day: int
    day: date
    unknown_messages: int = 0
    throttled: Mapping[EndpointClass, int] = field(
        default_factory=lambda: MappingProxyType({}))
    cooling: Mapping[EndpointClass, float] = field(
        default_factory=lambda: MappingProxyType({}))
    coalesced: int = 0

    def queued_total(self, endpoint: EndpointClass) -> int:
        """Requests waiting in every lane of ``endpoint``."""
        return sum(self.queued[endpoint].values())


class _Window:
    """The last ``limit`` grant times; a grant fits when the oldest left the span."""

    __slots__ = ("grants", "limit", "span_s")

    def __init__(self, limit: int, span_s: float) -> None:
        self.limit = limit
        self.span_s = span_s
        self.grants: deque[float] = deque(maxlen=limit)

    def opens_at(self) -> float:
        """The earliest time a grant fits (in the past when one fits now)."""
        if len(self.grants) < self.limit:
            return float("-inf")
        return self.grants[0] + self.span_s

    def used(self, now: float) -> int:
        """Grants inside the window at ``now``. Forgets the ones that left it: grant
        times only grow, so they leave from the left (amortised O(1) per call, where a
        scan cost O(limit) on every message the actor handles)."""
        grants, span = self.grants, self.span_s
        while grants and grants[0] + span <= now:
            grants.popleft()
        return len(grants)


class _Lane:
    """One endpoint class: its windows and its queue, ordered (priority, arrival),
    and its back-off after the broker's 429s."""

    __slots__ = ("backoff", "cool_until", "daily", "granted", "last_429", "queue", "queued",
                 "throttled", "windows")

    def __init__(self, windows: tuple[_Window, ...], daily: bool) -> None:
        self.windows = windows
        self.daily = daily
        self.queue: list[tuple[int, int, RequestPermit]] = []
        self.queued: dict[Priority, int] = dict.fromkeys(Priority, 0)
        self.granted = 0
        self.throttled = 0
        self.backoff = 0.0
        self.cool_until = float("-inf")
        self.last_429 = float("-inf")

    def opens_at(self) -> float:
        return max(self.cool_until, *(w.opens_at() for w in self.windows))


class RateLimitActor(EngineActor):
    """The one gate between the engine and the broker's rate limits.

    Contract:
    - Budgets (from ``RateLimitsConfig``): quote, historical and other per
      second; orders per second, per minute and per day. In no window of any
      budget are more permits granted than its limit (sliding windows on the
      ``monotonic`` clock).
    - ``RequestPermit`` is answered with ``PermitGranted`` when its slot comes.
      Within an endpoint class, lanes go in Priority order (CANCEL, EXIT,
      ENTRY, READ), first come first served within a lane; classes are
      independent.
    - The daily order budget (reset when ``wall_day()``, by default the date
      in India, changes) refuses ENTRY and READ order permits with
      ``PermitRefused``, at once and for those already queued. CANCEL and EXIT
      permits are never refused: they still wait for the per-second and
      per-minute windows, and still count towards the day.
    - Each one-second window is ``safety_margin_s`` longer than a second, so
      network jitter cannot bunch two windows' calls into one at the broker.
    - ``CallThrottled`` (the broker answered 429) cools that class down: no
      grant for ``backoff_initial_s``, doubled by each further 429 up to
      ``backoff_max_s`` (429s arriving while the class is already cooling
      belong to the same episode and do not double it); the back-off resets
      after ``backoff_max_s`` without a 429. Each 429 is counted in
      ``RateBook.throttled``.
    - ``prior`` calls (endpoint, monotonic time), made before the actor
      started, count in their windows like grants.
    - A request without ``reply_to`` is logged and dropped (it takes no
      budget); unknown messages are logged and counted.
    - A ``merge`` request (an idempotent look-up) whose ``request_id`` equals
      one still waiting is merged into it (``coalesced``): a saga that asks
      again before its last look-up got its slot never piles calls up ahead of
      everyone else's. Other requests are never merged.
    - The actor never blocks: a ``WakeTimer`` delivers ``Wake`` when the
      earliest queued slot opens; ``on_stop`` cancels it. ``snapshot`` holds a
      :class:`RateBook`, republished after every message.
    """

    def __init__(
        self,
        config: RateLimitsConfig,
        monotonic: Callable[[], float] = time.monotonic,
        wall_day: Callable[[], date] | None = None,
        prior: Iterable[tuple[EndpointClass, float]] = (),
    ) -> None:
        super().__init__()
        for key in ("quote_per_s", "historical_per_s", "orders_per_s", "orders_per_min",
                    "orders_per_day", "other_per_s"):
            value = getattr(config, key)
            if type(value) is not int or value < 1:
                raise ValueError(f"{key}: must be an integer >= 1, got {value!r}")
        self._monotonic = monotonic
        self._wall_day = wall_day or ist_today
        second = 1.0 + config.safety_margin_s
        self._lanes: dict[EndpointClass, _Lane] = {
            EndpointClass.QUOTE: _Lane((_Window(config.quote_per_s, second),), daily=False),
            EndpointClass.HISTORICAL: _Lane((_Window(config.historical_per_s, second),),
                                            daily=False),
            EndpointClass.ORDERS: _Lane((_Window(config.orders_per_s, second),
                                         _Window(config.orders_per_min, 60.0 + second - 1.0)),
                                        daily=True),
            EndpointClass.OTHER: _Lane((_Window(config.other_per_s, second),), daily=False),
        }
        for endpoint, at in sorted(prior, key=lambda call: call[1]):
            # calls made before the actor existed (live start-up) fill their windows
            for window in self._lanes[endpoint].windows:
                window.grants.append(at)
        self._backoff_initial = config.backoff_initial_s
        self._backoff_max = config.backoff_max_s
        self._per_day = config.orders_per_day
        self._day = self._wall_day()
        self._orders_today = 0
        self._seq = 0
        self._waiting: set[str] = set()
        self._coalesced = 0
        self._refused = 0
        self._unknown = 0
        self._timer = WakeTimer(self.actor_ref, monotonic)
        self.snapshot: Published[RateBook] = Published(self._build(monotonic()))

    def receive(self, message: Any) -> Any:
        now = self._monotonic()
        if isinstance(message, RequestPermit):
            self._request(message)
        elif isinstance(message, CallThrottled):
            self._throttled(message, now)
        elif isinstance(message, Wake):
            # cancel(), not fired(): a stale Wake (from a timer replaced just as it
            # fired) must not orphan the live timer; _grant_due re-arms if needed.
            self._timer.cancel()
        else:
            self._unknown += 1
            self.unhandled(message)
        self._grant_due(now)
        self.snapshot.publish(self._build(now))
        return None

    def on_stop(self) -> None:
        self._timer.cancel()

    def _request(self, message: RequestPermit) -> None:
        if message.reply_to is None:
            _log.warning("permit_without_reply_to", request_id=message.request_id,
                         endpoint=message.endpoint.value)
            return
        lane = self._lanes[message.endpoint]
        self._roll_day()
        if lane.daily and self._day_spent() and message.priority not in DAILY_EXEMPT:
            self._refuse(message)
            return
        if message.merge and message.request_id in self._waiting:
            # the same look-up is still waiting (a saga asking again): one slot serves
            # both, so repeated asks never pile up ahead of other calls
            self._coalesced += 1
            return
        if message.merge:
            self._waiting.add(message.request_id)
        self._seq += 1
        heapq.heappush(lane.queue, (int(message.priority), self._seq, message))
        lane.queued[message.priority] += 1

    def _grant_due(self, now: float) -> None:
        """Grant every queued request that fits now, then arm the next wake."""
        self._roll_day()
        due: float | None = None
        for lane in self._lanes.values():
            while lane.queue:
                opens = lane.opens_at()
                if opens > now:
                    due = opens if due is None else min(due, opens)
                    break
                _, _, message = heapq.heappop(lane.queue)
                lane.queued[message.priority] -= 1
                self._waiting.discard(message.request_id)
                self._grant(lane, message, now)
        if due is not None:
            self._timer.arm(due)

    def _grant(self, lane: _Lane, message: RequestPermit, now: float) -> None:
        for window in lane.windows:
            window.grants.append(now)
        lane.granted += 1
        if message.then is not None and message.then_to is not None:
            _deliver(message)
        else:
            _answer(message, PermitGranted(message.request_id, message.endpoint))
        if lane.daily:
            self._orders_today += 1
            if self._orders_today == self._per_day:
                self._refuse_queued(lane)

    def _throttled(self, message: CallThrottled, now: float) -> None:
        lane = self._lanes[message.endpoint]
        lane.throttled += 1
        if now < lane.cool_until:
            # calls granted before the class began cooling, answered 429 since: the same
            # episode, not a reason to double the back-off again
            _log.info("broker_throttled_while_cooling", endpoint=message.endpoint.value,
                      call=message.call, backoff_s=lane.backoff)
            return
        if now - lane.last_429 > self._backoff_max:
            lane.backoff = self._backoff_initial
        else:
            lane.backoff = min(self._backoff_max, max(lane.backoff * 2, self._backoff_initial))
        lane.last_429 = now
        lane.cool_until = max(lane.cool_until, now + lane.backoff)
        _log.warning("broker_throttled", endpoint=message.endpoint.value, call=message.call,
                     backoff_s=lane.backoff, throttled=lane.throttled)

    # -- the daily order budget ------------------------------------------------

    def _roll_day(self) -> None:
        today = self._wall_day()
        if today != self._day:
            _log.info("daily_order_budget_reset", day=today.isoformat(),
                      used_yesterday=self._orders_today)
            self._day, self._orders_today = today, 0

    def _day_spent(self) -> bool:
        return self._orders_today >= self._per_day

    def _refuse_queued(self, lane: _Lane) -> None:
        keep = [item for item in lane.queue if item[2].priority in DAILY_EXEMPT]
        refuse = [item[2] for item in lane.queue if item[2].priority not in DAILY_EXEMPT]
        lane.queue = keep
        heapq.heapify(lane.queue)
        for message in sorted(refuse, key=lambda m: m.priority):
            lane.queued[message.priority] -= 1
            self._waiting.discard(message.request_id)
            self._refuse(message)

    def _refuse(self, message: RequestPermit) -> None:
        self._refused += 1
        reason = (f"daily order budget spent: {self._orders_today} of orders_per_day="
                  f"{self._per_day} used on {self._day.isoformat()}; only CANCEL and EXIT "
                  f"permits are granted until the day changes")
        _log.warning("permit_refused", request_id=message.request_id,
                     priority=message.priority.name, reason=reason)
        _answer(message, PermitRefused(message.request_id, message.endpoint, reason))

    # -- publication -----------------------------------------------------------

    def _build(self, now: float) -> RateBook:
        lanes = self._lanes
        return RateBook(
            granted=MappingProxyType({ep: lane.granted for ep, lane in lanes.items()}),
            queued=MappingProxyType({ep: MappingProxyType(dict(lane.queued))
                                     for ep, lane in lanes.items()}),
            refused=self._refused,
            windows=tuple(WindowUsage(ep, w.span_s, w.limit, w.used(now))
                          for ep, lane in lanes.items() for w in lane.windows),
            orders_today=self._orders_today,
            orders_per_day=self._per_day,
            day=self._day,
            unknown_messages=self._unknown,
            throttled=MappingProxyType({ep: lane.throttled for ep, lane in lanes.items()}),
            cooling=MappingProxyType({ep: max(0.0, lane.cool_until - now)
                                      for ep, lane in lanes.items()}),
            coalesced=self._coalesced,
        )


def _deliver(request: RequestPermit) -> None:
    """Make the permitted call: deliver ``request.then`` to ``request.then_to``."""
    try:
        request.then_to.tell(request.then)  # type: ignore[union-attr]
    except pykka.ActorDeadError:
        _log.warning("permitted_call_target_dead", request_id=request.request_id,
                     endpoint=request.endpoint.value)


def _answer(request: RequestPermit, answer: PermitGranted | PermitRefused) -> None:
    """Tell ``request``'s sender; a dead sender is logged (its slot stays spent)."""
    if request.reply_to is None:  # such requests are dropped on arrival, never queued
        return
    try:
        request.reply_to.tell(answer)
    except pykka.ActorDeadError:
        _log.warning("permit_requester_dead", request_id=request.request_id,
                     endpoint=request.endpoint.value)
