"""The configuration schema: every section, key, type and documented default.

Each section is a frozen dataclass; :class:`Config` holds one of each. The
loader (``_load.py``) fills them from TOML and ``KITESAGA_<SECTION>_<KEY>``
environment variables and validates every value. Nothing in the engine uses
a limit, path, percentage or timeout that is not here.

Every field carries a :class:`KeySpec` in ``metadata["spec"]``: its one-line
meaning (used by ``dump_defaults_toml`` and ``docs/configuration.md``) and the
range or choices the loader enforces.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, time
from decimal import Decimal

__all__ = [
    "AlertsConfig",
    "Bound",
    "CalendarConfig",
    "ChargeRate",
    "ChargesConfig",
    "Config",
    "ControlConfig",
    "DashboardConfig",
    "EngineConfig",
    "ExitsConfig",
    "JournalConfig",
    "KeySpec",
    "LiveConfig",
    "LoggingConfig",
    "MarketConfig",
    "MetricsConfig",
    "PaperConfig",
    "PricesConfig",
    "RateLimitsConfig",
    "ReplConfig",
    "SimConfig",
    "StrategyConfig",
    "SyncConfig",
    "UnderlyingConfig",
]

from actors.config._broker import LiveConfig, SimConfig, SyncConfig
from actors.config._operations import (
    AlertsConfig,
    ControlConfig,
    DashboardConfig,
    LoggingConfig,
    MetricsConfig,
    ReplConfig,
)
from actors.config._spec import _PCT, _POS, _RATIO, Bound, KeySpec, _m


@dataclass(frozen=True, slots=True)
class EngineConfig:
    """Money, risk and saga timing."""

    mode: str = field(default="paper", metadata=_m(
        '"paper" (simulated market) or "live" (Kite Connect; see [live])',
        choices=("paper", "live")))
    state_dir: str = field(default="~/.local/state/kitesaga", metadata=_m(
        "journal, logs, sockets (also KITESAGA_STATE_DIR)", nonempty=True))
    initial_cash_rupees: Decimal = field(default=Decimal("1000000"), metadata=_m(
        "paper account size", **_POS))
    daily_loss_limit_rupees: Decimal = field(default=Decimal("50000"), metadata=_m(
        "realised+unrealised loss -> HALTED", **_POS))
    reserve_buffer_pct: Decimal = field(default=Decimal("5"), metadata=_m(
        "extra cash reserved over the quoted cost", **_PCT))
    short_margin_pct: Decimal = field(default=Decimal("15"), metadata=_m(
        "margin for a short option, % of strike notional", gt=0, le=100))
    max_open_positions: int = field(default=2000, metadata=_m(
        "entries beyond this are refused", **_POS))
    fill_dedupe_window: int = field(default=1_000_000, metadata=_m(
        "fill ids the portfolio remembers to ignore a fill applied twice", **_POS))
    fill_timeout_s: float = field(default=10.0, metadata=_m(
        "wall seconds an order waits for its fill before it is cancelled", **_POS))
    cancel_timeout_s: float = field(default=10.0, metadata=_m(
        "seconds a cancel waits for its confirmation before polling", **_POS))
    poll_interval_s: float = field(default=2.0, metadata=_m(
        "how often a saga looks up an order it has heard nothing of; live, how often the "
        "order list is polled for orders without an update", **_POS))
    poll_max_interval_s: float = field(default=30.0, metadata=_m(
        "a saga's repeated look-ups of one order (outcome unknown, cancel unconfirmed) back "
        "off from poll_interval_s, doubling, up to this", **_POS))
    saga_deadline_s: float = field(default=60.0, metadata=_m(
        "every saga ends COMPLETED or COMPENSATED within this; at least "
        "fill_timeout_s + cancel_timeout_s", **_POS))
    flatten_attempts: int = field(default=3, metadata=_m(
        "exits `kitesaga halt --flatten` starts for one position before it gives up with "
        "an alert", ge=1, le=100))
    drain_timeout_s: float = field(default=15.0, metadata=_m(
        "graceful stop: in-flight sagas finish within this", **_POS))
    status_interval_s: float = field(default=1.0, metadata=_m(
        "console status line refresh (wall seconds)", **_POS))


@dataclass(frozen=True, slots=True)
class UnderlyingConfig:
    """One simulated index and its weekly option chain."""

    name: str = field(metadata=_m("index symbol; unique", nonempty=True))
    spot_rupees: Decimal = field(metadata=_m("opening spot price", **_POS))
    annual_volatility: Decimal = field(metadata=_m(
        "volatility of the simulated spot (0.14 = 14%)", gt=0, le=5))
    strike_step_rupees: Decimal = field(metadata=_m("distance between strikes", **_POS))
    lot_size: int = field(metadata=_m("units per lot", **_POS))
    expiry_weekday: int = field(metadata=_m(
        "0 = Monday ... 1 = Tuesday (NSE index expiries since Sep 2025) ... 4 = Friday",
        ge=0, le=4))
    token_base: int = field(metadata=_m(
        "exchange tokens of this chain start here (instrument token = exchange token << 8 "
        "| segment, as Kite's); unique", gt=0, le=16_000_000))


def _default_underlyings() -> tuple[UnderlyingConfig, ...]:
    return (
        UnderlyingConfig("NIFTY", Decimal("24000"), Decimal("0.14"), Decimal("50"), 65, 1,
                         35_000),
        UnderlyingConfig("BANKNIFTY", Decimal("52000"), Decimal("0.18"), Decimal("100"), 30, 1,
                         45_000),
    )


@dataclass(frozen=True, slots=True)
class MarketConfig:
    """The built-in simulated NSE market."""

    speed: float = field(default=1.0, metadata=_m("simulated seconds per wall second",
                                                  gt=0, le=10_000))
    seed: int = field(default=1, metadata=_m("random seed: same seed, same market", ge=0))
    tick_interval_s: float = field(default=1.0, metadata=_m(
        "simulated seconds between ticks of each instrument", **_POS))
    start_date: date | None = field(default=None, metadata=_m(
        'simulated trading day; "none" = next XNSE session'))
    start_time: time = field(default=time(9, 15), metadata=_m(
        "simulated clock starts here (IST)"))
    strikes_each_side: int = field(default=10, metadata=_m(
        "strikes listed above and below the money", **_POS))
    risk_free_rate: Decimal = field(default=Decimal("0.065"), metadata=_m(
        "annual rate for option pricing (0.065 = 6.5%)", ge=0, le=1))
    base_iv: Decimal = field(default=Decimal("0.14"), metadata=_m(
        "implied vol at the money", gt=0, le=5))
    smile_curvature: Decimal = field(default=Decimal("0.8"), metadata=_m(
        "iv = base * (1 + c * log(K/S)^2 * 100)", ge=0))
    spread_ticks: int = field(default=2, metadata=_m(
        "bid/ask each this many ticks from the mid (at least)", ge=0))
    spread_bps: Decimal = field(default=Decimal("10"), metadata=_m(
        "or this fraction of the mid, whichever wider", ge=0, le=10000))
    tick_size_rupees: Decimal = field(default=Decimal("0.05"), metadata=_m(
        "price tick of every instrument", **_POS))
    extra_instruments: int = field(default=0, metadata=_m(
        "extra synthetic equities (soak: 1,000 ticking instruments)", ge=0))
    underlyings: tuple[UnderlyingConfig, ...] = field(
        default_factory=_default_underlyings,
        metadata=_m("the simulated indices, as [[market.underlyings]] tables", nonempty=True))


@dataclass(frozen=True, slots=True)
class PricesConfig:
    """PriceActor's validation."""

    max_price_age_s: float = field(default=120.0, metadata=_m(
        "older prices are rejected and counted", **_POS))


