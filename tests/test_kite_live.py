"""Live mode end to end in one process: the real kiteconnect client, over loopback, against
the Kite simulator; every saga outcome under each injected fault."""

from __future__ import annotations

import math
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import requests
import structlog

from actors._ratelimit import RateLimitActor
from actors.kite import LiveFeedActor, LiveSession, LiveStartError
from actors.kite._gateway import GatewaySnapshot
from messages import (
    ExitRules,
    Instrument,
    InstrumentKind,
    Money,
    OrderLeg,
    OrderType,
    Product,
    ProtectionFailed,
    ProtectPosition,
    RecordPrices,
    SagaCompensated,
    SagaCompleted,
    SagaRefused,
    Side,
    SubmitEntry,
    SubmitExit,
    TradingState,
)
from tests.live_support import (
    LiveHarness,
    as_user,
    live_config,
    live_engine,
    simulator,
    store_token,
    zerodha_env,
)
from tests.support import Recorder, wait_until

RULES = ExitRules(Decimal(25), Decimal(40))


def buy(h: LiveHarness, instrument: Instrument, strategy: str = "t") -> None:
    leg = OrderLeg(instrument, Side.BUY, instrument.lot_size, OrderType.MARKET, Product.NRML)
    h.engine.orders.tell(SubmitEntry(strategy, (leg,), RULES))


def gateway(h: LiveHarness) -> GatewaySnapshot:
    return h.engine.gateway_snapshot


def broker_positions(h: LiveHarness) -> dict[str, int]:
    return {p["tradingsymbol"]: p["quantity"]
            for p in h.stats()["open_positions"]["positions"] if p["quantity"]}


def book_positions(h: LiveHarness) -> dict[str, int]:
    out: dict[str, int] = {}
    for (_, token), view in h.engine.portfolio_snapshot.positions.items():
        if view.quantity:
            symbol = h.engine.instruments.get(token).tradingsymbol
            out[symbol] = out.get(symbol, 0) + view.quantity
    return out


def one_order_per_tag(h: LiveHarness) -> None:
    per_tag: dict[str, int] = h.stats()["orders_per_tag"]
    assert per_tag and all(n == 1 for tag, n in per_tag.items() if tag), per_tag


def test_entry_exit_round_trip_agrees_with_the_broker_and_keeps_a_gtt(tmp_path: Path) -> None:
    with live_engine(tmp_path) as h:
        option = h.option()
        h.priced(option)
        buy(h, option)
        [entry] = h.ended(1)
        assert isinstance(entry, SagaCompleted) and entry.filled_quantities == (option.lot_size,)
        assert book_positions(h) == broker_positions(h) == {option.tradingsymbol: 65}
        wait_until(lambda: gateway(h).protected == 1, what="GTT placed")
        entry_price = h.engine.portfolio_snapshot.positions[("t", option.instrument_token)].cost
        h.engine.orders.tell(SubmitExit("t", option.instrument_token, "manual"))
        ended = h.ended(2)
        assert isinstance(ended[1], SagaCompleted)
        wait_until(lambda: gateway(h).counts["gtt_deleted"] == 1, what="GTT deleted")
        assert book_positions(h) == broker_positions(h) == {}
        one_order_per_tag(h)
        stats = h.stats()
        assert stats["breaches"]["count"] == 0, stats["breaches"]
        # order updates came over the ticker's text frames
        assert h.engine.stream.stats["order_updates"] >= 1
        # fills carry the broker's charges (the charges API), not the fallback
        assert gateway(h).counts["charges_fallbacks"] == 0
        assert h.engine.portfolio_snapshot.charges > 0
        # the GTT was a two-leg OCO around the entry price; now it is deleted
        # (read last: a call from outside the engine spends the account's budget too)
        kite: Any = h.engine.live.client()  # type: ignore[union-attr]
        assert as_user(kite.get_gtts) == []
        gtt = as_user(lambda: kite.get_gtt(100001))
        assert gtt["type"] == "two-leg" and gtt["status"] == "deleted"
        low, high = gtt["condition"]["trigger_values"]
        assert low < entry_price / 65 / 100 < high


