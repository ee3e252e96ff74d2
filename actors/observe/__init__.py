"""Observability: Prometheus metrics at /metrics and alerts (log, webhook, Telegram).

Wiring (``kitesaga run``)::

    obs = Observability(config)                     # before the engine: validates
    engine = Engine(config, listeners=(obs.listener,)).start()
    obs.attach(engine)                              # sampler, alert checks, /metrics
    ...
    engine.stop(); obs.stop()

Everything it reads is a published immutable snapshot; it only ``tell``s.
:meth:`Observability.alerts` returns the active :class:`Alert` s.
"""

from __future__ import annotations

from actors.observe._alerting import AlertBook
from actors.observe._conditions import Alert, Finding, Severity, evaluate
from actors.observe._deliver import DeliveryBook
from actors.observe._metrics import MetricsState, SagaTimings
from actors.observe._observability import TELEGRAM_TOKEN_ENV, Observability
from actors.observe._sample import Sample

__all__ = [
    "TELEGRAM_TOKEN_ENV",
    "Alert",
    "AlertBook",
    "DeliveryBook",
    "Finding",
    "MetricsState",
    "Observability",
    "SagaTimings",
    "Sample",
    "Severity",
    "evaluate",
]
