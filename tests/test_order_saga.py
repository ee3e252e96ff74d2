"""Order sagas over the real actors and paper broker: every outcome ends COMPLETED or
COMPENSATED, money is conserved, and no leg ever gets two broker orders."""

from __future__ import annotations

from datetime import time
from decimal import Decimal

from messages import (
    CancelEntry,
    ExitDecided,
    ExitRules,
    InstrumentKind,
    OrderLeg,
    Product,
    SagaCompensated,
    SagaCompleted,
    SagaKind,
    SagaRefused,
    SagaStarted,
    SetTradingState,
    Side,
    SubmitEntry,
    SubmitExit,
    TradingState,
)
from tests.engine_support import make_config, running
from tests.support import wait_until


def _ended(h, n: int = 1) -> list:
    h.events.wait_for(lambda ms: sum(isinstance(m, SagaCompleted | SagaCompensated)
                                     for m in ms) >= n)
    return [m for m in h.events.messages if isinstance(m, SagaCompleted | SagaCompensated)]


def _balanced(h) -> None:
    wait_until(lambda: h.engine.orders_snapshot.in_flight == 0, what="no saga in flight")
    snap = h.engine.portfolio_snapshot
    assert snap.conservation_error == 0
    assert snap.cash >= 0
    assert h.engine.orders_snapshot.stats["invariant_violations"] == 0


def test_entry_fills_and_completes() -> None:
    with running() as h:
        call = h.option()
        h.quote(call, 150_00)
        h.submit(SubmitEntry.single("t", call, Side.BUY, call.lot_size))
        ended = _ended(h)
        assert isinstance(ended[0], SagaCompleted)
        assert ended[0].filled_quantities == (call.lot_size,)
        _balanced(h)
        pos = h.engine.portfolio_snapshot.positions[("t", call.instrument_token)]
        assert pos.quantity == call.lot_size and h.engine.portfolio_snapshot.reserved == 0


def test_rejected_entry_compensates_and_restores_cash() -> None:
    with running(make_config(paper={"reject_ratio": Decimal(1)})) as h:
        call = h.option()
        h.quote(call, 150_00)
        h.submit(SubmitEntry.single("t", call, Side.BUY, call.lot_size))
        ended = _ended(h)
        assert isinstance(ended[0], SagaCompensated) and "rejected" in ended[0].reason
        _balanced(h)
        snap = h.engine.portfolio_snapshot
        assert snap.cash == snap.initial_cash and snap.open_positions == 0


def test_partial_fill_applies_part_and_releases_rest() -> None:
    with running(make_config(paper={"partial_fill_ratio": Decimal(1)})) as h:
        call = h.option()
        h.quote(call, 150_00)
        h.submit(SubmitEntry.single("t", call, Side.BUY, call.lot_size * 4))
        ended = _ended(h)
        assert isinstance(ended[0], SagaCompleted)
        filled = ended[0].filled_quantities[0]
        assert 0 < filled < call.lot_size * 4
        _balanced(h)
        assert h.engine.portfolio_snapshot.reserved == 0
        pos = h.engine.portfolio_snapshot.positions[("t", call.instrument_token)]
        assert pos.quantity == filled
        assert h.engine.orders_snapshot.stats["cancels"] == 1


def test_stuck_order_times_out_cancel_confirmed_and_compensates() -> None:
    with running(make_config(paper={"stuck_ratio": Decimal(1)})) as h:
        call = h.option()
        h.quote(call, 150_00)
        h.submit(SubmitEntry.single("t", call, Side.BUY, call.lot_size))
        ended = _ended(h)
        assert isinstance(ended[0], SagaCompensated)
        _balanced(h)
        assert h.engine.portfolio_snapshot.cash == h.engine.portfolio_snapshot.initial_cash
        assert h.engine.broker_snapshot.working_orders == 0


