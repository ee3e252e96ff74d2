"""The configuration schema: every section, key, type and documented default.

Each section is a frozen dataclass; :class:`Config` holds one of each. The
loader (``_load.py``) fills them from TOML and ``KITESAGA_<SECTION>_<KEY>``
environment variables and validates every value. Nothing in the engine uses
a limit, path, percentage or timeout that is not here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, time
from decimal import Decimal

__all__ = [
    "CalendarConfig",
    "ChargeRate",
    "ChargesConfig",
    "Config",
    "EngineConfig",
    "ExitsConfig",
    "LoggingConfig",
    "MarketConfig",
    "PaperConfig",
    "PricesConfig",
    "RateLimitsConfig",
    "StrategyConfig",
    "UnderlyingConfig",
]


@dataclass(frozen=True, slots=True)
class EngineConfig:
    """Money, risk and saga timing."""

    mode: str = "paper"  # "paper" (simulated market) or "live" (a later issue)
    state_dir: str = "~/.local/state/kitesaga"  # journal, logs, sockets
    initial_cash_rupees: Decimal = Decimal("1000000")  # paper account size
    daily_loss_limit_rupees: Decimal = Decimal("50000")  # realised+unrealised loss -> HALTED
    reserve_buffer_pct: Decimal = Decimal("5")  # extra cash reserved over the quoted cost
    short_margin_pct: Decimal = Decimal("15")  # margin for a short option, % of strike notional
    max_open_positions: int = 2000  # entries beyond this are refused
    fill_timeout_s: float = 10.0  # simulated seconds an entry waits for its fill before cancel
    cancel_timeout_s: float = 10.0  # seconds a cancel waits for its confirmation before polling
    poll_interval_s: float = 2.0  # order_history polling when no update arrives
    saga_deadline_s: float = 60.0  # every saga ends COMPLETED or COMPENSATED within this
    drain_timeout_s: float = 15.0  # graceful stop: in-flight sagas finish within this
    status_interval_s: float = 1.0  # console status line refresh (wall seconds)


@dataclass(frozen=True, slots=True)
class UnderlyingConfig:
    """One simulated index and its weekly option chain."""

    name: str
    spot_rupees: Decimal
    annual_volatility: Decimal
    strike_step_rupees: Decimal
    lot_size: int
    expiry_weekday: int  # 0 = Monday ... 1 = Tuesday (NSE index expiries since Sep 2025)
    token_base: int  # instrument tokens of this chain start here


def _default_underlyings() -> tuple[UnderlyingConfig, ...]:
    return (
        UnderlyingConfig("NIFTY", Decimal("24000"), Decimal("0.14"), Decimal("50"), 65, 1,
                         10_000_000),
        UnderlyingConfig("BANKNIFTY", Decimal("52000"), Decimal("0.18"), Decimal("100"), 30, 1,
                         20_000_000),
    )


@dataclass(frozen=True, slots=True)
class MarketConfig:
    """The built-in simulated NSE market."""

    speed: float = 1.0  # simulated seconds per wall second
    seed: int = 1  # random seed: same seed, same market
    tick_interval_s: float = 1.0  # simulated seconds between ticks of each instrument
    start_date: date | None = None  # simulated trading day; None = next XNSE session
    start_time: time = time(9, 15)  # simulated clock starts here (IST)
    strikes_each_side: int = 10  # strikes listed above and below the money
    risk_free_rate: Decimal = Decimal("0.065")
    base_iv: Decimal = Decimal("0.14")  # implied vol at the money
    smile_curvature: Decimal = Decimal("0.8")  # iv = base * (1 + c * log(K/S)^2 * 100)
    spread_ticks: int = 2  # bid/ask each this many ticks from the mid (at least)
    spread_bps: Decimal = Decimal("10")  # or this fraction of the mid, whichever wider
    tick_size_rupees: Decimal = Decimal("0.05")
    extra_instruments: int = 0  # extra synthetic equities (soak: 1,000 ticking instruments)
    underlyings: tuple[UnderlyingConfig, ...] = field(default_factory=_default_underlyings)


@dataclass(frozen=True, slots=True)
class PricesConfig:
    """PriceActor's validation."""

    max_price_age_s: float = 120.0  # older prices are rejected and counted


