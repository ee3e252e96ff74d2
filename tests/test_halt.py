"""The emergency stop (``Halt``) over the real actors and paper broker: no new entries,
every working order cancelled and confirmed, and with ``flatten`` every position squared
off, including those an interrupted saga leaves open."""

from __future__ import annotations

from decimal import Decimal

import pytest

from messages import (
    DescribeSagas,
    Halt,
    HaltStarted,
    InstrumentKind,
    ResumeTrading,
    SagaCompensated,
    SagaCompleted,
    SagaRefused,
    SagasDescribed,
    SetTradingState,
    Side,
    SubmitEntry,
    TradingState,
)
from tests.engine_support import make_config, running
from tests.support import Recorder, wait_until


def _settled(h) -> None:  # type: ignore[no-untyped-def]
    wait_until(lambda: h.engine.orders_snapshot.in_flight == 0, what="no saga in flight")
    snap = h.engine.portfolio_snapshot
    assert snap.conservation_error == 0 and snap.cash >= 0


def test_halt_cancels_working_orders_and_refuses_entries() -> None:
    with running(make_config(paper={"stuck_ratio": Decimal(1)},
                             engine={"fill_timeout_s": 30.0})) as h:
        call = h.option()
        h.quote(call, 150_00)
        h.submit(SubmitEntry.single("t", call, Side.BUY, call.lot_size))
        wait_until(lambda: h.engine.broker_snapshot.working_orders == 1, what="order working")
        answer = Recorder()
        h.submit(DescribeSagas(reply_to=answer))
        [described] = answer.wait_for_kind(SagasDescribed)
        [saga] = described.sagas
        assert (saga.kind, saga.strategy, saga.step.split()[0]) == ("ENTRY", "t", "WORKING")
        [order] = saga.orders
        assert (order.role, order.side, order.quantity, order.filled, order.status) == (
            "OPEN", "BUY", call.lot_size, 0, "WORKING")
        assert order.tradingsymbol == call.tradingsymbol and order.broker_order_id
        h.submit(Halt("test stop", reply_to=answer))
        [started] = answer.wait_for_kind(HaltStarted)
        assert (started.cancels, started.exits, started.sagas_in_flight) == (1, 0, 1)
        assert not started.flatten and "test stop" in started.reason
        [ended] = h.events.wait_for_kind(SagaCompensated)
        assert "cancelled" in ended.reason
        _settled(h)
        assert h.engine.broker_snapshot.working_orders == 0  # the cancel was confirmed
        snap = h.engine.orders_snapshot
        assert snap.state is TradingState.HALTED and "test stop" in snap.state_reason
        h.submit(SubmitEntry.single("t", call, Side.BUY, call.lot_size))
        assert "HALTED" in h.events.wait_for_kind(SagaRefused)[0].reason
        h.submit(SetTradingState(TradingState.ACTIVE, "someone else"))  # not the operator
        h.submit(SubmitEntry.single("t", call, Side.BUY, call.lot_size))
        assert "HALTED" in h.events.wait_for_kind(SagaRefused, count=2)[1].reason
        h.submit(ResumeTrading("resumed"))
        h.submit(SubmitEntry.single("t", call, Side.BUY, call.lot_size))
        wait_until(lambda: h.engine.broker_snapshot.working_orders == 1,
                   what="entries resume after the halt is lifted")


@pytest.mark.parametrize("stuck", [Decimal(0), Decimal("0.5")])
def test_halt_with_flatten_squares_off_every_position(stuck: Decimal) -> None:
    with running(make_config(paper={"stuck_ratio": stuck},
                             engine={"fill_timeout_s": 1.0})) as h:
        legs = [(h.option(InstrumentKind.CE, k), s) for k in (-1, 0, 1) for s in ("a", "b")]
        for option, _ in legs:
            h.quote(option, 150_00)
        for option, strategy in legs:
            h.submit(SubmitEntry.single(strategy, option, Side.BUY, option.lot_size))
        h.events.wait_for(lambda ms: sum(isinstance(m, SagaCompleted | SagaCompensated)
                                         for m in ms) >= 2)  # some open, some in flight
        answer = Recorder()
        h.submit(Halt("flatten everything", flatten=True, reply_to=answer))
        [started] = answer.wait_for_kind(HaltStarted)
        assert started.flatten
        wait_until(lambda: h.engine.orders_snapshot.in_flight == 0
                   and h.engine.portfolio_snapshot.open_positions == 0, timeout=30,
                   what="every position squared off")
        _settled(h)
        assert h.engine.orders_snapshot.open_positions == 0
        assert h.engine.broker_snapshot.working_orders == 0
        assert h.engine.orders_snapshot.state is TradingState.HALTED
        assert h.engine.orders_snapshot.stats["halts"] == 1


def test_an_operator_halt_outlives_a_restart_until_resumed() -> None:
    config = make_config()
    with running(config) as h:
        answer = Recorder()
        h.submit(Halt("before the restart", reply_to=answer))
        answer.wait_for_kind(HaltStarted)
    with running(config) as again:  # the same state dir: the same journal
        wait_until(lambda: "before the restart" in again.engine.orders_snapshot.state_reason,
                   what="the recovered halt")
        assert again.engine.orders_snapshot.state is TradingState.HALTED
        call = again.option()
        again.quote(call, 150_00)
        again.submit(SubmitEntry.single("t", call, Side.BUY, call.lot_size))
        assert "before the restart" in again.events.wait_for_kind(SagaRefused)[0].reason
        again.submit(ResumeTrading("resumed by the operator"))
        wait_until(lambda: again.engine.orders_snapshot.state is TradingState.ACTIVE,
                   what="resumed")
    with running(config) as third:  # and the resume is durable too
        assert third.engine.orders_snapshot.state is TradingState.ACTIVE
