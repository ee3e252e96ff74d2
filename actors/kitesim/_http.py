"""Kite Connect v3 over HTTP: routes, envelopes, sessions and auth, faults and limits.

Every Kite route answers ``{"status": "success", "data": ...}`` or
``{"status": "error", "error_type": ..., "message": ..., "data": null}`` with
``Content-Type: application/json`` (the instruments dump: ``text/csv``).
A request passes, in order: the ``X-Kite-Version: 3`` check, an injected 429
burst, the rate limiter (429 NetworkException "Too many requests"), an
injected 5xx, auth (403 TokenException), its handler, and then the injected
latency before the answer (the broker executed it; its answer is late).
``/_sim/*`` (control), ``/connect/login`` and the ticker's ``/`` skip all of it.
The ``/_sim/*`` routes answer their JSON bare (no envelope) and their errors
in Kite's error envelope.
"""

from __future__ import annotations

import asyncio
import csv
import io
import secrets
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any, Protocol
from urllib.parse import urlencode

import structlog
from aiohttp import web

from actors.config._schema import SimConfig
from actors.kitesim import _views as views
from actors.kitesim._exchange import SimExchange
from actors.kitesim._faults import FaultSpec, FaultState
from actors.kitesim._kite import KiteError, kite_time
from actors.kitesim._limits import RateLimiter, RequestClass, classify
from actors.kitesim._orders import SIM_USER_ID, order_json, trade_json
from actors.kitesim._sessions import TOKEN_BYTES, Sessions
from messages import Price

__all__ = ["KiteApi", "TickerHubLike"]

_log = structlog.get_logger("kitesaga.sim")

PROFILE: dict[str, Any] = {
    "user_id": SIM_USER_ID, "user_name": "Kitesaga Simulator", "user_shortname": "Simulator",
    "email": "sim@kitesaga.invalid", "user_type": "individual", "broker": "ZERODHA",
    "exchanges": ["NSE", "NFO"], "products": ["CNC", "NRML", "MIS", "MTF"],
    "order_types": ["MARKET", "LIMIT", "SL", "SL-M"], "avatar_url": None,
    "meta": {"demat_consent": "physical"}}
"""The simulated user, as ``/user/profile`` and the session answer it."""

"""Random bytes in each request, access, public and refresh token."""

_UNAUTHENTICATED = frozenset({("POST", "/session/token")})
_HANDLER = Callable[[web.Request], Awaitable[web.StreamResponse]]


class TickerHubLike(Protocol):
    """What the HTTP layer needs of the ticker hub (``_ticker.TickerHub``)."""

    async def handle(self, request: web.Request) -> web.StreamResponse: ...
    def publish_prices(self, prices: Iterable[Price]) -> None: ...
    def publish_order(self, order: Mapping[str, Any]) -> None: ...
    async def drop_connections(self) -> int: ...
    def stats(self) -> dict[str, int]: ...


def _ok(data: Any) -> web.Response:
    return web.json_response({"status": "success", "data": data})


def _error(status: int, error_type: str, message: str) -> web.Response:
    return web.json_response({"status": "error", "error_type": error_type, "message": message,
                              "data": None}, status=status)


async def _json_body(request: web.Request) -> Any:
    try:
        return await request.json()
    except ValueError:
        raise KiteError.input("Invalid body: not valid JSON") from None


