"""SimServer: the simulator's event loop on its own thread, its HTTP site and market task.

Everything that touches the simulated exchange runs on that one loop; other
threads only hand it work (``asyncio.run_coroutine_threadsafe``) and wait for
the answer. The market task steps the synthetic market every
``market.tick_interval_s`` simulated seconds (``/ market.speed`` wall
seconds, at least ``MIN_STEP_WALL_S``), feeds the prices to the matching
engine and the GTTs (``SimExchange.step``) and to the ticker hub. Steps
missed while busy are not replayed: the market jumps to the clock's time.
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Callable
from typing import Any, TypeVar

import structlog
from aiohttp import web

from actors._loop_thread import LoopThread
from actors.config._schema import Config
from actors.kitesim._exchange import SimExchange
from actors.kitesim._faults import FaultState, parse_faults
from actors.kitesim._http import KiteApi
from actors.kitesim._limits import RateLimiter
from actors.kitesim._ticker import TickerHub

__all__ = ["CALL_TIMEOUT_S", "MAX_REQUEST_LINE_BYTES", "MIN_STEP_WALL_S", "SHUTDOWN_GRACE_S",
           "STARTUP_TIMEOUT_S", "SimServer"]

_log = structlog.get_logger("kitesaga.sim")

STARTUP_TIMEOUT_S = 30.0
"""Longest wait for the loop to build the market and bind the port."""

CALL_TIMEOUT_S = 10.0
"""Longest wait for the loop to answer ``stats``/``set_faults``/``issue_access_token``/``stop``."""

SHUTDOWN_GRACE_S = 2.0
"""On stop, requests in flight (a long injected latency) get this long to finish."""

MIN_STEP_WALL_S = 0.005
"""Shortest wall time between two market steps, however fast the simulated clock runs."""

MAX_REQUEST_LINE_BYTES = 262_144
"""Longest request line accepted: a ``/quote/ltp`` of 1,000 instruments is ~30 kB of query
string, far past aiohttp's 8 kB default."""

_SIGNALS = {signal.SIGINT, signal.SIGTERM}
_ANY_HOST = frozenset({"0.0.0.0", "::", ""})  # wildcard binds: clients use loopback
_PORTS = 65536
_T = TypeVar("_T")


