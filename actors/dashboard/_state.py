"""The dashboard's state: one JSON-ready picture built from published snapshots only."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass
from datetime import datetime
from enum import Enum
from typing import TYPE_CHECKING, Any

from actors._base import ActorFailed
from actors._drift import SyncSnapshot
from actors._order import OrdersSnapshot
from actors._portfolio import PortfolioSnapshot
from actors._price import PriceBook
from actors._ratelimit import RateBook
from actors.dashboard._equity import portfolio_value
from actors.market import IST
from messages import Instrument, SagaView, TradingState

if TYPE_CHECKING:
    from actors._system import Engine

__all__ = ["AlertSource", "Sources", "build_state"]

AlertSource = Callable[[], Iterable[Any]]
"""Returns the alerts active now: objects or mappings with ``severity``/``level``,
``name``/``key``/``kind`` and ``message``/``text`` (anything else is shown as text)."""

_MAX_TEXT = 300


@dataclass(frozen=True, slots=True)
class Sources:
    """Where the dashboard reads from: the engine's published snapshots and its
    immutable tables, as functions any thread may call. Nothing here can change
    the engine's state."""

    portfolio: Callable[[], PortfolioSnapshot]
    orders: Callable[[], OrdersSnapshot]
    prices: Callable[[], PriceBook]
    rates: Callable[[], RateBook]
    sync: Callable[[], SyncSnapshot]
    failures: Callable[[], tuple[ActorFailed, ...]]
    instrument: Callable[[int], Instrument]
    now: Callable[[], datetime]
    mode: str
    max_price_age_s: float

    @classmethod
    def of_engine(cls, engine: Engine) -> Sources:
        """The published cells of a started ``engine`` (fetched once, from the
        calling thread; afterwards every read is a plain ``latest()``)."""
        price_cell = engine.published(engine.prices)
        rate_cell = engine.published(engine.limiter)
        return cls(lambda: engine.portfolio_snapshot, lambda: engine.orders_snapshot,
                   price_cell.latest, rate_cell.latest, lambda: engine.sync_snapshot,
                   engine.failures, engine.instruments.get, engine.clock.now,
                   engine.config.engine.mode, engine.config.prices.max_price_age_s)


def build_state(sources: Sources, sagas: tuple[SagaView, ...] = (),
                alerts: AlertSource | None = None) -> dict[str, Any]:
    """The whole picture as JSON-ready values; money in integer paise, times in IST."""
    now = sources.now().astimezone(IST)
    port, orders, book = sources.portfolio(), sources.orders(), sources.prices()
    positions = _positions(sources, port, book, now)
    value = portfolio_value(port.cash, port.reserved, port.margin, port.open_cost,
                            port.unrealised)
    return {
        "now": now.isoformat(timespec="milliseconds"),
        "mode": sources.mode,
        "portfolio": {
            "value": value, "cash": port.cash, "reserved": port.reserved,
            "margin": port.margin, "open_cost": port.open_cost, "realised": port.realised,
            "unrealised": port.unrealised, "charges": port.charges, "net": port.net_pnl,
            "initial_cash": port.initial_cash, "transfers": port.transfers,
            "fills_applied": port.fills_applied, "open_positions": port.open_positions,
            "conservation_error": port.conservation_error,
        },
        "positions": positions,
        "orders": {
            "state": orders.state.value, "reason": orders.state_reason,
            "draining": orders.draining, "in_flight": orders.in_flight,
            "open_positions": orders.open_positions, "exiting": orders.exiting,
            "stats": dict(orders.stats), "unprotected": list(orders.unprotected),
            "sagas": [asdict(view) for view in sagas],
        },
        "rate_limits": _rates(sources.rates()),
        "sync": _sync(sources.sync()),
        "alerts": _own_alerts(sources, port, orders, positions) + _their_alerts(alerts),
    }


def _positions(sources: Sources, port: PortfolioSnapshot, book: PriceBook,
               now: datetime) -> list[dict[str, Any]]:
    rows = []
    for (strategy, token), view in port.positions.items():
        if not view.quantity:
            continue
        try:
            instrument = sources.instrument(token)
            symbol, exchange = instrument.tradingsymbol, instrument.exchange.value
        except ValueError:
            symbol, exchange = str(token), ""
        price = book.prices.get(token)
        last = price.last.paise if price is not None else None
        rows.append({
            "strategy": strategy, "token": token, "symbol": symbol, "exchange": exchange,
            "quantity": view.quantity, "average": view.average_price, "cost": view.cost,
            "last": last,
            "age_s": None if price is None else
            round((now - price.received_ts).total_seconds(), 3),
            "unrealised": None if last is None else view.quantity * last - view.cost,
            "realised": view.realised, "charges": view.charges, "margin": view.margin,
        })
    rows.sort(key=lambda row: (row["strategy"], row["symbol"]))
    return rows


