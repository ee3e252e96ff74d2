"""Snapshots: start-up = the latest snapshot + the tail, and it equals the fold of everything.

* Property: for generated record sequences and for a real engine's journal, a snapshot
  taken after ANY seq, loaded back from its JSON and given the rest of the records, is the
  same projection (ledger, unfinished sagas, book, paper broker book) as the full fold.
* A real engine restarted on a journal with snapshots (small ``snapshot_every``) comes
  back exactly as one restarted on a copy of that journal without them.
* A damaged snapshot is refused naming its seq and its file, and is never deleted; a
  snapshot of another format is ignored in favour of the full replay.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import sqlite3
from collections.abc import Iterator
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import structlog
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from actors._durable import (
    Projection,
    book_record,
    ended_record,
    fold,
    opening_record,
    order_record,
    placed_record,
    recover,
    saga_record,
)
from actors._startup import open_journal
from actors.broker import build_engine, restore_orders
from actors.config import Config, EngineConfig
from actors.journal import Journal, JournalCorrupt, JournalRecord, journal_path
from actors.journal._records import encode_built
from actors.market import IST
from messages import (
    EXTERNAL,
    AdoptPosition,
    ApplyFill,
    ExitRules,
    Fill,
    Instrument,
    Money,
    OrderLeg,
    Product,
    ReleaseCash,
    ReserveCash,
    SagaCompensated,
    SagaCompleted,
    SagaKind,
    Side,
    SubmitEntry,
    SubmitExit,
)
from tests.engine_support import make_config, running
from tests.support import wait_until

NOW = datetime(2026, 11, 25, 10, 0, tzinfo=IST)
PCT = EngineConfig().short_margin_pct  # the engine's, as in the journals it writes
INSTRUMENTS = (
    Instrument(11, "NFO", "NIFTY26DEC24000CE", "NIFTY", "CE", 65, Money(5), date(2026, 12, 29),
               Money(2_400_000)),
    Instrument(12, "NSE", "SYN00001", "SYN00001", "EQ", 1, Money(5), None, None),
)
RULES = ExitRules(stop_loss_pct=Decimal(10))


def _through_json(projection: Projection) -> Projection:
    """What start-up reads back: the body as the journal stores it, parsed again."""
    body = json.loads(encode_built(projection.to_body()))
    return Projection.from_body(body, projection.ledger.dedupe_window, PCT)


def assert_any_cut_equals_the_full_fold(records: list[JournalRecord], window: int,
                                        cuts: Iterator[int] | range) -> None:
    full = Projection(window, PCT)
    full.add_all(records)
    whole = full.recovered()
    for cut in cuts:
        head = Projection(window, PCT)
        head.add_all(records[:cut])
        resumed = _through_json(head)
        assert resumed == head  # the exact round trip
        resumed.add_all(records[cut:])
        assert resumed.events == full.events == len(records)
        assert resumed.to_body() == full.to_body(), f"snapshot after seq {cut}"
        assert resumed.recovered() == whole, f"snapshot after seq {cut}"


# -- generated record sequences ---------------------------------------------------------


def _leg(i: int, side: str, lots: int) -> OrderLeg:
    instrument = INSTRUMENTS[i % 2]
    return OrderLeg(instrument, Side(side), instrument.lot_size * lots, product=Product.NRML)


def _fill(fid: int, order: str, token: int, side: str, qty: int, price: int,
          charges: int) -> Fill:
    return Fill(str(10_000_000 + fid), order, token, Side(side), qty, Money(price),
                Money(charges), NOW)


def _records(ops: list[tuple[Any, ...]]) -> list[JournalRecord]:
    """Turn drawn operations into the records the engine would write for them."""
    out: list[JournalRecord] = []
    legs: dict[str, OrderLeg] = {}
    for op in ops:
        kind, n = op[0], op[1]
        saga = f"S{n % 5}"
        tag = f"{saga}T{op[2] if len(op) > 2 else 0}"
        if kind == "opening":
            out.append(opening_record(n * 1000_00))
        elif kind == "saga":
            legs[saga] = _leg(n, op[2], op[3])
            out.append(saga_record(saga, SagaKind.ENTRY, "s", (legs[saga],), RULES, {11: 40}))
        elif kind == "reserve":
            out.append(JournalRecord.of(ReserveCash(saga, Money(op[2])), saga))
        elif kind == "release":
            out.append(JournalRecord.of(ReleaseCash(saga), saga))
        elif kind == "order":
            out.append(order_record(saga, tag, 0, "E", 0, legs.get(saga, _leg(n, "BUY", 1))))
        elif kind == "placed":
            out.append(placed_record(saga, tag, str(100_000_000_000_001 + n)))
        elif kind == "fill":
            _, _, _, fid, side, lots, price, charges, rest = op
            leg = legs.get(saga, _leg(n, side, 1))
            fill = _fill(fid, str(100_000_000_000_001 + n), leg.instrument.instrument_token,
                         side, leg.instrument.lot_size * lots, price, charges)
            out.append(JournalRecord.of(ApplyFill(saga, "s", fill, Money(op[6] // 5),
                                                  release_rest=rest), saga))
        elif kind == "adopt":
            _, _, fid, side, qty, price = op
            fill = _fill(fid, "EXT", 12, side, qty, price, 0)
            out.append(JournalRecord.of(AdoptPosition(EXTERNAL, fill, "found")))
        elif kind == "ended":
            out.append(ended_record(saga, "COMPLETED", "done"))
        elif kind == "book":
            instrument = INSTRUMENTS[n % 2]
            out.append(book_record("s", instrument, Product.NRML, RULES,
                                   None if op[2] is None else op[2], 7))
    return out


_N = st.integers(0, 9)
_SIDE = st.sampled_from(["BUY", "SELL"])
_OPS = st.lists(st.one_of(
    st.tuples(st.just("opening"), st.integers(1, 10_000)),
    st.tuples(st.just("saga"), _N, _SIDE, st.integers(1, 3)),
    st.tuples(st.just("reserve"), _N, st.integers(1, 50_000_00)),
    st.tuples(st.just("release"), _N),
    st.tuples(st.just("order"), _N, st.integers(0, 2)),
    st.tuples(st.just("placed"), _N, st.integers(0, 2)),
    st.tuples(st.just("fill"), _N, st.integers(0, 2), st.integers(0, 30), _SIDE,
              st.integers(1, 3), st.integers(1, 500_00), st.integers(0, 50_00), st.booleans()),
    st.tuples(st.just("adopt"), _N, st.integers(0, 30), _SIDE, st.integers(1, 100),
              st.integers(1, 500_00)),
    st.tuples(st.just("ended"), _N),
    st.tuples(st.just("book"), _N, st.one_of(st.none(), st.integers(1, 500_00))),
), max_size=60)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ops=_OPS, window=st.integers(1, 8), data=st.data())
def test_property_a_snapshot_at_any_seq_plus_the_tail_is_the_full_fold(
        ops: list[tuple[Any, ...]], window: int, data: st.DataObject) -> None:
    records = _records(ops)
    cuts = data.draw(st.lists(st.integers(0, len(records)), min_size=1, max_size=4))
    assert_any_cut_equals_the_full_fold(records, window, iter(cuts))
    ledger = fold(records, window, PCT).ledger
    assert ledger is not None and ledger.conservation_error == 0


# -- a real engine's journal ----------------------------------------------------------------


def config_in(state: Path, **sections: dict[str, Any]) -> Config:
    config = make_config(**sections)
    return dataclasses.replace(config, engine=dataclasses.replace(config.engine,
                                                                  state_dir=str(state)))


def ended(h: Any, count: int) -> None:
    h.events.wait_for(lambda ms: sum(isinstance(m, SagaCompleted | SagaCompensated)
                                     for m in ms) >= count, timeout=20)


def _trade_then_crash(state: Path, snapshot_every: int) -> None:
    """A morning of trading (longs, a short, an exit), then a second run that dies with
    three entries stuck in flight: the journal holds finished and unfinished sagas."""
    journal = {"snapshot_every": snapshot_every}
    with running(config_in(state, journal=journal, paper={"partial_fill_ratio": Decimal(1)})) \
            as h:
        call, put, other = h.option(), h.option(offset=1), h.option(offset=2)
        for instrument, side in ((call, Side.BUY), (put, Side.BUY), (other, Side.SELL)):
            h.quote(instrument, 150_00)
            h.submit(SubmitEntry.single("t", instrument, side, instrument.lot_size * 2))
        ended(h, 3)
        h.submit(SubmitExit("t", put.instrument_token, "take it off"))
        ended(h, 4)
        assert h.engine.stop(drain=True)
    stuck = config_in(state, journal=journal, paper={"stuck_ratio": Decimal(1)})
    with running(stuck) as h:
        for k in (3, 4, 5):
            instrument = h.option(offset=k)
            h.quote(instrument, 120_00)
            h.submit(SubmitEntry.single("u", instrument, Side.BUY, instrument.lot_size))
        wait_until(lambda: h.engine.orders_snapshot.stats["orders"] == 3,
                   what="three orders placed and stuck")
        h.engine.stop(drain=False)  # the process dies with three sagas in flight


@pytest.fixture(scope="module")
def engine_journal(tmp_path_factory: pytest.TempPathFactory) -> Path:
    state = tmp_path_factory.mktemp("engine-journal")
    _trade_then_crash(state, snapshot_every=5)
    return state


def _records_of(state: Path) -> list[JournalRecord]:
    journal = Journal.open(state / "journal-paper.sqlite3", "paper")
    try:
        return [record for _, record in journal.replay()]
    finally:
        journal.close()


def test_a_real_journal_snapshotted_after_every_seq_resumes_as_the_full_fold(
        engine_journal: Path) -> None:
    records = _records_of(engine_journal)
    kinds = {r.kind for r in records}
    assert {"opening", "saga", "order", "placed", "ApplyFill", "ended", "book"} <= kinds
    full = fold(records, paper_margin_pct=PCT)
    assert len(full.unfinished) == 3 and full.book and full.paper is not None
    assert_any_cut_equals_the_full_fold(records, 1_000_000, range(len(records) + 1))


def test_the_engine_wrote_snapshots_folded_from_the_committed_records(
        engine_journal: Path) -> None:
    journal = Journal.open(engine_journal / "journal-paper.sqlite3", "paper")
    try:
        assert journal.stats().snapshots >= 2
        latest = journal.latest_snapshot()
        assert latest is not None
        seq, body = latest
        head = Projection(1_000_000, PCT)
        head.add_all(record for _, record in journal.replay() if _ <= seq)
    finally:
        journal.close()
    assert body == json.loads(encode_built(head.to_body()))  # exactly events 1..seq


# -- restarts: with snapshots, and with every event folded ----------------------------------


def _without_snapshots(state: Path, copy: Path) -> None:
    shutil.copytree(state, copy)
    conn = sqlite3.connect(copy / "journal-paper.sqlite3")
    conn.executescript("DROP TRIGGER snapshots_append_only_d; DELETE FROM snapshots;")
    conn.close()


def test_a_restart_from_a_snapshot_equals_a_restart_that_folds_everything(
        tmp_path: Path) -> None:
    state, bare = tmp_path / "snapshots", tmp_path / "bare"
    _trade_then_crash(state, snapshot_every=3)
    _without_snapshots(state, bare)
    config, plain = config_in(state), config_in(bare)
    fast = open_journal(config, Money(0), "test")
    slow = open_journal(plain, Money(0), "test")
    try:
        assert fast.snapshot > 0 and slow.snapshot == 0
        assert fast.recovered == slow.recovered and len(fast.recovered.unfinished) == 3
        assert fast.projection == slow.projection
    finally:
        fast.store.close()
        slow.store.close()
    outcomes = []
    for each in (config, plain):
        with running(each) as h:
            started_from = h.engine.recovered_from_snapshot
            wait_until(lambda: h.engine.orders_snapshot.in_flight == 0, timeout=20,
                       what="the recovered sagas ended")
            snap, orders = h.engine.portfolio_snapshot, h.engine.orders_snapshot
            outcomes.append((dict(snap.positions), snap.cash, snap.reserved, snap.realised,
                             snap.charges, snap.fills_applied, snap.initial_cash,
                             orders.open_positions, orders.stats["sagas_recovered"],
                             len(h.events.of(SagaCompensated)), h.engine.broker_snapshot.funds))
            assert snap.conservation_error == 0 and started_from == (
                fast.snapshot if each is config else 0)
    assert outcomes[0] == outcomes[1]
    assert outcomes[0][8] == 3 and outcomes[0][7] == 2  # three resumed, two positions kept


# -- damaged and foreign snapshots ------------------------------------------------------------


def _snapshot_rows(path: Path) -> list[tuple[int, str]]:
    conn = sqlite3.connect(path)
    try:
        return list(conn.execute("SELECT seq, body FROM snapshots ORDER BY seq"))
    finally:
        conn.close()


def test_a_corrupt_snapshot_row_is_refused_naming_its_seq_and_file(
        engine_journal: Path, tmp_path: Path) -> None:
    state = tmp_path / "state"
    shutil.copytree(engine_journal, state)
    path = journal_path(config_in(state), "paper")
    seq = _snapshot_rows(path)[-1][0]
    conn = sqlite3.connect(path)
    conn.executescript(f"DROP TRIGGER snapshots_append_only_u; UPDATE snapshots SET body = "
                       f"replace(body, '\"events\":', '\"events\": ') WHERE seq = {seq};")
    conn.close()
    rows = _snapshot_rows(path)
    with pytest.raises(JournalCorrupt, match=f"snapshot seq {seq}") as refused, \
            running(config_in(state)):
        pass
    assert str(path) in str(refused.value) and "checksum" in str(refused.value)
    assert _snapshot_rows(path) == rows  # never deleted, never rewritten


@pytest.mark.parametrize(("change", "message"), [
    (lambda b: b.pop("sagas"), "malformed"),
    (lambda b: b.update(events=b["events"] - 1), "not {seq}"),
    (lambda b: b["ledger"].update(cash=b["ledger"]["cash"] + 1), "do not balance"),
])
def test_a_snapshot_that_does_not_hold_together_is_refused(
        engine_journal: Path, tmp_path: Path, change: Any, message: str) -> None:
    path = tmp_path / "journal-paper.sqlite3"
    shutil.copy(engine_journal / "journal-paper.sqlite3", path)
    journal = Journal.open(path, "paper")
    latest = journal.latest_snapshot()
    assert latest is not None
    body = latest[1]
    change(body)
    journal.append([JournalRecord("opening", {"cash": 1})])  # ignored: not the first
    journal.write_snapshot(journal.last_seq, body)  # a valid row (crc) with a bad body
    seq = journal.last_seq
    with pytest.raises(JournalCorrupt, match=f"{path}: snapshot seq {seq}") as refused:
        recover(journal, paper_margin_pct=PCT)
    journal.close()
    assert message.format(seq=seq) in str(refused.value)
    assert _snapshot_rows(path)[-1][0] == seq  # still there


def test_a_snapshot_of_another_format_is_ignored_for_a_full_replay(
        engine_journal: Path, tmp_path: Path) -> None:
    path = tmp_path / "journal-paper.sqlite3"
    shutil.copy(engine_journal / "journal-paper.sqlite3", path)
    journal = Journal.open(path, "paper")
    journal.append([JournalRecord("opening", {"cash": 1})])  # ignored: not the first
    expected = fold((r for _, r in journal.replay()), paper_margin_pct=PCT)
    journal.write_snapshot(journal.last_seq, {"format": 99, "anything": ["from", "later"]})
    with structlog.testing.capture_logs() as logs:
        projection, after = recover(journal, paper_margin_pct=PCT)
    journal.close()
    assert after == 0 and projection.recovered() == expected
    ignored = [e for e in logs if e["event"] == "snapshot_format_ignored"]
    assert len(ignored) == 1 and ignored[0]["log_level"] == "warning"
    assert (ignored[0]["found"], ignored[0]["path"]) == (99, str(path))


def test_the_compact_paper_book_restores_the_brokers_account_and_its_tags(
        tmp_path: Path) -> None:
    state = tmp_path / "state"
    journal = {"snapshot_every": 4}
    with running(config_in(state, journal=journal)) as h:
        long, short = h.option(), h.option(offset=1)
        for instrument, side in ((long, Side.BUY), (short, Side.SELL)):
            h.quote(instrument, 150_00)
            h.submit(SubmitEntry.single("t", instrument, side, instrument.lot_size * 3))
        ended(h, 2)
        account = h.engine.matching.account
        tokens = (long.instrument_token, short.instrument_token)
        truth = (account.funds, account.blocked,
                 [(account.position(t), account.short_margin(t)) for t in tokens])
        assert account.short_margin(short.instrument_token).paise > 0
        assert h.engine.stop(drain=True)
    with running(config_in(state, journal=journal, paper={"stuck_ratio": Decimal(1)})) as h:
        for k in (3, 4, 5):  # stuck: no fills, so the broker's account is as above
            instrument = h.option(offset=k)
            h.quote(instrument, 120_00)
            h.submit(SubmitEntry.single("u", instrument, Side.BUY, instrument.lot_size))
        wait_until(lambda: h.engine.orders_snapshot.stats["orders"] == 3,
                   what="three orders placed and stuck")
        h.engine.stop(drain=False)  # dies with them in flight
    config = config_in(state)
    opened = open_journal(config, Money(0), "test")
    opened.store.close()
    recovered = opened.recovered
    assert opened.snapshot > 0 and recovered.paper is not None
    compact, legacy = build_engine(config), build_engine(config)
    restore_orders(compact, recovered.orders, recovered.paper, recovered.opening)
    restore_orders(legacy, recovered.orders)  # today's path, given the same orders
    tags = [o.tag for saga in recovered.unfinished for o in saga.orders]
    named = sum(o.broker_order_id is not None for o in recovered.orders)  # the crash may
    assert len(tags) == 3 and compact.known_orders == named  # beat a `placed`; and only
    assert legacy.known_orders == named  # these: not every order ever placed
    for tag in tags:  # the unfinished sagas' orders answer by tag as before
        found = compact.find_by_tag(tag)
        assert found == legacy.find_by_tag(tag) and all(s.status.is_terminal for s in found)
    account = compact.account
    assert (account.funds, account.blocked,
            [(account.position(t), account.short_margin(t)) for t in tokens]) == truth