def test_a_dropped_response_is_found_by_tag_and_never_placed_twice(tmp_path: Path) -> None:
    with live_engine(tmp_path, faults="drop_response=1") as h:
        option = h.option()
        h.priced(option)
        buy(h, option)
        [done] = h.ended(1)
        assert isinstance(done, SagaCompleted)
        assert gateway(h).counts["unknown_outcomes"] == 1
        assert h.engine.orders_snapshot.stats["unknown_outcomes"] == 1
        one_order_per_tag(h)
        assert book_positions(h) == broker_positions(h)


def test_a_429_burst_is_retried_within_budget(tmp_path: Path) -> None:
    with live_engine(tmp_path) as h:
        option = h.option()
        h.priced(option)
        h.server.set_faults("burst_429=3")
        buy(h, option)
        [done] = h.ended(1)
        assert isinstance(done, SagaCompleted)
        book = h.engine.limiter.proxy().snapshot.get().latest()
        assert sum(book.throttled.values()) >= 1
        one_order_per_tag(h)
        assert h.stats()["breaches"]["count"] == 0


def test_an_order_stuck_in_open_pending_is_cancelled_and_confirmed(tmp_path: Path) -> None:
    with live_engine(tmp_path, faults="stuck=1,stuck_cancel_s=0.3") as h:
        option = h.option()
        h.priced(option)
        before = h.engine.portfolio_snapshot.cash
        buy(h, option)
        [done] = h.ended(1, timeout=30)
        assert isinstance(done, SagaCompensated)
        assert h.stats()["orders_by_status"] == {"CANCELLED": 1}
        assert h.engine.orders_snapshot.stats["cancels"] == 1
        wait_until(lambda: h.engine.portfolio_snapshot.cash == before, what="cash released")
        assert book_positions(h) == broker_positions(h) == {}


def test_a_rejected_order_compensates_the_saga(tmp_path: Path) -> None:
    with live_engine(tmp_path, faults="reject=1") as h:
        option = h.option()
        h.priced(option)
        buy(h, option)
        [done] = h.ended(1)
        assert isinstance(done, SagaCompensated)
        assert h.stats()["orders_by_status"] == {"REJECTED": 1}
        assert h.engine.portfolio_snapshot.reserved == 0


def test_5xx_on_placement_is_resolved_by_tag_before_anything_else(tmp_path: Path) -> None:
    with live_engine(tmp_path, KITESAGA_LIVE_MARGIN_CHECK="false") as h:
        option = h.option()
        h.priced(option)
        h.server.set_faults("error_5xx=1")
        buy(h, option)
        wait_until(lambda: h.engine.orders_snapshot.stats["unknown_outcomes"] == 1,
                   what="the 5xx made the outcome unknown")
        h.server.set_faults("")
        [done] = h.ended(1, timeout=30)
        assert isinstance(done, SagaCompensated)
        assert "no order under its tag" in done.reason
        assert h.stats()["orders"] == 0


def test_a_short_margin_refuses_the_entry_before_any_order(tmp_path: Path) -> None:
    with live_engine(tmp_path, KITESAGA_ENGINE_INITIAL_CASH_RUPEES="100000") as h:
        option = h.option()
        h.priced(option)
        # a trade behind the engine's back spends the broker's margin
        equity = h.engine.instruments.by_symbol("NSE", "BAJAJ-AUTO")
        reply = requests.post(f"{h.server.url}/_sim/positions", json={
            "exchange": "NSE", "tradingsymbol": equity.tradingsymbol, "quantity": 11,
            "product": "CNC", "price": 8500}, timeout=5)
        assert reply.status_code == 200, reply.text
        buy(h, option)
        [done] = h.ended(1)
        assert isinstance(done, SagaCompensated)
        assert "margin short" in done.reason
        assert h.engine.orders_snapshot.stats["margin_refusals"] == 1
        assert h.stats()["orders"] == 1  # only the trade booked behind the engine's back


