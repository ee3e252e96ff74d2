"""PortfolioActor: reservations, fills, shorts, de-duplication, conservation, loss limit."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, datetime
from zoneinfo import ZoneInfo

import pykka
import pytest

from actors._portfolio import PortfolioActor, PortfolioSnapshot
from actors._published import Published
from messages import (
    ApplyFill,
    CashRefused,
    CashReleased,
    CashReserved,
    Fill,
    FillApplied,
    Instrument,
    Money,
    Price,
    PricesUpdated,
    ReleaseCash,
    ReserveCash,
    SetTradingState,
    Side,
    TradingState,
)
from tests.support import Recorder

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
