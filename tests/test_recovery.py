"""Start-up is recovery: an engine restarted on its journal has the same book, and every saga
it left unfinished ends COMPLETED or COMPENSATED after the restart."""

from __future__ import annotations

import dataclasses
from decimal import Decimal
from pathlib import Path

import pytest

from actors.config import Config
from actors.journal import JournalError
from messages import (
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