def test_unknown_outcome_is_resolved_by_tag_not_by_retry() -> None:
    with running(make_config(paper={"unknown_outcome_ratio": Decimal(1)})) as h:
        call = h.option()
        h.quote(call, 150_00)
        h.submit(SubmitEntry.single("t", call, Side.BUY, call.lot_size))
        ended = _ended(h)
        assert isinstance(ended[0], SagaCompleted)
        stats = h.engine.orders_snapshot.stats
        assert stats["unknown_outcomes"] == 1 and stats["orders"] == 1
        assert h.engine.broker_snapshot.orders_placed == 1
        _balanced(h)


def test_multi_leg_failure_closes_filled_legs() -> None:
    with running() as h:
        call, put = h.option(InstrumentKind.CE), h.option(InstrumentKind.PE)
        h.quote(call, 150_00)
        h.quote(put, 140_00, to_broker=False)  # the broker has no price: leg 2 is rejected
        legs = (OrderLeg(call, Side.BUY, call.lot_size), OrderLeg(put, Side.BUY, put.lot_size))
        h.submit(SubmitEntry("straddle", legs))
        ended = _ended(h)
        assert isinstance(ended[0], SagaCompensated)
        assert ended[0].realised_cost.paise > 0  # spread and charges paid to undo leg 1
        _balanced(h)
        snap = h.engine.portfolio_snapshot
        assert snap.open_positions == 0 and snap.reserved == 0
        assert h.engine.orders_snapshot.open_positions == 0


def test_duplicate_entry_is_refused_while_open() -> None:
    with running() as h:
        call = h.option()
        h.quote(call, 150_00)
        h.submit(SubmitEntry.single("t", call, Side.BUY, call.lot_size))
        h.submit(SubmitEntry.single("t", call, Side.BUY, call.lot_size))
        refused = h.events.wait_for_kind(SagaRefused)
        assert "already has an" in refused[0].reason
        _ended(h)
        h.submit(SubmitEntry.single("t", call, Side.BUY, call.lot_size))
        assert len(h.events.wait_for_kind(SagaRefused, 2)) == 2
        h.submit(SubmitEntry.single("other", call, Side.BUY, call.lot_size))
        assert len(_ended(h, 2)) == 2
        _balanced(h)


def test_exit_closes_position_and_second_exit_is_refused() -> None:
    with running() as h:
        call = h.option()
        h.quote(call, 150_00)
        h.submit(SubmitEntry.single("t", call, Side.BUY, call.lot_size))
        _ended(h)
        h.quote(call, 160_00)
        h.submit(SubmitExit("t", call.instrument_token, "manual"))
        h.submit(SubmitExit("t", call.instrument_token, "manual again"))
        ended = _ended(h, 2)
        assert ended[1].kind is SagaKind.EXIT and isinstance(ended[1], SagaCompleted)
        assert any("EXITING" in r.reason for r in h.events.of(SagaRefused))
        _balanced(h)
        snap = h.engine.portfolio_snapshot
        assert snap.open_positions == 0 and snap.realised > 0
        assert h.engine.orders_snapshot.open_positions == 0


def test_stop_loss_fires_once_on_many_ticks() -> None:
    rules = ExitRules(stop_loss_pct=Decimal(10))
    with running() as h:
        call = h.option()
        h.quote(call, 150_00)
        h.submit(SubmitEntry.single("t", call, Side.BUY, call.lot_size, exit_rules=rules))
        _ended(h)
        for last in (130_00, 129_00, 128_00):
            h.quote(call, last)
        decided = h.events.wait_for_kind(ExitDecided)
        _ended(h, 2)
        assert len(h.events.of(ExitDecided)) == 1 and decided[0].rule == "stop-loss"
        _balanced(h)
        assert h.engine.portfolio_snapshot.realised < 0


