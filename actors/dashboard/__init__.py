"""The read-only web dashboard: ``start_dashboard(engine, config)`` serves one page that
shows the portfolio, positions with their live prices, sagas in flight, the trading
state, rate-limit usage, alerts and an equity curve, updated every ``dashboard.refresh_s``
over server-sent events; ``/api/state`` is the same state as JSON for scripts.
See docs/operations.md ("Dashboard")."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import TYPE_CHECKING

import structlog

from actors.config import Config
from actors.config._operations import DashboardConfig
from actors.dashboard._equity import EquityCurve, portfolio_value
from actors.dashboard._server import CHART_POINTS, MAX_CLIENTS, Dashboard
from actors.dashboard._state import AlertSource, Sources, build_state
from actors.log import register_secret

if TYPE_CHECKING:
    from actors._system import Engine

__all__ = ["CHART_POINTS", "MAX_CLIENTS", "TOKEN_ENV", "AlertSource", "Dashboard", "EquityCurve",
           "Sources", "build_state", "portfolio_value", "start_dashboard"]

TOKEN_ENV = "DASHBOARD_TOKEN"
"""The environment variable holding the dashboard's access token (``require_token``)."""

_log = structlog.get_logger("kitesaga.dashboard")


def start_dashboard(engine: Engine, config: Config | DashboardConfig,
                    alerts: AlertSource | None = None, *,
                    env: Mapping[str, str] | None = None) -> Dashboard:
    """Serve the dashboard of a started ``engine``; never raises for the operator's setup.

    Returns a running :class:`Dashboard` (``url`` set, logged), or one that is
    not serving (``url`` None, ``reason`` says why, a warning logged) when
    ``dashboard.enabled`` is false, when ``require_token`` is set but
    ``DASHBOARD_TOKEN`` is empty or missing in ``env`` (default: the process
    environment), or when the port cannot be bound (in use, no permission).
    ``alerts`` returns the alerts active now (see :data:`AlertSource`).
    """
    settings = config.dashboard if isinstance(config, Config) else config
    sources = Sources.of_engine(engine)
    if not settings.enabled:
        return Dashboard(sources, settings, reason="dashboard.enabled is false")
    token: str | None = None
    if settings.require_token:
        token = (os.environ if env is None else env).get(TOKEN_ENV, "")
        if not token.strip():
            reason = f"dashboard.require_token is set but {TOKEN_ENV} is empty or not set"
            _log.warning("dashboard_not_started", reason=reason)
            return Dashboard(sources, settings, reason=reason)
        register_secret(token)
    elif settings.host not in ("127.0.0.1", "localhost", "::1"):
        _log.warning("dashboard_without_token", host=settings.host,
                     hint="not on loopback: set dashboard.require_token and DASHBOARD_TOKEN")
    dashboard = Dashboard(sources, settings, orders=engine.orders, alerts=alerts, token=token)
    try:
        return dashboard.start()
    except OSError as error:
        reason = f"cannot listen on {settings.host}:{settings.port}: {error.strerror or error}"
        _log.warning("dashboard_not_started", reason=reason)
        dashboard.reason = reason
        return dashboard