@dataclass(frozen=True, slots=True)
class RateLimitsConfig:
    """Kite's published per-account limits (see kite-connect-facts.md)."""

    quote_per_s: int = 1
    historical_per_s: int = 3
    orders_per_s: int = 10
    orders_per_min: int = 200  # 400 is documented; 200 is the older, safer figure
    orders_per_day: int = 5000
    other_per_s: int = 10


@dataclass(frozen=True, slots=True)
class PaperConfig:
    """The paper broker's matching engine and its injected faults."""

    slippage_bps: Decimal = Decimal("5")  # market orders fill this far beyond bid/ask
    partial_fill_ratio: Decimal = Decimal("0")  # share of orders that fill only in part
    reject_ratio: Decimal = Decimal("0")  # share of orders rejected by the broker
    unknown_outcome_ratio: Decimal = Decimal("0")  # placed, but the answer is lost
    stuck_ratio: Decimal = Decimal("0")  # placed, then stuck in OPEN PENDING


@dataclass(frozen=True, slots=True)
class ChargeRate:
    """One segment's charges from ``effective_from`` until the next row.

    ``segment`` is ``options``, ``futures`` or ``equity_intraday``. Percentages
    are of turnover (premium for options).
    """

    effective_from: date
    segment: str
    brokerage_flat_rupees: Decimal  # per executed order
    brokerage_pct: Decimal | None  # None: flat only; else min(pct, flat)
    stt_buy_pct: Decimal
    stt_sell_pct: Decimal
    transaction_pct: Decimal
    sebi_rupees_per_crore: Decimal
    stamp_buy_pct: Decimal
    gst_pct: Decimal  # on brokerage + transaction + SEBI


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

    rates: tuple[ChargeRate, ...] = field(default_factory=_default_rates)


@dataclass(frozen=True, slots=True)
class CalendarConfig:
    """The exchange calendar: XNSE holidays plus overrides."""

    exchange: str = "XNSE"  # the `holidays` financial calendar
    session_open: time = time(9, 15)  # IST
    session_close: time = time(15, 30)  # IST
    extra_holidays: tuple[date, ...] = ()  # unscheduled closures
    extra_sessions: tuple[date, ...] = ()  # special sessions (e.g. Muhurat trading)


@dataclass(frozen=True, slots=True)
class ExitsConfig:
    """Default exit rules given to every position a strategy opens."""

    stop_loss_pct: Decimal | None = Decimal("25")
    take_profit_pct: Decimal | None = Decimal("40")
    trail_activation_pct: Decimal | None = Decimal("15")
    trail_giveback_pct: Decimal | None = Decimal("8")
    square_off_at: time | None = time(15, 15)  # intraday positions squared off (IST)
    exit_on_expiry_day: bool = True


@dataclass(frozen=True, slots=True)
class StrategyConfig:
    """The reference strategies that trade the simulated market."""

    enabled: tuple[str, ...] = ("momentum", "straddle")
    underlying: str = "NIFTY"
    lots: int = 1  # lots per leg
    momentum_lookback_ticks: int = 20  # ticks of the underlying to measure the move
    momentum_threshold_pct: Decimal = Decimal("0.05")  # move that triggers an entry
    straddle_every_s: float = 1800.0  # simulated seconds between straddle entries
    max_entries_per_minute: int = 30  # a strategy's own brake


@dataclass(frozen=True, slots=True)
class LoggingConfig:
    """Logs."""

    level: str = "INFO"
    file_name: str = "kitesaga.log"  # inside the state dir; JSON lines


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
    logging: LoggingConfig = field(default_factory=LoggingConfig)
