"""A real SimServer on a free port and a real kiteconnect client pointed at it."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from kiteconnect import KiteConnect

from actors.config import Config, load_config
from actors.kitesim import SimServer
from tests.support import wait_until

FAST = {
    "KITESAGA_SIM_PORT": "0",
    "KITESAGA_MARKET_SPEED": "300",
    "KITESAGA_MARKET_TICK_INTERVAL_S": "1",
    "KITESAGA_MARKET_START_DATE": "2026-03-04",
    "KITESAGA_SIM_OPEN_PENDING_S": "0.01",
    "KITESAGA_SIM_QUOTE_PER_S": "1000",
    "KITESAGA_SIM_OTHER_PER_S": "1000",
    "KITESAGA_SIM_ORDERS_PER_S": "1000",
    "KITESAGA_SIM_ORDERS_PER_MIN": "100000",
}
"""Fast market steps, quick activation and limits no functional test reaches."""


def sim_config(**env: str) -> Config:
    """``FAST`` plus ``KITESAGA_*`` overrides, through the real loader."""
    return load_config(None, env={**FAST, **env})


def client(server: SimServer, token: str | None = None) -> KiteConnect:
    """A kiteconnect client on ``server`` with a fresh access token (or ``token``)."""
    kite = KiteConnect(server.api_key, root=server.url, timeout=5)
    kite.reqsession.trust_env = False
    kite.set_access_token(token or server.issue_access_token())
    return kite


@contextmanager
def running(faults: str | None = None, **env: str) -> Iterator[tuple[SimServer, KiteConnect]]:
    """A started simulator and a logged-in client; stopped afterwards."""
    server = SimServer(sim_config(**env), faults=faults).start()
    try:
        yield server, client(server)
    finally:
        server.stop()


def last_status(kite: KiteConnect, order_id: str) -> str:
    """The order's current status from the order book."""
    status: str = next(o for o in kite.orders() if o["order_id"] == order_id)["status"]
    return status


def wait_status(kite: KiteConnect, order_id: str, *statuses: str,
                timeout: float = 10.0) -> dict[str, Any]:
    """Poll the order book until the order is in one of ``statuses``; the order."""
    wait_until(lambda: last_status(kite, order_id) in statuses, timeout,
               f"order {order_id} reaches {statuses}")
    order: dict[str, Any] = next(o for o in kite.orders() if o["order_id"] == order_id)
    return order


def place(kite: KiteConnect, symbol: str = "M&M", side: str = "BUY", quantity: int = 1,
          order_type: str = "MARKET", exchange: str = "NSE", **extra: Any) -> str:
    """Place a regular MIS order (MARKET ones with automatic market protection)."""
    if order_type in ("MARKET", "SL-M") and "market_protection" not in extra:
        extra["market_protection"] = -1
    order_id: str = kite.place_order("regular", exchange, symbol, side, quantity, "MIS",
                                     order_type, **extra)
    return order_id
