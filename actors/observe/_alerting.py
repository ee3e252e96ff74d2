"""AlertActor: evaluates the alert conditions, suppresses duplicates, announces."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psutil
import structlog

from actors._base import EngineActor, Wake, WakeTimer
from actors._published import Published
from actors.config._operations import AlertsConfig
from actors.market import IST
from actors.observe._conditions import Alert, Finding, Severity, evaluate
from actors.observe._deliver import Notice, Status
from actors.observe._sample import Attach, Sources, take_sample
from messages import DriftDetected, Inbox, TradingStateChanged

__all__ = ["AlertActor", "AlertBook", "RaiseAlert"]

_log = structlog.get_logger("kitesaga.alerts")


@dataclass(frozen=True, slots=True)
class RaiseAlert:
    """A condition found outside the engine's state (e.g. /metrics could not bind):
    active from now until the actor stops."""

    finding: Finding


@dataclass(frozen=True, slots=True)
class AlertBook:
    """AlertActor's published state: the active alerts (sorted by name, key),
    ``announced``/``resolved`` notices so far and ``checks`` evaluations."""

    active: tuple[Alert, ...] = ()
    announced: int = 0
    resolved: int = 0
    checks: int = 0


@dataclass(slots=True)
class _Standing:
    alert: Alert
    announced: float  # monotonic


class AlertActor(EngineActor):
    """Owns the alerts: which conditions are active and when each was announced.

    Contract:
    - After :class:`Attach` it evaluates every condition (see
      :func:`evaluate`) every ``check_interval_s`` (a ``WakeTimer``), and at
      once on ``TradingStateChanged`` and ``DriftDetected`` (the publishing
      actor has already published the state they announce).
    - A broker 429 (RateBook.throttled grew) opens a throttling episode for
      that endpoint class, which ends after ``quiet_s`` seconds without
      another (pass ``rate_limits.backoff_max_s``: the limiter's back-off
      resets then too); the class is ``broker_throttled`` meanwhile.
    - A condition, identified by (name, key), is announced when it becomes
      true, again when its severity changes or after ``repeat_after_s`` while
      it stays true, and as ``resolved`` once when it is no longer true: no
      duplicates in between. Before Attach only :class:`RaiseAlert`
      conditions exist.
    - Each announcement is a log event ``alert`` (status, name, key,
      severity, message, figures) and a :class:`Notice` told to ``deliver``
      (the one actor that posts it) after ``book`` is published, so whoever
      sees a notice reads a book that includes it. The actor never blocks.
    - ``book`` holds an :class:`AlertBook`, republished after every message.
    """

    def __init__(self, config: AlertsConfig, deliver: Inbox, quiet_s: float,
                 monotonic: Callable[[], float] = time.monotonic,
                 wall: Callable[[], datetime] | None = None) -> None:
        super().__init__()
        self._config = config
        self._deliver = deliver
        self._monotonic = monotonic
        self._wall = wall or (lambda: datetime.now(IST))
        self._timer = WakeTimer(self.actor_ref, monotonic)
        self._sources: Sources | None = None
        self._process = psutil.Process()
        self._raised: dict[tuple[str, str], Finding] = {}
        self._standing: dict[tuple[str, str], _Standing] = {}
        self._quiet = quiet_s
        self._429: dict[str, tuple[int, int, float]] = {}  # endpoint: (seen, start, grew at)
        self._announced = self._resolved = self._checks = 0
        self._notices: list[Notice] = []
        self.book: Published[AlertBook] = Published(AlertBook())

    def receive(self, message: Any) -> Any:
        if isinstance(message, Wake):
            self._timer.fired(message)
            self._check()
            self._timer.arm(self._monotonic() + self._config.check_interval_s)
        elif isinstance(message, TradingStateChanged | DriftDetected):
            self._check()
        elif isinstance(message, Attach):
            self._sources = message.sources
            self._check()
            self._timer.arm(self._monotonic() + self._config.check_interval_s)
        elif isinstance(message, RaiseAlert):
            self._raised[message.finding.ident] = message.finding
            self._check()
        self.book.publish(AlertBook(
            tuple(s.alert for _, s in sorted(self._standing.items())),
            self._announced, self._resolved, self._checks))
        notices, self._notices = self._notices, []
        for notice in notices:  # after publishing: a receiver reads a book that has it
            self.tell_if_alive(self._deliver, notice)
        return None

    def on_stop(self) -> None:
        self._timer.cancel()

    def _check(self) -> None:
        findings = list(self._raised.values())
        if self._sources is not None:
            sample = take_sample(self._sources, self._process)
            findings += evaluate(sample, self._config, self._episodes(sample.throttled))
        self._checks += 1
        now, wall = self._monotonic(), self._wall()
        true_now = set()
        for finding in findings:
            ident = finding.ident
            if ident in true_now:
                continue
            true_now.add(ident)
            standing = self._standing.get(ident)
            if standing is None:
                self._announce(_Standing(_alert(finding, wall, wall), now))
            elif (finding.severity is not standing.alert.severity
                  or now - standing.announced >= self._config.repeat_after_s):
                self._announce(_Standing(_alert(finding, standing.alert.since, wall), now))
            else:  # still true, already announced: keep the figures fresh, say nothing
                standing.alert = _alert(finding, standing.alert.since,
                                        standing.alert.announced_at)
        for ident in [i for i in self._standing if i not in true_now]:
            gone = self._standing.pop(ident)
            self._resolved += 1
            self._emit(_alert_resolved(gone.alert, wall), "resolved")

    def _episodes(self, totals: Mapping[str, int]) -> dict[str, int]:
        """429s per endpoint class in its current episode: one lasts until
        ``quiet_s`` passed without a new 429 (the limiter's back-off reset)."""
        now = self._monotonic()
        for endpoint, total in totals.items():
            seen, start, grew = self._429.get(endpoint, (0, 0, float("-inf")))
            if total > seen:
                if now - grew >= self._quiet:
                    start = seen  # a new episode
                seen, grew = total, now
            self._429[endpoint] = (seen, start, grew)
        return {ep: seen - start for ep, (seen, start, grew) in self._429.items()
                if now - grew < self._quiet}

    def _announce(self, standing: _Standing) -> None:
        self._standing[standing.alert.name, standing.alert.key] = standing
        self._announced += 1
        self._emit(standing.alert, "firing")

    def _emit(self, alert: Alert, status: Status) -> None:
        log = (_log.info if status == "resolved" else
               _log.critical if alert.severity is Severity.CRITICAL else _log.warning)
        log("alert", status=status, name=alert.name, key=alert.key,
            severity=alert.severity.value, message=alert.message, figures=dict(alert.figures),
            since=alert.since.isoformat())
        self._notices.append(Notice(status, alert))


def _alert(finding: Finding, since: datetime, announced_at: datetime) -> Alert:
    return Alert(finding.name, finding.key, finding.severity, finding.message,
                 finding.figures, since, announced_at)


def _alert_resolved(alert: Alert, at: datetime) -> Alert:
    return Alert(alert.name, alert.key, alert.severity, f"resolved: {alert.message}",
                 alert.figures, alert.since, at)