class KiteApi:
    """The aiohttp application of the simulator (see the module doc for the pipeline).

    Contract: built and used on the simulator's event-loop thread; handlers
    never await between reading and changing the exchange's state. An
    unexpected exception is logged and answered 500 GeneralException, never
    a traceback.
    """

    def __init__(self, sim: SimConfig, exchange: SimExchange, limiter: RateLimiter,
                 faults: FaultState, hub: TickerHubLike) -> None:
        self._redirect = sim.redirect_url
        self.exchange = exchange
        self.limiter = limiter
        self.faults = faults
        self.sessions = Sessions(sim)
        self.hub = hub
        self._tasks: set[asyncio.Task[Any]] = set()
        self.app = web.Application(middlewares=[self._pipeline])
        self._routes(self.app.router)

    def _routes(self, r: web.UrlDispatcher) -> None:
        x = self.exchange
        plain: list[tuple[str, str, Callable[[web.Request], Any]]] = [
            ("GET", "/user/profile", lambda q: PROFILE),
            ("GET", "/user/margins", lambda q: views.account_margins(x, None)),
            ("GET", "/user/margins/{segment}",
             lambda q: views.account_margins(x, q.match_info["segment"])),
            ("GET", "/quote", lambda q: views.quotes(x, q.query.getall("i", []), "full")),
            ("GET", "/quote/ltp", lambda q: views.quotes(x, q.query.getall("i", []), "ltp")),
            ("GET", "/quote/ohlc", lambda q: views.quotes(x, q.query.getall("i", []), "ohlc")),
            ("GET", "/orders", lambda q: [order_json(o) for o in x.orders()]),
            ("GET", "/orders/{key}", lambda q: list(x.order(q.match_info["key"]).history)),
            ("GET", "/orders/{key}/trades", self._order_trades),
            ("GET", "/trades", lambda q: [trade_json(t) for t in x.trades]),
            ("GET", "/portfolio/positions", lambda q: views.positions(x)),
            ("GET", "/portfolio/holdings", lambda q: []),
            ("GET", "/gtt/triggers", lambda q: x.gtts.listed()),
            ("GET", "/gtt/triggers/{gtt}", lambda q: x.gtts.get(self._gtt_id(q))),
            ("DELETE", "/gtt/triggers/{gtt}", lambda q: {
                "trigger_id": x.gtts.delete(self._gtt_id(q), x.clock.now())}),
            ("DELETE", "/orders/{key}/{order_id}", self._cancel),
            ("GET", "/instruments/historical/{token}/{interval}", self._historical),
        ]
        for method, path, fn in plain:
            r.add_route(method, path, self._answer(fn))
        r.add_get("/_sim/stats", self._answer(lambda q: self.stats(), bare=True))
        r.add_get("/_sim/clock", self._answer(lambda q: self.clock(), bare=True))
        r.add_get("/", self._ticker, allow_head=False)
        r.add_get("/connect/login", self._login_page)
        r.add_post("/session/token", self._login)
        r.add_delete("/session/token", self._logout)
        r.add_get("/instruments", self._instruments)
        r.add_get("/instruments/{exchange}", self._instruments)
        r.add_post("/orders/{key}", self._place)
        r.add_put("/orders/{key}/{order_id}", self._modify)
        r.add_post("/gtt/triggers", self._gtt_create)
        r.add_put("/gtt/triggers/{gtt}", self._gtt_modify)
        r.add_post("/margins/orders", self._json_route(x.rms.order_margins))
        r.add_post("/margins/basket", self._json_route(x.rms.basket))
        r.add_post("/charges/orders", self._json_route(x.rms.contract_note))
        r.add_post("/_sim/faults", self._set_faults)
        r.add_post("/_sim/positions", self._book)

    # -- pipeline -----------------------------------------------------------------------

    @web.middleware
    async def _pipeline(self, request: web.Request, handler: _HANDLER) -> web.StreamResponse:
        try:
            klass = classify(request.method, request.path)
            if klass is None:
                return await handler(request)
            await self._admit(request, klass)
            response = await handler(request)
            # a slow broker: the request was executed, its answer is late (a client that
            # gave up meanwhile has an UNKNOWN outcome for something that happened)
            delay = self.faults.latency_s()
            if delay > 0:
                await asyncio.sleep(delay)
            return response
        except KiteError as error:
            return _error(error.status, error.error_type, error.message)
        except web.HTTPException as error:
            if error.status < web.HTTPBadRequest.status_code or request.path == "/":
                raise
            kind = "InputException" if error.status == web.HTTPBadRequest.status_code \
                else "GeneralException"
            message = "Route not found" if error.status == web.HTTPNotFound.status_code \
                else error.reason
            return _error(error.status, kind, message)
        except Exception as error:  # noqa: BLE001 - answered 500, never a traceback
            _log.exception("request_failed", method=request.method, path=request.path)
            return _error(500, "GeneralException", f"simulator error: {error}")

    async def _admit(self, request: web.Request, klass: RequestClass) -> None:
        if request.headers.get("X-Kite-Version") != "3":
            raise KiteError.input("Missing or invalid header `X-Kite-Version`: must be 3")
        if self.faults.take_burst():
            self.limiter.throttle(klass)
            raise KiteError("NetworkException", "Too many requests", 429)
        placement = request.method == "POST" and klass is RequestClass.ORDERS
        if not self.limiter.admit(klass, placement=placement):
            raise KiteError("NetworkException", "Too many requests", 429)
        injected = self.faults.server_error()
        if injected is not None:
            status, kind = injected
            raise KiteError(kind, f"simulated server error {status} (fault error_5xx)", status)
        if (request.method, request.path) in _UNAUTHENTICATED:
            return
        if self.faults.spec.token_expired:
            raise KiteError("TokenException", "Token is invalid or has expired (fault "
                                              "token_expired).")
        scheme, _, credentials = request.headers.get("Authorization", "").partition(" ")
        api_key, _, token = credentials.partition(":")
        if scheme != "token" or not self.sessions.valid(api_key, token):
            raise KiteError("TokenException", "Incorrect `api_key` or `access_token`.")

    def _answer(self, fn: Callable[[web.Request], Any], bare: bool = False) -> _HANDLER:
        async def handler(request: web.Request) -> web.StreamResponse:
            data = fn(request)
            return web.json_response(data) if bare else _ok(data)
        return handler

    def _json_route(self, fn: Callable[[Any], Any]) -> _HANDLER:
        async def handler(request: web.Request) -> web.StreamResponse:
            return _ok(fn(await _json_body(request)))
        return handler

    # -- session --------------------------------------------------------------------------

    async def _login_page(self, request: web.Request) -> web.StreamResponse:
        if request.query.get("api_key") != self.sessions.api_key:
            raise KiteError.input("Invalid `api_key`.")
        query = urlencode({"request_token": secrets.token_hex(TOKEN_BYTES), "action": "login",
                           "status": "success"})
        raise web.HTTPFound(self._redirect + ("&" if "?" in self._redirect else "?") + query)

    async def _login(self, request: web.Request) -> web.StreamResponse:
        form = await request.post()
        token = self.sessions.login(str(form.get("api_key", "")),
                                    str(form.get("request_token", "")),
                                    str(form.get("checksum", "")))
        return _ok({**PROFILE, "api_key": self.sessions.api_key, "access_token": token,
                    "public_token": secrets.token_hex(TOKEN_BYTES),
                    "refresh_token": secrets.token_hex(TOKEN_BYTES),
                    "enctoken": "", "login_time": kite_time(self.exchange.clock.now())})

    async def _logout(self, request: web.Request) -> web.StreamResponse:
        self.sessions.revoke(request.query.get("access_token", ""))
        return _ok(True)

    # -- market data ---------------------------------------------------------------------

    async def _instruments(self, request: web.Request) -> web.StreamResponse:
        exchange = request.match_info.get("exchange")
        text = self.exchange.dump_csv
        if exchange is not None:
            rows = list(csv.reader(io.StringIO(text)))
            out = io.StringIO()
            writer = csv.writer(out, lineterminator="\n")
            writer.writerow(rows[0])
            writer.writerows(row for row in rows[1:] if row and row[-1] == exchange)
            text = out.getvalue()
        return web.Response(text=text, content_type="text/csv")

    def _historical(self, request: web.Request) -> Any:
        raise KiteError.input("historical data is not simulated")

    # -- orders ---------------------------------------------------------------------------

    @staticmethod
    def _variety(request: web.Request) -> None:
        variety = request.match_info["key"]
        if variety != "regular":
            raise KiteError.input(f"Invalid variety {variety!r}: the simulator takes regular")

    async def _place(self, request: web.Request) -> web.StreamResponse:
        self._variety(request)
        order = self.exchange.place(await request.post())
        if self.faults.chance(self.faults.spec.drop_response):
            # Placed, but the answer is lost: close the connection without a response, so
            # the client raises ConnectionError at once (instead of waiting for its timeout).
            self.faults.note("dropped_responses")
            _log.info("response_dropped", order_id=order.order_id, tag=order.tag)
            if request.transport is not None:
                request.transport.close()
        return _ok({"order_id": order.order_id})

    async def _modify(self, request: web.Request) -> web.StreamResponse:
        self._variety(request)
        form = await request.post()
        return _ok({"order_id": self.exchange.modify(request.match_info["order_id"], form)})

    def _cancel(self, request: web.Request) -> Any:
        self._variety(request)
        return {"order_id": self.exchange.cancel(request.match_info["order_id"])}

    def _order_trades(self, request: web.Request) -> Any:
        order = self.exchange.order(request.match_info["key"])
        return [trade_json(t) for t in self.exchange.trades if t.order is order]

    # -- GTT --------------------------------------------------------------------------------

    @staticmethod
    def _gtt_id(request: web.Request) -> int:
        text = request.match_info["gtt"]
        if not text.isdigit():
            raise KiteError.not_found(f"GTT {text} not found")
        return int(text)

    async def _gtt_create(self, request: web.Request) -> web.StreamResponse:
        form = await request.post()
        return _ok({"trigger_id": self.exchange.gtts.create(form, self.exchange.clock.now())})

    async def _gtt_modify(self, request: web.Request) -> web.StreamResponse:
        gtt_id = self._gtt_id(request)
        form = await request.post()
        return _ok({"trigger_id": self.exchange.gtts.modify(gtt_id, form,
                                                            self.exchange.clock.now())})

    # -- ticker and sim control -----------------------------------------------------------

    async def _ticker(self, request: web.Request) -> web.StreamResponse:
        if self.faults.spec.ticker_refuse:
            return web.Response(status=503, text="ticker connections refused (ticker_refuse)")
        return await self.hub.handle(request)

    def authorize_ticker(self, api_key: str, access_token: str) -> bool:
        """The hub's check of a WebSocket's credentials."""
        return not self.faults.spec.token_expired and self.sessions.valid(api_key, access_token)

    def set_faults(self, text: str) -> FaultSpec:
        """Put a fault spec in force (``ValueError`` if invalid) and apply its one-offs."""
        spec = self.faults.set(text)
        _log.info("faults_set", spec=spec.text)
        if spec.token_expired:
            self.sessions.revoke_all()
        if spec.ticker_disconnect:
            task = asyncio.get_running_loop().create_task(self._drop_ticker())
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        return spec

    async def _drop_ticker(self) -> None:
        dropped = await self.hub.drop_connections()
        _log.info("ticker_dropped", connections=dropped)

    async def _set_faults(self, request: web.Request) -> web.StreamResponse:
        body = await _json_body(request)
        text = body.get("spec") if isinstance(body, dict) else None
        if not isinstance(text, str):
            raise KiteError.input('Invalid body: expected {"spec": "..."}')
        try:
            spec = self.set_faults(text)
        except ValueError as error:
            raise KiteError.input(str(error)) from None
        return web.json_response({"spec": spec.text})

    async def _book(self, request: web.Request) -> web.StreamResponse:
        body = await _json_body(request)
        if not isinstance(body, dict):
            raise KiteError.input("Invalid body: expected a JSON object")
        order_id, trade_id = self.exchange.book_trade(body)
        return web.json_response({"order_id": order_id, "trade_id": trade_id})

    def clock(self) -> dict[str, Any]:
        """``/_sim/clock``: the simulated clock's start, now and speed (aware ISO)."""
        clock = self.exchange.clock
        return {"start": clock.start.isoformat(), "now": clock.now().isoformat(),
                "speed": clock.speed}

    def stats(self) -> dict[str, Any]:
        """``/_sim/stats`` (see the package doc)."""
        orders = self.exchange.orders()
        open_positions = [
            {key: row[key] for key in ("exchange", "tradingsymbol", "product", "quantity")}
            for row in views.positions(self.exchange)["net"] if row["quantity"]]
        return {**self.limiter.stats(),
                "orders_per_tag": dict(Counter(o.tag for o in orders)),
                "orders_by_status": dict(Counter(o.status.value for o in orders)),
                "orders": len(orders), "trades": len(self.exchange.trades),
                "open_positions": {"count": len(open_positions), "positions": open_positions},
                "ticker": self.hub.stats(), "faults": self.faults.spec.text,
                "fault_counts": self.faults.stats()}
