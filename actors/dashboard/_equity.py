"""The equity curve: a bounded series of portfolio values, sampled by the dashboard."""

from __future__ import annotations

from collections import deque
from datetime import datetime

__all__ = ["EquityCurve", "portfolio_value"]


def portfolio_value(cash: int, reserved: int, margin: int, open_cost: int,
                    unrealised: int) -> int:
    """What the book is worth now, in paise: free cash, cash reserved for sagas in
    flight, margin blocked for shorts, the cost of open positions and their
    unrealised P&L (open positions marked to the latest price)."""
    return cash + reserved + margin + open_cost + unrealised


class EquityCurve:
    """The last ``capacity`` samples of the portfolio's value.

    Contract: one thread owns it (the dashboard's event-loop thread samples and
    reads it), so it needs no lock; :meth:`add` appends ``(epoch ms, paise)``
    and forgets the oldest sample beyond ``capacity``; :meth:`points` returns
    at most ``limit`` of them, evenly thinned, always with the first and the
    latest sample, oldest first.
    """

    __slots__ = ("_points",)

    def __init__(self, capacity: int) -> None:
        if capacity < 2:
            raise ValueError(f"capacity: an equity curve keeps at least 2 points, got {capacity}")
        self._points: deque[tuple[int, int]] = deque(maxlen=capacity)

    def add(self, at: datetime, value: int) -> None:
        """Record ``value`` paise at ``at`` (timezone-aware)."""
        if at.tzinfo is None:
            raise ValueError(f"at: must be timezone-aware, got {at!r}")
        self._points.append((int(at.timestamp() * 1000), value))

    def __len__(self) -> int:
        return len(self._points)

    @property
    def capacity(self) -> int:
        """Most samples kept."""
        return self._points.maxlen or 0

    def points(self, limit: int | None = None) -> list[tuple[int, int]]:
        """The samples, oldest first, thinned to at most ``limit`` (≥ 2) if given."""
        points = list(self._points)
        if limit is None or len(points) <= limit:
            return points
        if limit < 2:
            raise ValueError(f"limit: at least 2 points, got {limit}")
        step = (len(points) - 1) / (limit - 1)
        return [points[round(i * step)] for i in range(limit)]
