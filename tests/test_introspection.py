"""The control socket's introspection commands behind ``kitesaga repl`` against a real
running engine (in-process): actors and their counters, inspect, prices, limits, a
saga's journal timeline, trace (attached and detached by the actors themselves),
and ask/tell with the read-only and confirmation policy."""

from __future__ import annotations

import threading
from decimal import Decimal
from typing import Any

import pytest

from actors._introspect import ActorStats, AttachTrace, DetachTrace, TraceSink
from actors.control import ControlError, request, stream
from messages import (
    DescribeSagas,
    Halt,
    Money,
    OrderLeg,
    OrderType,
    Side,
    SubmitEntry,
    to_dict,
)
from tests.support import wait_until
from tests.test_control import controlled

CORE = {"PortfolioActor", "OrderActor", "PriceActor", "RateLimitActor", "SyncActor"}


def _ask(path: Any, command: str, **args: Any) -> dict[str, Any]:
    return request(path, command, args, timeout=10)


def test_actors_lists_the_five_with_their_counters() -> None:
    with controlled() as (h, server):
        call = h.option()
        h.quote(call, 150_00)
        rows = {row["name"]: row for row in _ask(server.path, "actors")["actors"]}
        assert set(rows) >= CORE
        assert {"JournalActor", "SupervisorActor", "PaperBrokerActor"} <= set(rows)
        price = rows["PriceActor"]
        assert price["state"] == "running" and price["failures"] == 0
        assert price["processed"] >= 1 and price["last_message"] in (
            "RecordPrices", "PricesProcessed")
        assert price["last_age_s"] < 10 and type(price["mailbox"]) is int
        assert price["busy_s"] is None
        before = rows["OrderActor"]["processed"]
        for step in range(5):
            h.quote(call, 150_00 + 5 * step)
        after = {r["name"]: r for r in _ask(server.path, "actors")["actors"]}["OrderActor"]
        assert after["processed"] >= before + 5


def test_stats_count_rate_busy_and_failures() -> None:
    now = [100.0]
    stats = ActorStats("X", clock=lambda: now[0])
    assert stats.read().last_message is None
    for _ in range(10):
        stats.received(DescribeSagas())
        now[0] += 0.2
        stats.handled()
    view = stats.read()
    assert view.processed == 10 and view.last_message == "DescribeSagas"
    assert view.rate_per_s == pytest.approx(5.0, rel=0.2) and view.busy_s is None
    stats.received("x")
    now[0] += 1.5
    assert stats.read().busy_s == pytest.approx(1.5)
    stats.failed("ValueError('boom')")
    view = stats.read()
    assert view.failures == 1 and view.last_failure == "ValueError('boom')"
    assert view.busy_s is None
    now[0] += 10  # idle: the rate falls instead of freezing at the last window
    assert stats.read().rate_per_s < 1


def test_a_trace_sink_keeps_its_types_and_counts_what_it_dropped() -> None:
    stats = ActorStats("X")
    sink = TraceSink(frozenset({"DescribeSagas"}), capacity=10)
    stats.received(DescribeSagas())
    stats.tap(AttachTrace(sink))
    for _ in range(15):
        stats.received(DescribeSagas())
        stats.received("not kept")
    stats.tap(DetachTrace(sink))
    stats.received(DescribeSagas())
    taken = sink.take()
    assert len(taken) == 10 and all(e.actor == "X" for e in taken)
    assert sink.dropped == 5 and stats.sinks == {}


def test_inspect_prices_and_limits() -> None:
    with controlled(prices={"max_price_age_s": 5.0}) as (h, server):
        call, put = h.option(), h.option(offset=1)
        h.quote(call, 150_00)
        h.quote(put, 90_00, age=60.0)  # older than max_price_age_s: rejected, not held
        snap = _ask(server.path, "inspect", name="prices")
        assert snap["name"] == "PriceActor" and snap["stats"]["name"] == "PriceActor"
        assert str(call.instrument_token) in snap["snapshot"]["prices"]
        assert snap["snapshot"]["rejected"] == {"stale": 1}
        held = _ask(server.path, "prices", stale=True)["prices"]
        assert [p["instrument"] for p in held] == [call.key]
        assert held[0]["last_paise"] == 150_00 and held[0]["stale"] is False
        limits = _ask(server.path, "limits")
        assert {"orders", "quote", "other"} <= set(limits["classes"])
        assert limits["orders_per_day"] == h.engine.config.rate_limits.orders_per_day
        queued = _ask(server.path, "inspect", name="RateLimitActor")["snapshot"]["queued"]
        assert "EXIT" in queued["orders"]  # lanes by name, not number
        with pytest.raises(ControlError, match=r"actor: no actor 'nobody'.*OrderActor"):
            _ask(server.path, "inspect", name="nobody")
        with pytest.raises(ControlError, match="stale: must be true or false, got 'yes'"):
            _ask(server.path, "prices", stale="yes")


def _entry(h: Any, price: int | None = None) -> SubmitEntry:
    call = h.option()
    h.quote(call, 150_00)
    leg = OrderLeg(call, Side.BUY, call.lot_size,
                   OrderType.MARKET if price is None else OrderType.LIMIT,
                   limit_price=None if price is None else Money(price))
    return SubmitEntry("manual", (leg,))


