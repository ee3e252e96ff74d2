"""Dashboard: the page, ``/api/state``, ``/api/equity`` and ``/events`` on their own loop thread.

Everything the dashboard keeps (the equity curve, the latest state, the SSE
clients, the last saga description) lives on one asyncio loop on one daemon
thread; other threads only start and stop it. It reads the engine's published
snapshots and nothing else, and the one message it ever sends is
``DescribeSagas`` (a question: it changes nothing), at most once per refresh
and only while sagas are in flight.
"""

from __future__ import annotations

import asyncio
import hmac
import json
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

import pykka
import structlog
from aiohttp import web

from actors._loop_thread import LoopThread
from actors.config._operations import DashboardConfig
from actors.dashboard._equity import EquityCurve
from actors.dashboard._page import CSP, PAGE
from actors.dashboard._state import AlertSource, Sources, build_state
from messages import DescribeSagas, Inbox, SagasDescribed, SagaView

__all__ = ["CALL_TIMEOUT_S", "CHART_POINTS", "MAX_CLIENTS", "Dashboard"]

_log = structlog.get_logger("kitesaga.dashboard")

CALL_TIMEOUT_S = 10.0
"""Longest wait for the loop to bind at start, or to close every connection at stop."""

CHART_POINTS = 600
"""Most equity points pushed to the page with each state (``/api/equity`` has them all)."""

MAX_CLIENTS = 32
"""Most ``/events`` streams at once; more get 503."""

_ASK_AGAIN_S = 5.0  # an unanswered DescribeSagas (a stopped OrderActor) is asked again after
_ANY_HOST = frozenset({"0.0.0.0", "::", ""})
_HEADERS = {"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff",
            "Referrer-Policy": "no-referrer", "X-Frame-Options": "DENY"}
_UNAUTHORISED = ("401: this dashboard needs its access token (DASHBOARD_TOKEN) as ?token=... "
                 "or an 'Authorization: Bearer ...' header\n")
_Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class _LoopInbox:
    """An address whose ``tell`` hands the message to a handler on the dashboard's loop."""

    def __init__(self, loop: asyncio.AbstractEventLoop, handler: Callable[[Any], None]) -> None:
        self._loop, self._handler = loop, handler

    def tell(self, message: Any) -> None:
        try:
            self._loop.call_soon_threadsafe(self._handler, message)
        except RuntimeError:  # the loop is closed: the dashboard has stopped
            pass


