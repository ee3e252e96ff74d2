"""The Prometheus side: a collector over the observers' published state, and its server.

The HTTP server's threads only read published immutable snapshots: each
scrape renders the latest :class:`MetricsState` and :class:`AlertBook`, it
never samples an actor itself.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Iterator
from wsgiref.simple_server import WSGIServer

from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.metrics_core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)

from actors.observe._alerting import AlertBook
from actors.observe._metrics import MetricsState, SagaTimings
from actors.observe._sample import Sample

__all__ = ["EngineCollector", "MetricsServer"]

_P = "kitesaga_"
_SAGA_STATS = {"started": "sagas_started", "completed": "sagas_completed",
               "compensated": "sagas_compensated", "refused": "sagas_refused"}
_NAMED = {"orders", "fills", *_SAGA_STATS.values()}


def _counter(name: str, doc: str, value: float) -> CounterMetricFamily:
    return CounterMetricFamily(_P + name, doc, value=value)


def _gauge(name: str, doc: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(_P + name, doc, value=value)


def _labelled(family: CounterMetricFamily | GaugeMetricFamily,
              rows: Iterable[tuple[tuple[str, ...], float]]) -> Metric:
    for labels, value in rows:
        family.add_metric(list(labels), value)
    return family


def _histogram(t: SagaTimings) -> HistogramMetricFamily:
    family = HistogramMetricFamily(_P + "saga_duration_seconds",
                                   "Wall seconds from SagaStarted to its end",
                                   labels=["kind", "outcome"])
    for (kind, outcome), counts in sorted(t.counts.items()):
        running, buckets = 0, []
        for bound, count in zip(t.bounds, counts, strict=False):
            running += count
            buckets.append((repr(bound), float(running)))
        buckets.append(("+Inf", float(sum(counts))))
        family.add_metric([kind, outcome], buckets, t.sums[kind, outcome])
    return family


def _orders(state: MetricsState) -> Iterator[Metric]:
    c = state.counters
    yield _counter("orders", "Broker orders placed by sagas", c.get("orders", 0))
    yield _counter("fills", "Fills applied", c.get("fills", 0))
    yield _labelled(CounterMetricFamily(_P + "sagas", "Sagas by outcome", labels=["outcome"]),
                    (((o,), c.get(stat, 0)) for o, stat in _SAGA_STATS.items()))
    yield _labelled(CounterMetricFamily(_P + "order_events", "OrderActor's other counters",
                                        labels=["event"]),
                    (((k,), v) for k, v in sorted(c.items()) if k not in _NAMED))
    yield _histogram(state.timings)
    yield _counter("saga_timings_dropped", "Saga starts forgotten without an end",
                   state.timings.dropped)


def _engine(s: Sample) -> Iterator[Metric]:
    yield _gauge("sagas_in_flight", "Sagas running now", s.in_flight)
    yield _gauge("open_positions", "Positions in the book", s.open_positions)
    yield _gauge("unprotected_positions", "Positions without a broker-side stop",
                 len(s.unprotected))
    yield _labelled(GaugeMetricFamily(_P + "trading_state", "1 for the current trading state",
                                      labels=["state"]),
                    (((st,), float(st == s.state)) for st in ("ACTIVE", "REDUCING", "HALTED")))
    yield _counter("broker_orders_rejected", "Orders the broker rejected", s.broker_rejected)
    yield _gauge("reconciliation_drifts", "Standing drifts from the broker", len(s.drifts))
    yield _gauge("actor_failures", "Actors that failed", len(s.failures))


def _rates(s: Sample) -> Iterator[Metric]:
    yield _labelled(CounterMetricFamily(_P + "api_calls", "Broker calls permitted, per "
                                        "endpoint class", labels=["endpoint"]),
                    (((ep,), n) for ep, n in sorted(s.granted.items())))
    yield _labelled(CounterMetricFamily(_P + "api_throttled", "Broker 429 answers, per "
                                        "endpoint class", labels=["endpoint"]),
                    (((ep,), n) for ep, n in sorted(s.throttled.items())))
    yield _labelled(GaugeMetricFamily(_P + "permit_waits", "Permit requests waiting, per "
                                      "endpoint class and lane", labels=["endpoint", "lane"]),
                    (((ep, lane), n) for (ep, lane), n in sorted(s.waiting.items())))
    yield _counter("permits_refused", "Permits refused (daily order budget)",
                   s.permits_refused)


def _prices(s: Sample) -> Iterator[Metric]:
    yield _gauge("prices_known", "Instruments with a validated price", s.prices_known)
    yield _counter("prices_accepted", "Prices accepted", s.prices_accepted)
    yield _labelled(CounterMetricFamily(_P + "prices_rejected", "Prices rejected, by reason",
                                        labels=["reason"]),
                    (((r,), n) for r, n in sorted(s.prices_rejected.items())))
    ages = GaugeMetricFamily(_P + "price_age_seconds", "Age of the newest and oldest price "
                             "held (engine clock)", labels=["which"])
    for which, age in (("newest", s.newest_price_age_s), ("oldest", s.oldest_price_age_s)):
        if age is not None:
            ages.add_metric([which], age)
    yield ages


def _process(s: Sample) -> Iterator[Metric]:
    yield _labelled(GaugeMetricFamily(_P + "mailbox_depth", "Messages waiting in each "
                                      "actor's inbox", labels=["actor"]),
                    (((a,), n) for a, n in sorted(s.mailboxes.items())))
    yield _gauge("process_resident_memory_bytes", "Resident set size", s.rss_bytes)
    yield _gauge("process_threads", "Threads of this process", s.threads)
    if s.journal_p50_ms is not None and s.journal_p99_ms is not None:
        yield _labelled(GaugeMetricFamily(_P + "journal_write_seconds", "Journal commit "
                                          "latency over the recent window",
                                          labels=["quantile"]),
                        ((("0.5",), s.journal_p50_ms / 1000.0),
                         (("0.99",), s.journal_p99_ms / 1000.0)))
        yield _gauge("journal_failed", "1 once a journal write failed", float(s.journal_failed))


class EngineCollector:
    """A prometheus-client collector rendering the observers' published state.

    Contract: ``collect`` reads ``metrics()`` and ``alerts()`` (published
    snapshots) once per scrape and never blocks on an actor; before the
    first sample only the saga metrics, the sample count and the alerts appear.
    """

    def __init__(self, metrics: Callable[[], MetricsState],
                 alerts: Callable[[], AlertBook]) -> None:
        self._metrics = metrics
        self._alerts = alerts

    def collect(self) -> Iterable[Metric]:
        """Every metric family, from the latest snapshots."""
        state, book = self._metrics(), self._alerts()
        yield _counter("metrics_samples", "Samples taken of the engine's state", state.samples)
        yield from _orders(state)
        if state.sample is not None:
            for part in (_engine, _rates, _prices, _process):
                yield from part(state.sample)
        active = GaugeMetricFamily(_P + "alerts_active", "Active alerts",
                                   labels=["name", "severity"])
        counts: dict[tuple[str, str], int] = {}
        for alert in book.active:
            ident = (alert.name, alert.severity.value)
            counts[ident] = counts.get(ident, 0) + 1
        for (name, severity), n in sorted(counts.items()):
            active.add_metric([name, severity], n)
        yield active


class MetricsServer:
    """/metrics over HTTP on ``host:port`` (0: any free port) from its own registry.

    Contract: :meth:`start` binds or raises ``OSError`` (port in use, bad
    address); ``port`` is then the bound port and ``url`` the scrape URL.
    :meth:`stop` shuts the server down and closes its socket.
    """

    def __init__(self, collector: EngineCollector, host: str, port: int) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(collector)
        self._host, self._port = host, port
        self._server: WSGIServer | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> str:
        """Bind and serve in a daemon thread; return the /metrics URL."""
        self._server, self._thread = start_http_server(self._port, self._host, self.registry)
        return self.url

    @property
    def port(self) -> int:
        """The bound port (0 before :meth:`start`)."""
        return 0 if self._server is None else int(self._server.server_port)

    @property
    def url(self) -> str:
        """``http://host:port/metrics``."""
        host = f"[{self._host}]" if ":" in self._host else self._host
        return f"http://{host}:{self.port}/metrics"

    def stop(self) -> None:
        """Stop serving (idempotent)."""
        server, thread = self._server, self._thread
        self._server = self._thread = None
        if server is not None:
            server.shutdown()
            server.server_close()
        if thread is not None:
            thread.join()
