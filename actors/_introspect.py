"""What an actor tells about itself while it runs: :class:`ActorStats` (counters the
REPL's ``actors()`` reads) and :class:`TraceSink` (the tap behind ``trace()``)."""

from __future__ import annotations

import itertools
import queue
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pykka

    from actors._published import Published

__all__ = ["ActorHandle", "ActorStats", "AttachTrace", "DetachTrace", "StatsView",
           "TraceEvent", "TraceSink", "mailbox_depth"]

_RATE_WINDOW_S = 1.0  # messages/s is counted over windows of at least this long
_sink_ids = itertools.count(1)


@dataclass(frozen=True, slots=True)
class TraceEvent:
    """One message an actor took off its inbox while a trace was on."""

    at: float  # time.time() when the actor started handling it
    actor: str
    message: Any


@dataclass(frozen=True, slots=True)
class AttachTrace:
    """Private message: the receiving actor starts offering its messages to ``sink``."""

    sink: TraceSink


@dataclass(frozen=True, slots=True)
class DetachTrace:
    """Private message: the receiving actor stops offering its messages to ``sink``."""

    sink: TraceSink


class TraceSink:
    """One running ``trace()``: a bounded buffer the actors append to.

    Contract: :meth:`offer` is called on actor threads and never blocks: it keeps
    ``message`` when ``types`` is None or names its type, and appends it to a
    deque of at most ``capacity`` events (``deque.append`` is atomic; when full,
    the oldest event is dropped and counted in ``dropped``). The reader (one
    control thread) takes events with :meth:`take`.
    """

    def __init__(self, types: frozenset[str] | None, capacity: int) -> None:
        self.id = next(_sink_ids)
        self.types = types
        self._events: deque[TraceEvent] = deque(maxlen=capacity)
        self._offered = 0  # written by actor threads; a racy count is fine for "dropped"
        self._taken = 0

    def offer(self, actor: str, message: Any) -> None:
        """Keep ``message`` if it matches (actor threads; never blocks)."""
        if self.types is None or type(message).__name__ in self.types:
            self._offered += 1
            self._events.append(TraceEvent(time.time(), actor, message))

    def take(self) -> list[TraceEvent]:
        """Every event buffered so far, oldest first (the reader's thread only)."""
        taken: list[TraceEvent] = []
        while True:
            try:
                taken.append(self._events.popleft())
            except IndexError:
                break
        self._taken += len(taken)
        return taken

    @property
    def dropped(self) -> int:
        """Events lost because the reader fell behind by more than the capacity."""
        return max(0, self._offered - self._taken - len(self._events))


@dataclass(frozen=True, slots=True)
class StatsView:
    """A reading of one actor's :class:`ActorStats` (see :meth:`ActorStats.read`)."""

    name: str
    processed: int
    rate_per_s: float
    last_message: str | None
    last_age_s: float | None
    busy_s: float | None
    failures: int
    last_failure: str | None


class ActorStats:
    """Counters one actor keeps about the messages it handles.

    Contract: only the owning actor's thread writes (:meth:`received`,
    :meth:`handled`, :meth:`failed`, and ``sinks`` when it handles
    :class:`AttachTrace`/:class:`DetachTrace`); any thread may :meth:`read` a
    reading, which is approximate (fields are read one by one) but never torn
    within a field. The tap costs one truth test of an empty dict per message
    while no trace runs.
    """

    __slots__ = ("_busy", "_clock", "_last_at", "_last_type", "_rate",
                 "_window_count", "_window_start", "failures", "last_failure", "name",
                 "processed", "sinks")

    def __init__(self, name: str, clock: Callable[[], float] = time.monotonic) -> None:
        self.name = name
        self._clock = clock
        self.processed = 0
        self.failures = 0
        self.last_failure: str | None = None
        self.sinks: dict[int, TraceSink] = {}
        self._last_type: type | None = None
        self._last_at = 0.0
        self._busy = False  # between received and handled: busy since _last_at
        self._window_start = clock()
        self._window_count = 0
        self._rate = 0.0

    def received(self, message: Any) -> None:
        """The actor starts handling ``message`` (its thread)."""
        now = self._clock()
        self.processed += 1
        self._last_type = type(message)
        self._last_at = now
        self._busy = True
        self._window_count += 1
        if now - self._window_start >= _RATE_WINDOW_S:
            self._rate = self._window_count / (now - self._window_start)
            self._window_start, self._window_count = now, 0
        sinks = self.sinks
        if sinks:
            for sink in sinks.values():
                sink.offer(self.name, message)

    def handled(self) -> None:
        """The actor finished the message it :meth:`received` (its thread)."""
        self._busy = False

    def failed(self, error: str) -> None:
        """A handler raised (its thread)."""
        self.failures += 1
        self.last_failure = error
        self._busy = False

    def tap(self, message: AttachTrace | DetachTrace) -> None:
        """Attach or detach a sink (the owning actor's thread, on the message)."""
        if isinstance(message, AttachTrace):
            self.sinks[message.sink.id] = message.sink
        else:
            self.sinks.pop(message.sink.id, None)

    def read(self) -> StatsView:
        """A reading for another thread."""
        now = self._clock()
        last = self._last_type
        busy, last_at = self._busy, self._last_at
        since = now - self._window_start
        # idle since the window opened: the rate fell
        rate = self._window_count / since if since >= 2 * _RATE_WINDOW_S else self._rate
        return StatsView(self.name, self.processed, round(rate, 1),
                         None if last is None else last.__name__,
                         None if last is None else round(now - last_at, 3),
                         round(now - last_at, 3) if busy else None,
                         self.failures, self.last_failure)


@dataclass(frozen=True, slots=True)
class ActorHandle:
    """What an engine keeps of each actor it started, for introspection: its ref
    (to tell it :class:`AttachTrace` and read its inbox depth), its ``stats`` and
    its published snapshot cell (None if it publishes none)."""

    ref: pykka.ActorRef[Any]
    stats: ActorStats
    cell: Published[Any] | None

    @property
    def name(self) -> str:
        """The actor's class name (``OrderActor``)."""
        return self.stats.name

    def mailbox(self) -> int:
        """Messages waiting in its inbox (approximate; 0 once stopped)."""
        return mailbox_depth(self.ref)


def mailbox_depth(ref: pykka.ActorRef[Any]) -> int:
    """Messages waiting in ``ref``'s inbox (approximate; 0 once the actor stopped)."""
    inbox = ref.actor_inbox  # a ThreadingActor's is a queue.Queue
    return inbox.qsize() if isinstance(inbox, queue.Queue) and ref.is_alive() else 0
