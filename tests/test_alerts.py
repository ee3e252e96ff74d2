"""Alerts on a real paper engine, delivered to real local HTTP servers (a webhook and a
fake Telegram Bot API): announced once, duplicates suppressed, resolved when cleared."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from types import MappingProxyType
from typing import Any

import pykka
import pytest
from structlog.testing import capture_logs

from actors._system import Engine
from actors.config._operations import AlertsConfig
from actors.kite import LiveSession
from actors.log import configure_logging
from actors.market import IST
from actors.observe import Observability, Sample, Severity, evaluate
from messages import (
    CallThrottled,
    DriftDetected,
    DriftKind,
    EndpointClass,
    SetTradingState,
    TradingState,
)
from tests.engine_support import make_config
from tests.live_support import live_config, simulator, store_token, zerodha_env
from tests.observe_support import Receiver, observed, scrape
from tests.support import wait_until

TOKEN = "123456:TEST-bot-token-Zx9"


@pytest.fixture()
def hook() -> Iterator[Receiver]:
    receiver = Receiver()
    yield receiver
    receiver.close()


@pytest.fixture()
def telegram() -> Iterator[Receiver]:
    receiver = Receiver(answer={"ok": True, "result": {"message_id": 1}})
    yield receiver
    receiver.close()


def _config(hook: Receiver | None, telegram: Receiver | None, **alerts: Any) -> Any:
    values: dict[str, Any] = {"check_interval_s": 0.05, **alerts}
    if hook is not None:
        values["webhook_url"] = f"{hook.url}/hook"
    if telegram is not None:
        values["telegram_chat_id"] = "-1001"
        values["telegram_api_root"] = telegram.url
    return make_config(metrics={"enabled": False}, alerts=values)


def _firing(bodies: list[Any], name: str) -> list[Any]:
    return [b for b in bodies if b["name"] == name and b["status"] == "firing"]


def test_halt_alerts_once_to_log_webhook_and_telegram_then_resolves(
        hook: Receiver, telegram: Receiver) -> None:
    config = _config(hook, telegram)
    tg_path = f"/bot{TOKEN}/sendMessage"
    with capture_logs() as logs, observed(config, env={"TELEGRAM_BOT_TOKEN": TOKEN}) as (h, obs):
        h.submit(SetTradingState(TradingState.HALTED, "operator halt for the test"))
        hook.posts.wait_for(lambda ps: len(ps) >= 1)
        telegram.posts.wait_for(lambda ps: len(ps) >= 1)
        [alert] = obs.alerts()
        assert (alert.name, alert.severity) == ("trading_halted", Severity.CRITICAL)
        assert "operator halt for the test" in alert.message
        checks = obs.alert_book().checks
        wait_until(lambda: obs.alert_book().checks >= checks + 20, what="20 more checks")
        assert len(_firing(hook.bodies("/hook"), "trading_halted")) == 1  # no duplicates
        assert len(telegram.bodies(tg_path)) == 1

        h.submit(SetTradingState(TradingState.ACTIVE, "resumed"))
        hook.posts.wait_for(lambda ps: len(ps) >= 2)
        telegram.posts.wait_for(lambda ps: len(ps) >= 2)
        wait_until(lambda: obs.alerts() == (), what="no active alert")

    first, resolved = hook.bodies("/hook")
    assert (first["status"], first["name"], first["severity"]) == (
        "firing", "trading_halted", "critical")
    assert first["figures"]["state"] == "HALTED" and first["source"] == "kitesaga"
    assert (resolved["status"], resolved["name"]) == ("resolved", "trading_halted")
    assert datetime.fromisoformat(first["since"]).utcoffset() == timedelta(hours=5, minutes=30)
    sent, cleared = telegram.bodies(tg_path)
    assert sent["chat_id"] == "-1001" and cleared["chat_id"] == "-1001"
    assert sent["text"].startswith("[kitesaga CRITICAL] trading_halted: trading is HALTED")
    assert cleared["text"].startswith("[kitesaga RESOLVED] trading_halted")
    alerts = [e for e in logs if e["event"] == "alert"]
    assert [(e["status"], e["name"], e["severity"]) for e in alerts] == [
        ("firing", "trading_halted", "critical"), ("resolved", "trading_halted", "critical")]
    assert alerts[0]["figures"]["reason"] == "operator halt for the test"
    assert obs.deliveries().count("sent", "webhook") == 2
    assert obs.deliveries().count("sent", "telegram") == 2


def test_a_halt_is_announced_at_once_not_at_the_next_check(hook: Receiver) -> None:
    config = _config(hook, None, check_interval_s=3600.0)
    with observed(config) as (h, obs):
        wait_until(lambda: obs.alert_book().checks >= 1, what="the first check on attach")
        h.submit(SetTradingState(TradingState.HALTED, "now"))
        hook.posts.wait_for(lambda ps: len(ps) >= 1, timeout=5)
        assert [a.name for a in obs.alerts()] == ["trading_halted"]
        h.submit(SetTradingState(TradingState.ACTIVE, "again"))
        hook.posts.wait_for(lambda ps: len(ps) >= 2, timeout=5)
        assert hook.bodies()[1]["status"] == "resolved"


def test_a_broker_429_alerts_and_resolves_once_the_class_cooled_down(hook: Receiver) -> None:
    config = make_config(metrics={"port": 0, "sample_interval_s": 0.05}, alerts={
        "check_interval_s": 0.05, "webhook_url": f"{hook.url}/hook"},
        rate_limits={"backoff_initial_s": 0.1, "backoff_max_s": 0.3})
    with observed(config) as (h, obs):
        h.engine.limiter.tell(CallThrottled(EndpointClass.QUOTE, "quote"))
        hook.posts.wait_for(lambda ps: len(ps) >= 1)
        h.engine.limiter.tell(CallThrottled(EndpointClass.QUOTE, "quote"))  # same episode
        hook.posts.wait_for(lambda ps: len(ps) >= 2)  # resolved after a quiet backoff_max_s
        checks = obs.alert_book().checks
        wait_until(lambda: obs.alert_book().checks >= checks + 5, what="more checks")
        firing, resolved = hook.bodies("/hook")  # one announcement for the episode
        assert (firing["status"], firing["name"], firing["key"]) == (
            "firing", "broker_throttled", "quote")
        assert firing["figures"]["throttled"] == 1 and firing["figures"]["episode"] == 1
        assert resolved["figures"]["episode"] == 2  # the last figures seen before it cleared
        assert (resolved["status"], resolved["key"]) == ("resolved", "quote")
        quiet = datetime.fromisoformat(resolved["at"]) - datetime.fromisoformat(firing["at"])
        assert quiet >= timedelta(seconds=0.3)
        assert scrape(obs.metrics_url or "")[
            ("kitesaga_api_throttled_total", (("endpoint", "quote"),))] == 2


def test_low_rss_threshold_warns_and_repeats_after_repeat_after_s(hook: Receiver) -> None:
    config = _config(hook, None, rss_warning_mb=1.0, repeat_after_s=0.3)
    with observed(config) as (_, obs):
        hook.posts.wait_for(lambda ps: len(_firing([b for _, b in ps], "memory_high")) >= 2)
        first, again = _firing(hook.bodies("/hook"), "memory_high")[:2]
        assert first["severity"] == "warning" and first["figures"]["rss_mb"] > 1.0
        assert first["figures"]["warning_mb"] == 1.0
        gap = datetime.fromisoformat(again["at"]) - datetime.fromisoformat(first["at"])
        assert gap >= timedelta(seconds=0.3)
        assert again["since"] == first["since"]  # the same condition, still standing
        [alert] = obs.alerts()
        assert alert.name == "memory_high" and alert.severity is Severity.WARNING


def test_rss_above_critical_is_critical(hook: Receiver) -> None:
    config = _config(hook, None, rss_warning_mb=1.0, rss_critical_mb=2.0)
    with observed(config) as (_, obs):
        wait_until(lambda: [a.severity for a in obs.alerts()] == [Severity.CRITICAL],
                   what="a critical memory alert")
        hook.posts.wait_for(lambda ps: len(ps) >= 1)
        assert hook.bodies()[0]["severity"] == "critical"


@pytest.mark.usefixtures("restore_logging")
def test_delivery_failures_are_logged_never_raised_and_the_token_never_leaks(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as closed:  # a port nobody listens on
        closed.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{closed.getsockname()[1]}"
    refusing = Receiver(status=200, answer={"ok": False, "description": "chat not found"})
    monkeypatch.setenv("TELEGRAM_BOT_TOKEN", TOKEN)
    path = configure_logging(tmp_path, "INFO", "k.log")
    config = make_config(metrics={"enabled": False}, alerts={
        "check_interval_s": 0.05, "rss_warning_mb": 1.0, "webhook_url": f"{dead}/hook",
        "telegram_chat_id": "7", "telegram_api_root": refusing.url, "send_timeout_s": 2.0})
    try:
        with observed(config, env={"TELEGRAM_BOT_TOKEN": TOKEN}) as (_, obs):
            wait_until(lambda: obs.deliveries().count("failed", "webhook") >= 1
                       and obs.deliveries().count("failed", "telegram") >= 1,
                       what="both deliveries failed")
            assert [a.name for a in obs.alerts()] == ["memory_high"]  # the actor lives on
            assert refusing.bodies(f"/bot{TOKEN}/sendMessage")  # it did reach the API
    finally:
        refusing.close()
    text = path.read_text(encoding="utf-8")
    assert TOKEN not in text
    lines = [json.loads(line) for line in text.splitlines()]
    failed = {line["channel"]: line for line in lines if line["event"] == "alert_delivery_failed"}
    assert set(failed) == {"webhook", "telegram"}
    assert "chat not found" in failed["telegram"]["error"]
    assert any(line["event"] == "alert" and line["name"] == "memory_high" for line in lines)


def _sample(**changes: Any) -> Sample:
    at = datetime(2026, 11, 25, 10, 0, tzinfo=IST)
    base: dict[str, Any] = dict(
        at=at, stats=MappingProxyType({"orders": 0, "unknown_outcomes": 0}), state="ACTIVE",
        state_reason="", in_flight=0, open_positions=0, unprotected=(), broker_rejected=0,
        granted=MappingProxyType({}), throttled=MappingProxyType({"orders": 0}),
        waiting=MappingProxyType({}),
        permits_refused=0, prices_known=0, prices_accepted=0,
        prices_rejected=MappingProxyType({}), newest_price_age_s=None,
        oldest_price_age_s=None, mailboxes=MappingProxyType({}), rss_bytes=1, threads=1)
    base.update(changes)
    return Sample(**base)


def _names(sample: Sample, seen: dict[str, int] | None = None) -> list[tuple[str, str, str]]:
    return [(f.name, f.key, f.severity.value)
            for f in evaluate(sample, AlertsConfig(), seen or {})]


def test_conditions_from_a_sample() -> None:
    assert _names(_sample()) == []
    at = _sample().at
    soon, late = at + timedelta(minutes=20), at - timedelta(minutes=1)
    assert _names(_sample(token_expires_at=soon)) == [("token_expiring", "", "warning")]
    assert _names(_sample(token_expires_at=late)) == [("token_expiring", "", "critical")]
    assert _names(_sample(token_expires_at=at + timedelta(minutes=31))) == []
    stats = MappingProxyType({"orders": 40, "unknown_outcomes": 1})
    assert _names(_sample(stats=stats, broker_rejected=1)) == []  # 5.0% is not above 5%
    assert _names(_sample(stats=stats, broker_rejected=2)) == [
        ("order_failure_rate", "", "warning")]
    few = MappingProxyType({"orders": 10, "unknown_outcomes": 5})
    assert _names(_sample(stats=few)) == []  # fewer than order_failure_min_orders
    throttled = _sample(throttled=MappingProxyType({"orders": 3}))
    assert _names(throttled, {"orders": 2}) == [("broker_throttled", "orders", "warning")]
    assert _names(throttled, {"orders": 0}) == []
    drift = DriftDetected(DriftKind.QUANTITY_MISMATCH, "NFO:NIFTY26D0124000CE", 65, 0,
                          "strategy s: 65")
    assert _names(_sample(drifts=(drift,), unprotected=("s:123",))) == [
        ("position_unprotected", "s:123", "critical"),
        ("reconciliation_drift", "QUANTITY_MISMATCH:NFO:NIFTY26D0124000CE", "critical")]


def test_live_engine_token_expiry_alert_and_metrics(tmp_path: Path) -> None:
    config = live_config(tmp_path, KITESAGA_METRICS_PORT="0",
                         KITESAGA_METRICS_SAMPLE_INTERVAL_S="0.05",
                         KITESAGA_ALERTS_CHECK_INTERVAL_S="0.05",
                         KITESAGA_ALERTS_TOKEN_EXPIRY_WARNING_MIN="100000")
    with simulator(config) as server:
        zenv = zerodha_env(server)
        store_token(server, config, zenv)
        session = LiveSession.connect(config, zenv)
        obs = Observability(config, env={})
        try:
            engine = Engine(config, run_strategies=False, listeners=(obs.listener,),
                            session=session).start()
            try:
                obs.attach(engine)
                wait_until(lambda: any(a.name == "token_expiring" for a in obs.alerts()),
                           what="the token expiry alert")
                [alert] = [a for a in obs.alerts() if a.name == "token_expiring"]
                assert alert.severity is Severity.WARNING
                assert alert.figures["expires_at"] == session.token.expires_at.isoformat()
                assert 0 < float(alert.figures["minutes_left"]) <= 24 * 60
                wait_until(lambda: scrape(obs.metrics_url or "").get(
                    ("kitesaga_mailbox_depth", (("actor", "KiteGatewayActor"),))) is not None,
                    what="the live actors' mailboxes")
                m = scrape(obs.metrics_url or "")
                assert m[("kitesaga_broker_orders_rejected_total", ())] == 0
            finally:
                engine.stop(drain=False)
        finally:
            obs.stop()
            pykka.ActorRegistry.stop_all()
