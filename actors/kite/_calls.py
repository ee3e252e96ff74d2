"""Every Kite REST call a gateway makes rides on a RateLimitActor permit.

``PermittedCalls`` is a mixin for actors that own a ``KiteConnect`` client:
``_request`` asks for a permit whose grant delivers a private ``_Call`` back
to the actor, which makes the call on its own thread (the one thread that
owns that HTTP session) and hands the result to a continuation. A broker
429 means the call was not executed: it is reported (``CallThrottled``, so
RateLimitActor cools the class down) and the call goes back for a new
permit, at most ``retries_on_429`` times.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import Enum
from typing import TYPE_CHECKING, Any

import requests
import structlog
from kiteconnect import exceptions as kite_errors

from messages import CallThrottled, EndpointClass, Inbox, PermitRefused, Priority, RequestPermit

if TYPE_CHECKING:
    from actors.config._schema import RateLimitsConfig

__all__ = ["CallError", "Failure", "PermittedCalls", "classify"]

_log = structlog.get_logger("kitesaga.kite")

Continuation = Callable[[Any, "CallError | None"], None]


class Failure(str, Enum):
    """What a failed broker call means for the engine."""

    THROTTLED = "throttled"   # HTTP 429: not executed; retry on a new permit
    TOKEN = "token"           # the session is dead: halt entries, alert
    UNKNOWN = "unknown"       # timeout, dropped connection, 5xx: it may have happened
    REFUSED = "refused"       # the broker said no (input, order, margin...): it did not


@dataclass(frozen=True, slots=True)
class CallError:
    """Why a call failed, classified; ``message`` never carries credentials."""

    failure: Failure
    message: str


def classify(exc: BaseException) -> CallError:
    """Sort a client exception into a :class:`Failure` (see kite-connect-facts.md)."""
    name = type(exc).__name__
    if isinstance(exc, kite_errors.KiteException):
        code = getattr(exc, "code", 0)
        # a DataException quotes the broker's raw reply, which may carry credentials
        detail = "" if isinstance(exc, kite_errors.DataException) else f": {exc}"
        text = f"{name} ({code}){detail}"[:500]
        if code == 429:
            return CallError(Failure.THROTTLED, text)
        if isinstance(exc, kite_errors.TokenException):
            return CallError(Failure.TOKEN, text)
        if isinstance(exc, kite_errors.NetworkException | kite_errors.DataException) \
                or code >= 500:
            return CallError(Failure.UNKNOWN, text)
        return CallError(Failure.REFUSED, text)
    if isinstance(exc, requests.RequestException):
        # a timeout or a dropped connection: the request may have been executed
        return CallError(Failure.UNKNOWN, f"{name}: no answer from the broker")
    return CallError(Failure.UNKNOWN, f"{name}: {exc}"[:500])


@dataclass(frozen=True, slots=True)
class _Call:
    """Private: one permitted REST call, delivered by its permit's grant."""

    job: int
    endpoint: EndpointClass
    priority: Priority
    method: str
    kwargs: Mapping[str, Any] = field(default_factory=dict)
    attempt: int = 0
    args: tuple[Any, ...] = ()


class PermittedCalls:
    """Mixin: REST calls under permits, with 429 back-off and continuations.

    The host actor sets ``_kite`` (the client), ``_limiter``, ``_me`` and
    ``_limits`` and routes ``_Call`` and ``PermitRefused`` for ``gw:`` ids
    to :meth:`_on_call` / :meth:`_call_refused`. ``_counts`` gets ``calls``,
    ``throttled`` and ``call_errors``.
    """

    _kite: Any
    _limiter: Inbox
    _me: Inbox
    _limits: RateLimitsConfig
    _counts: dict[str, int]
    _jobs: dict[int, Continuation]
    _next_job: int

    if TYPE_CHECKING:
        def _session_dead(self, error: CallError) -> None: ...

    def _request(self, endpoint: EndpointClass, priority: Priority, method: str,
                 kwargs: Mapping[str, Any], then: Continuation,
                 args: tuple[Any, ...] = ()) -> None:
        """Ask for a permit; on its grant call ``method(*args, **kwargs)`` and pass
        the result (or the classified error) to ``then``."""
        self._next_job += 1
        self._jobs[self._next_job] = then
        self._ask(_Call(self._next_job, endpoint, priority, method, kwargs, args=args))

    def _ask(self, call: _Call) -> None:
        self._limiter.tell(RequestPermit(f"gw:{call.job}", call.endpoint, call.priority,
                                         self._me, then=call, then_to=self._me))

    def _on_call(self, call: _Call) -> None:
        then = self._jobs.get(call.job)
        if then is None:
            return
        result, error = self._invoke(call.endpoint, call.method, call.kwargs, call.args)
        if error is not None and error.failure is Failure.THROTTLED \
                and call.attempt < self._limits.retries_on_429:
            self._ask(_Call(call.job, call.endpoint, call.priority, call.method, call.kwargs,
                            call.attempt + 1, call.args))
            return
        del self._jobs[call.job]
        then(result, error)

    def _call_refused(self, message: PermitRefused) -> None:
        job = int(message.request_id.partition(":")[2] or 0)
        then = self._jobs.pop(job, None)
        if then is not None:
            then(None, CallError(Failure.REFUSED, f"no permit: {message.reason}"))

    def _invoke(self, endpoint: EndpointClass, method: str, kwargs: Mapping[str, Any],
                args: tuple[Any, ...] = ()) -> tuple[Any, CallError | None]:
        """Make one call now (the caller holds its permit)."""
        self._counts["calls"] += 1
        try:
            return getattr(self._kite, method)(*args, **kwargs), None
        except (kite_errors.KiteException, requests.RequestException, ValueError) as exc:
            # ValueError: the client's own JSON/CSV parsing of a malformed reply
            error = classify(exc)
        self._counts["call_errors"] += 1
        if error.failure is Failure.THROTTLED:
            self._counts["throttled"] += 1
            self._limiter.tell(CallThrottled(endpoint, method))
        elif error.failure is Failure.TOKEN:
            self._session_dead(error)
        _log.warning("broker_call_failed", call=method, failure=error.failure.value,
                     error=error.message)
        return None, error
