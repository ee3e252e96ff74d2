"""Observability: metrics, alerts and their delivery, wired around one engine."""

from __future__ import annotations

import os
from collections.abc import Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

import pykka
import structlog

from actors._published import Published
from actors.config import Config
from actors.log import register_secret
from actors.observe._alerting import AlertActor, AlertBook, RaiseAlert
from actors.observe._conditions import Alert, Finding, Severity
from actors.observe._deliver import DeliveryActor, DeliveryBook, check_url
from actors.observe._export import EngineCollector, MetricsServer
from actors.observe._metrics import MetricsActor, MetricsState
from actors.observe._sample import Attach, named_mailboxes, sources_of
from messages import (
    DriftDetected,
    SagaCompensated,
    SagaCompleted,
    SagaStarted,
    TradingStateChanged,
)

if TYPE_CHECKING:
    from actors._system import Engine

__all__ = ["TELEGRAM_TOKEN_ENV", "Observability"]

_log = structlog.get_logger("kitesaga.observe")

TELEGRAM_TOKEN_ENV = "TELEGRAM_BOT_TOKEN"


class _Listener:
    """The engine's listener address: saga events go to the metrics actor, trading
    state changes and drifts to the alert actor; any other event is dropped here.

    Never raises into the emitting actor: an observer already stopped just
    misses the event (logged at debug).
    """

    def __init__(self, metrics: pykka.ActorRef[Any], alerts: pykka.ActorRef[Any]) -> None:
        self._routes: tuple[tuple[type | tuple[type, ...], pykka.ActorRef[Any]], ...] = (
            ((SagaStarted, SagaCompleted, SagaCompensated), metrics),
            ((TradingStateChanged, DriftDetected), alerts))

    def tell(self, message: Any) -> None:
        for kinds, target in self._routes:
            if isinstance(message, kinds):
                try:
                    target.tell(message)
                except pykka.ActorDeadError:
                    _log.debug("observer_stopped", message=type(message).__name__)


def _telegram(config: Config, env: Mapping[str, str]) -> tuple[str, str, str] | None:
    chat = config.alerts.telegram_chat_id
    if chat is None:
        return None
    token = env.get(TELEGRAM_TOKEN_ENV, "").strip()
    if not token:
        raise ValueError(f"alerts.telegram_chat_id: set to {chat!r}, but the bot token "
                         f"{TELEGRAM_TOKEN_ENV} is not in the environment")
    register_secret(token)
    root = check_url("alerts.telegram_api_root", config.alerts.telegram_api_root)
    return root, token, chat


class Observability:
    """Metrics (/metrics), alerts (log, webhook, Telegram) for one engine.

    Contract:
    - Construct it BEFORE the engine (it validates ``[alerts]``/``[metrics]``
      and raises ValueError naming the key and value; it starts three small
      actors) and pass :attr:`listener` in ``Engine(..., listeners=(...,))``.
    - :meth:`attach` (after ``engine.start()``, on the same thread) starts
      sampling and alert checks, and, with ``metrics.enabled``, serves
      /metrics. A port already in use is an alert (``metrics_unavailable``)
      and the engine runs on without metrics: never an exception.
    - :meth:`alerts` reads the active alerts (an immutable snapshot, any
      thread); :attr:`metrics_url` is the scrape URL once served, else None.
    - :meth:`stop` (after ``engine.stop()``) stops the server and the actors;
      it is idempotent. An event emitted after it is dropped, never raised.
    """

    def __init__(self, config: Config, env: Mapping[str, str] | None = None) -> None:
        env = os.environ if env is None else env
        alerts = config.alerts
        webhook = (None if alerts.webhook_url is None else
                   check_url("alerts.webhook_url", alerts.webhook_url))
        telegram = _telegram(config, env)
        self._config = config
        self._refs: list[pykka.ActorRef[Any]] = []
        self.metrics_url: str | None = None
        self._server: MetricsServer | None = None
        try:
            self._metrics = self._start(MetricsActor, config.metrics.sample_interval_s,
                                        config.metrics.saga_buckets_s,
                                        config.engine.saga_deadline_s)
            self._deliver = self._start(DeliveryActor, webhook, telegram,
                                        alerts.send_timeout_s)
            self._alerts = self._start(AlertActor, alerts, self._deliver,
                                       config.rate_limits.backoff_max_s)
            self._metrics_cell: Published[MetricsState] = self._metrics.proxy().state.get()
            self._alert_cell: Published[AlertBook] = self._alerts.proxy().book.get()
            self._delivery_cell: Published[DeliveryBook] = self._deliver.proxy().book.get()
        except BaseException:
            self.stop()
            raise
        self.listener = _Listener(self._metrics, self._alerts)

    def _start(self, actor: Any, *args: Any) -> pykka.ActorRef[Any]:
        ref: pykka.ActorRef[Any] = actor.start(*args)
        self._refs.append(ref)
        return ref

    def attach(self, engine: Engine) -> None:
        """Observe the started ``engine``: sampling, alert checks and /metrics."""
        sources = sources_of(engine).with_mailboxes(named_mailboxes(self._refs))
        self._metrics.tell(Attach(sources))
        self._alerts.tell(Attach(sources))
        if self._config.metrics.enabled:
            self._serve()

    def _serve(self) -> None:
        cfg = self._config.metrics
        server = MetricsServer(EngineCollector(self._metrics_cell.latest,
                                               self._alert_cell.latest), cfg.host, cfg.port)
        try:
            self.metrics_url = server.start()
        except OSError as exc:
            where = f"{cfg.host}:{cfg.port}"
            _log.warning("metrics_unavailable", address=where, error=str(exc))
            self._alerts.tell(RaiseAlert(Finding(
                "metrics_unavailable", where, Severity.WARNING,
                f"/metrics could not listen on {where} ({exc}); running without metrics",
                MappingProxyType({"host": cfg.host, "port": cfg.port, "error": str(exc)}))))
            return
        self._server = server
        _log.info("metrics_serving", url=self.metrics_url, port=server.port)

    def alerts(self) -> tuple[Alert, ...]:
        """The alerts active now (latest published snapshot)."""
        return self._alert_cell.latest().active

    def alert_book(self) -> AlertBook:
        """Active alerts with the counts of announcements and checks."""
        return self._alert_cell.latest()

    def metrics_state(self) -> MetricsState:
        """The metrics actor's latest published state."""
        return self._metrics_cell.latest()

    def deliveries(self) -> DeliveryBook:
        """Webhook and Telegram posts sent and failed so far."""
        return self._delivery_cell.latest()

    def stop(self) -> None:
        """Stop /metrics and the observer actors (idempotent)."""
        if self._server is not None:
            self._server.stop()
            self._server = None
            self.metrics_url = None
        for ref in reversed(self._refs):
            if ref.is_alive():
                ref.stop()
        self._refs.clear()
