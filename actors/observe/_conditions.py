"""The alert conditions: pure functions of a :class:`Sample` and ``[alerts]``."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import Enum
from types import MappingProxyType

from actors.config._operations import AlertsConfig
from actors.observe._sample import Sample

__all__ = ["Alert", "Finding", "Severity", "evaluate"]

Figure = int | float | str
_MB = 1024 * 1024


class Severity(str, Enum):
    """How urgent an alert is: WARNING needs a look, CRITICAL needs action now."""

    WARNING = "warning"
    CRITICAL = "critical"


@dataclass(frozen=True, slots=True)
class Finding:
    """A condition found true now: ``name`` (what), ``key`` (which one: an endpoint,
    a position, a drift; "" when there is only one), its severity, a one-line
    message and the figures behind it."""

    name: str
    key: str
    severity: Severity
    message: str
    figures: Mapping[str, Figure] = field(default_factory=lambda: MappingProxyType({}))

    @property
    def ident(self) -> tuple[str, str]:
        """The identity that duplicates are suppressed by: ``(name, key)``."""
        return self.name, self.key


@dataclass(frozen=True, slots=True)
class Alert:
    """An active alert, as published by AlertActor: the latest :class:`Finding` of a
    condition that is still true, ``since`` when it first became true and
    ``announced_at`` when it was last announced (both IST-aware wall times)."""

    name: str
    key: str
    severity: Severity
    message: str
    figures: Mapping[str, Figure]
    since: datetime
    announced_at: datetime


def _rss(s: Sample, c: AlertsConfig) -> list[Finding]:
    mb = s.rss_bytes / _MB
    figures = MappingProxyType({"rss_mb": round(mb, 1), "warning_mb": c.rss_warning_mb,
                                "critical_mb": c.rss_critical_mb})
    if mb > c.rss_critical_mb:
        return [Finding("memory_high", "", Severity.CRITICAL,
                        f"resident memory {mb:.0f} MB is above {c.rss_critical_mb:g} MB",
                        figures)]
    if mb > c.rss_warning_mb:
        return [Finding("memory_high", "", Severity.WARNING,
                        f"resident memory {mb:.0f} MB is above {c.rss_warning_mb:g} MB",
                        figures)]
    return []


def _throttled(s: Sample, episodes: Mapping[str, int]) -> list[Finding]:
    return [Finding(
        "broker_throttled", endpoint, Severity.WARNING,
        f"the broker answered 429 (too many requests) to {endpoint} calls: {new} in this "
        f"episode, {s.throttled.get(endpoint, 0)} since start",
        MappingProxyType({"endpoint": endpoint, "episode": new,
                          "throttled": s.throttled.get(endpoint, 0)}))
        for endpoint, new in sorted(episodes.items()) if new > 0]


def _order_failures(s: Sample, c: AlertsConfig) -> list[Finding]:
    orders = s.stats.get("orders", 0)
    failed = s.broker_rejected + s.stats.get("unknown_outcomes", 0)
    if orders < c.order_failure_min_orders:
        return []
    pct = 100.0 * failed / orders
    if pct <= c.order_failure_pct:
        return []
    return [Finding("order_failure_rate", "", Severity.WARNING,
                    f"{failed} of {orders} orders ({pct:.1f}%) were rejected or had an "
                    f"unknown outcome; the threshold is {c.order_failure_pct:g}%",
                    MappingProxyType({"orders": orders, "failed": failed,
                                      "failure_pct": round(pct, 2),
                                      "threshold_pct": c.order_failure_pct}))]


def _state(s: Sample) -> list[Finding]:
    out = []
    if s.state == "HALTED":
        out.append(Finding("trading_halted", "", Severity.CRITICAL,
                           f"trading is HALTED: {s.state_reason or 'no reason given'}",
                           MappingProxyType({"state": s.state, "reason": s.state_reason,
                                             "in_flight": s.in_flight,
                                             "open_positions": s.open_positions})))
    out.extend(Finding("position_unprotected", position, Severity.CRITICAL,
                       f"position {position} has no protective stop at the broker",
                       MappingProxyType({"position": position})) for position in s.unprotected)
    for drift in s.drifts:
        ident = f"{drift.kind.value}:{drift.key}"
        out.append(Finding("reconciliation_drift", ident, Severity.CRITICAL,
                           f"the broker disagrees with the book on {drift.key} "
                           f"({drift.kind.value}): engine {drift.engine}, broker "
                           f"{drift.broker}; {drift.detail}",
                           MappingProxyType({"kind": drift.kind.value, "key": drift.key,
                                             "engine": drift.engine,
                                             "broker": drift.broker})))
    out.extend(Finding("actor_failed", failed.actor, Severity.CRITICAL,
                       f"actor {failed.actor} failed: {failed.error}",
                       MappingProxyType({"actor": failed.actor, "error": failed.error}))
               for failed in s.failures)
    if s.journal_failed:
        out.append(Finding("journal_failed", "", Severity.CRITICAL,
                           f"the journal cannot write: {s.journal_error or 'unknown error'}",
                           MappingProxyType({"error": s.journal_error or ""})))
    return out


def _token(s: Sample, c: AlertsConfig) -> list[Finding]:
    if s.token_expires_at is None:
        return []
    minutes = (s.token_expires_at - s.at).total_seconds() / 60.0
    if minutes > c.token_expiry_warning_min:
        return []
    expired = minutes <= 0
    when = s.token_expires_at.isoformat()
    return [Finding("token_expiring", "", Severity.CRITICAL if expired else Severity.WARNING,
                    f"the broker session expired at {when}" if expired else
                    f"the broker session expires in {minutes:.0f} min (at {when}); "
                    "run `kitesaga login`",
                    MappingProxyType({"minutes_left": round(minutes, 1),
                                      "expires_at": when,
                                      "warning_min": c.token_expiry_warning_min}))]


def evaluate(sample: Sample, config: AlertsConfig,
             throttling: Mapping[str, int]) -> list[Finding]:
    """Every alert condition true in ``sample``. ``throttling`` maps each endpoint
    class in a throttling episode (a 429 answered recently: see AlertActor) to the
    429s in that episode; each such class is a ``broker_throttled`` alert."""
    return [*_rss(sample, config), *_throttled(sample, throttling),
            *_order_failures(sample, config), *_state(sample), *_token(sample, config)]
