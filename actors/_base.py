"""What every kitesaga actor shares: failure reporting and a wake-up timer."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType
from typing import Any

import pykka
import structlog

from actors._introspect import ActorStats, AttachTrace, DetachTrace
from actors._published import Published
from messages import Inbox

__all__ = ["ActorFailed", "EngineActor", "Wake", "WakeTimer"]

_log = structlog.get_logger("kitesaga.actors")


@dataclass(frozen=True, slots=True)
class Wake:
    """Private tick an actor sends itself when a deadline it armed comes due."""

    at: float


@dataclass(frozen=True, slots=True)
class ActorFailed:
    """An actor died of an unexpected exception; the system halts trading."""

    actor: str
    error: str


class WakeTimer:
    """Delivers :class:`Wake` to one actor at the earliest armed deadline.

    Contract: at most one ``threading.Timer`` exists at a time; arming an
    earlier deadline replaces it, a later one is ignored (the actor re-arms
    after each wake). It never blocks and never busy-waits. ``monotonic`` is
    the clock deadlines are expressed in.
    """

    def __init__(self, target: Inbox, monotonic: Callable[[], float] = time.monotonic) -> None:
        self._target = target
        self._monotonic = monotonic
        self._timer: threading.Timer | None = None
        self._due: float | None = None

    def arm(self, due: float) -> None:
        """Make sure a Wake arrives no later than ``due`` (monotonic seconds)."""
        if self._due is not None and self._due <= due and self._timer is not None:
            return
        self.cancel()
        delay = max(0.0, due - self._monotonic())
        timer = threading.Timer(delay, self._fire, args=(due,))
        timer.daemon = True
        self._timer, self._due = timer, due
        timer.start()

    def fired(self, wake: Wake) -> None:
        """Call on each Wake: forgets the timer only if ``wake`` is the armed one
        (a stale Wake from a replaced timer leaves the pending timer alone)."""
        if wake.at == self._due:
            self._timer, self._due = None, None

    def cancel(self) -> None:
        """Stop any pending timer (on actor stop)."""
        if self._timer is not None:
            self._timer.cancel()
        self._timer, self._due = None, None

    def _fire(self, due: float) -> None:
        try:
            self._target.tell(Wake(due))
        except pykka.ActorDeadError:
            _log.debug("wake_after_stop", due=due)


class EngineActor(pykka.ThreadingActor):
    """Base of every engine actor: an unexpected exception is never silent.

    Contract: when a message handler raises, the failure is logged with its
    traceback and reported as :class:`ActorFailed` to every running
    ``SupervisorActor`` (the system, which halts trading), then Pykka stops
    the actor. The actor's timers and other resources are released as on a
    normal stop (``on_stop`` runs).

    Replies queued with :meth:`reply_after_publish` go out only when the
    actor calls :meth:`send_replies` after publishing its snapshot, so whoever
    receives a reply can read a snapshot that already includes it.

    Subclasses handle their messages in :meth:`receive`; ``on_receive`` counts
    each one in ``stats`` (:class:`~actors._introspect.ActorStats`, read by
    the REPL's ``actors()``) and offers it to any trace attached with
    :class:`~actors._introspect.AttachTrace`. :meth:`introspection` hands both
    ``stats`` and the actor's published snapshot cell to its engine.
    """

    def __init__(self) -> None:
        super().__init__()
        self._replies: list[tuple[Inbox, Any]] = []
        self.stats = ActorStats(type(self).__name__)

    def on_receive(self, message: Any) -> Any:
        if isinstance(message, (AttachTrace, DetachTrace)):
            self.stats.tap(message)
            return None
        self.stats.received(message)
        try:
            return self.receive(message)
        finally:
            self.stats.handled()

    def receive(self, message: Any) -> Any:
        """Handle one message (override); the default logs it as unhandled."""
        self.unhandled(message)
        return None

    def introspection(self) -> tuple[ActorStats, Published[Any] | None]:
        """``stats`` and the snapshot cell other threads read (``snapshot``, if the
        actor publishes one): called once, through a proxy, by the engine."""
        cell = getattr(self, "snapshot", None)
        return self.stats, cell if isinstance(cell, Published) else None

    def reply_after_publish(self, to: Inbox | None, message: Any) -> None:
        """Queue ``message`` for ``to`` (nothing when ``to`` is None)."""
        if to is not None:
            self._replies.append((to, message))

    def send_replies(self) -> None:
        """Send every queued reply, in order (call after publishing)."""
        if self._replies:
            replies, self._replies = self._replies, []
            for to, message in replies:
                to.tell(message)

    def on_failure(
        self,
        exception_type: type[BaseException] | None,
        exception_value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        name = type(self).__name__
        self.stats.failed(repr(exception_value))
        _log.error("actor_failed", actor=name, error=repr(exception_value),
                   exc_info=(exception_type, exception_value, traceback))
        for ref in pykka.ActorRegistry.get_by_class_name("SupervisorActor"):
            ref.tell(ActorFailed(name, repr(exception_value)))
        self.on_stop()

    def tell_if_alive(self, to: Inbox, message: Any) -> bool:
        """Tell ``to``; a dead recipient is logged (its failure is the supervisor's
        business) instead of killing this actor too. False if it was dead."""
        try:
            to.tell(message)
        except pykka.ActorDeadError:
            _log.warning("recipient_dead", actor=type(self).__name__,
                         message=type(message).__name__)
            return False
        return True

    def unhandled(self, message: Any) -> None:
        """Log a message nobody handles (a wiring bug) instead of dropping it silently."""
        _log.warning("unhandled_message", actor=type(self).__name__,
                     message=type(message).__name__)
