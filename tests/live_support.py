"""A real Kite simulator plus a live engine wired to it over loopback, for tests."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

import pykka
from cryptography.fernet import Fernet
from kiteconnect.exceptions import NetworkException

from actors._system import Engine
from actors.config import Config, load_config
from actors.kite import LiveSession, TokenStore
from actors.kite._token import token_path
from actors.kitesim import SimServer
from actors.market import IST
from messages import (
    Instrument,
    InstrumentKind,
    SagaCompensated,
    SagaCompleted,
    TradingState,
)
from tests.support import Recorder, wait_until

FAST = {
    "KITESAGA_ENGINE_FILL_TIMEOUT_S": "3", "KITESAGA_ENGINE_CANCEL_TIMEOUT_S": "2",
    "KITESAGA_ENGINE_POLL_INTERVAL_S": "0.5", "KITESAGA_ENGINE_SAGA_DEADLINE_S": "30",
    "KITESAGA_ENGINE_DRAIN_TIMEOUT_S": "10", "KITESAGA_MARKET_SPEED": "30",
    "KITESAGA_MARKET_TICK_INTERVAL_S": "1", "KITESAGA_SIM_PORT": "0",
    "KITESAGA_SIM_OPEN_PENDING_S": "0.02", "KITESAGA_LIVE_CLOCK": "simulator",
    "KITESAGA_ENGINE_MODE": "live", "KITESAGA_LIVE_TICKER_STALE_S": "3",
    "KITESAGA_LIVE_REST_POLL_INTERVAL_S": "0.5", "KITESAGA_LIVE_REQUEST_TIMEOUT_S": "2",
}


def live_config(state: Path, **env: str) -> Config:
    """Live mode against the simulator, fast timeouts; ``env`` overrides anything."""
    values = {**FAST, "KITESAGA_ENGINE_STATE_DIR": str(state), **env}
    return load_config(None, env=values)


def zerodha_env(server: SimServer) -> dict[str, str]:
    """The variables a user exports for a dress rehearsal against ``server``."""
    return {"ZERODHA_API_KEY": server.api_key, "ZERODHA_API_SECRET": server.api_secret,
            "ZERODHA_TOKEN_KEY": Fernet.generate_key().decode(),
            "ZERODHA_API_ROOT": server.url, "ZERODHA_WS_ROOT": server.ws_url}


def store_token(server: SimServer, config: Config, env: dict[str, str]) -> str:
    """Log in without the browser: a fresh simulator token, stored as `login` would."""
    token = server.issue_access_token()
    TokenStore(token_path(config), env).save(token, server.api_key, datetime.now(IST))
    return token


@contextmanager
def simulator(config: Config, faults: str = "") -> Iterator[SimServer]:
    server = SimServer(config, port=0, faults=faults).start()
    try:
        yield server
    finally:
        server.stop()


class LiveHarness:
    """A simulator and a live engine (no strategies) connected to it."""

    def __init__(self, server: SimServer, engine: Engine, events: Recorder,
                 env: dict[str, str]) -> None:
        self.server = server
        self.engine = engine
        self.events = events
        self.env = env

    def option(self, kind: InstrumentKind = InstrumentKind.CE, offset: int = 0) -> Instrument:
        """A NIFTY option of the nearest expiry near the middle of the chain."""
        expiry = min(self.engine.instruments.expiries("NIFTY"))
        chain = [i for i in self.engine.instruments.options("NIFTY", expiry) if i.kind is kind]
        chain.sort(key=lambda i: i.strike.paise if i.strike else 0)
        return chain[len(chain) // 2 + offset]

    def priced(self, instrument: Instrument, timeout: float = 15.0) -> None:
        """Wait until PriceActor holds a price for ``instrument``."""
        book = self.engine.prices.proxy().snapshot.get()
        wait_until(lambda: instrument.instrument_token in book.latest().prices, timeout,
                   what=f"a price for {instrument.tradingsymbol}")

    def ended(self, saga_id_count: int = 1, timeout: float = 30.0) -> list[Any]:
        """Wait for ``saga_id_count`` sagas to end; return their end events."""
        self.events.wait_for(lambda ms: sum(isinstance(m, SagaCompleted | SagaCompensated)
                                            for m in ms) >= saga_id_count, timeout)
        return [m for m in self.events.messages
                if isinstance(m, SagaCompleted | SagaCompensated)]

    def stats(self) -> dict[str, Any]:
        return self.server.stats()


@contextmanager
def live_engine(tmp_path: Path, faults: str = "", run_strategies: bool = False,
                **env: str) -> Iterator[LiveHarness]:
    config = live_config(tmp_path, **env)
    with simulator(config, faults) as server:
        zenv = zerodha_env(server)
        store_token(server, config, zenv)
        session = LiveSession.connect(config, zenv)
        events = Recorder()
        engine = Engine(config, run_strategies=run_strategies, listeners=(events,),
                        session=session).start()
        wait_until(lambda: engine.sync_snapshot.startup != "pending" and (
            engine.sync_snapshot.startup != "clean"
            or engine.orders_snapshot.state is TradingState.ACTIVE), 15,
            what="the start-up reconciliation")
        try:
            yield LiveHarness(server, engine, events, zenv)
        finally:
            engine.stop(drain=False)
            pykka.ActorRegistry.stop_all()


T = TypeVar("T")


def as_user(call: Callable[[], T]) -> T:
    """A call from outside the engine spends the account's budget too (the engine's
    limiter cannot see it): a 429 means it was not executed, so it is made again."""
    result: list[T] = []

    def attempt() -> bool:
        try:
            result.append(call())
        except NetworkException as exc:
            if exc.code != 429:
                raise
            return False
        return True

    wait_until(attempt, what="a call outside the engine within the account's budget")
    return result[0]


class Restarts:
    """One simulator and one stored token; :meth:`engine` starts a live engine on the
    same state dir (its journal) each time, once its start-up reconciliation decided."""

    def __init__(self, server: SimServer, config: Config, env: dict[str, str]) -> None:
        self.server, self.config, self.env = server, config, env

    def engine(self) -> LiveHarness:
        events = Recorder()
        started = Engine(self.config, run_strategies=False, listeners=(events,),
                         session=LiveSession.connect(self.config, self.env)).start()
        wait_until(lambda: started.sync_snapshot.startup != "pending", 30,
                   what="the start-up reconciliation")
        return LiveHarness(self.server, started, events, self.env)


@contextmanager
def restarts(tmp_path: Path, **env: str) -> Iterator[Restarts]:
    """A simulator that outlives the engines :meth:`Restarts.engine` starts on it."""
    config = live_config(tmp_path, **env)
    with simulator(config) as server:
        zenv = zerodha_env(server)
        store_token(server, config, zenv)
        yield Restarts(server, config, zenv)