class Dashboard:
    """A read-only web dashboard of one engine, on ``http://HOST:PORT/``.

    Contract: ``__init__`` only stores its arguments; :meth:`start` binds
    ``config.host``/``config.port`` (0: any free port) on a daemon thread's
    event loop and returns once listening, or raises ``OSError`` (a port in
    use) with nothing left running. Every ``config.refresh_s`` the loop builds
    the state from the snapshots, appends the portfolio's value to the equity
    curve (at most ``config.equity_points`` kept) and pushes the state to every
    ``/events`` client. With a ``token``, every request must carry it
    (``?token=`` or ``Authorization: Bearer``; compared in constant time) or
    gets 401. Errors are short text, never a traceback. :meth:`stop` closes
    every connection and ends the thread; it is idempotent. A Dashboard that
    is not serving (disabled, or refused at start) has ``url`` None and says
    why in ``reason``.
    """

    def __init__(self, sources: Sources, config: DashboardConfig, *,
                 orders: Inbox | None = None, alerts: AlertSource | None = None,
                 token: str | None = None, reason: str = "") -> None:
        self._sources, self._config = sources, config
        self._orders, self._alerts, self._token = orders, alerts, token
        self.reason = reason
        self._curve = EquityCurve(config.equity_points)
        self._clients: set[asyncio.Queue[bytes | None]] = set()
        self._latest: bytes | None = None
        self._sagas: tuple[SagaView, ...] = ()
        self._asked_at: float | None = None
        self._thread = LoopThread("dashboard", _log)
        self._runner: web.AppRunner | None = None
        self._sampler: asyncio.Task[None] | None = None
        self._port = 0

    # -- lifecycle ----------------------------------------------------------------------

    def start(self) -> Dashboard:
        """Bind and start sampling; return once listening (``OSError`` if it cannot bind)."""
        if self._thread.loop is not None:
            raise RuntimeError("Dashboard: already started (one start per instance)")
        try:
            self._thread.start(self._startup, CALL_TIMEOUT_S)
        except BaseException:
            self.stop()
            raise
        _log.info("dashboard_listening", url=self.url, token_required=self._token is not None,
                  refresh_s=self._config.refresh_s)
        return self

    def stop(self) -> None:
        """Close every connection and end the loop thread (idempotent)."""
        if not self._thread.stop(self._shutdown, CALL_TIMEOUT_S):
            return
        if self._port:
            _log.info("dashboard_stopped")

    @property
    def url(self) -> str | None:
        """The page's address (without the token), or None when not serving."""
        if not self._port or self._thread.stopped:
            return None
        host = self._config.host
        host = "127.0.0.1" if host in _ANY_HOST else f"[{host}]" if ":" in host else host
        return f"http://{host}:{self._port}/"

    @property
    def port(self) -> int:
        """The bound port (0 when not serving)."""
        return self._port

    async def _startup(self) -> None:
        app = web.Application(middlewares=[self._guard])
        app.on_response_prepare.append(_common_headers)
        app.router.add_get("/", self._page)
        app.router.add_get("/api/state", self._state)
        app.router.add_get("/api/equity", self._equity)
        app.router.add_get("/events", self._events, allow_head=False)  # a stream has no head
        runner = web.AppRunner(app, access_log=None, handle_signals=False,
                               shutdown_timeout=1.0)
        await runner.setup()
        self._runner = runner
        await web.TCPSite(runner, self._config.host, self._config.port).start()
        self._port = int(runner.addresses[0][1])
        self._sample()  # the first state exists before the first page asks
        self._sampler = asyncio.get_running_loop().create_task(self._sample_forever())

    async def _shutdown(self) -> None:
        if self._sampler is not None:
            self._sampler.cancel()
        for queue in self._clients:
            _offer(queue, None)  # every /events stream ends
        if self._runner is not None:
            await self._runner.cleanup()

    # -- sampling (on the loop) ------------------------------------------------------------

    async def _sample_forever(self) -> None:
        loop = asyncio.get_running_loop()
        refresh = self._config.refresh_s
        due = loop.time() + refresh
        while True:
            await asyncio.sleep(max(0.0, due - loop.time()))
            try:
                self._sample()
            except Exception:  # noqa: BLE001 - the page must outlive one bad sample
                _log.exception("dashboard_sample_failed")
            due = max(due + refresh, loop.time())

    def _sample(self) -> None:
        """Build the state, add its value to the equity curve, push it to every client."""
        state = build_state(self._sources, self._sagas, self._alerts)
        self._curve.add(datetime.fromisoformat(state["now"]), state["portfolio"]["value"])
        state["equity"] = self._equity_json(CHART_POINTS)
        data = json.dumps(state, separators=(",", ":")).encode()
        self._latest = data
        for queue in self._clients:
            _offer(queue, data)
        self._ask_sagas(state["orders"]["in_flight"])

    def _equity_json(self, limit: int | None) -> dict[str, Any]:
        return {"points": self._curve.points(limit), "samples": len(self._curve),
                "capacity": self._curve.capacity}

    def _ask_sagas(self, in_flight: int) -> None:
        """Ask OrderActor to describe its sagas: one question at a time, none when idle."""
        if not in_flight or self._orders is None:
            self._sagas = ()
            return
        loop = asyncio.get_running_loop()
        if self._asked_at is not None and loop.time() - self._asked_at < _ASK_AGAIN_S:
            return
        self._asked_at = loop.time()
        try:
            self._orders.tell(DescribeSagas(reply_to=_LoopInbox(loop, self._on_sagas)))
        except pykka.ActorDeadError:
            self._sagas = ()

    def _on_sagas(self, message: Any) -> None:
        if isinstance(message, SagasDescribed):
            self._sagas, self._asked_at = message.sagas, None

    # -- HTTP (on the loop) ----------------------------------------------------------------

    @web.middleware
    async def _guard(self, request: web.Request, handler: _Handler) -> web.StreamResponse:
        if self._token is not None and not _carries(request, self._token):
            return web.Response(status=401, text=_UNAUTHORISED,
                                headers={"WWW-Authenticate": 'Bearer realm="kitesaga"'})
        try:
            return await handler(request)
        except web.HTTPException:
            raise  # 404, 405, 503: aiohttp's short text answers
        except Exception:  # noqa: BLE001 - a short answer, the trace only in the log
            _log.exception("dashboard_request_failed", path=request.path)  # never the query
            return web.Response(status=500, text="500: internal error (logged)\n")

    async def _page(self, request: web.Request) -> web.Response:
        return web.Response(text=PAGE, content_type="text/html", charset="utf-8",
                            headers={"Content-Security-Policy": CSP})

    async def _state(self, request: web.Request) -> web.Response:
        state = build_state(self._sources, self._sagas, self._alerts)
        state["equity"] = self._equity_json(CHART_POINTS)
        return web.json_response(state)

    async def _equity(self, request: web.Request) -> web.Response:
        return web.json_response(self._equity_json(None))

    async def _events(self, request: web.Request) -> web.StreamResponse:
        if len(self._clients) >= MAX_CLIENTS:
            raise web.HTTPServiceUnavailable(text=f"503: at most {MAX_CLIENTS} live pages\n")
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream",
                                               "X-Accel-Buffering": "no"})
        await response.prepare(request)
        queue: asyncio.Queue[bytes | None] = asyncio.Queue(maxsize=1)
        self._clients.add(queue)
        try:
            data = self._latest
            await response.write(b"retry: 1000\n\n")
            while data is not None:
                await response.write(b"data: " + data + b"\n\n")
                data = await queue.get()
        except ConnectionError:
            pass  # the page went away
        finally:
            self._clients.discard(queue)
        return response


def _offer(queue: asyncio.Queue[bytes | None], data: bytes | None) -> None:
    """Replace whatever the client has not sent yet: a slow page skips to the latest."""
    if queue.full():
        queue.get_nowait()
    queue.put_nowait(data)


def _carries(request: web.Request, token: str) -> bool:
    """Whether ``request`` carries ``token`` (query or bearer header), in constant time."""
    given = request.query.get("token")
    if given is None:
        scheme, _, value = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer":
            return False
        given = value.strip()
    return hmac.compare_digest(given.encode(), token.encode())


async def _common_headers(request: web.Request, response: web.StreamResponse) -> None:
    for name, value in _HEADERS.items():
        response.headers.setdefault(name, value)
