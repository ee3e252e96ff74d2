"""RateLimitActor: budgets per endpoint class, priority lanes, daily budget, timer wake-ups."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import date
from typing import Any

import pykka
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from actors._base import Wake
from actors._ratelimit import RateBook, RateLimitActor
from actors.config._schema import RateLimitsConfig
from messages import (
    CallThrottled,
    EndpointClass,
    PermitGranted,
    PermitRefused,
    Priority,
    RequestPermit,
)
from tests.support import Recorder, wait_until

ORDERS, QUOTE, OTHER = EndpointClass.ORDERS, EndpointClass.QUOTE, EndpointClass.OTHER
TOLERANCE_S = 0.1  # receipt jitter allowed when measuring windows on the wall clock


class TimedRecorder(Recorder):
    """A Recorder that also notes when (monotonic) each message arrived."""

    def __init__(self) -> None:
        super().__init__()
        self.times: list[float] = []

    def tell(self, message: Any) -> None:
        self.times.append(time.monotonic())
        super().tell(message)


class FakeMonotonic:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class FakeDay:
    def __init__(self) -> None:
        self.today = date(2026, 1, 6)

    def __call__(self) -> date:
        return self.today


@pytest.fixture(autouse=True)
def _stop_actors() -> Iterator[None]:
    yield
    pykka.ActorRegistry.stop_all()


def config(**overrides: float) -> RateLimitsConfig:
    overrides.setdefault("safety_margin_s", 0.0)  # whole-second steps of the fake clock
    return RateLimitsConfig(**overrides)  # type: ignore[arg-type]


def request(ref: pykka.ActorRef[RateLimitActor], request_id: str, inbox: Recorder,
            endpoint: EndpointClass = ORDERS, priority: Priority = Priority.ENTRY) -> None:
    ref.tell(RequestPermit(request_id, endpoint, priority, inbox))


def book(ref: pykka.ActorRef[RateLimitActor]) -> RateBook:
    """The published snapshot after every message sent so far was handled."""
    published = ref.proxy().snapshot.get(timeout=5)  # an ask: queued behind earlier tells
    return published.latest()  # type: ignore[no-any-return]


def granted_ids(inbox: Recorder) -> list[str]:
    return [m.request_id for m in inbox.of(PermitGranted)]


class Poker:
    """Wakes the actor with a permit in another class, as a fake clock cannot fire timers."""

    def __init__(self, ref: pykka.ActorRef[RateLimitActor]) -> None:
        self.ref = ref
        self.inbox = Recorder()
        self.count = 0

    def __call__(self) -> None:
        self.count += 1
        request(self.ref, f"poke{self.count}", self.inbox, EndpointClass.HISTORICAL,
                Priority.READ)
        self.inbox.wait_for_kind(PermitGranted, self.count)


def wake_timers() -> set[threading.Timer]:
    """Timers still waiting to fire (neither fired nor cancelled)."""
    return {t for t in threading.enumerate()
            if isinstance(t, threading.Timer) and not t.finished.is_set()}


def test_orders_beyond_the_per_second_budget_wait_for_later_windows() -> None:
    ref = RateLimitActor.start(config(orders_per_s=10))
    inbox = TimedRecorder()
    timers_before = wake_timers()
    sent = time.monotonic()
    for i in range(25):
        request(ref, f"r{i}", inbox)
    inbox.wait_for_kind(PermitGranted, 10)
    assert len(wake_timers() - timers_before) <= 1  # one wake-up timer, however long the queue
    grants = inbox.wait_for_kind(PermitGranted, 25, timeout=10)

    assert [g.request_id for g in grants] == [f"r{i}" for i in range(25)]
    times = inbox.times
    assert times[9] - sent < 0.5  # the first ten at once
    assert times[10] - sent >= 1.0 - TOLERANCE_S  # the eleventh waits for the next window
    for i in range(len(times) - 10):
        assert times[i + 10] - times[i] >= 1.0 - TOLERANCE_S, f"11 grants within 1 s at {i}"
    snap = book(ref)
    assert snap.granted[ORDERS] == 25
    assert snap.queued_total(ORDERS) == 0


def test_cancels_and_exits_overtake_entries_queued_earlier() -> None:
    clock = FakeMonotonic()
    ref = RateLimitActor.start(config(orders_per_s=1), monotonic=clock)
    poke, inbox = Poker(ref), Recorder()
    request(ref, "first", inbox)
    inbox.wait_for_kind(PermitGranted)
    request(ref, "entry1", inbox, priority=Priority.ENTRY)
    request(ref, "entry2", inbox, priority=Priority.ENTRY)
    request(ref, "exit", inbox, priority=Priority.EXIT)
    request(ref, "cancel", inbox, priority=Priority.CANCEL)
    queued = book(ref).queued[ORDERS]
    assert (queued[Priority.CANCEL], queued[Priority.EXIT], queued[Priority.ENTRY]) == (1, 1, 2)

    for n in range(2, 6):
        clock.now += 1.0
        poke()
        inbox.wait_for_kind(PermitGranted, n)
    assert granted_ids(inbox) == ["first", "cancel", "exit", "entry1", "entry2"]


def test_the_per_minute_order_budget_holds_across_seconds() -> None:
    clock = FakeMonotonic()
    start = clock.now
    ref = RateLimitActor.start(config(orders_per_s=10, orders_per_min=3), monotonic=clock)
    poke, inbox = Poker(ref), Recorder()
    for i in range(4):
        request(ref, f"r{i}", inbox)
    inbox.wait_for_kind(PermitGranted, 3)
    assert book(ref).queued_total(ORDERS) == 1

    clock.now = start + 30.0  # the per-second window is free, the minute is not
    poke()
    snap = book(ref)
    assert snap.queued_total(ORDERS) == 1
    assert granted_ids(inbox) == ["r0", "r1", "r2"]
    minute = next(w for w in snap.windows if w.endpoint is ORDERS and w.span_s == 60.0)
    assert (minute.used, minute.limit) == (3, 3)

    clock.now = start + 60.0
    poke()
    inbox.wait_for_kind(PermitGranted, 4)
    assert granted_ids(inbox)[-1] == "r3"


def test_the_daily_order_budget_refuses_entries_and_reads_but_not_exits() -> None:
    day = FakeDay()
    ref = RateLimitActor.start(config(orders_per_s=10, orders_per_day=3), wall_day=day)
    inbox = Recorder()
    for i in range(3):
        request(ref, f"e{i}", inbox)
    inbox.wait_for_kind(PermitGranted, 3)

    request(ref, "late-entry", inbox, priority=Priority.ENTRY)
    request(ref, "late-read", inbox, priority=Priority.READ)
    refused = inbox.wait_for_kind(PermitRefused, 2)
    assert [r.request_id for r in refused] == ["late-entry", "late-read"]
    assert refused[0].reason.startswith(
        "daily order budget spent: 3 of orders_per_day=3 used on 2026-01-06; "
        "only CANCEL and EXIT permits are granted")

    request(ref, "exit", inbox, priority=Priority.EXIT)
    request(ref, "cancel", inbox, priority=Priority.CANCEL)
    inbox.wait_for_kind(PermitGranted, 5)
    snap = book(ref)
    assert (snap.refused, snap.orders_today) == (2, 5)

    day.today = date(2026, 1, 7)
    request(ref, "tomorrow", inbox)
    inbox.wait_for_kind(PermitGranted, 6)
    assert book(ref).orders_today == 1


def test_entries_queued_when_the_daily_budget_runs_out_are_refused_at_once() -> None:
    clock = FakeMonotonic()
    ref = RateLimitActor.start(config(orders_per_s=1, orders_per_day=2), monotonic=clock)
    poke, inbox = Poker(ref), Recorder()
    request(ref, "e1", inbox)
    inbox.wait_for_kind(PermitGranted)
    request(ref, "e2", inbox)
    request(ref, "e3", inbox)
    request(ref, "x1", inbox, priority=Priority.EXIT)
    assert book(ref).queued_total(ORDERS) == 3  # all queued before the clock moves
    clock.now += 1.0
    poke()
    refused = inbox.wait_for_kind(PermitRefused, 2)
    assert granted_ids(inbox) == ["e1", "x1"]
    assert [r.request_id for r in refused] == ["e2", "e3"]
    assert book(ref).queued_total(ORDERS) == 0


def test_the_quote_budget_is_independent_of_the_order_budget() -> None:
    clock = FakeMonotonic()
    ref = RateLimitActor.start(config(orders_per_s=1, quote_per_s=1), monotonic=clock)
    poke, inbox = Poker(ref), Recorder()
    request(ref, "o1", inbox)
    request(ref, "o2", inbox)
    request(ref, "q1", inbox, QUOTE, Priority.READ)
    request(ref, "q2", inbox, QUOTE, Priority.READ)
    request(ref, "x1", inbox, OTHER, Priority.READ)
    inbox.wait_for_kind(PermitGranted, 3)
    snap = book(ref)
    assert granted_ids(inbox) == ["o1", "q1", "x1"]
    assert (snap.queued_total(ORDERS), snap.queued_total(QUOTE)) == (1, 1)

    clock.now += 1.0
    poke()
    inbox.wait_for_kind(PermitGranted, 5)
    assert set(granted_ids(inbox)[3:]) == {"o2", "q2"}


def test_the_actor_stops_cleanly_with_a_timer_pending() -> None:
    clock = FakeMonotonic()  # frozen: the wake-up is a minute of real time away
    ref = RateLimitActor.start(config(orders_per_min=1), monotonic=clock)
    inbox = Recorder()
    before = wake_timers()
    request(ref, "now", inbox)
    request(ref, "later", inbox)
    inbox.wait_for_kind(PermitGranted)
    book(ref)
    armed = wake_timers() - before
    assert len(armed) == 1

    ref.stop(timeout=5)
    assert not wake_timers() & armed  # cancelled in on_stop, a minute before it was due
    wait_until(lambda: not any(t.is_alive() for t in armed), timeout=5,
               what="the cancelled timer's thread ends")
    assert granted_ids(inbox) == ["now"]


def test_stray_wakes_never_leave_more_than_one_timer() -> None:
    clock = FakeMonotonic()
    ref = RateLimitActor.start(config(orders_per_s=1), monotonic=clock)
    inbox = Recorder()
    before = wake_timers()
    request(ref, "now", inbox)
    request(ref, "later", inbox)
    for _ in range(5):  # e.g. from a timer replaced just as it fired
        ref.tell(Wake(clock.now))
    assert book(ref).queued_total(ORDERS) == 1
    assert len(wake_timers() - before) == 1


def test_unknown_messages_and_unanswerable_requests_are_logged_not_fatal() -> None:
    ref = RateLimitActor.start(config())
    ref.tell(object())
    ref.tell(RequestPermit("nobody", ORDERS, Priority.ENTRY))
    snap = book(ref)
    assert snap.unknown_messages == 1
    assert snap.granted[ORDERS] == 0
    assert ref.is_alive()


@pytest.mark.parametrize("key", ["orders_per_s", "orders_per_day", "quote_per_s"])
def test_a_zero_budget_is_a_configuration_error(key: str) -> None:
    with pytest.raises(ValueError, match=f"{key}: must be an integer >= 1, got 0"):
        RateLimitActor(config(**{key: 0}))


_STEP = st.tuples(
    st.sampled_from([0.0, 0.25, 0.5, 1.0, 7.5, 60.0]),  # exact in binary: no rounding at edges
    st.lists(st.tuples(st.sampled_from(list(EndpointClass)), st.sampled_from(list(Priority))),
             max_size=8),
)


@settings(max_examples=40, deadline=None)
@given(steps=st.lists(_STEP, min_size=1, max_size=25))
def test_no_window_ever_holds_more_grants_than_its_budget(
    steps: list[tuple[float, list[tuple[EndpointClass, Priority]]]],
) -> None:
    limits = config(quote_per_s=1, historical_per_s=2, orders_per_s=3, orders_per_min=5,
                    orders_per_day=12, other_per_s=2)
    clock = FakeMonotonic()
    ref = RateLimitActor.start(limits, monotonic=clock)
    try:
        inbox = Recorder()
        kinds: dict[str, tuple[EndpointClass, Priority]] = {}
        at: dict[str, float] = {}
        for n, (dt, requests) in enumerate(steps):
            clock.now += dt
            for i, (endpoint, priority) in enumerate(requests):
                kinds[f"{n}.{i}"] = (endpoint, priority)
                request(ref, f"{n}.{i}", inbox, endpoint, priority)
            book(ref)  # every grant of this step has been told
            for rid in granted_ids(inbox):
                at.setdefault(rid, clock.now)
        for _ in range(250):  # then let time pass (as the timer would) until all are answered
            snap = book(ref)
            if not any(snap.queued_total(endpoint) for endpoint in EndpointClass):
                break
            clock.now += 60.0
            ref.tell(Wake(clock.now))
            book(ref)
            for rid in granted_ids(inbox):
                at.setdefault(rid, clock.now)
    finally:
        ref.stop()

    budgets = {EndpointClass.QUOTE: [(1, 1.0)], EndpointClass.HISTORICAL: [(2, 1.0)],
               EndpointClass.ORDERS: [(3, 1.0), (5, 60.0)], EndpointClass.OTHER: [(2, 1.0)]}
    for endpoint, windows in budgets.items():
        times = sorted(t for rid, t in at.items() if kinds[rid][0] is endpoint)
        for limit, span in windows:
            for i in range(len(times) - limit):
                assert times[i + limit] - times[i] >= span, (endpoint, limit, span, times)
    refused = {m.request_id for m in inbox.of(PermitRefused)}
    assert all(kinds[rid][0] is ORDERS and kinds[rid][1] not in (Priority.CANCEL, Priority.EXIT)
               for rid in refused)
    assert refused | set(at) == set(kinds)  # none lost
    daily = [rid for rid in at if kinds[rid][0] is ORDERS
             and kinds[rid][1] in (Priority.ENTRY, Priority.READ)]
    assert len(daily) <= 12


def test_a_permit_can_carry_its_call_to_the_target() -> None:
    from messages import OrderLeg, OrderRequest, PlaceOrder
    from tests.test_messages import CALL

    limiter = RateLimitActor.start(RateLimitsConfig())
    asker, gateway = Recorder(), Recorder()
    try:
        call = PlaceOrder(OrderRequest("AB12CD0E", OrderLeg(CALL, "BUY", 65)))
        limiter.tell(RequestPermit("AB12CD0E", EndpointClass.ORDERS, Priority.ENTRY, asker,
                                   then=call, then_to=gateway))
        assert gateway.wait_for_kind(PlaceOrder) == [call]
        assert asker.messages == []
    finally:
        limiter.stop()


def test_the_safety_margin_stretches_each_second_window() -> None:
    clock = FakeMonotonic()
    ref = RateLimitActor.start(config(quote_per_s=1, safety_margin_s=0.05), monotonic=clock)
    poke, inbox = Poker(ref), Recorder()
    request(ref, "q1", inbox, QUOTE, Priority.READ)
    request(ref, "q2", inbox, QUOTE, Priority.READ)
    inbox.wait_for_kind(PermitGranted)
    clock.now += 1.0
    poke()
    assert granted_ids(inbox) == ["q1"]  # one second is not enough: 1.05 s are
    clock.now += 0.05
    poke()
    inbox.wait_for_kind(PermitGranted, 2)
    assert granted_ids(inbox) == ["q1", "q2"]


def test_a_429_cools_its_class_down_and_backs_off_exponentially() -> None:
    clock = FakeMonotonic()
    limits = config(quote_per_s=10, backoff_initial_s=1.0, backoff_max_s=4.0)
    ref = RateLimitActor.start(limits, monotonic=clock)
    poke, inbox = Poker(ref), Recorder()
    ref.tell(CallThrottled(QUOTE, "quote"))
    request(ref, "q1", inbox, QUOTE, Priority.READ)
    request(ref, "o1", inbox, ORDERS, Priority.ENTRY)  # other classes are not cooled
    inbox.wait_for_kind(PermitGranted)
    assert granted_ids(inbox) == ["o1"]
    snap = book(ref)
    assert snap.throttled[QUOTE] == 1 and snap.cooling[QUOTE] == pytest.approx(1.0)
    clock.now += 1.0
    poke()
    inbox.wait_for_kind(PermitGranted, 2)
    assert granted_ids(inbox) == ["o1", "q1"]
    # a second 429 soon after doubles the pause; 429s while it cools are the same episode
    ref.tell(CallThrottled(QUOTE))
    ref.tell(CallThrottled(QUOTE))
    assert book(ref).cooling[QUOTE] == pytest.approx(2.0)
    clock.now += 2.0
    ref.tell(CallThrottled(QUOTE))  # after the pause: doubled again, up to the cap
    assert book(ref).cooling[QUOTE] == pytest.approx(4.0)
    # quiet for longer than backoff_max_s: the next 429 starts again at the initial pause
    clock.now += 10.0
    ref.tell(CallThrottled(QUOTE))
    assert book(ref).cooling[QUOTE] == pytest.approx(1.0)
    assert book(ref).throttled[QUOTE] == 5


def test_a_look_up_asked_again_while_it_waits_is_merged_and_nothing_else_is() -> None:
    ref = RateLimitActor.start(config(other_per_s=1))
    try:
        inbox = Recorder()
        request(ref, "fill", inbox, OTHER)  # takes the window's one slot
        for _ in range(3):  # the same look-up asked again while it waits
            ref.tell(RequestPermit("T1:q", OTHER, Priority.CANCEL, inbox, merge=True))
        request(ref, "plain", inbox, OTHER)
        request(ref, "plain", inbox, OTHER)  # not a look-up: never merged
        snap = book(ref)
        assert snap.coalesced == 2 and snap.queued_total(OTHER) == 3
        grants = inbox.wait_for_kind(PermitGranted, 4, timeout=10)
        assert [g.request_id for g in grants] == ["fill", "T1:q", "plain", "plain"]
        ref.tell(RequestPermit("T1:q", OTHER, Priority.CANCEL, inbox, merge=True))
        inbox.wait_for_kind(PermitGranted, 5, timeout=10)  # granted: it may be asked anew
    finally:
        ref.stop()