class SimServer:
    """A Kite Connect v3 simulator on ``http://HOST:PORT`` (REST) and ``ws://HOST:PORT`` (ticker).

    Contract: ``__init__`` validates the fault spec (``ValueError`` naming
    the item) and does nothing else; :meth:`start` builds the exchange on a
    daemon thread's event loop, binds ``config.sim.host`` and the port
    (``port`` or ``config.sim.port``; 0 picks a free one) and returns once
    listening. :meth:`stop` closes every connection and ends the thread; it
    is idempotent. ``stats``, ``set_faults`` and ``issue_access_token`` run
    on the loop (never call them from it). One start per instance.
    """

    def __init__(self, config: Config, *, port: int | None = None,
                 faults: str | None = None) -> None:
        self._config = config
        self._faults_text = config.sim.faults if faults is None else faults
        parse_faults(self._faults_text)
        self._host = config.sim.host
        self._wanted_port = config.sim.port if port is None else port
        if not 0 <= self._wanted_port < _PORTS:
            raise ValueError(f"port: must be 0..65535, got {self._wanted_port!r}")
        self._port = 0
        self._thread = LoopThread("kitesim", _log)
        self._api: KiteApi | None = None
        self._runner: web.AppRunner | None = None
        self._market_task: asyncio.Task[None] | None = None

    # -- lifecycle ----------------------------------------------------------------------

    def start(self) -> SimServer:
        """Start the loop thread, build the exchange, bind; return once listening."""
        if self._thread.loop is not None:
            raise RuntimeError("SimServer: already started (one start per instance)")
        try:
            self._thread.start(self._startup, STARTUP_TIMEOUT_S)
        except BaseException:
            self.stop()
            raise
        _log.info("sim_listening", url=self.url, api_key=self.api_key)
        return self

    def stop(self) -> None:
        """Stop serving and end the loop thread (idempotent)."""
        if not self._thread.stop(self._shutdown, CALL_TIMEOUT_S):
            return
        _log.info("sim_stopped")

    def run_forever(self, on_ready: Callable[[SimServer], None] | None = None) -> None:
        """Serve until SIGINT or SIGTERM (main thread only), then stop cleanly.

        ``on_ready`` is called once listening (the CLI prints its line there).
        """
        previous = signal.pthread_sigmask(signal.SIG_BLOCK, _SIGNALS)
        try:
            if self._thread.loop is None:
                self.start()
            if on_ready is not None:
                on_ready(self)
            received = signal.sigwait(_SIGNALS)
            _log.info("sim_signal", signal=signal.Signals(received).name)
        finally:
            self.stop()
            signal.pthread_sigmask(signal.SIG_SETMASK, previous)

    async def _startup(self) -> None:
        config = self._config
        loop = asyncio.get_running_loop()
        faults = FaultState("", config.market.seed)
        exchange = SimExchange(config, faults, loop)

        def authorize(api_key: str, access_token: str) -> bool:
            return api.authorize_ticker(api_key, access_token)

        hub = TickerHub(exchange.instruments, authorize)
        api = KiteApi(config.sim, exchange, RateLimiter(config.sim), faults, hub)
        exchange.on_order = hub.publish_order
        api.set_faults(self._faults_text)
        self._api = api
        runner = web.AppRunner(api.app, access_log=None, handle_signals=False,
                               shutdown_timeout=SHUTDOWN_GRACE_S,
                               max_line_size=MAX_REQUEST_LINE_BYTES)
        await runner.setup()
        self._runner = runner
        await web.TCPSite(runner, self._host, self._wanted_port).start()
        self._port = int(runner.addresses[0][1])
        self._market_task = loop.create_task(self._market(exchange, hub))

    async def _market(self, exchange: SimExchange, hub: TickerHub) -> None:
        loop = asyncio.get_running_loop()
        interval = max(exchange.clock.seconds_to_wall(self._config.market.tick_interval_s),
                       MIN_STEP_WALL_S)
        due = loop.time() + interval
        while True:
            await asyncio.sleep(max(0.0, due - loop.time()))
            try:
                hub.publish_prices(exchange.step())
            except Exception:  # noqa: BLE001 - keep the market alive; logged with its trace
                _log.exception("market_step_failed")
            due = max(due + interval, loop.time())

    async def _shutdown(self) -> None:
        if self._market_task is not None:
            self._market_task.cancel()
        if self._api is not None:
            await self._api.hub.drop_connections()
        if self._runner is not None:
            await self._runner.cleanup()

    # -- properties and calls onto the loop -----------------------------------------------

    @property
    def port(self) -> int:
        """The bound port (0 before :meth:`start`)."""
        return self._port

    @property
    def url(self) -> str:
        """The REST root, for ``KiteConnect(root=...)``."""
        return f"http://{self._client_host()}:{self._port}"

    @property
    def ws_url(self) -> str:
        """The ticker root, for ``KiteTicker(root=...)``."""
        return f"ws://{self._client_host()}:{self._port}"

    @property
    def api_key(self) -> str:
        """The API key the simulator accepts."""
        return self._config.sim.api_key

    @property
    def api_secret(self) -> str:
        """The API secret of the session checksum."""
        return self._config.sim.api_secret

    def stats(self) -> dict[str, Any]:
        """The JSON of ``GET /_sim/stats``."""
        return self._call(lambda api: api.stats())

    def set_faults(self, spec: str) -> None:
        """Put a fault spec in force, as ``POST /_sim/faults`` (``ValueError`` if invalid)."""
        self._call(lambda api: api.set_faults(spec))

    def issue_access_token(self) -> str:
        """A valid access token without the login dance (tests)."""
        return self._call(lambda api: api.sessions.issue())

    def _client_host(self) -> str:
        if self._host in _ANY_HOST:
            return "127.0.0.1"
        return f"[{self._host}]" if ":" in self._host else self._host

    def _call(self, fn: Callable[[KiteApi], _T]) -> _T:
        api = self._api
        if self._thread.loop is None or api is None or self._thread.stopped:
            raise RuntimeError("SimServer: not running")

        async def on_loop() -> _T:
            return fn(api)

        return self._thread.call(on_loop(), CALL_TIMEOUT_S)
