"""What the control socket reports, built from the engine's published snapshots only:
``status``, ``positions``, the alerts and ``health``. Plain JSON values; money in
integer paise (keys ending ``_paise``), times ISO 8601 in IST."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from actors._price import PriceBook
from actors._published import Published
from actors._ratelimit import RateBook
from actors.journal import JournalSnapshot
from actors.market import IST
from messages import TradingState

if TYPE_CHECKING:
    from actors._system import Engine

__all__ = ["Alert", "AlertSource", "Sources", "alerts", "health", "positions", "rates", "status"]


@dataclass(frozen=True, slots=True)
class Alert:
    """One active alert: ``name`` (a stable key), ``severity`` ("warning" or
    "critical") and a one-line ``message``."""

    name: str
    severity: str
    message: str


AlertSource = Callable[[], Iterable[Any]]
"""The alert module's hook: returns the active alerts, each an :class:`Alert`, a
mapping with ``name``/``severity``/``message`` keys, or any object with those
attributes (a plain string becomes a warning named ``alert``)."""


@dataclass(frozen=True, slots=True)
class Sources:
    """The published cells the control server reads besides the Engine's own
    properties (taken once, when the server starts) and the optional alert hook."""

    rates: Published[RateBook]
    prices: Published[PriceBook]
    journal: Published[JournalSnapshot] | None
    alert_source: AlertSource | None

    @classmethod
    def of(cls, engine: Engine, alert_source: AlertSource | None) -> Sources:
        """Read the cells from the started engine's actors (one call each, at start)."""
        journal = engine.published(engine.journal) if hasattr(engine, "journal") else None
        return cls(engine.published(engine.limiter), engine.published(engine.prices),
                   journal, alert_source)


def _iso(when: datetime | None) -> str | None:
    return when.astimezone(IST).isoformat() if when is not None else None


def _name(engine: Engine, token: int) -> str:
    try:
        return engine.instruments.get(token).key
    except ValueError:
        return str(token)


def positions(engine: Engine, sources: Sources) -> list[dict[str, Any]]:
    """Every open position: quantity (signed), average price, cost, realised P&L
    (gross), charges, short margin, the latest price, its age and unrealised P&L."""
    book = sources.prices.latest().prices
    now = engine.clock.now()
    rows = []
    for (strategy, token), view in engine.portfolio_snapshot.positions.items():
        if not view.quantity:
            continue
        price = book.get(token)
        last = price.last.paise if price is not None else None
        rows.append({
            "strategy": strategy, "instrument": _name(engine, token), "instrument_token": token,
            "quantity": view.quantity, "average_price_paise": view.average_price,
            "cost_paise": view.cost, "realised_paise": view.realised,
            "charges_paise": view.charges, "margin_paise": view.margin,
            "last_price_paise": last,
            "price_age_s": round(price.age_seconds(now), 3) if price is not None else None,
            "unrealised_paise": view.quantity * last - view.cost if last is not None else None,
        })
    rows.sort(key=lambda r: (r["strategy"], r["instrument"]))
    return rows


def rates(book: RateBook) -> dict[str, Any]:
    classes: dict[str, Any] = {}
    for endpoint, granted in book.granted.items():
        classes[endpoint.value] = {
            "granted": granted, "queued": book.queued_total(endpoint),
            "throttled": book.throttled.get(endpoint, 0),
            "cooling_s": round(book.cooling.get(endpoint, 0.0), 3),
            "windows": [{"span_s": w.span_s, "limit": w.limit, "used": w.used}
                        for w in book.windows if w.endpoint is endpoint]}
    return {"classes": classes, "orders_today": book.orders_today,
            "orders_per_day": book.orders_per_day, "refused": book.refused,
            "day": book.day.isoformat()}