def test_halted_refuses_entries_but_exits_go_through() -> None:
    with running() as h:
        call = h.option()
        h.quote(call, 150_00)
        h.submit(SubmitEntry.single("t", call, Side.BUY, call.lot_size))
        _ended(h)
        h.submit(SetTradingState(TradingState.HALTED, "test"))
        h.submit(SubmitEntry.single("u", call, Side.BUY, call.lot_size))
        refused = h.events.wait_for_kind(SagaRefused)
        assert "HALTED" in refused[0].reason
        h.submit(SubmitExit("t", call.instrument_token, "manual"))
        assert isinstance(_ended(h, 2)[1], SagaCompleted)
        _balanced(h)


def test_entries_refused_outside_session_exits_allowed() -> None:
    config = make_config(market={"start_time": time(8, 0)})
    with running(config) as h:
        call = h.option()
        h.quote(call, 150_00)
        h.submit(SubmitEntry.single("t", call, Side.BUY, call.lot_size))
        refused = h.events.wait_for_kind(SagaRefused)
        assert "09:15" in refused[0].reason
        h.submit(SubmitExit("t", call.instrument_token, "nothing to exit"))
        assert "no position" in h.events.wait_for_kind(SagaRefused, 2)[1].reason


def test_short_leg_blocks_margin_then_cover() -> None:
    with running() as h:
        put = h.option(InstrumentKind.PE, offset=-3)
        h.quote(put, 50_00)
        h.submit(SubmitEntry.single("s", put, Side.SELL, put.lot_size,
                                    product=Product.NRML))
        assert isinstance(_ended(h)[0], SagaCompleted)
        snap = h.engine.portfolio_snapshot
        assert snap.margin > 0 and snap.positions[("s", put.instrument_token)].quantity < 0
        h.submit(SubmitExit("s", put.instrument_token, "cover"))
        assert isinstance(_ended(h, 2)[1], SagaCompleted)
        _balanced(h)
        assert h.engine.portfolio_snapshot.margin == 0


def test_cancel_entry_while_working_compensates() -> None:
    with running(make_config(paper={"stuck_ratio": Decimal(1)},
                             engine={"fill_timeout_s": 30.0})) as h:
        call = h.option()
        h.quote(call, 150_00)
        h.submit(SubmitEntry.single("t", call, Side.BUY, call.lot_size))
        wait_until(lambda: h.engine.broker_snapshot.working_orders == 1, what="order working")
        h.submit(CancelEntry(h.events.of(SagaStarted)[0].saga_id))
        ended = _ended(h)
        assert isinstance(ended[0], SagaCompensated) and "cancelled" in ended[0].reason
        _balanced(h)
        assert h.engine.broker_snapshot.working_orders == 0


def test_spent_daily_order_budget_compensates_entry() -> None:
    with running(make_config(rate_limits={"orders_per_day": 1})) as h:
        call, put = h.option(InstrumentKind.CE), h.option(InstrumentKind.PE)
        h.quote(call, 150_00)
        h.quote(put, 140_00)
        h.submit(SubmitEntry.single("t", call, Side.BUY, call.lot_size))
        assert isinstance(_ended(h)[0], SagaCompleted)
        h.submit(SubmitEntry.single("t", put, Side.BUY, put.lot_size))
        ended = _ended(h, 2)
        assert isinstance(ended[1], SagaCompensated) and "permit" in ended[1].reason
        _balanced(h)
        # the budget never blocks an exit
        h.submit(SubmitExit("t", call.instrument_token, "manual"))
        assert isinstance(_ended(h, 3)[2], SagaCompleted)


def test_insufficient_cash_is_refused_by_the_portfolio() -> None:
    with running(make_config(engine={"initial_cash_rupees": Decimal(1000)})) as h:
        call = h.option()
        h.quote(call, 150_00)
        h.submit(SubmitEntry.single("t", call, Side.BUY, call.lot_size))
        ended = _ended(h)
        assert isinstance(ended[0], SagaCompensated) and "insufficient cash" in ended[0].reason
        _balanced(h)
        assert h.engine.broker_snapshot.orders_placed == 0
