"""The system: wiring, failure → HALTED, paper sync never touches the book, drain, strategies."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from typing import Any

import pykka

from actors._sync import Reconcile, ReconcileSkipped, SyncActor
from actors._system import Engine
from actors.strategy import MomentumStrategy, StraddleStrategy, StrategyContext
from actors.strategy._host import StrategyHostActor
from messages import (
    InstrumentKind,
    Money,
    Price,
    PricesUpdated,
    SagaCompleted,
    SagaRefused,
    Side,
    SubmitEntry,
    Subscribe,
    TradingState,
    TradingStateChanged,
)
from tests.engine_support import make_config, running
from tests.support import Recorder, wait_until


class ExplodingInbox:
    """An external subscriber whose delivery fails (a broken consumer)."""

    def tell(self, message: Any) -> None:
        raise RuntimeError("subscriber exploded")


def test_actor_failure_halts_trading_and_is_reported() -> None:
    with running() as h:
        call = h.option()
        h.engine.prices.tell(Subscribe("broken", frozenset(), ExplodingInbox()))
        h.quote(call, 150_00, to_broker=True, age=0.5)
        changed = h.events.wait_for_kind(TradingStateChanged)
        assert changed[0].state is TradingState.HALTED
        assert "PriceActor failed" in changed[0].reason
        wait_until(lambda: len(h.engine.failures()) == 1, what="failure published")
        assert h.engine.failures()[0].actor == "PriceActor"
        h.submit(SubmitEntry.single("t", call, Side.BUY, call.lot_size,
                                    limit_price=Money(150_00), order_type="LIMIT"))
        assert "HALTED" in h.events.wait_for_kind(SagaRefused)[0].reason


def test_paper_sync_never_touches_the_book() -> None:
    inbox = Recorder()
    ref = SyncActor.start("paper")
    try:
        ref.tell(Reconcile(inbox))
        skipped = inbox.wait_for_kind(ReconcileSkipped)
        assert "never reconciled" in skipped[0].reason
    finally:
        ref.stop()


def test_engine_wires_sync_and_drains_cleanly() -> None:
    engine = Engine(make_config(), run_strategies=False, run_feed=True).start()
    try:
        inbox = Recorder()
        engine.sync.tell(Reconcile(inbox))
        inbox.wait_for_kind(ReconcileSkipped)
        wait_until(lambda: engine.orders_snapshot.stats["price_batches"] > 0, what="ticks")
    finally:
        assert engine.stop(drain=True) is True
        pykka.ActorRegistry.stop_all()
    assert engine.orders_snapshot.draining and engine.orders_snapshot.in_flight == 0


def test_draining_refuses_new_entries() -> None:
    with running() as h:
        call = h.option()
        h.quote(call, 150_00)
        assert h.engine.drain(timeout=5) is True
        h.submit(SubmitEntry.single("t", call, Side.BUY, call.lot_size))
        assert "stopping" in h.events.wait_for_kind(SagaRefused)[0].reason


def _ctx(engine: Engine) -> StrategyContext:
    from actors._system import default_exit_rules

    return StrategyContext(engine.instruments, default_exit_rules(engine.config), 1,
                           engine.clock.now, lambda: engine.portfolio_snapshot)


def test_momentum_emits_one_atm_entry_after_a_rise() -> None:
    engine = Engine(make_config())
    ctx = _ctx(engine)
    strategy = MomentumStrategy("NIFTY", 5, Decimal("0.05"), 10)
    index = engine.instruments.underlying_index("NIFTY")
    assert strategy.watch(ctx) == frozenset({index.instrument_token})
    now = engine.start_time
    intents = []
    for i, last in enumerate((24000_00, 24001_00, 24005_00, 24010_00, 24020_00)):
        ts = now + timedelta(seconds=i)
        intents += strategy.on_tick(Price(index.instrument_token, Money(last), ts, ts), ctx)
    assert len(intents) == 1
    leg = intents[0].legs[0]
    assert leg.instrument.kind is InstrumentKind.CE and leg.side is Side.BUY
    assert leg.instrument.strike == Money(24000_00)


def test_straddle_is_two_legs_and_respects_its_interval() -> None:
    engine = Engine(make_config())
    ctx = _ctx(engine)
    strategy = StraddleStrategy("NIFTY", 600.0)
    index = engine.instruments.underlying_index("NIFTY")
    t0 = engine.start_time
    first = strategy.on_tick(Price(index.instrument_token, Money(24000_00), t0, t0), ctx)
    t1 = t0 + timedelta(seconds=60)
    second = strategy.on_tick(Price(index.instrument_token, Money(24000_00), t1, t1), ctx)
    assert len(first) == 1 and len(first[0].legs) == 2 and second == ()
    kinds = {leg.instrument.kind for leg in first[0].legs}
    assert kinds == {InstrumentKind.CE, InstrumentKind.PE}


class _Broken(MomentumStrategy):
    def on_tick(self, price: Price, ctx: StrategyContext) -> Any:
        raise ZeroDivisionError("strategy bug")


def test_host_forwards_intents_and_survives_a_broken_strategy() -> None:
    engine = Engine(make_config())
    ctx = _ctx(engine)
    orders = Recorder()
    index = engine.instruments.underlying_index("NIFTY")
    host = StrategyHostActor.start((_Broken("NIFTY", 2, Decimal("0.01"), 5),
                                    StraddleStrategy("NIFTY", 60.0)), ctx, orders)
    try:
        t0 = engine.start_time
        for i in range(3):
            ts = t0 + timedelta(seconds=61 * i)
            host.tell(PricesUpdated((Price(index.instrument_token, Money(24000_00), ts, ts),)))
        entries = orders.wait_for_kind(SubmitEntry, 3)
        assert all(e.strategy == "straddle" for e in entries)
        assert host.proxy().errors.get() == 3
    finally:
        host.stop()


def test_main_engine_trades_with_strategies_and_feed() -> None:
    config = make_config(market={"speed": 120.0})
    events = Recorder()
    engine = Engine(config, listeners=(events,)).start()
    try:
        events.wait_for_kind(SagaCompleted, 2, timeout=60)
    finally:
        engine.stop(drain=True)
        pykka.ActorRegistry.stop_all()
    snap = engine.portfolio_snapshot
    assert snap.conservation_error == 0 and snap.fills_applied >= 2


def test_a_cascade_of_failures_is_published_and_the_stop_reports_not_drained() -> None:
    from messages import ReserveCash, SubmitExit

    # no journal: the portfolio's replies must come from the portfolio itself, so that the
    # exploding reply address kills the portfolio (with a journal, the journal delivers them)
    with running(make_config(journal={"enabled": False})) as h:
        call = h.option()
        h.quote(call, 150_00)
        h.submit(SubmitEntry.single("t", call, Side.BUY, call.lot_size))
        h.events.wait_for_kind(SagaCompleted)
        h.engine.portfolio.tell(ReserveCash("ZZ", Money(1), ExplodingInbox()))
        wait_until(lambda: len(h.engine.failures()) == 1, what="portfolio failure published")
        h.submit(SubmitExit("t", call.instrument_token, "after the portfolio died"))
        wait_until(lambda: len(h.engine.failures()) == 2, what="order actor failure published")
        h.engine.prices.tell(Subscribe("broken", frozenset(), ExplodingInbox()))
        h.quote(call, 151_00, age=0.5)
        wait_until(lambda: len(h.engine.failures()) == 3, what="supervisor still reports")
        assert [f.actor for f in h.engine.failures()] == [
            "PortfolioActor", "OrderActor", "PriceActor"]
        assert h.engine.supervisor.is_alive()
        assert h.engine.stop(drain=True) is False