def _reconciliation(engine: Engine) -> dict[str, Any]:
    sync = engine.sync_snapshot
    return {"mode": sync.mode, "startup": sync.startup, "startup_reason": sync.startup_reason,
            "round_at": _iso(sync.round_at), "round_ok": sync.round_ok,
            "last_check_at": _iso(sync.last_at), "checks": sync.summary(),
            "errors": [f"{check.value}: {s.error}" for check, s in sync.checks.items()
                       if s.result == "error"],
            "drifts": [{"kind": d.kind.value, "key": d.key, "engine": d.engine,
                        "broker": d.broker, "detail": d.detail} for d in sync.drifts],
            "resolutions": sync.counts.get("resolutions", 0)}


def _prices(engine: Engine, sources: Sources) -> dict[str, Any]:
    book = sources.prices.latest()
    now = engine.clock.now()
    ages = [price.age_seconds(now) for price in book.prices.values()]
    return {"instruments": len(ages),
            "newest_age_s": round(min(ages), 3) if ages else None,
            "oldest_age_s": round(max(ages), 3) if ages else None,
            "max_age_s": engine.config.prices.max_price_age_s,
            "accepted": book.accepted, "rejected": book.rejected_total,
            "rejected_by_reason": dict(book.rejected),
            "stale": _stale(engine, sources)}


def _stale(engine: Engine, sources: Sources) -> str | None:
    """Why prices are stale, or None: only while the session is open (no exchange
    ticks after the close), judged on the newest price (the feed) and on the price
    of every open position, against ``prices.max_price_age_s``."""
    now = engine.clock.now()
    if not engine.calendar.is_session_open(now):
        return None
    limit = engine.config.prices.max_price_age_s
    book = sources.prices.latest().prices
    if not book:
        return "no price received yet"
    newest = min(price.age_seconds(now) for price in book.values())
    if newest > limit:
        return f"the newest price is {newest:.0f}s old (prices.max_price_age_s {limit:g})"
    old = []
    for (_, token), view in engine.portfolio_snapshot.positions.items():
        price = book.get(token)
        if view.quantity and (price is None or price.age_seconds(now) > limit):
            old.append(_name(engine, token))
    if old:
        return (f"no price within {limit:g}s (prices.max_price_age_s) for open position(s) "
                f"{', '.join(sorted(set(old)))}")
    return None


def _hooked(item: Any) -> Alert:
    if isinstance(item, Alert):
        return item
    if isinstance(item, str):
        return Alert("alert", "warning", item)
    if dataclasses.is_dataclass(item) and not isinstance(item, type):
        item = {f.name: getattr(item, f.name) for f in dataclasses.fields(item)}
    get: Callable[[str], Any] = (item.get if isinstance(item, Mapping)
                                 else lambda key: getattr(item, key, None))
    name = get("name") or get("key") or get("kind") or "alert"
    severity = get("severity") or get("level") or "warning"
    message = get("message") or get("text") or get("detail") or str(item)
    return Alert(str(getattr(name, "value", name)), str(getattr(severity, "value", severity)),
                 str(message))


def alerts(engine: Engine, sources: Sources) -> list[Alert]:
    """The active alerts: HALTED, unprotected positions, failed actors, a failed
    journal, reconciliation drifts, then whatever the alert hook returns (a hook that
    raises becomes an alert itself)."""
    orders = engine.orders_snapshot
    found = []
    if orders.state is TradingState.HALTED:
        found.append(Alert("halted", "critical", f"trading HALTED: {orders.state_reason}"))
    if orders.unprotected:
        found.append(Alert("unprotected_positions", "critical",
                           f"{len(orders.unprotected)} position(s) without a protective "
                           f"order: {', '.join(orders.unprotected)}"))
    found += [Alert("actor_failed", "critical", f"{f.actor} failed: {f.error}")
              for f in engine.failures()]
    journal = sources.journal.latest() if sources.journal is not None else None
    if journal is not None and journal.failed:
        found.append(Alert("journal_failed", "critical",
                           f"the journal failed: {journal.last_error}"))
    sync = engine.sync_snapshot
    if sync.drifts:
        found.append(Alert("reconciliation_drift", "critical",
                           f"{len(sync.drifts)} reconciliation drift(s): "
                           + "; ".join(f"{d.kind.value} {d.key}" for d in sync.drifts[:5])))
    if sources.alert_source is not None:
        try:
            found += [_hooked(item) for item in sources.alert_source()]
        except Exception as bad:  # noqa: BLE001  (a broken hook must not break status)
            found.append(Alert("alerts_unavailable", "warning",
                               f"the alert hook failed: {type(bad).__name__}: {bad}"))
    return found


