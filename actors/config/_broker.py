"""Configuration of the broker side: live trading on Kite Connect, the simulator,
and reconciliation with the broker."""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal

from actors.config._spec import _POS, _m

__all__ = ["LiveConfig", "SimConfig", "SyncConfig"]


@dataclass(frozen=True, slots=True)
class LiveConfig:
    """Live trading on Kite Connect (``engine.mode = "live"``)."""

    api_root: str = field(default="https://api.kite.trade", metadata=_m(
        "Kite Connect REST root (env ZERODHA_API_ROOT wins)", nonempty=True))
    ws_root: str = field(default="wss://ws.kite.trade", metadata=_m(
        "KiteTicker WebSocket root (env ZERODHA_WS_ROOT wins)", nonempty=True))
    login_url: str = field(default="https://kite.zerodha.com/connect/login", metadata=_m(
        "where `kitesaga login` sends you", nonempty=True))
    redirect_port: int = field(default=8765, metadata=_m(
        "`kitesaga login` listens once on 127.0.0.1 at this port for the redirect; "
        "register http://127.0.0.1:PORT/ as the app's redirect URL", gt=0, lt=65536))
    login_timeout_s: float = field(default=300.0, metadata=_m(
        "how long `kitesaga login` waits for the redirect", **_POS))
    token_file: str = field(default="access_token.enc", metadata=_m(
        "encrypted access token inside the state dir; a plain file name", nonempty=True))
    request_timeout_s: float = field(default=7.0, metadata=_m(
        "HTTP timeout per broker call; a POST that times out has an UNKNOWN outcome",
        **_POS))
    market_protection: int = field(default=-1, metadata=_m(
        "sent on every MARKET and SL-M order: -1 automatic, or 1..100 %", ge=-1, le=100))
    margin_check: bool = field(default=True, metadata=_m(
        "pre-check every entry against the broker's order-margins API"))
    broker_charges: bool = field(default=True, metadata=_m(
        "fills carry the charges of the broker's charges API (else the local schedule)"))
    instruments_cache_max: int = field(default=200_000, metadata=_m(
        "most instruments kept from the daily dump", **_POS))
    exchanges: tuple[str, ...] = field(default=("NSE", "NFO"), metadata=_m(
        "exchanges whose instruments are loaded at start", nonempty=True))
    ticker_mode: str = field(default="full", metadata=_m(
        "KiteTicker mode; only full packets carry the exchange timestamp",
        choices=("full", "quote")))
    ticker_stale_s: float = field(default=5.0, metadata=_m(
        "no tick for this long (wall seconds) -> REST prices until the ticker is back",
        **_POS))
    ticker_max_instruments: int = field(default=3000, metadata=_m(
        "instruments per ticker connection (Kite allows 3,000)", gt=0, le=3000))
    ticker_reconnect_max_delay_s: int = field(default=60, metadata=_m(
        "longest wait between ticker reconnect attempts", gt=4))
    rest_poll_interval_s: float = field(default=1.0, metadata=_m(
        "REST price polling interval while the ticker is down", **_POS))
    rest_price_call: str = field(default="quote", metadata=_m(
        '"quote" (500/call, exchange timestamp, bid/ask) or "ltp" (1,000/call, no '
        "timestamp: stamped when received)", choices=("quote", "ltp")))
    chain_strikes: int = field(default=10, metadata=_m(
        "option strikes each side of the spot streamed for each strategy underlying",
        ge=0, le=100))
    gtt_protection: bool = field(default=True, metadata=_m(
        "protect each filled entry with a two-leg (OCO) GTT at its stop and target"))
    gtt_buffer_pct: Decimal = field(default=Decimal("1"), metadata=_m(
        "the GTT triggers this much beyond the engine's own stop/target, so the engine's "
        "exit acts first and the GTT is the backstop if the engine is down", ge=0, le=50))
    clock: str = field(default="wall", metadata=_m(
        '"wall" (production) or "simulator" (a dress rehearsal: follow the simulator\'s '
        "clock from GET /_sim/clock)", choices=("wall", "simulator")))


@dataclass(frozen=True, slots=True)
class SimConfig:
    """``kitesaga sim``: the Kite-compatible simulator (its market is [market])."""

    host: str = field(default="127.0.0.1", metadata=_m("listen address", nonempty=True))
    port: int = field(default=8787, metadata=_m("listen port; 0 picks a free one",
                                                ge=0, lt=65536))
    api_key: str = field(default="kitesim", metadata=_m(
        "the API key the simulator accepts (not a secret: a rehearsal key)", nonempty=True))
    api_secret: str = field(default="kitesim-secret", metadata=_m(
        "the simulator's API secret, for the session checksum", nonempty=True))
    quote_per_s: int = field(default=1, metadata=_m("quote calls/s before 429", **_POS))
    historical_per_s: int = field(default=3, metadata=_m("historical calls/s", **_POS))
    orders_per_s: int = field(default=10, metadata=_m("order calls/s", **_POS))
    orders_per_min: int = field(default=400, metadata=_m("orders/minute", **_POS))
    orders_per_day: int = field(default=5000, metadata=_m("orders/day", **_POS))
    other_per_s: int = field(default=10, metadata=_m("every other call/s", **_POS))
    redirect_url: str = field(default="http://127.0.0.1:8765/", metadata=_m(
        "where the simulator's /connect/login redirects with a request_token (the app's "
        "registered redirect URL)", nonempty=True))
    open_pending_s: float = field(default=0.05, metadata=_m(
        "wall seconds an order stays OPEN PENDING before it works", ge=0))
    faults: str = field(default="", metadata=_m(
        "fault spec, e.g. \"latency_ms=50,error_5xx=0.05,reject=0.1\" (see docs/live-trading.md)"))


@dataclass(frozen=True, slots=True)
class SyncConfig:
    """Live reconciliation with the broker (SyncActor); the paper book is never reconciled."""

    positions_interval_s: float = field(default=60.0, metadata=_m(
        "wall seconds between comparisons of the book's positions with the broker's", **_POS))
    orders_interval_s: float = field(default=30.0, metadata=_m(
        "wall seconds between reads of the broker's order book (foreign and stale orders)",
        **_POS))
    gtt_interval_s: float = field(default=120.0, metadata=_m(
        "wall seconds between comparisons of the broker's active GTTs with the protected "
        "positions", **_POS))
    in_flight_max_age_s: float = field(default=120.0, metadata=_m(
        "an order of ours still working at the broker this long after it was placed (broker "
        "clock) is a STALE_IN_FLIGHT drift", **_POS))
    startup_timeout_s: float = field(default=60.0, metadata=_m(
        "broker errors during the start-up reconciliation are retried this long; then new "
        "entries stay HALTED", **_POS))
    startup_retry_s: float = field(default=2.0, metadata=_m(
        "wall seconds between start-up reconciliation attempts after a broker error",
        **_POS))
    resolve_drifts: bool = field(default=True, metadata=_m(
        "act on position drifts: adopt what the broker holds beyond the book as EXTERNAL "
        "(with the [exits] rules), close book positions on the broker's trades as evidence"))
    resolve_timeout_s: float = field(default=30.0, metadata=_m(
        "wall seconds to wait for a resolution to reach the book before it may be asked again",
        **_POS))
