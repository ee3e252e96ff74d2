"""Start-up is recovery: an engine restarted on its journal has the same book, and every saga
it left unfinished ends COMPLETED or COMPENSATED after the restart."""

from __future__ import annotations

import dataclasses
from decimal import Decimal
from pathlib import Path

import pytest
import structlog

from actors._startup import open_journal
from actors.config import Config
from actors.journal import Journal, JournalError, journal_path
from messages import (
    Money,
    SagaCompensated,
    SagaCompleted,
    Side,
    SubmitEntry,
    SubmitExit,
)
from tests.engine_support import Harness, make_config, running
from tests.support import wait_until


def config_in(state: Path, **paper: object) -> Config:
    config = make_config(paper=dict(paper) if paper else {})
    return dataclasses.replace(config, engine=dataclasses.replace(config.engine,
                                                                  state_dir=str(state)))


def ended(h: Harness, count: int) -> None:
    h.events.wait_for(lambda ms: sum(isinstance(m, SagaCompleted | SagaCompensated)
                                     for m in ms) >= count, timeout=20)


def test_a_restart_rebuilds_the_book_and_the_broker(tmp_path: Path) -> None:
    config = config_in(tmp_path)
    with running(config) as h:
        call, put = h.option(), h.option(offset=1)
        for instrument in (call, put):
            h.quote(instrument, 150_00)
            h.submit(SubmitEntry.single("t", instrument, Side.BUY, instrument.lot_size))
        ended(h, 2)
        h.submit(SubmitExit("t", put.instrument_token, "take it off"))
        ended(h, 3)
        before = h.engine.portfolio_snapshot
        broker_before = h.engine.broker_snapshot
        assert h.engine.orders_snapshot.open_positions == 1
        assert h.engine.stop(drain=True)
    with running(config) as h:
        after = h.engine.portfolio_snapshot
        assert (after.cash, after.reserved, after.realised, after.charges,
                after.fills_applied) == (before.cash, before.reserved, before.realised,
                                         before.charges, before.fills_applied)
        assert {k: v.quantity for k, v in after.positions.items()} == \
            {k: v.quantity for k, v in before.positions.items()}
        assert after.conservation_error == 0
        assert h.engine.broker_snapshot.funds == broker_before.funds
        assert h.engine.orders_snapshot.open_positions == 1  # the book is back
        # the restored position is managed: it exits, and its fill ids are fresh
        h.quote(call, 160_00)
        h.submit(SubmitExit("t", call.instrument_token, "after the restart"))
        ended(h, 1)
        assert len(h.events.of(SagaCompleted)) == 1 and h.events.of(SagaCompensated) == []
        final = h.engine.portfolio_snapshot
        assert final.open_positions == 0 and final.conservation_error == 0
        assert final.fills_applied == before.fills_applied + 1  # not taken for a duplicate


def test_sagas_in_flight_at_a_crash_end_after_the_restart(tmp_path: Path) -> None:
    stuck = config_in(tmp_path, stuck_ratio=Decimal(1))
    with running(stuck) as h:
        instruments = [h.option(offset=k) for k in range(3)]
        for instrument in instruments:
            h.quote(instrument, 150_00)
            h.submit(SubmitEntry.single("t", instrument, Side.BUY, instrument.lot_size))
        wait_until(lambda: h.engine.orders_snapshot.stats["orders"] == 3,
                   what="three orders placed and stuck")
        initial = h.engine.portfolio_snapshot.initial_cash
        assert h.engine.portfolio_snapshot.reserved > 0
        h.engine.stop(drain=False)  # the process dies with three sagas in flight
    with running(config_in(tmp_path)) as h:
        assert h.engine.orders_snapshot.stats["sagas_recovered"] == 3
        wait_until(lambda: h.engine.orders_snapshot.in_flight == 0, timeout=20,
                   what="every recovered saga ended")
        compensated = h.events.of(SagaCompensated)
        assert len(compensated) == 3
        snap = h.engine.portfolio_snapshot
        assert (snap.cash, snap.reserved, snap.conservation_error) == (initial, 0, 0)
        assert h.engine.orders_snapshot.stats["orders"] == 0  # nothing placed twice


def test_a_foreign_journal_is_refused_untouched(tmp_path: Path) -> None:
    config = config_in(tmp_path)
    path = tmp_path / config.journal.file_paper
    path.write_bytes(b"not a journal at all\n")
    with pytest.raises(JournalError, match=str(path)), running(config):
        pass
    assert path.read_bytes() == b"not a journal at all\n"


def with_cash(config: Config, rupees: int, **engine: object) -> Config:
    return dataclasses.replace(config, engine=dataclasses.replace(
        config.engine, initial_cash_rupees=Decimal(rupees), **engine))


def test_a_restart_uses_the_journaled_opening_cash_not_the_configs(tmp_path: Path) -> None:
    first = with_cash(config_in(tmp_path), 1_000_000)
    with running(first) as h:
        call = h.option()
        h.quote(call, 150_00)
        h.submit(SubmitEntry.single("t", call, Side.BUY, call.lot_size))
        ended(h, 1)
        before = h.engine.portfolio_snapshot
        funds = h.engine.broker_snapshot.funds
        assert before.initial_cash == 1_000_000_00 and before.open_positions == 1
    with structlog.testing.capture_logs() as logs, running(with_cash(first, 2_500_000)) as h:
        after = h.engine.portfolio_snapshot
        assert (after.initial_cash, after.cash, after.open_cost) == (
            before.initial_cash, before.cash, before.open_cost)
        assert after.conservation_error == 0
        assert h.engine.broker_snapshot.funds == funds  # the paper broker's opening too
    differs = [e for e in logs if e["event"] == "opening_cash_differs"]
    assert len(differs) == 1 and differs[0]["log_level"] == "warning"
    assert (differs[0]["journaled"], differs[0]["current"]) == ("₹1,000,000.00",
                                                               "₹2,500,000.00")
    journal = Journal.open(journal_path(first, "paper"), "paper")
    try:
        openings = [r.body for _, r in journal.replay() if r.kind == "opening"]
    finally:
        journal.close()
    assert openings == [{"cash": 1_000_000_00}]  # written once, on the first start


def test_live_start_up_uses_the_journaled_opening_not_the_brokers_margin(
        tmp_path: Path) -> None:
    """The live path through the same start-up code: the broker's current net (which
    already excludes what open positions cost) must not replace the opening cash."""
    config = config_in(tmp_path)
    live = dataclasses.replace(config, engine=dataclasses.replace(config.engine, mode="live"))
    opened = open_journal(live, Money(500_000_00), "broker")
    try:
        assert opened.recovered.opening == 500_000_00 and opened.snapshot == 0
        assert opened.recovered.paper is None  # no paper broker book in live mode
        ledger = opened.recovered.ledger
        assert ledger is not None and ledger.initial == ledger.cash == 500_000_00
    finally:
        opened.store.close()
    with structlog.testing.capture_logs() as logs:
        again = open_journal(live, Money(430_000_00), "broker")  # positions cost 70k since
    try:
        ledger = again.recovered.ledger
        assert ledger is not None and (ledger.initial, ledger.cash) == (500_000_00, 500_000_00)
        assert again.store.last_seq == 1  # no second opening record
    finally:
        again.store.close()
    assert [(e["event"], e["log_level"], e["source"]) for e in logs
            if e["event"] == "opening_cash_differs"] == [
        ("opening_cash_differs", "warning", "broker")]
    assert not (tmp_path / config.journal.file_paper).exists()  # the live book's own file