def test_token_expiry_halts_new_entries(tmp_path: Path) -> None:
    with live_engine(tmp_path) as h:
        option = h.option()
        h.priced(option)
        h.server.set_faults("token_expired=1")
        buy(h, option)
        [done] = h.ended(1)
        assert isinstance(done, SagaCompensated)
        wait_until(lambda: h.engine.orders_snapshot.state is TradingState.HALTED,
                   what="HALTED after TokenException")
        assert gateway(h).token_dead
        buy(h, option, strategy="u")
        h.events.wait_for(lambda ms: any(isinstance(m, SagaRefused) for m in ms))
        assert h.stats()["orders"] == 0


def test_rest_prices_when_the_ticker_is_refused(tmp_path: Path) -> None:
    with live_engine(tmp_path, faults="ticker_refuse=1") as h:
        option = h.option()
        h.priced(option)
        assert not gateway(h).ticker_connected
        assert h.stats()["requests"]["quote"] >= 1
        buy(h, option)
        [done] = h.ended(1)
        assert isinstance(done, SagaCompleted)
        # no ticker, no order updates pushed: the order's fill was found by polling
        assert gateway(h).counts["polls"] >= 1
        assert h.engine.stream.stats["order_updates"] == 0


def test_a_gtt_that_cannot_be_placed_marks_the_position_unprotected(tmp_path: Path) -> None:
    with live_engine(tmp_path) as h:
        option = h.option()
        h.priced(option)
        h.server.set_faults("error_5xx=1")
        inbox = Recorder()
        h.engine.broker.tell(ProtectPosition("t:1", option, Side.SELL, 65, Product.NRML,
                                             Money(50_00), Money(500_00), Money(100_00), inbox))
        [failed] = inbox.wait_for_kind(ProtectionFailed)
        assert failed.key == "t:1" and "GTT not placed" in failed.reason
        assert gateway(h).unprotected == ("t:1",)


@pytest.mark.parametrize(("call", "per_call"), [("ltp", 1000), ("quote", 500)])
def test_rest_polling_batches_within_the_per_call_limits(tmp_path: Path, call: str,
                                                         per_call: int) -> None:
    # a real-time market: stepping 1,200 instruments 30 times a second would stall the
    # simulator's loop and bunch requests (see docs/performance.md, bench_live)
    config = live_config(tmp_path, KITESAGA_MARKET_EXTRA_INSTRUMENTS="1200",
                         KITESAGA_LIVE_REST_PRICE_CALL=call, KITESAGA_MARKET_SPEED="1")
    with simulator(config) as server:
        env = zerodha_env(server)
        store_token(server, config, env)
        session = LiveSession.connect(config, env)
        tokens = frozenset(i.instrument_token for i in session.instruments)
        assert len(tokens) > 1200
        limiter = RateLimitActor.start(config.rate_limits)
        prices = Recorder()
        feed = LiveFeedActor.start(session.client(), None, config, limiter, prices, None,
                                   session.instruments, lambda: tokens, session.clock.now)
        try:
            wait_until(lambda: len({p.instrument_token for m in prices.of(RecordPrices)
                                    for p in m.prices}) == len(tokens), timeout=20,
                       what="a price for every watched instrument")
            calls = server.stats()["requests"]["quote"]
            rounds = feed.proxy().counts.get()["rest_rounds"]  # read after: never fewer
            assert calls <= rounds * math.ceil(len(tokens) / per_call)
            assert calls >= math.ceil(len(tokens) / per_call)
            assert server.stats()["throttled"]["quote"] == 0  # within 1 call/s, no 400s
        finally:
            feed.stop()
            limiter.stop()


def test_the_broker_s_dump_validates_symbols(tmp_path: Path) -> None:
    with live_engine(tmp_path) as h:
        table = h.engine.instruments
        assert table.by_symbol("NSE", "M&M").lot_size == 1
        assert table.by_symbol("NSE", "BAJAJ-AUTO").tradingsymbol == "BAJAJ-AUTO"
        with pytest.raises(ValueError, match="MADEUPCO"):
            table.by_symbol("NSE", "MADEUPCO")
        # lot size, tick size and expiry come from the dump, not from code
        option = h.option()
        assert option.lot_size == 65 and option.tick_size == Money(5)
        assert option.expiry is not None