@dataclass(frozen=True, slots=True)
class RateLimitsConfig:
    """Kite's published per-account limits (see kite-connect-facts.md)."""

    quote_per_s: int = field(default=1, metadata=_m("quote calls per second", **_POS))
    historical_per_s: int = field(default=3, metadata=_m(
        "historical-data calls per second", **_POS))
    orders_per_s: int = field(default=10, metadata=_m(
        "order place/modify/cancel calls per second", **_POS))
    orders_per_min: int = field(default=200, metadata=_m(
        "400 is documented; 200 is the older, safer figure", **_POS))
    orders_per_day: int = field(default=5000, metadata=_m("orders per trading day", **_POS))
    other_per_s: int = field(default=10, metadata=_m("every other call per second", **_POS))
    safety_margin_s: float = field(default=0.05, metadata=_m(
        "added to every one-second window, so network jitter cannot bunch two "
        "windows' calls into one at the broker", ge=0, le=1))
    backoff_initial_s: float = field(default=1.0, metadata=_m(
        "a broker 429 pauses that endpoint class this long; each further 429 doubles it",
        **_POS))
    backoff_max_s: float = field(default=30.0, metadata=_m(
        "the longest pause after repeated 429s", **_POS))
    retries_on_429: int = field(default=5, metadata=_m(
        "a call answered 429 (so not executed) is retried this often, each on a new permit",
        ge=0, le=100))
    quote_max_instruments: int = field(default=500, metadata=_m(
        "instruments per /quote call", gt=0, le=500))
    ltp_max_instruments: int = field(default=1000, metadata=_m(
        "instruments per /quote/ltp and /quote/ohlc call", gt=0, le=1000))


