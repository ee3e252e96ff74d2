"""The system: builds, wires, starts and stops the actors; halts on any failure."""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import pykka
import structlog

from actors._base import ActorFailed, EngineActor
from actors._durable import Recovered
from actors._feed import SimulatedFeedActor
from actors._introspect import ActorHandle
from actors._order import Drain, OrderActor, OrdersSnapshot
from actors._portfolio import PortfolioActor, PortfolioSnapshot
from actors._price import PriceActor, PriceBook
from actors._published import Published
from actors._ratelimit import RateLimitActor
from actors._recover_steps import Resume
from actors._startup import open_journal
from actors._supervisor import Failures, SupervisorActor, _Orders
from actors._sync import SyncActor, SyncSnapshot, SyncWiring
from actors.broker import (
    BrokerSnapshot,
    ChargeSchedule,
    PaperBrokerActor,
    build_engine,
    restore_orders,
    segment_for,
)
from actors.config import Config
from actors.journal import JournalActor, JournalSnapshot
from actors.kite import (
    GatewaySnapshot,
    KiteGatewayActor,
    KiteStream,
    LiveFeedActor,
    LiveSession,
    watch_function,
)
from actors.market import (
    IST,
    Clock,
    InstrumentTable,
    MarketCalendar,
    SimClock,
    SyntheticMarket,
    synthetic_dump_csv,
)
from actors.strategy import (
    MomentumStrategy,
    StraddleStrategy,
    Strategy,
    StrategyContext,
    StrategyHostActor,
)
from messages import (
    ExitRules,
    Inbox,
    Money,
    OrderLeg,
    Subscribe,
)

__all__ = ["Engine", "SupervisorActor"]

_log = structlog.get_logger("kitesaga.system")


def default_exit_rules(config: Config) -> ExitRules:
    """The exit rules the configuration gives every new position."""
    e = config.exits
    return ExitRules(e.stop_loss_pct, e.take_profit_pct, e.trail_activation_pct,
                     e.trail_giveback_pct, e.square_off_at, e.exit_on_expiry_day)


def simulated_start(config: Config, calendar: MarketCalendar) -> datetime:
    """When the simulated clock starts: the configured (or next) trading day's open."""
    day = config.market.start_date or datetime.now(IST).date()
    day = calendar.next_trading_day(day)
    return datetime.combine(day, config.market.start_time, IST)


@dataclass(frozen=True, slots=True)
class SimulatedMarket:
    """The simulated market both faces share (the paper engine and ``kitesaga sim``):
    its start, clock, instruments dump (CSV and parsed) and random walks."""

    start: datetime
    clock: SimClock
    dump_csv: str
    instruments: InstrumentTable
    market: SyntheticMarket

    @classmethod
    def of(cls, config: Config, calendar: MarketCalendar) -> SimulatedMarket:
        """The market ``config`` describes, starting at :func:`simulated_start`."""
        start = simulated_start(config, calendar)
        dump = synthetic_dump_csv(config.market, start.date(), calendar)
        instruments = InstrumentTable.from_csv(dump)
        return cls(start, SimClock(start, config.market.speed), dump, instruments,
                   SyntheticMarket(config.market, instruments, start))


