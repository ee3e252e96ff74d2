"""/metrics over real HTTP on a real paper engine: the figures equal the actors' own."""

from __future__ import annotations

import socket
from decimal import Decimal

import pytest

from actors.observe import Observability
from messages import (
    InstrumentKind,
    SagaCompensated,
    SagaCompleted,
    Side,
    SubmitEntry,
    TradingState,
    TradingStateChanged,
)
from tests.engine_support import make_config
from tests.observe_support import observed, scrape
from tests.support import wait_until

FIVE = ("PortfolioActor", "OrderActor", "PriceActor", "RateLimitActor", "SyncActor")


def _fast(**sections: dict[str, object]) -> dict[str, dict[str, object]]:
    base: dict[str, dict[str, object]] = {
        "metrics": {"port": 0, "sample_interval_s": 0.05},
        "alerts": {"check_interval_s": 0.05}}
    for name, values in sections.items():
        base[name] = {**base.get(name, {}), **values}
    return base


def test_metrics_equal_the_engine_after_sagas() -> None:
    config = make_config(**_fast(paper={"reject_ratio": Decimal("0.4")}))
    with observed(config) as (h, obs):
        assert obs.metrics_url is not None and obs.metrics_url.startswith("http://127.0.0.1:")
        options = [h.option(InstrumentKind.CE, k) for k in (-2, -1, 0, 1, 2)]
        for option in options:
            h.quote(option, 150_00)
        for i, option in enumerate(options):
            h.submit(SubmitEntry.single(f"s{i}", option, Side.BUY, option.lot_size))
        h.events.wait_for(lambda ms: sum(isinstance(m, SagaCompleted | SagaCompensated)
                                         for m in ms) == len(options))
        wait_until(lambda: h.engine.orders_snapshot.in_flight == 0, what="sagas settled")
        stats = h.engine.orders_snapshot.stats
        ended = stats["sagas_completed"] + stats["sagas_compensated"]
        assert ended == len(options) and stats["orders"] >= len(options)

        rates = h.engine.limiter.proxy().snapshot.get().latest()
        expected = {
            ("kitesaga_orders_total", ()): stats["orders"],
            ("kitesaga_fills_total", ()): stats["fills"],
            **{("kitesaga_sagas_total", (("outcome", o),)): stats[f"sagas_{o}"]
               for o in ("started", "completed", "compensated", "refused")},
            **{("kitesaga_api_calls_total", (("endpoint", ep.value),)): n
               for ep, n in rates.granted.items()},
            ("kitesaga_api_throttled_total", (("endpoint", "orders"),)): 0,
            ("kitesaga_broker_orders_rejected_total", ()):
                h.engine.broker_snapshot.orders_rejected,
            ("kitesaga_sagas_in_flight", ()): 0}
        assert expected[("kitesaga_api_calls_total", (("endpoint", "orders"),))] >= len(options)

        def current() -> bool:
            m = scrape(obs.metrics_url or "")
            return all(m.get(key) == value for key, value in expected.items())

        wait_until(current, what="a sample after the sagas ended")
        m = scrape(obs.metrics_url)
        timed = sum(v for (name, _), v in m.items()
                    if name == "kitesaga_saga_duration_seconds_count")
        assert timed == ended
        inf = sum(v for (name, labels), v in m.items()
                  if name == "kitesaga_saga_duration_seconds_bucket" and ("le", "+Inf") in labels)
        assert inf == ended
        mailboxes = {dict(labels)["actor"]: v for (name, labels), v in m.items()
                     if name == "kitesaga_mailbox_depth"}
        assert set(FIVE) <= set(mailboxes) and all(v >= 0 for v in mailboxes.values())
        assert {"MetricsActor", "AlertActor", "DeliveryActor"} <= set(mailboxes)
        assert m[("kitesaga_process_resident_memory_bytes", ())] > 0
        assert m[("kitesaga_process_threads", ())] >= len(FIVE)
        assert m[("kitesaga_prices_known", ())] == len(options)
        newest = m[("kitesaga_price_age_seconds", (("which", "newest"),))]
        oldest = m[("kitesaga_price_age_seconds", (("which", "oldest"),))]
        assert 0 <= newest <= oldest
        p50 = m[("kitesaga_journal_write_seconds", (("quantile", "0.5"),))]
        assert 0 < p50 <= m[("kitesaga_journal_write_seconds", (("quantile", "0.99"),))]
        assert m[("kitesaga_trading_state", (("state", "ACTIVE"),))] == 1
        assert m[("kitesaga_metrics_samples_total", ())] >= 1


def test_rejected_prices_and_ages_are_sampled() -> None:
    config = make_config(**_fast())
    with observed(config) as (h, obs):
        call = h.option()
        h.quote(call, 150_00, age=config.prices.max_price_age_s + 60)  # stale: rejected
        h.quote(h.option(offset=1), 150_00, age=30)
        wait_until(lambda: scrape(obs.metrics_url or "").get(
            ("kitesaga_prices_rejected_total", (("reason", "stale"),))) == 1,
            what="the stale price counted")
        m = scrape(obs.metrics_url or "")
        assert m[("kitesaga_prices_known", ())] == 1
        assert m[("kitesaga_price_age_seconds", (("which", "oldest"),))] >= 30


def test_a_port_in_use_is_an_alert_and_the_engine_runs_on() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        config = make_config(**_fast(metrics={"port": port}))
        with observed(config) as (h, obs):
            assert obs.metrics_url is None
            wait_until(lambda: any(a.name == "metrics_unavailable" for a in obs.alerts()),
                       what="the alert")
            [alert] = [a for a in obs.alerts() if a.name == "metrics_unavailable"]
            assert alert.key == f"127.0.0.1:{port}" and alert.severity.value == "warning"
            call = h.option()
            h.quote(call, 150_00)
            h.submit(SubmitEntry.single("t", call, Side.BUY, call.lot_size))
            h.events.wait_for_kind(SagaCompleted)  # trading goes on without metrics
            wait_until(lambda: obs.metrics_state().counters.get("orders", 0) >= 1,
                       what="sampling goes on too")


def test_metrics_can_be_disabled() -> None:
    config = make_config(**_fast(metrics={"enabled": False}))
    with observed(config) as (_, obs):
        assert obs.metrics_url is None
        wait_until(lambda: obs.metrics_state().samples >= 2, what="sampling without a server")
        assert obs.alerts() == ()
    obs.stop()  # again: idempotent
    obs.listener.tell(TradingStateChanged(TradingState.HALTED, "after the observers stopped"))
    assert obs.alerts() == ()  # dropped, never raised into the emitting actor


@pytest.mark.parametrize(("section", "values", "named"), [
    ("metrics", {"saga_buckets_s": (1.0, 0.5)}, "metrics.saga_buckets_s"),
    ("alerts", {"webhook_url": "ftp://example"}, "alerts.webhook_url"),
    ("alerts", {"telegram_chat_id": "42"}, "TELEGRAM_BOT_TOKEN"),
])
def test_bad_settings_are_refused_naming_them(section: str, values: dict[str, object],
                                              named: str) -> None:
    with pytest.raises(ValueError, match=named.replace(".", r"\.")):
        Observability(make_config(**{section: values}), env={})
