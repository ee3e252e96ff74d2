"""Clocks: the wall clock for live trading, a scaled simulated clock for paper.

Every actor asks its injected :class:`Clock` for the time, never
``datetime.now()`` directly, so the whole engine can run at simulated speed.
"""

from __future__ import annotations

import math
import time
from datetime import datetime, timedelta
from typing import Protocol, runtime_checkable

from actors.market._calendar import IST

__all__ = ["Clock", "SimClock", "WallClock"]


@runtime_checkable
class Clock(Protocol):
    """A source of the current time.

    Contract: :meth:`now` returns a timezone-aware datetime in IST that never
    goes backwards between calls on the same clock.
    """

    def now(self) -> datetime:
        """The current time, timezone-aware, in IST."""
        ...


class WallClock:
    """The real time, in IST. Contract: as :class:`Clock`; stateless."""

    def now(self) -> datetime:
        """The current wall time, timezone-aware, in IST."""
        return datetime.now(IST)


class SimClock:
    """Simulated time that runs ``speed`` times faster than the wall clock.

    Contract: ``now() = start + (monotonic() - t0) * speed`` where ``t0`` is the
    monotonic time at construction, so simulated time starts at ``start`` and
    never goes backwards. ``start`` must be timezone-aware and ``speed`` a
    finite number > 0 (``ValueError`` naming the field otherwise). No locks and
    no sleeps: any thread may read it.
    """

    __slots__ = ("_speed", "_start", "_t0")

    def __init__(self, start: datetime, speed: float) -> None:
        if not isinstance(start, datetime):
            raise ValueError(f"start: must be a datetime, got {start!r}")
        if start.tzinfo is None or start.utcoffset() is None:
            raise ValueError(f"start: must be timezone-aware, got {start!r}")
        if isinstance(speed, bool) or not isinstance(speed, int | float):
            raise ValueError(f"speed: must be a number, got {speed!r}")
        if not math.isfinite(speed) or speed <= 0:
            raise ValueError(f"speed: must be a finite number > 0, got {speed!r}")
        self._start = start.astimezone(IST)
        self._speed = float(speed)
        self._t0 = time.monotonic()

    @property
    def start(self) -> datetime:
        """The simulated time at construction, in IST."""
        return self._start

    @property
    def speed(self) -> float:
        """Simulated seconds per wall second."""
        return self._speed

    def now(self) -> datetime:
        """The current simulated time, timezone-aware, in IST."""
        return self._start + timedelta(seconds=(time.monotonic() - self._t0) * self._speed)

    def seconds_to_wall(self, sim_seconds: float) -> float:
        """Wall seconds that pass while ``sim_seconds`` of simulated time pass."""
        return sim_seconds / self._speed