def test_ask_follows_the_read_only_and_confirmation_policy() -> None:
    with controlled() as (h, server):
        described = _ask(server.path, "ask", actor="orders",
                         message=to_dict(DescribeSagas()))
        assert described["answered"] and described["replies"] == [
            {"type": "SagasDescribed", "sagas": []}]
        entry = to_dict(_entry(h))
        with pytest.raises(ControlError, match="read-only session: SubmitEntry") as refused:
            _ask(server.path, "ask", actor="orders", message=entry)
        assert refused.value.confirm is None
        with pytest.raises(ControlError, match="needs confirming") as unconfirmed:
            _ask(server.path, "ask", actor="orders", message=entry, write=True)
        assert unconfirmed.value.confirm == ("SubmitEntry to OrderActor opens a position: "
                                             "places orders at the broker")
        assert h.engine.orders_snapshot.stats["sagas_started"] == 0
        done = _ask(server.path, "ask", actor="orders", message=entry, write=True,
                    confirmed=True)
        assert done["answered"]
        assert [r["type"] for r in done["replies"]] == ["SagaStarted", "SagaCompleted"]
        assert h.engine.portfolio_snapshot.open_positions == 1
        bad = dict(entry, legs=[dict(entry["legs"][0], quantity=-5)])
        with pytest.raises(ControlError, match="quantity") as invalid:
            _ask(server.path, "ask", actor="orders", message=bad, write=True, confirmed=True)
        assert invalid.value.exit_code == 2
        with pytest.raises(ControlError, match="Money is a value, not a message"):
            _ask(server.path, "tell", actor="orders", message=to_dict(Money(5)), write=True)
        with pytest.raises(ControlError, match="squares off every position"):
            _ask(server.path, "tell", actor="orders", write=True,
                 message=to_dict(Halt("stop", True)))
        assert h.engine.portfolio_snapshot.open_positions == 1  # nothing sent


def test_a_saga_timeline_comes_from_the_journal() -> None:
    with controlled() as (h, server):
        done = _ask(server.path, "ask", actor="orders", message=to_dict(_entry(h)),
                    write=True, confirmed=True)
        saga_id = done["replies"][0]["saga_id"]
        wait_until(lambda: _ask(server.path, "saga", saga_id=saga_id)["timeline"][-1][
            "kind"] == "ended", what="the journal committed the saga's end")
        saga = _ask(server.path, "saga", saga_id=saga_id)
        assert saga["live"] is None
        kinds = [e["kind"] for e in saga["timeline"]]
        assert kinds == ["saga", "ReserveCash", "order", "placed", "ApplyFill", "ended"]
        assert saga["timeline"][0]["summary"].startswith("ENTRY for manual: BUY")
        assert saga["timeline"][-1]["summary"] == "ended COMPLETED"
        ended = _ask(server.path, "sagas", open=False, n=5)["ended"]
        assert [(s["saga_id"], s["outcome"], s["strategy"]) for s in ended] == [
            (saga_id, "COMPLETED", "manual")]
        with pytest.raises(ControlError, match="saga_id: no saga 'ZZZZ'"):
            _ask(server.path, "saga", saga_id="ZZZZ")


def test_a_working_saga_shows_live_and_in_the_journal() -> None:
    with controlled(paper={"stuck_ratio": Decimal(1)},
                    engine={"fill_timeout_s": 30.0}) as (h, server):
        reply = _ask(server.path, "ask", actor="orders", message=to_dict(_entry(h, 150_05)),
                     write=True, confirmed=True, timeout_s=0.5)
        assert not reply["answered"]
        saga_id = reply["replies"][0]["saga_id"]
        saga = _ask(server.path, "saga", saga_id=saga_id)
        assert saga["live"]["step"].startswith("WORKING")
        assert [e["kind"] for e in saga["timeline"]][-1] == "placed"


def test_trace_streams_then_detaches() -> None:
    with controlled() as (h, server):
        call = h.option()
        stop = threading.Event()

        def ticks() -> None:
            step = 0
            while not stop.is_set():
                h.quote(call, 150_00 + 5 * (step % 20))
                step += 1

        feeder = threading.Thread(target=ticks)
        feeder.start()
        try:
            items = list(stream(server.path, "trace", {"target": "RecordPrices", "n": 20},
                                timeout=10))
            events = [i["event"] for i in items[:-1]]
            result = items[-1]["result"]
            assert len(events) == 20 and result["count"] == 20
            assert result["ended"] == "n reached" and result["types"] == ["RecordPrices"]
            assert {e["type"] for e in events} == {"RecordPrices"}
            assert events[0]["message"].startswith(f"1 price(s): {call.key} ₹")
            assert {e["actor"] for e in events} <= {"PriceActor", "PaperBrokerActor"}
            gen = stream(server.path, "trace", {"target": "orders", "n": 10_000}, timeout=10)
            first = next(gen)
            assert first["event"]["actor"] == "OrderActor"
            gen.close()  # the console leaves mid-trace
            wait_until(lambda: all(not a.stats.sinks for a in h.engine.actors),
                       what="every actor detached the abandoned trace")
        finally:
            stop.set()
            feeder.join()
        with pytest.raises(ControlError, match="target: 'Nope' is neither an actor"):
            list(stream(server.path, "trace", {"target": "Nope"}, timeout=10))
        with pytest.raises(ControlError, match="n: must be a whole number from 1 to 10000"):
            list(stream(server.path, "trace", {"n": 0}, timeout=10))