@dataclass(frozen=True, slots=True)
class PaperConfig:
    """The paper broker's matching engine and its injected faults."""

    slippage_bps: Decimal = field(default=Decimal("5"), metadata=_m(
        "market orders fill this far beyond bid/ask", ge=0, le=10000))
    partial_fill_ratio: Decimal = field(default=Decimal("0"), metadata=_m(
        "share of orders that fill only in part (0..1)", **_RATIO))
    reject_ratio: Decimal = field(default=Decimal("0"), metadata=_m(
        "share of orders rejected by the broker (0..1)", **_RATIO))
    unknown_outcome_ratio: Decimal = field(default=Decimal("0"), metadata=_m(
        "placed, but the answer is lost (0..1)", **_RATIO))
    stuck_ratio: Decimal = field(default=Decimal("0"), metadata=_m(
        "placed, then stuck in OPEN PENDING (0..1)", **_RATIO))


@dataclass(frozen=True, slots=True)
class ChargeRate:
    """One segment's charges from ``effective_from`` until the next row.

    ``segment`` is ``options``, ``futures`` or ``equity_intraday``. Percentages
    are of turnover (premium for options).
    """

    effective_from: date = field(metadata=_m("first trade date this row applies to"))
    segment: str = field(metadata=_m(
        "options, futures or equity_intraday", choices=("options", "futures", "equity_intraday")))
    brokerage_flat_rupees: Decimal = field(metadata=_m("per executed order", ge=0))
    brokerage_pct: Decimal | None = field(metadata=_m(
        '"none": flat only; else min(pct, flat)', **_PCT))
    stt_buy_pct: Decimal = field(metadata=_m("securities transaction tax, buy side", **_PCT))
    stt_sell_pct: Decimal = field(metadata=_m("securities transaction tax, sell side", **_PCT))
    transaction_pct: Decimal = field(metadata=_m("exchange transaction charges", **_PCT))
    sebi_rupees_per_crore: Decimal = field(metadata=_m("SEBI turnover fee", ge=0))
    stamp_buy_pct: Decimal = field(metadata=_m("stamp duty, buy side", **_PCT))
    gst_pct: Decimal = field(metadata=_m("on brokerage + transaction + SEBI", **_PCT))


def _default_rates() -> tuple[ChargeRate, ...]:
    d = Decimal
    base = date(2024, 10, 1)
    budget = date(2026, 4, 1)
    return (
        ChargeRate(base, "options", d("20"), None, d("0"), d("0.1"), d("0.03503"), d("10"),
                   d("0.003"), d("18")),
        ChargeRate(budget, "options", d("20"), None, d("0"), d("0.15"), d("0.03503"), d("10"),
                   d("0.003"), d("18")),
        ChargeRate(base, "futures", d("20"), d("0.03"), d("0"), d("0.02"), d("0.00173"),
                   d("10"), d("0.002"), d("18")),
        ChargeRate(budget, "futures", d("20"), d("0.03"), d("0"), d("0.05"), d("0.00173"),
                   d("10"), d("0.002"), d("18")),
        ChargeRate(base, "equity_intraday", d("20"), d("0.03"), d("0"), d("0.025"),
                   d("0.00297"), d("10"), d("0.003"), d("18")),
    )


@dataclass(frozen=True, slots=True)
class ChargesConfig:
    """Zerodha's charges as a dated schedule, applied by trade date."""

    rates: tuple[ChargeRate, ...] = field(
        default_factory=_default_rates,
        metadata=_m("the dated schedule, as [[charges.rates]] tables", nonempty=True))


@dataclass(frozen=True, slots=True)
class CalendarConfig:
    """The exchange calendar: XNSE holidays plus overrides."""

    exchange: str = field(default="XNSE", metadata=_m(
        "the `holidays` financial calendar", nonempty=True))
    session_open: time = field(default=time(9, 15), metadata=_m("IST"))
    session_close: time = field(default=time(15, 30), metadata=_m("IST; after session_open"))
    extra_holidays: tuple[date, ...] = field(default=(), metadata=_m("unscheduled closures"))
    extra_sessions: tuple[date, ...] = field(default=(), metadata=_m(
        "special sessions (e.g. Muhurat trading)"))


