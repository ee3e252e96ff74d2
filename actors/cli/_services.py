"""What runs beside the engine when it runs unattended: observability (metrics and
alerts), the control socket and the dashboard (``kitesaga run``)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from actors.control import check_control, start_control
from actors.dashboard import start_dashboard
from actors.observe import Observability

if TYPE_CHECKING:
    from actors._system import Engine
    from actors.config import Config
    from actors.control import ControlServer
    from actors.dashboard import Dashboard
    from messages import Inbox

__all__ = ["Services"]


class Services:
    """The engine's companions, started around it and stopped after it.

    Contract: construction refuses a second engine at the same state dir
    (``ControlStartError``) and bad ``[metrics]``/``[alerts]`` settings
    (``ValueError``) before the engine recovers or trades anything. Pass
    :attr:`listener` to the Engine; :meth:`attach` starts the alerts and metrics,
    the control socket (without which the engine is stopped: see
    ``start_control``) and the dashboard (which never stops the engine).
    :meth:`stop` runs after ``engine.stop()``, so ``status`` and the page
    answer during the drain.
    """

    def __init__(self, config: Config) -> None:
        self.config = config
        check_control(config)
        self.observability = Observability(config)
        self.control: ControlServer | None = None
        self.dashboard: Dashboard | None = None

    @property
    def listener(self) -> Inbox:
        """The Engine's listener: the sagas and drifts the metrics and alerts follow."""
        return self.observability.listener

    def attach(self, engine: Engine) -> None:
        """Start everything that reads (or, for the control socket, commands) ``engine``."""
        self.observability.attach(engine)
        self.control = start_control(engine, alerts=self.observability.alerts)
        self.dashboard = start_dashboard(engine, self.config,
                                         alerts=self.observability.alerts)

    def addresses(self) -> str:
        """Where to reach it, for the banner: metrics, dashboard, control socket."""
        parts = []
        if self.observability.metrics_url:
            parts.append(f"metrics {self.observability.metrics_url}")
        if self.dashboard is not None and self.dashboard.url:
            parts.append(f"dashboard {self.dashboard.url}")
        if self.control is not None:
            parts.append(f"control {self.control.path}")
        return "; ".join(parts)

    def stop(self) -> None:
        """Stop the control socket, the dashboard and the observers (after the engine)."""
        if self.control is not None:
            self.control.stop()
        if self.dashboard is not None:
            self.dashboard.stop()
        self.observability.stop()
