"""The dashboard over a real paper engine, a real HTTP server and a real headless Chromium.

The browser test needs Debian's ``chromium`` and ``chromium-driver`` (``/usr/bin/chromium``,
``/usr/bin/chromedriver``) and ``selenium`` (the ``test`` extra). ``.ci/run`` installs the
browser and sets ``CI``; with ``CI`` set (anything but empty, 0, false, no) a missing piece
fails the test. Without ``CI`` (a developer's machine) it is skipped, saying what is missing.
The screenshot goes to ``test-artifacts/dashboard.png`` (git-ignored).
"""

from __future__ import annotations

import json
import os
import socket
import time
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from enum import Enum
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import requests
from structlog.testing import capture_logs

from actors.dashboard import Dashboard, EquityCurve, start_dashboard
from messages import Instrument, Money, SetTradingState, Side, SubmitEntry, TradingState
from tests.engine_support import Harness, make_config, running
from tests.support import wait_until

ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"
CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
TOKEN = "s3cret-dashboard-token-0123456789"
CHROMIUM_FLAGS = ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic",
                  "--no-first-run", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage",
                  "--window-size=1280,1150")


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def _get(url: str, **kwargs: Any) -> requests.Response:
    return requests.get(url, timeout=10, **kwargs)


def _held(h: Harness, instrument: Instrument) -> int:
    view = h.engine.portfolio_snapshot.positions.get(("dash", instrument.instrument_token))
    return view.quantity if view is not None else 0


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[Any]:
    missing = [path for path in (CHROMIUM, CHROMEDRIVER) if not os.access(path, os.X_OK)]
    try:
        from selenium import webdriver
    except ImportError:
        webdriver = None  # type: ignore[assignment]
        missing.append("selenium (pip install -e '.[test]')")
    if missing:
        if in_ci():
            pytest.fail(f"CI must run the browser test but {', '.join(missing)} is missing: "
                        ".ci/run installs chromium and chromium-driver")
        pytest.skip(f"headless Chromium test needs {', '.join(missing)} (apt-get install "
                    "chromium chromium-driver); it always runs in CI")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (*CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'profile'}"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"performance": "ALL", "browser": "ALL"})
    driver = webdriver.Chrome(options=options,
                              service=webdriver.ChromeService(executable_path=CHROMEDRIVER))
    driver.set_page_load_timeout(20)
    try:
        yield driver
    finally:
        driver.quit()


def _text(driver: Any, element_id: str) -> str:
    return str(driver.execute_script(
        "const e = document.getElementById(arguments[0]); return e ? e.textContent : '';",
        element_id))


def _row(driver: Any, key: str) -> list[str]:
    cells = driver.execute_script(
        "const r = document.querySelector('#positions tr[data-key=\"' + arguments[0] + '\"]');"
        "return r ? Array.from(r.cells).map(c => c.textContent) : [];", key)
    return [str(c) for c in cells]


def test_page_shows_a_fill_within_a_second_in_headless_chromium(browser: Any) -> None:
    config = make_config(dashboard={"port": 0})
    with running(config) as h:
        dashboard = start_dashboard(h.engine, config)
        try:
            assert dashboard.url is not None
            call = h.option()
            h.quote(call, 150_00)
            browser.get(dashboard.url)
            wait_until(lambda: _text(browser, "conn") == "live" and _text(browser, "fills") == "0",
                       what="the page is live and shows no fill")
            key = f"dash:{call.tradingsymbol}"
            assert _row(browser, key) == []
            h.submit(SubmitEntry.single("dash", call, Side.BUY, call.lot_size))
            wait_until(lambda: _held(h, call) == call.lot_size, what="the engine holds it")
            t0 = time.monotonic()
            port = h.engine.portfolio_snapshot
            fills, charges = str(port.fills_applied), str(Money(port.charges))

            def shown() -> bool:
                row = _row(browser, key)
                return (row[1:3] == [call.tradingsymbol, str(call.lot_size)]
                        and _text(browser, "fills") == fills
                        and _text(browser, "charges") == charges)

            wait_until(shown, timeout=10, what="the page shows the fill")
            elapsed = time.monotonic() - t0
            print(f"page showed the fill {elapsed:.3f} s after the engine published it")
            assert elapsed <= 1.0, f"the page showed the fill {elapsed:.3f} s after the engine"
            assert port.charges > 0 and fills != "0"
            row = _row(browser, key)
            assert row[0] == "dash" and row[4] == str(Money(150_00))  # last price
            assert row[5].endswith(" s")  # its age
            wait_until(lambda: browser.execute_script(
                "const p = document.querySelector('#equity polyline');"
                "return p !== null && p.getAttribute('points').split(' ').length >= 2;"),
                what="the equity curve is drawn")
            assert _text(browser, "state") == "ACTIVE"
            ARTIFACTS.mkdir(exist_ok=True)
            shot = ARTIFACTS / "dashboard.png"
            assert browser.save_screenshot(str(shot)) and shot.stat().st_size > 10_000
            _assert_nothing_external(browser, dashboard.url)
        finally:
            dashboard.stop()