def test_many_sagas_waiting_on_the_broker_do_not_starve_their_own_fills(
        tmp_path: Path) -> None:
    # ten entries at once, half their answers lost, fill timeouts short: every saga looks
    # its order up or confirms a cancel, all on the 10/s OTHER budget that also fetches
    # the fills that would settle them; look-ups back off and merge, so all of them end
    with live_engine(tmp_path, faults="drop_response=0.3,seed=3",
                     KITESAGA_ENGINE_FILL_TIMEOUT_S="1.5") as h:
        options = [h.option(kind, k) for kind in (InstrumentKind.CE, InstrumentKind.PE)
                   for k in range(-2, 3)]
        for option in options:
            h.priced(option)
        for option in options:
            h.engine.orders.tell(SubmitEntry("a", (OrderLeg(
                option, Side.BUY, option.lot_size, OrderType.MARKET, Product.NRML),), RULES))
        ended = h.ended(len(options), timeout=45)
        assert len(ended) == len(options)
        stats = h.stats()
        assert all(n == 1 for tag, n in stats["orders_per_tag"].items() if tag)
        assert h.engine.orders_snapshot.stats["unknown_outcomes"] >= 1  # the path was taken
        assert h.engine.portfolio_snapshot.conservation_error == 0
        assert stats["breaches"]["count"] == 0


def test_a_quick_restart_rides_out_the_broker_s_429s_at_start(tmp_path: Path) -> None:
    config = live_config(tmp_path, KITESAGA_RATE_LIMITS_BACKOFF_INITIAL_S="0.05")
    with simulator(config) as server:
        zenv = zerodha_env(server)
        store_token(server, config, zenv)
        server.set_faults("burst_429=3")  # the previous run spent the budget
        with structlog.testing.capture_logs() as logs:
            session = LiveSession.connect(config, zenv)
        assert len(session.instruments) > 0 and session.cash.paise > 0
        throttled = [e for e in logs if e["event"] == "startup_call_throttled"]
        assert [e["attempt"] for e in throttled] == [1, 2, 3]
        server.set_faults(f"burst_429={config.rate_limits.retries_on_429 + 1}")
        with pytest.raises(LiveStartError, match="Too many requests"):
            LiveSession.connect(config, zenv)  # a bounded patience: then exit 2


def test_a_response_slower_than_the_timeout_is_an_unknown_outcome_found_by_tag(
        tmp_path: Path) -> None:
    with live_engine(tmp_path, KITESAGA_LIVE_MARGIN_CHECK="false") as h:
        option = h.option()
        h.priced(option)
        h.server.set_faults("latency_ms=2500")  # the client gives up after 2 s
        buy(h, option)
        wait_until(lambda: gateway(h).counts["unknown_outcomes"] == 1, timeout=15,
                   what="the placement timed out")
        h.server.set_faults("")
        [done] = h.ended(1, timeout=30)
        assert isinstance(done, SagaCompleted)  # the broker had the order all along
        one_order_per_tag(h)
        assert book_positions(h) == broker_positions(h)


def test_a_dropped_ticker_reconnects_and_resubscribes(tmp_path: Path) -> None:
    with live_engine(tmp_path) as h:
        option = h.option()
        h.priced(option)
        h.server.set_faults("ticker_disconnect=1")
        wait_until(lambda: h.engine.stream.stats["connects"] >= 2, timeout=20,
                   what="the ticker reconnected")
        ticks = h.engine.stream.stats["ticks"]
        wait_until(lambda: h.engine.stream.stats["ticks"] > ticks, timeout=10,
                   what="ticks flow again without a new subscription from us")
        buy(h, option)
        [done] = h.ended(1)
        assert isinstance(done, SagaCompleted)