@dataclass(frozen=True, slots=True)
class ExitsConfig:
    """Default exit rules given to every position a strategy opens."""

    stop_loss_pct: Decimal | None = field(default=Decimal("25"), metadata=_m(
        'loss that exits; "none" = no stop loss', gt=0, le=1000))
    take_profit_pct: Decimal | None = field(default=Decimal("40"), metadata=_m(
        'gain that exits; "none" = no target', gt=0, le=1000))
    trail_activation_pct: Decimal | None = field(default=Decimal("15"), metadata=_m(
        'gain that arms the trailing stop; "none" = no trailing', gt=0, le=1000))
    trail_giveback_pct: Decimal | None = field(default=Decimal("8"), metadata=_m(
        'an armed trail exits after giving back this much; "none" = no trailing', gt=0, le=100))
    square_off_at: time | None = field(default=time(15, 15), metadata=_m(
        'intraday positions squared off (IST); "none" = never'))
    exit_on_expiry_day: bool = field(default=True, metadata=_m(
        "close positions on their expiry day"))


@dataclass(frozen=True, slots=True)
class StrategyConfig:
    """The reference strategies that trade the simulated market."""

    enabled: tuple[str, ...] = field(default=("momentum", "straddle"), metadata=_m(
        "strategies that run: momentum, straddle", choices=("momentum", "straddle")))
    underlying: str = field(default="NIFTY", metadata=_m(
        "the name of one of market.underlyings", nonempty=True))
    lots: int = field(default=1, metadata=_m("lots per leg", **_POS))
    momentum_lookback_ticks: int = field(default=20, metadata=_m(
        "ticks of the underlying to measure the move", **_POS))
    momentum_threshold_pct: Decimal = field(default=Decimal("0.05"), metadata=_m(
        "move that triggers an entry", gt=0, le=100))
    straddle_every_s: float = field(default=1800.0, metadata=_m(
        "simulated seconds between straddle entries", **_POS))
    max_entries_per_minute: int = field(default=30, metadata=_m(
        "a strategy's own brake", **_POS))


@dataclass(frozen=True, slots=True)
class JournalConfig:
    """The append-only journal: saga steps, fills and cash changes, written ahead."""

    enabled: bool = field(default=True, metadata=_m(
        "write the journal; false (benchmarks only) passes appends through and nothing "
        "survives a restart"))
    max_batch: int = field(default=500, metadata=_m(
        "most records committed in one transaction (group commit)", gt=0, le=100_000))
    snapshot_every: int = field(default=1000, metadata=_m(
        "events between snapshots; start-up loads the latest snapshot, then replays the "
        "events after it", gt=0))
    latency_window: int = field(default=1024, metadata=_m(
        "recent commits the published write latency p50/p99 covers", gt=0, le=1_000_000))
    file_paper: str = field(default="journal-paper.sqlite3", metadata=_m(
        "the paper book's journal inside the state dir; a plain file name", nonempty=True))
    file_live: str = field(default="journal-live.sqlite3", metadata=_m(
        "the live book's journal inside the state dir; a plain file name, not file_paper",
        nonempty=True))


@dataclass(frozen=True, slots=True)
class Config:
    """The whole validated configuration."""

    engine: EngineConfig = field(default_factory=EngineConfig)
    market: MarketConfig = field(default_factory=MarketConfig)
    prices: PricesConfig = field(default_factory=PricesConfig)
    rate_limits: RateLimitsConfig = field(default_factory=RateLimitsConfig)
    paper: PaperConfig = field(default_factory=PaperConfig)
    charges: ChargesConfig = field(default_factory=ChargesConfig)
    calendar: CalendarConfig = field(default_factory=CalendarConfig)
    exits: ExitsConfig = field(default_factory=ExitsConfig)
    strategy: StrategyConfig = field(default_factory=StrategyConfig)
    live: LiveConfig = field(default_factory=LiveConfig)
    sim: SimConfig = field(default_factory=SimConfig)
    logging: LoggingConfig = field(default_factory=LoggingConfig)
    journal: JournalConfig = field(default_factory=JournalConfig)
    sync: SyncConfig = field(default_factory=SyncConfig)
    control: ControlConfig = field(default_factory=ControlConfig)
    repl: ReplConfig = field(default_factory=ReplConfig)
    metrics: MetricsConfig = field(default_factory=MetricsConfig)
    alerts: AlertsConfig = field(default_factory=AlertsConfig)
    dashboard: DashboardConfig = field(default_factory=DashboardConfig)