def _assert_nothing_external(browser: Any, url: str) -> None:
    """Every request the browser made went to the dashboard, and the CSP refused nothing
    (so the inline script and style are the ones its hashes allow)."""
    origin = url.rstrip("/")
    loaded = browser.execute_script(  # finished loads (a live event stream is not one yet)
        "return performance.getEntriesByType('resource').map(e => e.name);")
    assert all(str(name).startswith(origin + "/") for name in loaded), loaded
    links = browser.execute_script(
        "return Array.from(document.querySelectorAll('[src],[href]'))"
        ".map(e => e.getAttribute('src') || e.getAttribute('href'));")
    assert links == ["data:,"]
    requested, ours = [], []  # every request; the requests of our page's documents
    for entry in browser.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        if message["method"] == "Network.requestWillBeSent":
            params = message["params"]
            requested.append(params["request"]["url"])
            if str(params.get("documentURL", "")).startswith(origin + "/"):
                ours.append(params["request"]["url"])
    assert f"{origin}/events" in ours
    assert all(u.startswith((origin + "/", "data:")) for u in ours), ours
    # nothing at all went over the network elsewhere (chrome:// pages are the browser's own)
    network = [u for u in requested if u.split(":", 1)[0] in ("http", "https", "ws", "wss")]
    assert all(u.startswith(origin + "/") for u in network), network
    refused = [e["message"] for e in browser.get_log("browser")
               if "Content Security Policy" in e["message"]]
    assert refused == []


def test_api_state_matches_the_published_snapshots() -> None:
    config = make_config(dashboard={"port": 0})
    with running(config) as h:
        dashboard = start_dashboard(h.engine, config)
        try:
            call = h.option()
            h.quote(call, 150_00)
            h.submit(SubmitEntry.single("dash", call, Side.BUY, call.lot_size))
            wait_until(lambda: _held(h, call) and h.engine.orders_snapshot.in_flight == 0,
                       what="the entry completed")
            response = _get(f"{dashboard.url}api/state")
            assert response.status_code == 200
            assert response.headers["Content-Type"].startswith("application/json")
            state = response.json()
            port, orders = h.engine.portfolio_snapshot, h.engine.orders_snapshot
            p = state["portfolio"]
            assert (p["cash"], p["reserved"], p["realised"], p["unrealised"], p["charges"],
                    p["net"], p["fills_applied"]) == (
                port.cash, port.reserved, port.realised, port.unrealised, port.charges,
                port.net_pnl, port.fills_applied)
            assert p["value"] == (port.cash + port.reserved + port.margin + port.open_cost
                                  + port.unrealised)
            book = h.engine.prices.proxy().snapshot.get().latest()
            price = book.prices[call.instrument_token]
            [row] = state["positions"]
            view = port.positions[("dash", call.instrument_token)]
            assert (row["symbol"], row["quantity"], row["cost"], row["last"]) == (
                call.tradingsymbol, view.quantity, view.cost, price.last.paise)
            assert row["unrealised"] == view.quantity * price.last.paise - view.cost
            assert 0 <= row["age_s"] < 60
            o = state["orders"]
            assert (o["state"], o["reason"], o["in_flight"], o["stats"]) == (
                orders.state.value, orders.state_reason, orders.in_flight, dict(orders.stats))
            rates = h.engine.limiter.proxy().snapshot.get().latest()
            assert state["rate_limits"]["orders_today"] == rates.orders_today == 1
            assert {(w["endpoint"], w["limit"]) for w in state["rate_limits"]["windows"]} == {
                (w.endpoint.value, w.limit) for w in rates.windows}
            assert datetime.fromisoformat(state["now"]).utcoffset() == timedelta(hours=5,
                                                                                   minutes=30)
            assert state["alerts"] == [] and state["equity"]["samples"] >= 1
        finally:
            dashboard.stop()