def status(engine: Engine, sources: Sources) -> dict[str, Any]:
    """Everything ``kitesaga status`` shows, as plain JSON values."""
    port = engine.portfolio_snapshot
    orders = engine.orders_snapshot
    open_positions = positions(engine, sources)
    journal = sources.journal.latest() if sources.journal is not None else None
    return {
        "trading": {"state": orders.state.value, "reason": orders.state_reason,
                    "draining": orders.draining},
        "mode": engine.config.engine.mode,
        "uptime_s": round(engine.uptime(), 3),
        "now": _iso(engine.clock.now()),
        "positions": {"count": len(open_positions), "open": open_positions},
        "pnl": {"realised_paise": port.realised, "unrealised_paise": port.unrealised,
                "charges_paise": port.charges, "net_paise": port.net_pnl},
        "cash": {"free_paise": port.cash, "reserved_paise": port.reserved,
                 "margin_paise": port.margin, "initial_paise": port.initial_cash,
                 "conservation_error_paise": port.conservation_error},
        "sagas": {"in_flight": orders.in_flight, "exiting": orders.exiting,
                  "stats": dict(orders.stats)},
        "rate_limits": rates(sources.rates.latest()),
        "reconciliation": _reconciliation(engine),
        "prices": _prices(engine, sources),
        "journal": None if journal is None else {
            "enabled": journal.enabled, "failed": journal.failed,
            "last_error": journal.last_error, "events": journal.events},
        "alerts": [dataclasses.asdict(a) for a in alerts(engine, sources)],
        "failures": [f"{f.actor}: {f.error}" for f in engine.failures()],
    }


def health(engine: Engine, sources: Sources) -> dict[str, Any]:
    """``{"code": 0|1|2, "line": ...}``: 2 (down) when an actor failed; 1 (degraded)
    when trading is HALTED, the engine is stopping, a position is unprotected,
    prices are stale, the reconciliation drifted or errs, or the journal failed;
    else 0 (healthy)."""
    failures = engine.failures()
    if failures:
        return {"code": 2, "line": "down: " + "; ".join(f"{f.actor} failed: {f.error}"
                                                         for f in failures)}
    orders = engine.orders_snapshot
    problems = []
    if orders.state is TradingState.HALTED:
        problems.append(f"trading HALTED ({orders.state_reason})")
    if orders.draining:
        problems.append("the engine is stopping")
    if orders.unprotected:
        problems.append(f"{len(orders.unprotected)} unprotected position(s)")
    stale = _stale(engine, sources)
    if stale is not None:
        problems.append(f"stale prices: {stale}")
    sync = engine.sync_snapshot
    if sync.startup in ("drift", "error"):
        problems.append(f"start-up reconciliation {sync.startup}: {sync.startup_reason}")
    if sync.drifts:
        problems.append(f"{len(sync.drifts)} reconciliation drift(s)")
    errors = [check.value for check, s in sync.checks.items() if s.result == "error"]
    if errors and sync.startup not in ("drift", "error"):
        problems.append(f"reconciliation error in {', '.join(errors)}")
    journal = sources.journal.latest() if sources.journal is not None else None
    if journal is not None and journal.failed:
        problems.append(f"journal failed ({journal.last_error})")
    if problems:
        return {"code": 1, "line": "degraded: " + "; ".join(problems)}
    port = engine.portfolio_snapshot
    return {"code": 0, "line": f"healthy: {orders.state.value}, {port.open_positions} "
                               f"position(s), {orders.in_flight} saga(s) in flight, "
                               f"up {engine.uptime():.0f}s"}
