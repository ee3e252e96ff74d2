"""The simulator's rate limits: Kite's per-class windows, and a record of every breach.

Classes (``classify``): ``quote`` = ``/quote*``; ``historical`` =
``/instruments/historical/*``; ``orders`` = POST/PUT/DELETE ``/orders/*``;
``other`` = every other Kite route (``GET /orders`` included). ``/_sim/*``,
``/connect/login`` and the ticker's ``/`` are exempt. Windows slide over request ARRIVAL times
(monotonic). A request the limiter refuses (429) is not executed and does not
enter the windows; every admitted request does, whatever it is answered.
The ``orders`` class has three windows: per second and per minute over every
order call, per day (a sliding 24 h) over placements only.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from actors.config._schema import SimConfig

__all__ = ["BREACHES_KEPT", "RateLimiter", "RequestClass", "classify"]

BREACHES_KEPT = 20
"""The most recent breaches kept for ``/_sim/stats`` (all are counted)."""

_SECOND = 1.0
_MINUTE = 60.0
_DAY = 86_400.0
_ORDER_WRITES = frozenset({"POST", "PUT", "DELETE"})
_EXEMPT = frozenset({"/", "/_sim", "/connect/login"})  # "/" is the ticker's WebSocket


class RequestClass(StrEnum):
    """Kite's rate-limit classes."""

    QUOTE = "quote"
    HISTORICAL = "historical"
    ORDERS = "orders"
    OTHER = "other"


def classify(method: str, path: str) -> RequestClass | None:
    """The class of a request, or None when it is exempt from limits."""
    if path in _EXEMPT or path.startswith("/_sim/"):
        return None
    if path == "/quote" or path.startswith("/quote/"):
        return RequestClass.QUOTE
    if path.startswith("/instruments/historical/"):
        return RequestClass.HISTORICAL
    if method in _ORDER_WRITES and path.startswith("/orders/"):
        return RequestClass.ORDERS
    return RequestClass.OTHER


class _Window:
    """Arrival times within the last ``span`` seconds; at most ``limit`` of them."""

    __slots__ = ("arrivals", "limit", "span")

    def __init__(self, span: float, limit: int) -> None:
        self.span = span
        self.limit = limit
        self.arrivals: deque[float] = deque()

    def used(self, now: float) -> int:
        arrivals = self.arrivals
        while arrivals and arrivals[0] <= now - self.span:
            arrivals.popleft()
        return len(arrivals)


class RateLimiter:
    """Per-class sliding windows with the limits of ``[sim]``.

    Contract: :meth:`admit` answers whether a request arriving now fits every
    window of its class; if it does it is recorded in them, if not it is
    counted as throttled and recorded as a breach (class, window, how many
    requests that window held, its limit, when). :meth:`throttle` counts a 429
    answered for another reason (an injected burst) without calling it a breach.
    Owned by the simulator's event-loop thread; no locks.
    """

    def __init__(self, sim: SimConfig, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._windows = {
            RequestClass.QUOTE: [_Window(_SECOND, sim.quote_per_s)],
            RequestClass.HISTORICAL: [_Window(_SECOND, sim.historical_per_s)],
            RequestClass.ORDERS: [_Window(_SECOND, sim.orders_per_s),
                                  _Window(_MINUTE, sim.orders_per_min)],
            RequestClass.OTHER: [_Window(_SECOND, sim.other_per_s)],
        }
        self._placements = _Window(_DAY, sim.orders_per_day)
        self.requests = dict.fromkeys(RequestClass, 0)
        self.throttled = dict.fromkeys(RequestClass, 0)
        self.breach_count = 0
        self._breaches: deque[dict[str, Any]] = deque(maxlen=BREACHES_KEPT)

    def admit(self, klass: RequestClass, *, placement: bool = False) -> bool:
        """True if the request fits (and is recorded); False if it breaches."""
        now = self._clock()
        self.requests[klass] += 1
        windows = list(self._windows[klass])
        if placement:
            windows.append(self._placements)
        for window in windows:
            used = window.used(now)
            if used >= window.limit:
                self.throttled[klass] += 1
                self.breach_count += 1
                self._breaches.append({
                    "class": klass.value, "window_s": window.span, "count": used,
                    "limit": window.limit, "at": datetime.now(UTC).isoformat()})
                return False
        for window in windows:
            window.arrivals.append(now)
        return True

    def throttle(self, klass: RequestClass) -> None:
        """Count a request of ``klass`` answered 429 for a reason other than a breach."""
        self.requests[klass] += 1
        self.throttled[klass] += 1

    def stats(self) -> dict[str, Any]:
        """Requests and 429s per class, and the breaches."""
        return {
            "requests": {k.value: n for k, n in self.requests.items()},
            "throttled": {k.value: n for k, n in self.throttled.items()},
            "breaches": {"count": self.breach_count, "recent": list(self._breaches)},
        }
