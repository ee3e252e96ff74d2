"""PortfolioActor and its Ledger: reservations, fills, shorts, de-duplication, conservation,
loss limit, adopted positions and the ledger's plain-JSON round trip."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from datetime import date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pykka
import pytest

from actors._ledger import Ledger
from actors._portfolio import PortfolioActor, PortfolioSnapshot
from actors._published import Published
from messages import (
    EXTERNAL,
    AdoptPosition,
    ApplyFill,
    CashRefused,
    CashReleased,
    CashReserved,
    Fill,
    FillApplied,
    Instrument,
    Money,
    PositionAdopted,
    Price,
    PricesUpdated,
    ReleaseCash,
    ReserveCash,
    SetTradingState,
    Side,
    TradingState,
)
from tests.engine_support import make_config, running
from tests.support import Recorder, wait_until

IST = ZoneInfo("Asia/Kolkata")
NOW = datetime(2026, 11, 25, 10, 0, tzinfo=IST)
OPT = Instrument(11, "NFO", "NIFTY26DEC24000CE", "NIFTY", "CE", 65, Money(5),
                 date(2026, 12, 29), Money(2_400_000))


@pytest.fixture
def book() -> Iterator[tuple[pykka.ActorRef[PortfolioActor], Published[PortfolioSnapshot],
                             Recorder, Recorder]]:
    control = Recorder()
    inbox = Recorder()
    ref = PortfolioActor.start(Money(100_000_00), Money(5_000_00), control)
    cell: Published[PortfolioSnapshot] = ref.proxy().snapshot.get()
    yield ref, cell, inbox, control
    pykka.ActorRegistry.stop_all()


def fill(fid: str, side: Side, qty: int, price: int, charges: int = 0) -> Fill:
    return Fill(fid, "B1", OPT.instrument_token, side, qty, Money(price), Money(charges), NOW)


def test_reserve_refuse_release(book) -> None:
    ref, cell, inbox, _ = book
    ref.tell(ReserveCash("S1", Money(60_000_00), inbox))
    ref.tell(ReserveCash("S2", Money(60_000_00), inbox))
    inbox.wait_for_kind(CashRefused)
    assert inbox.of(CashReserved)[0].amount == Money(60_000_00)
    refused = inbox.of(CashRefused)[0]
    assert refused.available == Money(40_000_00)
    assert cell.latest().cash == 40_000_00 and cell.latest().reserved == 60_000_00
    ref.tell(ReleaseCash("S1", inbox))
    ref.tell(ReleaseCash("S1", inbox))
    released = inbox.wait_for_kind(CashReleased, 2)
    assert [r.amount.paise for r in released] == [60_000_00, 0]
    assert cell.latest().cash == 100_000_00 and cell.latest().conservation_error == 0


def test_round_trip_long_realises_and_conserves(book) -> None:
    ref, cell, inbox, _ = book
    ref.tell(ReserveCash("S1", Money(10_000_00), inbox))
    ref.tell(ApplyFill("S1", "mom", fill("F1", Side.BUY, 65, 100_00, 25_00), reply_to=inbox))
    ref.tell(ReleaseCash("S1", inbox))
    ref.tell(ApplyFill("X1", "mom", fill("F2", Side.SELL, 65, 110_00, 30_00), reply_to=inbox))
    applied = inbox.wait_for_kind(FillApplied, 2)
    assert applied[0].position_quantity == 65 and applied[1].position_quantity == 0
    assert applied[1].realised == Money(65 * 10_00)
    snap = cell.latest()
    assert snap.realised == 65 * 10_00 and snap.charges == 55_00
    assert snap.cash == 100_000_00 + 65 * 10_00 - 55_00
    assert snap.conservation_error == 0 and snap.open_positions == 0


def test_duplicate_fill_is_ignored(book) -> None:
    ref, cell, inbox, _ = book
    f = fill("F1", Side.BUY, 65, 100_00, 20_00)
    ref.tell(ApplyFill("S1", "mom", f, reply_to=inbox))
    ref.tell(ApplyFill("S1", "mom", f, reply_to=inbox))
    applied = inbox.wait_for_kind(FillApplied, 2)
    assert [a.duplicate for a in applied] == [False, True]
    assert cell.latest().positions[("mom", 11)].quantity == 65
    assert cell.latest().fills_applied == 1 and cell.latest().conservation_error == 0


def test_short_blocks_margin_and_cover_releases_it(book) -> None:
    ref, cell, inbox, _ = book
    ref.tell(ReserveCash("S1", Money(2_000_00 * 65), inbox))
    ref.tell(ApplyFill("S1", "str", fill("F1", Side.SELL, 65, 100_00, 10_00),
                       Money(2_000_00), inbox))
    ref.tell(ReleaseCash("S1", inbox))
    inbox.wait_for_kind(CashReleased)
    snap = cell.latest()
    assert snap.margin == 2_000_00 * 65 and snap.reserved == 0
    assert snap.positions[("str", 11)].quantity == -65
    assert snap.conservation_error == 0
    ref.tell(ApplyFill("X1", "str", fill("F2", Side.BUY, 65, 90_00, 10_00), reply_to=inbox))
    inbox.wait_for_kind(FillApplied, 2)
    snap = cell.latest()
    assert snap.margin == 0 and snap.realised == 65 * 10_00
    assert snap.cash == 100_000_00 + 65 * 10_00 - 20_00
    assert snap.conservation_error == 0


def test_partial_close_keeps_exact_books(book) -> None:
    ref, cell, inbox, _ = book
    ref.tell(ApplyFill("S1", "m", fill("F1", Side.BUY, 65, 100_05), reply_to=inbox))
    ref.tell(ApplyFill("S1", "m", fill("F2", Side.BUY, 130, 101_00), reply_to=inbox))
    ref.tell(ApplyFill("X1", "m", fill("F3", Side.SELL, 65, 99_95), reply_to=inbox))
    inbox.wait_for_kind(FillApplied, 3)
    snap = cell.latest()
    assert snap.positions[("m", 11)].quantity == 130
    assert snap.conservation_error == 0


def test_marks_give_unrealised_and_loss_limit_halts_once(book) -> None:
    ref, cell, inbox, control = book
    ref.tell(ApplyFill("S1", "m", fill("F1", Side.BUY, 650, 100_00), reply_to=inbox))
    inbox.wait_for_kind(FillApplied)
    tick = Price(11, Money(90_00), NOW, NOW)
    ref.tell(PricesUpdated((tick,)))
    ref.tell(PricesUpdated((Price(11, Money(80_00), NOW, NOW),)))
    control.wait_for_kind(SetTradingState)
    ref.tell(ReserveCash("S9", Money(1), inbox))
    inbox.wait_for_kind(CashReserved)
    assert cell.latest().unrealised == 650 * -20_00
    halts = control.of(SetTradingState)
    assert len(halts) == 1 and halts[0].state is TradingState.HALTED
    assert "daily loss" in halts[0].reason


# -- adopted positions (AdoptPosition) ------------------------------------------------------


def test_an_adopted_long_keeps_free_cash_and_comes_in_as_a_transfer(book) -> None:
    ref, cell, inbox, _ = book
    ref.tell(AdoptPosition(EXTERNAL, fill("A1", Side.BUY, 130, 100_00), "found at the broker",
                           inbox))
    adopted = inbox.wait_for_kind(PositionAdopted)[0]
    assert (adopted.fill_id, adopted.position_quantity, adopted.duplicate) == ("A1", 130, False)
    snap = cell.latest()
    assert snap.cash == 100_000_00 and snap.reserved == 0 and snap.margin == 0
    assert snap.transfers == 130 * 100_00 and snap.open_cost == 130 * 100_00
    assert snap.positions[(EXTERNAL, 11)].quantity == 130
    assert snap.fills_applied == 0 and snap.conservation_error == 0


def test_an_adopted_short_blocks_no_margin_and_pays_the_fills_charges(book) -> None:
    ref, cell, inbox, _ = book
    ref.tell(AdoptPosition(EXTERNAL, fill("A1", Side.SELL, 65, 80_00, 12_00), "short",
                           inbox))
    assert inbox.wait_for_kind(PositionAdopted)[0].position_quantity == -65
    snap = cell.latest()
    assert snap.margin == 0 and snap.transfers == -65 * 80_00
    assert snap.cash == 100_000_00 - 12_00 and snap.charges == 12_00
    assert snap.conservation_error == 0
    # closing the adopted short with an ordinary fill realises against the adopted price
    ref.tell(ApplyFill("X1", EXTERNAL, fill("F2", Side.BUY, 65, 70_00), reply_to=inbox))
    applied = inbox.wait_for_kind(FillApplied)[0]
    assert applied.position_quantity == 0 and applied.realised == Money(65 * 10_00)
    assert cell.latest().conservation_error == 0


def test_an_adoption_is_idempotent_by_fill_id_shared_with_fills(book) -> None:
    ref, cell, inbox, _ = book
    adopt = AdoptPosition(EXTERNAL, fill("A1", Side.BUY, 65, 100_00), "found", inbox)
    ref.tell(adopt)
    ref.tell(adopt)
    ref.tell(ApplyFill("S1", "mom", fill("F1", Side.BUY, 65, 50_00), reply_to=inbox))
    ref.tell(AdoptPosition(EXTERNAL, fill("F1", Side.BUY, 65, 50_00), "same id as a fill",
                           inbox))
    answers = inbox.wait_for_kind(PositionAdopted, 3)
    assert [a.duplicate for a in answers] == [False, True, True]
    assert [a.position_quantity for a in answers] == [65, 65, 65]  # EXTERNAL's, unchanged
    snap = cell.latest()
    assert snap.transfers == 65 * 100_00 and snap.positions[(EXTERNAL, 11)].quantity == 65
    assert snap.conservation_error == 0


def test_an_adoption_survives_a_restart_from_the_journal(tmp_path: Path) -> None:
    config = make_config()
    config = dataclasses.replace(config, engine=dataclasses.replace(
        config.engine, state_dir=str(tmp_path)))
    inbox = Recorder()
    with running(config) as h:
        token = h.option().instrument_token
        adopted = Fill("A1", "EXT1", token, Side.BUY, 75, Money(120_00), Money(3_00), NOW)
        h.engine.portfolio.tell(AdoptPosition(EXTERNAL, adopted, "restart test", inbox))
        inbox.wait_for_kind(PositionAdopted)  # told after its record's commit
        before = h.engine.portfolio_snapshot
        assert before.transfers == 75 * 120_00 and before.conservation_error == 0
    with running(config) as h:
        after = h.engine.portfolio_snapshot
        assert (after.transfers, after.cash, after.charges, after.initial_cash) == (
            before.transfers, before.cash, before.charges, before.initial_cash)
        assert after.positions[(EXTERNAL, token)].quantity == 75
        again = Recorder()
        h.engine.portfolio.tell(AdoptPosition(EXTERNAL, adopted, "restart test", again))
        assert again.wait_for_kind(PositionAdopted)[0].duplicate  # the de-dup set came back
        wait_until(lambda: h.engine.portfolio_snapshot.conservation_error == 0)


# -- the Ledger on its own ------------------------------------------------------------------


def test_the_ledger_round_trips_exactly_through_plain_json() -> None:
    ledger = Ledger(1_000_000_00, dedupe_window=3)
    assert ledger.reserve("S1", 20_000_00)
    ledger.apply(ApplyFill("S1", "m", fill("F1", Side.BUY, 65, 100_05, 7_00)))
    ledger.apply(ApplyFill("S2", "s", fill("F2", Side.SELL, 65, 90_00, 1_00), Money(500_00)))
    ledger.adopt(AdoptPosition(EXTERNAL, fill("A1", Side.SELL, 65, 80_00), "found"))
    ledger.apply(ApplyFill("X1", "m", fill("F3", Side.SELL, 30, 101_00)))
    assert ledger.reservation("S1") > 0 and ledger.conservation_error == 0
    body = ledger.to_body()
    again = Ledger.from_body(body, dedupe_window=3)
    assert again == ledger and again.to_body() == body
    assert body["applied"] == ["F2", "A1", "F3"]  # the window keeps the newest three
    assert not again.seen("F1") and again.seen("F3")
    assert Ledger.from_body(body, dedupe_window=2).to_body()["applied"] == ["A1", "F3"]


@pytest.mark.parametrize(("change", "message"), [
    (lambda b: b.update(cash=b["cash"] + 1), "do not balance"),
    (lambda b: b.update(cash="1"), "ledger.cash"),
    (lambda b: b.update(format=99), "ledger.format"),
    (lambda b: b["positions"].append(["x", 1, 2]), r"ledger.positions\[1\]"),
    (lambda b: b.update(applied=["F1", "F1"]), "ledger.applied"),
])
def test_a_ledger_body_that_does_not_hold_together_is_refused(change, message) -> None:
    ledger = Ledger(100_00)
    ledger.apply(ApplyFill("S1", "m", fill("F1", Side.BUY, 1, 10_00)))
    body = ledger.to_body()
    change(body)
    with pytest.raises(ValueError, match=message):
        Ledger.from_body(body)