def _rates(book: RateBook) -> dict[str, Any]:
    return {
        "windows": [{"endpoint": w.endpoint.value, "span_s": w.span_s, "limit": w.limit,
                     "used": w.used} for w in book.windows],
        "queued": {ep.value: book.queued_total(ep) for ep in book.queued},
        "granted": {ep.value: n for ep, n in book.granted.items()},
        "throttled": {ep.value: n for ep, n in book.throttled.items()},
        "cooling_s": {ep.value: round(s, 3) for ep, s in book.cooling.items()},
        "orders_today": book.orders_today, "orders_per_day": book.orders_per_day,
        "refused": book.refused, "day": book.day.isoformat(),
    }


def _sync(sync: SyncSnapshot) -> dict[str, Any]:
    return {"mode": sync.mode, "startup": sync.startup, "startup_reason": sync.startup_reason,
            "checks": sync.summary(), "drifts": len(sync.drifts),
            "last_at": sync.last_at.astimezone(IST).isoformat() if sync.last_at else None}


def _alert(severity: str, source: str, message: str) -> dict[str, str]:
    return {"severity": severity, "source": source, "message": message[:_MAX_TEXT]}


def _own_alerts(sources: Sources, port: PortfolioSnapshot, orders: OrdersSnapshot,
                positions: list[dict[str, Any]]) -> list[dict[str, str]]:
    """What the dashboard can tell from the snapshots itself."""
    found = []
    if orders.state is TradingState.HALTED:
        found.append(_alert("critical", "trading", f"HALTED: {orders.state_reason}"))
    elif orders.state is TradingState.REDUCING:
        found.append(_alert("warning", "trading", f"REDUCING: {orders.state_reason}"))
    if orders.unprotected:
        found.append(_alert("critical", "unprotected",
                            f"{len(orders.unprotected)} position(s) without broker "
                            f"protection: {', '.join(orders.unprotected)}"))
    found.extend(_alert("critical", "actor", f"{f.actor} failed: {f.error}")
                 for f in sources.failures())
    if port.conservation_error:
        found.append(_alert("critical", "books",
                            f"money not conserved: {port.conservation_error} paise"))
    if orders.stats.get("invariant_violations", 0):
        found.append(_alert("critical", "books", "invariant violations: "
                            f"{orders.stats['invariant_violations']}"))
    for row in positions:
        if row["age_s"] is None or row["age_s"] > sources.max_price_age_s:
            age = "no price" if row["age_s"] is None else f"price {row['age_s']:.0f} s old"
            found.append(_alert("warning", "prices", f"{row['symbol']}: {age}"))
    if orders.draining:
        found.append(_alert("info", "trading", "draining: no new entries"))
    return found


def _their_alerts(source: AlertSource | None) -> list[dict[str, str]]:
    """The alert module's active alerts; a failing source is itself an alert."""
    if source is None:
        return []
    try:
        return [_alert_row(item) for item in source()]
    except Exception as error:  # noqa: BLE001 - a broken source must not blank the page
        return [_alert("warning", "dashboard", f"alerts unavailable: {type(error).__name__}")]


def _alert_row(item: Any) -> dict[str, str]:
    if isinstance(item, str):
        return _alert("warning", "alert", item)
    if isinstance(item, Mapping):
        def get(*names: str) -> Any:
            return next((item[n] for n in names if item.get(n) is not None), None)
    else:
        def get(*names: str) -> Any:
            return next((getattr(item, n) for n in names
                         if getattr(item, n, None) is not None), None)
    severity, source = get("severity", "level"), get("name", "key", "kind", "source")
    message = get("message", "text", "summary")
    return _alert(_text(severity) or "warning", _text(source) or "alert",
                  _text(message) or str(item))


def _text(value: Any) -> str:
    if value is None:
        return ""
    return str(value.value if isinstance(value, Enum) else value)
