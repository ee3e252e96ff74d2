"""MetricsActor: samples the engine's published state on a timer and times sagas."""

from __future__ import annotations

import time
from bisect import bisect_left
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from itertools import pairwise
from types import MappingProxyType
from typing import Any

import psutil
import structlog

from actors._base import EngineActor, Wake, WakeTimer
from actors._published import Published
from actors.observe._sample import Attach, Sample, Sources, take_sample
from messages import SagaCompensated, SagaCompleted, SagaStarted

__all__ = ["MetricsActor", "MetricsState", "SagaTimings"]

_log = structlog.get_logger("kitesaga.metrics")

Series = tuple[str, str]  # (saga kind, outcome)


@dataclass(frozen=True, slots=True)
class SagaTimings:
    """The saga-duration histogram: per (kind, outcome), the count of durations in
    each bucket (``le`` = ``bounds[i]``; the last count is above every bound, not
    cumulative) and their sum in seconds. ``dropped`` counts starts forgotten
    because their saga outlived ``saga_deadline_s`` and left the engine's
    in-flight count without an end event reaching us."""

    bounds: tuple[float, ...]
    counts: Mapping[Series, tuple[int, ...]] = field(
        default_factory=lambda: MappingProxyType({}))
    sums: Mapping[Series, float] = field(default_factory=lambda: MappingProxyType({}))
    dropped: int = 0


@dataclass(frozen=True, slots=True)
class MetricsState:
    """MetricsActor's published state: the latest sample (None before the first),
    the engine's counters as monotonic totals (a stat that went down keeps its
    highest value, as a Prometheus counter must), the saga timings and the
    number of samples taken."""

    sample: Sample | None
    counters: Mapping[str, int]
    timings: SagaTimings
    samples: int = 0


class MetricsActor(EngineActor):
    """Owns the metrics: samples and the saga-duration histogram.

    Contract:
    - Before :class:`Attach` it only times sagas. After it, a ``WakeTimer``
      makes it sample every ``interval_s`` wall seconds (never in the HTTP
      server's thread, never sleeping); the first sample is taken at once.
    - ``SagaStarted`` → ``SagaCompleted``/``SagaCompensated`` of the same
      ``saga_id`` is one observation of its duration (monotonic seconds) in
      ``(kind, "completed"|"compensated")``. An end without a start (a saga
      recovered from the journal) is not timed. A start is forgotten only
      once it is older than ``saga_deadline_s`` while more starts are held
      than sagas in flight (counted in ``SagaTimings.dropped``).
    - Any other listener event is ignored. ``state`` holds a
      :class:`MetricsState`, republished after every message.
    """

    def __init__(self, interval_s: float, bounds: tuple[float, ...], saga_deadline_s: float,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        super().__init__()
        if not interval_s > 0:
            raise ValueError(f"metrics.sample_interval_s: must be > 0, got {interval_s!r}")
        if not bounds or any(b <= 0 for b in bounds) or any(
                a >= b for a, b in pairwise(bounds)):
            raise ValueError("metrics.saga_buckets_s: must be positive and strictly "
                             f"increasing, got {list(bounds)!r}")
        self._interval = interval_s
        self._bounds = tuple(float(b) for b in bounds)
        self._deadline = saga_deadline_s
        self._monotonic = monotonic
        self._sources: Sources | None = None
        self._process = psutil.Process()
        self._timer = WakeTimer(self.actor_ref, monotonic)
        self._started: dict[str, tuple[str, float]] = {}
        self._counts: dict[Series, list[int]] = {}
        self._sums: dict[Series, float] = {}
        self._dropped = 0
        self._counters: dict[str, int] = {}
        self._sample: Sample | None = None
        self._samples = 0
        self.state: Published[MetricsState] = Published(self._build())

    def receive(self, message: Any) -> Any:
        if isinstance(message, SagaStarted):
            self._started[message.saga_id] = (message.kind.value, self._monotonic())
        elif isinstance(message, SagaCompleted | SagaCompensated):
            self._ended(message)
        elif isinstance(message, Wake):
            self._timer.fired(message)
            self._take()
        elif isinstance(message, Attach):
            self._sources = message.sources
            self._take()
        self.state.publish(self._build())
        return None

    def on_stop(self) -> None:
        self._timer.cancel()

    def _ended(self, message: SagaCompleted | SagaCompensated) -> None:
        started = self._started.pop(message.saga_id, None)
        if started is None:
            return
        kind, at = started
        seconds = max(0.0, self._monotonic() - at)
        outcome = "completed" if isinstance(message, SagaCompleted) else "compensated"
        series = (kind, outcome)
        counts = self._counts.setdefault(series, [0] * (len(self._bounds) + 1))
        counts[bisect_left(self._bounds, seconds)] += 1
        self._sums[series] = self._sums.get(series, 0.0) + seconds

    def _take(self) -> None:
        if self._sources is None:
            return
        sample = take_sample(self._sources, self._process)
        self._sample, self._samples = sample, self._samples + 1
        for name, value in sample.stats.items():
            self._counters[name] = max(value, self._counters.get(name, 0))
        self._forget_overdue(sample.in_flight)
        self._timer.arm(self._monotonic() + self._interval)

    def _forget_overdue(self, in_flight: int) -> None:
        if len(self._started) <= in_flight:
            return
        horizon = self._monotonic() - self._deadline
        for saga_id in [s for s, (_, at) in self._started.items() if at < horizon]:
            del self._started[saga_id]
            self._dropped += 1
            _log.debug("saga_timing_dropped", saga=saga_id)

    def _build(self) -> MetricsState:
        timings = SagaTimings(
            self._bounds, MappingProxyType({s: tuple(c) for s, c in self._counts.items()}),
            MappingProxyType(dict(self._sums)), self._dropped)
        return MetricsState(self._sample, MappingProxyType(dict(self._counters)), timings,
                            self._samples)
