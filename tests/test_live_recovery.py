"""Live recovery against the Kite simulator, in-process and deterministic: an engine
stopped while a saga's placement answer was lost resumes the saga on restart, finds its
order by tag (never placing it again) and ends it with the broker's fills."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pykka

import messages as m
from tests.live_support import LiveHarness, restarts
from tests.support import wait_until

RULES = m.ExitRules(Decimal(50), Decimal(200))


def _unfinished_when_stopped(h: LiveHarness, message: object) -> None:
    """Send ``message`` with every placement answer lost, and stop the engine (no drain)
    once the broker has executed the order but before the look-up by tag can answer."""
    orders = h.stats()["orders"]
    h.server.set_faults("drop_response=1")
    h.engine.orders.tell(message)
    wait_until(lambda: h.stats()["orders"] > orders, what="the order executed at the broker")
    h.server.set_faults("error_5xx=1")  # the look-up by tag cannot answer
    h.engine.stop(drain=False)
    pykka.ActorRegistry.stop_all()
    h.server.set_faults("")


def _settled_and_agreed(h: LiveHarness) -> None:
    wait_until(lambda: h.engine.orders_snapshot.in_flight == 0, 30, what="every saga ended")
    stats = h.stats()
    assert all(n == 1 for tag, n in stats["orders_per_tag"].items() if tag), stats
    book = {h.engine.instruments.get(token).key: view.quantity
            for (_, token), view in h.engine.portfolio_snapshot.positions.items()
            if view.quantity}
    broker = {f"{p['exchange']}:{p['tradingsymbol']}": p["quantity"]
              for p in stats["open_positions"]["positions"] if p["quantity"]}
    assert book == broker
    assert h.engine.portfolio_snapshot.conservation_error == 0
    assert h.engine.orders_snapshot.stats["invariant_violations"] == 0
    assert h.engine.failures() == ()


def test_an_entry_placed_before_the_crash_is_found_by_tag_and_completed(
        tmp_path: Path) -> None:
    with restarts(tmp_path, KITESAGA_ENGINE_FILL_TIMEOUT_S="1.5") as on:
        first = on.engine()
        option = first.option()
        first.priced(option)
        leg = m.OrderLeg(option, m.Side.BUY, option.lot_size, m.OrderType.MARKET,
                         m.Product.NRML)
        _unfinished_when_stopped(first, m.SubmitEntry("t", (leg,), RULES))
        second = on.engine()
        try:
            assert second.engine.orders_snapshot.stats["sagas_recovered"] == 1
            [ended] = second.ended(1)
            assert isinstance(ended, m.SagaCompleted), ended
            _settled_and_agreed(second)
            view = second.engine.portfolio_snapshot.positions[("t", option.instrument_token)]
            assert view.quantity == option.lot_size
            # its exit plan starts from the price it filled at (not from zero): the next
            # ticks decide no exit
            second.priced(option)
            seen = second.engine.orders_snapshot.stats["price_batches"]
            wait_until(lambda: second.engine.orders_snapshot.stats["price_batches"] > seen + 3,
                       what="a few more ticks")
            assert second.engine.orders_snapshot.stats["exits_decided"] == 0
        finally:
            second.engine.stop(drain=False)
            pykka.ActorRegistry.stop_all()


def test_an_exit_placed_before_the_crash_is_found_by_tag_and_completed(
        tmp_path: Path) -> None:
    with restarts(tmp_path, KITESAGA_ENGINE_FILL_TIMEOUT_S="1.5") as on:
        first = on.engine()
        wait_until(lambda: first.engine.orders_snapshot.state is m.TradingState.ACTIVE)
        option = first.option()
        first.priced(option)
        leg = m.OrderLeg(option, m.Side.BUY, option.lot_size, m.OrderType.MARKET,
                         m.Product.NRML)
        first.engine.orders.tell(m.SubmitEntry("t", (leg,), RULES))
        assert isinstance(first.ended(1)[0], m.SagaCompleted)
        _unfinished_when_stopped(first, m.SubmitExit("t", option.instrument_token, "test"))
        second = on.engine()
        try:
            [ended] = second.ended(1)
            assert isinstance(ended, m.SagaCompleted), ended
            _settled_and_agreed(second)
            assert second.engine.portfolio_snapshot.open_positions == 0
        finally:
            second.engine.stop(drain=False)
            pykka.ActorRegistry.stop_all()