def test_token_is_required_and_errors_are_short_text(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DASHBOARD_TOKEN", TOKEN)
    config = make_config(dashboard={"port": 0, "require_token": True})
    with running(config) as h, capture_logs() as logs:
        dashboard = start_dashboard(h.engine, config)
        try:
            url = dashboard.url
            assert url is not None and TOKEN not in url
            for bad in ({}, {"params": {"token": "wrong"}},
                        {"headers": {"Authorization": "Bearer wrong"}},
                        {"headers": {"Authorization": f"Basic {TOKEN}"}},
                        {"params": {"token": TOKEN[:-1]}}):
                for path in ("", "api/state", "events", "nowhere"):
                    refused = _get(url + path, **bad)
                    assert refused.status_code == 401, (path, bad)
                    assert refused.headers["Content-Type"].startswith("text/plain")
                    assert "access token" in refused.text and TOKEN not in refused.text
            page = _get(url, params={"token": TOKEN})
            assert page.status_code == 200 and "<svg id=\"equity\"" in page.text
            assert "default-src 'none'" in page.headers["Content-Security-Policy"]
            bearer = {"Authorization": f"Bearer {TOKEN}"}
            assert _get(url + "api/state", headers=bearer).json()["mode"] == "paper"
            with requests.get(url + "events", params={"token": TOKEN}, stream=True,
                              timeout=10) as events:
                assert events.headers["Content-Type"].startswith("text/event-stream")
                first = next(line for line in events.iter_lines() if line.startswith(b"data:"))
                assert json.loads(first[5:])["orders"]["state"] == "ACTIVE"
            missing = _get(url + "nowhere", headers=bearer)
            assert missing.status_code == 404 and "Traceback" not in missing.text
            assert missing.headers["Content-Type"].startswith("text/plain")
            posted = requests.post(url + "api/state", headers=bearer, timeout=10)
            assert posted.status_code == 405 and "Traceback" not in posted.text
        finally:
            dashboard.stop()
    assert any(e["event"] == "dashboard_listening" for e in logs)
    assert TOKEN not in repr(logs)


def test_no_dashboard_without_its_token_when_one_is_required() -> None:
    config = make_config(dashboard={"port": 0, "require_token": True})
    with running(config) as h, capture_logs() as logs:
        dashboard = start_dashboard(h.engine, config, env={"DASHBOARD_TOKEN": " "})
        assert dashboard.url is None and "DASHBOARD_TOKEN" in dashboard.reason
        dashboard.stop()  # harmless
        disabled = start_dashboard(h.engine, make_config(dashboard={"enabled": False}))
        assert disabled.url is None and "enabled" in disabled.reason
    assert [e["event"] for e in logs if e["log_level"] == "warning"] == ["dashboard_not_started"]


def test_a_port_in_use_is_a_warning_not_a_crash() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        busy = taken.getsockname()[1]
        config = make_config(dashboard={"port": busy})
        with running(config) as h, capture_logs() as logs:
            dashboard = start_dashboard(h.engine, config)
            assert dashboard.url is None and dashboard.port == 0
            assert f"127.0.0.1:{busy}" in dashboard.reason
            dashboard.stop()
            assert h.engine.orders_snapshot.state is TradingState.ACTIVE
    warned = [e for e in logs if e["event"] == "dashboard_not_started"]
    assert len(warned) == 1 and warned[0]["log_level"] == "warning"


class _Severity(Enum):
    WARNING = "warning"


def test_sagas_in_flight_alerts_and_the_equity_curve() -> None:
    seen: list[int] = []

    def alerts() -> list[Any]:
        seen.append(1)
        return [{"severity": "critical", "name": "rss", "message": "memory high"},
                SimpleNamespace(name="token_expiring", key="", severity=_Severity.WARNING,
                                message="expires soon"),  # the shape of observe's Alert
                SimpleNamespace(level="info", key="x", text="no message field"), "plain"]

    config = make_config(dashboard={"port": 0, "refresh_s": 0.05, "equity_points": 10},
                         paper={"stuck_ratio": Decimal(1)}, engine={"fill_timeout_s": 30.0})
    with running(config) as h:
        dashboard = start_dashboard(h.engine, config, alerts=alerts)
        try:
            url = dashboard.url
            call = h.option()
            h.quote(call, 150_00)
            h.submit(SubmitEntry.single("dash", call, Side.BUY, call.lot_size))

            def described() -> list[dict[str, Any]]:
                return list(_get(f"{url}api/state").json()["orders"]["sagas"])

            wait_until(lambda: len(described()) == 1, what="the saga is described")
            [saga] = described()
            assert saga["strategy"] == "dash" and saga["kind"] == "ENTRY"
            assert saga["orders"][0]["tradingsymbol"] == call.tradingsymbol
            assert saga["orders"][0]["status"] in ("WORKING", "PLACING")
            h.engine.orders.tell(SetTradingState(TradingState.HALTED, "a test halt"))
            wait_until(lambda: h.engine.orders_snapshot.state is TradingState.HALTED,
                       what="halted")
            rows = _get(f"{url}api/state").json()["alerts"]
            assert {"severity": "critical", "source": "trading",
                    "message": "HALTED: a test halt"} in rows
            assert {"severity": "critical", "source": "rss", "message": "memory high"} in rows
            assert {"severity": "warning", "source": "token_expiring",
                    "message": "expires soon"} in rows
            assert {"severity": "info", "source": "x", "message": "no message field"} in rows
            assert {"severity": "warning", "source": "alert", "message": "plain"} in rows
            assert seen
            wait_until(lambda: _get(f"{url}api/equity").json()["samples"] == 10,
                       what="the curve filled up")
            first = _get(f"{url}api/equity").json()["points"]
            wait_until(lambda: _get(f"{url}api/equity").json()["points"][0] != first[0],
                       what="the oldest point was dropped")
            equity = _get(f"{url}api/equity").json()
            assert len(equity["points"]) == equity["capacity"] == 10
            port = h.engine.portfolio_snapshot
            assert equity["points"][-1][1] == (port.cash + port.reserved + port.margin
                                               + port.open_cost + port.unrealised)
        finally:
            dashboard.stop()


def test_a_failing_alert_source_is_itself_an_alert() -> None:
    def broken() -> list[Any]:
        raise ZeroDivisionError("no")

    config = make_config(dashboard={"port": 0})
    with running(config) as h:
        dashboard = start_dashboard(h.engine, config, alerts=broken)
        try:
            rows = _get(f"{dashboard.url}api/state").json()["alerts"]
            assert rows == [{"severity": "warning", "source": "dashboard",
                             "message": "alerts unavailable: ZeroDivisionError"}]
        finally:
            dashboard.stop()


def test_stop_ends_live_streams_and_closes_the_port(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("actors.dashboard._server.MAX_CLIENTS", 1)
    config = make_config(dashboard={"port": 0})
    with running(config) as h:
        dashboard = start_dashboard(h.engine, config)
        url, port = dashboard.url, dashboard.port
        assert isinstance(dashboard, Dashboard) and url is not None
        with requests.get(url + "events", stream=True, timeout=10) as events:
            lines = events.iter_lines()
            assert next(line for line in lines if line.startswith(b"data:"))
            crowded = _get(url + "events")
            assert crowded.status_code == 503 and crowded.text == "503: at most 1 live pages\n"
            assert requests.head(url + "events", timeout=10).status_code == 405
            started = time.monotonic()
            dashboard.stop()
            list(lines)  # to the end of the stream: stop closed it (else a read timeout)
            assert time.monotonic() - started < 5
        dashboard.stop()  # idempotent
        assert dashboard.url is None
        with pytest.raises(requests.ConnectionError):
            _get(f"http://127.0.0.1:{port}/")


def test_equity_curve_is_bounded_and_thinned() -> None:
    curve = EquityCurve(10)
    start = datetime(2026, 1, 5, 9, 15, tzinfo=timezone(timedelta(hours=5, minutes=30)))
    for i in range(25):
        curve.add(start + timedelta(seconds=i), 1_000_00 + i)
    points = curve.points()
    assert len(curve) == 10 and [v for _, v in points] == list(range(1_000_15, 1_000_25))
    thin = curve.points(4)
    assert len(thin) == 4 and thin[0] == points[0] and thin[-1] == points[-1]
    assert curve.points(50) == points
    with pytest.raises(ValueError, match="timezone-aware"):
        curve.add(datetime(2026, 1, 5, 9, 15), 1)  # naive: refused
    with pytest.raises(ValueError, match="at least 2"):
        EquityCurve(1)