class Engine:
    """Starts, wires and stops every actor of one paper-trading engine.

    Contract: after :meth:`start` the actors run until :meth:`stop`;
    :meth:`stop` drains first (no new entries; in-flight sagas finish or
    compensate within ``engine.drain_timeout_s``) and then stops all actors.
    Readers use the published snapshots; nothing here mutates actor state.
    """

    def __init__(self, config: Config, *, run_strategies: bool = True,
                 run_feed: bool = True, listeners: tuple[Inbox, ...] = (),
                 session: LiveSession | None = None) -> None:
        self.config = config
        self.calendar = MarketCalendar(config.calendar)
        self.live: LiveSession | None = None
        self.clock: Clock
        if config.engine.mode == "live":
            # the token, the broker's clock, instruments and margin: LiveStartError or
            # TokenError (exit 2) before any actor starts
            self.live = session or LiveSession.connect(config)
            self.clock = self.live.clock
            self.start_time = self.clock.now()
            self.instruments = self.live.instruments
        else:
            simulated = SimulatedMarket.of(config, self.calendar)
            self.start_time, self.clock = simulated.start, simulated.clock
            self.instruments, self.market = simulated.instruments, simulated.market
        self._run_strategies = run_strategies
        self._run_feed = run_feed
        self._listeners = listeners
        self.actors: list[ActorHandle] = []
        """Every actor this engine started, in start order (for the REPL's ``actors()``)."""
        self.started_at = 0.0

    def _start(self, actor: type[EngineActor], *args: Any, **kwargs: Any) -> pykka.ActorRef[Any]:
        ref = actor.start(*args, **kwargs)
        try:
            stats, cell = ref.proxy().introspection().get()
        except BaseException:
            ref.stop()
            raise
        self.actors.append(ActorHandle(ref, stats, cell))
        return ref

    def published(self, ref: pykka.ActorRef[Any]) -> Published[Any]:
        """The snapshot cell of ``ref``'s actor, taken once when it started (readers
        call ``latest()`` on it from any thread)."""
        for handle in self.actors:
            if handle.ref is ref and handle.cell is not None:
                return handle.cell
        raise ValueError(f"actor: {ref} publishes no snapshot in this engine")

    def _stop_all(self) -> None:
        for handle in reversed(self.actors):
            if handle.ref.is_alive():
                handle.ref.stop()

    def start(self) -> Engine:
        """Build and start every actor, then the market feed. If any part cannot
        start (a refused journal, ...), what did start is stopped and the error
        raised: never a half-started engine."""
        try:
            return self._start_all()
        except BaseException:
            self._stop_all()
            raise

    def _start_all(self) -> Engine:
        cfg = self.config
        sup = self._start(SupervisorActor)
        self.supervisor = sup
        self._failures: Published[Failures] = self.published(sup)
        self.prices = self._start(PriceActor, cfg.prices, self.clock.now)
        live = self.live
        self.limiter = self._start(RateLimitActor, cfg.rate_limits,
                                   prior=live.calls if live is not None else ())
        cash = live.cash if live is not None else Money.from_rupees(
            cfg.engine.initial_cash_rupees, "engine.initial_cash_rupees")
        orders_box, broker_box = _Forward(), _Forward()
        journal, recovered = self._open_journal(orders_box, cash)
        self.portfolio = self._start(
            PortfolioActor, cash, Money.from_rupees(cfg.engine.daily_loss_limit_rupees),
            orders_box, cfg.engine.fill_dedupe_window, price_source=self.prices,
            journal=journal, ledger=recovered.ledger)
        self._portfolio_cell: Published[PortfolioSnapshot] = self.published(self.portfolio)
        positions = {key: view.quantity
                     for key, view in self._portfolio_cell.latest().positions.items()}
        schedule = ChargeSchedule(cfg.charges)
        clock = self.clock

        def charges(leg: OrderLeg, turnover: int) -> int:
            segment = segment_for(leg.instrument, leg.product)
            return schedule.charges(clock.now().date(), segment, leg.side, Money(turnover),
                                    True).total.paise

        protector = broker_box if live is not None and cfg.live.gtt_protection else None
        self.orders = self._start(
            OrderActor, cfg.engine, self.portfolio, broker_box, self.limiter,
            self.instruments.get, self.clock.now, self.calendar.entry_refusal,
            charges, self._listeners, price_source=self.prices,
            margin_check=live is not None and cfg.live.margin_check, protector=protector,
            journal=journal, recovered=recovered, positions=positions)
        orders_box.target = self.orders
        self._price_cell: Published[PriceBook] = self.published(self.prices)
        if live is not None:
            self.broker = self._start(
                KiteGatewayActor, live.client(), cfg, self.orders, self.limiter, self.orders,
                lambda: self._price_cell.latest().prices, self.clock.now)
            self._gateway_cell: Published[GatewaySnapshot] = self.published(self.broker)
        else:
            self.matching = build_engine(cfg)
            restore_orders(self.matching, recovered.orders, recovered.paper, recovered.opening)
            self.broker = self._start(PaperBrokerActor, self.matching, self.clock.now,
                                      self.orders)
            self._broker_cell: Published[BrokerSnapshot] = self.published(self.broker)
        broker_box.target = self.broker
        self.orders.tell(Resume())  # the unfinished sagas, now that their broker is wired
        self.supervisor.tell(_Orders(self.orders))
        self._orders_cell: Published[OrdersSnapshot] = self.published(self.orders)
        self.sync = self._start(SyncActor, cfg.engine.mode, None if live is None else
                                SyncWiring.of_engine(
                                    live.client(), cfg, self.limiter, self.orders,
                                    self._portfolio_cell, self._orders_cell, self._gateway_cell,
                                    self.instruments, self.clock.now, self._listeners))
        self._sync_cell: Published[SyncSnapshot] = self.published(self.sync)
        self.prices.tell(Subscribe("orders", frozenset(), self.orders))
        self.prices.tell(Subscribe("portfolio", frozenset(), self.portfolio))
        if self._run_strategies:
            self._start_strategies()
        if self._run_feed and live is not None:
            self._start_live_feed(live)
        elif self._run_feed:
            self.feed = self._start(SimulatedFeedActor, self.market, self.clock,
                                    cfg.market.tick_interval_s, (self.broker, self.prices))
        self.started_at = time.monotonic()
        _log.info("engine_started", mode=cfg.engine.mode, start=self.start_time.isoformat(),
                  instruments=len(self.instruments), speed=cfg.market.speed)
        return self

    def _open_journal(self, halt_to: Inbox, cash: Money) -> tuple[Inbox | None, Recovered]:
        """Open this mode's journal and recover from it (start-up IS recovery: one
        path): the latest snapshot, then the tail. The JournalActor then feeds the
        projection every committed batch and writes it as a snapshot every
        ``journal.snapshot_every`` events. A foreign, corrupt or other-mode file
        raises JournalError, untouched."""
        cfg = self.config
        if not cfg.journal.enabled:
            return None, Recovered()
        opened = open_journal(cfg, cash, "broker" if self.live is not None else
                              "engine.initial_cash_rupees")
        self.recovery_s = opened.seconds
        self.recovered_from_snapshot = opened.snapshot  # its seq; 0: every event replayed
        try:
            self.journal = self._start(JournalActor, opened.store, cfg.journal, halt_to,
                                       snapshot_source=opened.projection.to_body,
                                       on_commit=opened.projection.add_all)
        except BaseException:
            opened.store.close()
            raise
        self._journal_cell: Published[JournalSnapshot] = self.published(self.journal)
        return self.journal, opened.recovered

    def _start_strategies(self) -> None:
        cfg = self.config.strategy
        chosen: list[Strategy] = []
        if "momentum" in cfg.enabled:
            chosen.append(MomentumStrategy(cfg.underlying, cfg.momentum_lookback_ticks,
                                           cfg.momentum_threshold_pct,
                                           cfg.max_entries_per_minute))
        if "straddle" in cfg.enabled:
            chosen.append(StraddleStrategy(cfg.underlying, cfg.straddle_every_s))
        ctx = StrategyContext(self.instruments, default_exit_rules(self.config), cfg.lots,
                              self.clock.now, self._portfolio_cell.latest)
        self.strategies = self._start(StrategyHostActor, tuple(chosen), ctx, self.orders,
                                      self.prices)
        tokens: frozenset[int] = self.strategies.proxy().tokens.get()
        self.prices.tell(Subscribe("strategies", tokens, self.strategies))

    def _start_live_feed(self, live: LiveSession) -> None:
        cfg = self.config
        base: frozenset[int] = frozenset()
        if self._run_strategies:
            base = self.strategies.proxy().tokens.get()
        portfolio = self._portfolio_cell

        def positions() -> frozenset[int]:
            return frozenset(key[1] for key, view in portfolio.latest().positions.items()
                             if view.quantity)

        watch = watch_function(self.instruments, base, (cfg.strategy.underlying,),
                               cfg.live.chain_strikes, lambda: self._price_cell.latest().prices,
                               positions, self.clock.now)
        self.stream = KiteStream(  # its status goes to the feed, which starts it
            live.token.api_key, live.token.access_token, live.ws_root, prices_to=self.prices,
            orders_to=self.broker, mode=cfg.live.ticker_mode,
            max_instruments=cfg.live.ticker_max_instruments,
            reconnect_max_delay_s=cfg.live.ticker_reconnect_max_delay_s)
        stream = self.stream
        self.feed = self._start(LiveFeedActor, live.client(), stream, cfg, self.limiter,
                                self.prices, self.broker, self.instruments, watch,
                                self.clock.now, lambda: stream.stats["ticks"])

    # -- reading -----------------------------------------------------------------

    @property
    def portfolio_snapshot(self) -> PortfolioSnapshot:
        """The portfolio's latest published snapshot."""
        return self._portfolio_cell.latest()

    @property
    def broker_snapshot(self) -> BrokerSnapshot:
        """The paper broker's latest published snapshot (paper mode)."""
        return self._broker_cell.latest()

    @property
    def gateway_snapshot(self) -> GatewaySnapshot:
        """The Kite gateway's latest published snapshot (live mode)."""
        return self._gateway_cell.latest()

    @property
    def orders_snapshot(self) -> OrdersSnapshot:
        """OrderActor's latest published snapshot."""
        return self._orders_cell.latest()

    @property
    def sync_snapshot(self) -> SyncSnapshot:
        """SyncActor's latest published snapshot: the last reconciliation and its drifts."""
        return self._sync_cell.latest()

    def failures(self) -> tuple[ActorFailed, ...]:
        """Actors that have failed so far."""
        return self._failures.latest().items

    # -- stopping ----------------------------------------------------------------

    def drain(self, timeout: float | None = None) -> bool:
        """Refuse new entries and wait (bounded) until no saga is in flight."""
        self.orders.tell(Drain())
        limit = self.config.engine.drain_timeout_s if timeout is None else timeout
        deadline = time.monotonic() + limit
        while time.monotonic() < deadline:
            snap = self.orders_snapshot
            if snap.draining and snap.in_flight == 0:
                return True
            time.sleep(0.01)  # polling a published snapshot of another thread's state
        _log.warning("drain_timeout", in_flight=self.orders_snapshot.in_flight)
        return False

    def stop(self, drain: bool = True) -> bool:
        """Drain (optionally) and stop every actor, feed first. True if drained cleanly."""
        drained = self.orders.is_alive()
        if self._run_feed and hasattr(self, "feed"):
            self.feed.stop()
        if drain and drained:
            drained = self.drain()
        self._stop_all()
        _log.info("engine_stopped", drained=drained)
        return drained

    def uptime(self) -> float:
        """Wall seconds since start."""
        return time.monotonic() - self.started_at

    def sim_elapsed(self) -> timedelta:
        """Simulated time since the market opened."""
        return self.clock.now() - self.start_time


class _Forward:
    """An address that forwards to a target set after construction (wiring cycles)."""

    target: Inbox | None = None

    def tell(self, message: Any) -> None:
        if self.target is None:
            raise RuntimeError("gateway used before the engine finished wiring")
        self.target.tell(message)
