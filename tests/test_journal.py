"""The journal: real SQLite files, a real JournalActor; refusals leave files untouched."""

from __future__ import annotations

import os
import sqlite3
import stat
import tempfile
import threading
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pykka
import pytest
import structlog
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from actors.config import load_config
from actors.config._schema import JournalConfig
from actors.journal import (
    APPLICATION_ID,
    FORMAT_VERSION,
    Append,
    Journal,
    JournalActor,
    JournalCorrupt,
    JournalError,
    JournalRecord,
    JournalSnapshot,
    JournalWriteError,
    journal_path,
)
from messages import (
    ApplyFill,
    Fill,
    Money,
    ReserveCash,
    SetTradingState,
    Side,
    TradingState,
)
from tests.support import Recorder, wait_until

T0 = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)


@pytest.fixture(autouse=True)
def _stop_actors() -> Iterator[None]:
    yield
    pykka.ActorRegistry.stop_all()


def path_in(tmp_path: Path, mode: str = "paper") -> Path:
    return tmp_path / "state" / f"journal-{mode}.sqlite3"


def plain(n: int, saga_id: str | None = None, **extra: Any) -> JournalRecord:
    return JournalRecord("test_event", {"n": n, **extra}, saga_id)


def replayed(journal: Journal, after: int = 0) -> list[tuple[int, JournalRecord]]:
    return list(journal.replay(after))


def messages_sample() -> list[Any]:
    fill = Fill("F1", "B1", 256265, Side.BUY, 65, Money(12_345), Money(2_010), T0)
    return [
        ReserveCash("S1", Money(1_000_000)),
        ApplyFill("S1", "straddle", fill, release_rest=True),
        SetTradingState(TradingState.REDUCING, "daily loss limit near"),
    ]


# -- the store -----------------------------------------------------------------------


def test_records_round_trip_in_seq_order_and_survive_reopening(tmp_path: Path) -> None:
    path = path_in(tmp_path)
    journal = Journal.open(path, "paper")
    sent = [JournalRecord.of(m, saga_id="S1") for m in messages_sample()]
    assert journal.append(sent) == 3
    nested = JournalRecord("cash_changed", {"paise": -5, "tags": ["a", None, 1.5],
                                            "deep": {"ok": True}})
    assert journal.append([nested, plain(5)]) == 5
    assert (journal.last_seq, journal.event_count) == (5, 5)
    journal.close()

    again = Journal.open(path, "paper")
    rows = replayed(again)
    assert [seq for seq, _ in rows] == [1, 2, 3, 4, 5]
    assert [r for _, r in rows] == [*sent, nested, plain(5)]
    assert [r.message() for _, r in rows[:3]] == messages_sample()
    assert rows[1][1].kind == "ApplyFill" and rows[1][1].saga_id == "S1"
    assert rows[3][1].body["deep"] == {"ok": True}
    assert again.append([plain(6)]) == 6  # appends continue after the last seq
    again.close()


def test_snapshot_then_the_tail_is_what_start_up_reads(tmp_path: Path) -> None:
    journal = Journal.open(path_in(tmp_path), "paper")
    assert journal.latest_snapshot() is None
    journal.append([plain(i) for i in range(1, 8)])
    journal.write_snapshot(4, {"cash_paise": 400})
    journal.write_snapshot(7, {"cash_paise": 700})
    with pytest.raises(ValueError, match="after the latest snapshot"):
        journal.write_snapshot(6, {"x": 1})
    with pytest.raises(ValueError, match=r"0\.\.7"):
        journal.write_snapshot(8, {"x": 1})  # a snapshot cannot include unwritten events
    journal.append([plain(8), plain(9)])
    journal.close()

    journal = Journal.open(path_in(tmp_path), "paper")
    snapshot = journal.latest_snapshot()
    assert snapshot == (7, {"cash_paise": 700})
    assert [(seq, r.body["n"]) for seq, r in replayed(journal, after=snapshot[0])] == [
        (8, 8), (9, 9)]
    assert journal.stats().snapshots == 2 and journal.stats().events == 9
    journal.close()


def test_wal_synchronous_full_identity_and_private_permissions(tmp_path: Path) -> None:
    path = tmp_path / "new" / "deeper" / "journal-live.sqlite3"
    journal = Journal.open(path, "live")
    journal.append([plain(1)])
    pragmas = journal.pragmas()
    assert pragmas == {"journal_mode": "wal", "synchronous": 2,  # 2 = FULL
                       "application_id": APPLICATION_ID, "user_version": FORMAT_VERSION}
    other = sqlite3.connect(path)  # what is in the file, not just in our connection
    assert other.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert other.execute("PRAGMA application_id").fetchone()[0] == APPLICATION_ID
    assert dict(other.execute("SELECT key, value FROM meta"))["mode"] == "live"
    other.close()
    for made in (path, Path(f"{path}-wal")):
        assert stat.S_IMODE(made.stat().st_mode) == 0o600, made
    for made in (path.parent, path.parent.parent):
        assert stat.S_IMODE(made.stat().st_mode) == 0o700, made
    assert journal.stats().bytes >= path.stat().st_size > 0
    journal.close()
    assert sorted(os.listdir(path.parent)) == [path.name]  # no temp file left behind


def test_rows_are_append_only_even_for_other_connections(tmp_path: Path) -> None:
    path = path_in(tmp_path)
    journal = Journal.open(path, "paper")
    journal.append([plain(1)])
    journal.write_snapshot(1, {"n": 1})
    other = sqlite3.connect(path)
    for sql in ("UPDATE events SET body = '{}'", "DELETE FROM events",
                "UPDATE snapshots SET seq = 0", "DELETE FROM snapshots"):
        with pytest.raises(sqlite3.DatabaseError, match="append-only"):
            other.execute(sql)
    other.close()
    journal.close()


def test_journal_path_separates_the_books_and_takes_only_plain_names(tmp_path: Path) -> None:
    config = load_config(None, {"KITESAGA_STATE_DIR": str(tmp_path),
                                "KITESAGA_JOURNAL_MAX_BATCH": "7"})
    assert config.journal.max_batch == 7 and config.journal.enabled is True
    assert journal_path(config, "paper") == tmp_path / "journal-paper.sqlite3"
    assert journal_path(config, "live") == tmp_path / "journal-live.sqlite3"
    with pytest.raises(ValueError, match="mode"):
        journal_path(config, "backtest")
    bad = load_config(None, {"KITESAGA_STATE_DIR": str(tmp_path),
                             "KITESAGA_JOURNAL_FILE_LIVE": "../elsewhere.sqlite3"})
    with pytest.raises(ValueError, match="plain file name"):
        journal_path(bad, "live")
    same = load_config(None, {"KITESAGA_STATE_DIR": str(tmp_path),
                              "KITESAGA_JOURNAL_FILE_LIVE": "journal-paper.sqlite3"})
    with pytest.raises(ValueError, match="must differ"):
        journal_path(same, "paper")


@pytest.mark.parametrize("body, problem", [
    ({"t": (1, 2)}, "tuple"), ({"d": Decimal("1.5")}, "Decimal"),
    ({"f": float("nan")}, "finite"), ({"k": {1: "x"}}, "keys must be strings"),
    ({"e": TradingState.HALTED}, "TradingState"),
])
def test_a_body_must_be_plain_json_that_comes_back_equal(body: dict[str, Any],
                                                         problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        JournalRecord("x", body)


def test_a_record_keeps_what_it_validated() -> None:
    body: dict[str, Any] = {"items": [1]}
    record = JournalRecord("x", body)
    body["items"].append(2)  # the caller's object changes; the record does not
    assert record.body == {"items": [1]} and record.text == '{"items":[1]}'
    with pytest.raises(ValueError, match="kind"):
        JournalRecord("", {})
    with pytest.raises(ValueError, match="saga_id"):
        JournalRecord("x", {}, saga_id=" ")
    with pytest.raises(ValueError, match="not a JSON value"):
        JournalRecord("x", {"when": T0})
    with pytest.raises(ValueError, match="not valid Unicode"):
        JournalRecord("x", {"memo": "\ud800"})
    with pytest.raises(ValueError, match="unknown message type"):
        plain(1).message()  # a plain body is not a protocol message


# -- refusals: the file is never changed ----------------------------------------------


def refused(path: Path, mode: str, error: type[JournalError], *found: str) -> str:
    """Open must raise ``error`` naming the file and ``found``; the bytes stay as they were."""
    before = path.read_bytes()
    siblings = sorted(os.listdir(path.parent))
    with pytest.raises(error) as raised:
        Journal.open(path, mode)
    message = str(raised.value)
    assert str(path) in message
    for text in found:
        assert text in message, message
    assert path.read_bytes() == before
    assert sorted(os.listdir(path.parent)) == siblings
    return message


def test_a_foreign_sqlite_database_is_refused_untouched(tmp_path: Path) -> None:
    path = path_in(tmp_path)
    path.parent.mkdir()
    other = sqlite3.connect(path)
    other.execute("CREATE TABLE trades (id INTEGER PRIMARY KEY, symbol TEXT)")
    other.execute("INSERT INTO trades (symbol) VALUES ('M&M')")
    other.commit()
    other.close()
    refused(path, "paper", JournalError, "not a kitesaga journal", "application_id 0x0",
            "trades")
    other = sqlite3.connect(path)
    other.execute("PRAGMA application_id = 1234")
    other.close()
    refused(path, "paper", JournalError, "application_id 0x4d2")


def test_a_text_file_and_an_empty_file_are_refused_untouched(tmp_path: Path) -> None:
    path = path_in(tmp_path)
    path.parent.mkdir()
    path.write_text("positions:\n  NIFTY: 65\n", encoding="utf-8")
    refused(path, "paper", JournalError, "not a SQLite database", "positions")
    # 0 bytes: kitesaga never leaves one (a new journal appears whole), so it is a
    # truncated journal or someone else's file, never "a fresh journal".
    path.write_bytes(b"")
    refused(path, "paper", JournalError, "empty (0-byte)")


def test_a_newer_format_and_the_other_books_journal_are_refused(tmp_path: Path) -> None:
    path = path_in(tmp_path)
    Journal.open(path, "paper").close()
    refused(path, "live", JournalError, "is the paper journal", "as the live journal")
    other = sqlite3.connect(path)
    other.execute(f"PRAGMA user_version = {FORMAT_VERSION + 1}")
    other.close()
    refused(path, "paper", JournalError, "newer kitesaga",
            f"journal format {FORMAT_VERSION + 1}")


def test_a_body_edited_behind_the_journals_back_is_refused_naming_its_seq(
        tmp_path: Path) -> None:
    path = path_in(tmp_path)
    journal = Journal.open(path, "paper")
    journal.append([plain(i) for i in range(1, 6)])
    journal.close()
    other = sqlite3.connect(path)
    other.executescript("DROP TRIGGER events_append_only_u; "
                        "UPDATE events SET body = '{\"n\":99}' WHERE seq = 3;")
    other.close()
    refused(path, "paper", JournalCorrupt, "event seq 3", "checksum mismatch")


def test_bit_rot_in_the_file_is_refused_naming_its_seq(tmp_path: Path) -> None:
    path = path_in(tmp_path)
    journal = Journal.open(path, "paper")
    journal.append([plain(1), JournalRecord("x", {"memo": "MARKER-abcdef"}), plain(3)])
    journal.write_snapshot(3, {"cash": "SNAPSHOT-abcdef"})
    journal.close()  # the last connection checkpoints the WAL into the file
    for marker, found in ((b"MARKER-abcdef", "event seq 2"),
                          (b"SNAPSHOT-abcdef", "snapshot seq 3")):
        data = bytearray(path.read_bytes())
        at = data.index(marker)
        data[at] ^= 0x01  # one flipped bit inside the body: the page stays valid
        path.write_bytes(bytes(data))
        refused(path, "paper", JournalCorrupt, found)
        data[at] ^= 0x01
        path.write_bytes(bytes(data))
    Journal.open(path, "paper").close()  # restored: accepted again


def test_replay_refuses_a_row_damaged_while_open(tmp_path: Path) -> None:
    path = path_in(tmp_path)
    journal = Journal.open(path, "paper")
    journal.append([plain(i) for i in range(1, 4)])
    other = sqlite3.connect(path)
    other.executescript("DROP TRIGGER events_append_only_u; "
                        "UPDATE events SET body = '{\"n\":7}' WHERE seq = 2;")
    other.close()
    rows = journal.replay()
    assert next(rows)[0] == 1
    with pytest.raises(JournalCorrupt, match="event seq 2"):
        next(rows)
    journal.close()


def test_a_truncated_or_overwritten_file_is_refused_untouched(tmp_path: Path) -> None:
    path = path_in(tmp_path)
    journal = Journal.open(path, "paper")
    for i in range(40):
        journal.append([JournalRecord("x", {"i": i, "pad": "p" * 400})])
    journal.close()
    whole = path.read_bytes()
    page = int.from_bytes(whole[16:18], "big")
    assert len(whole) > 6 * page
    path.write_bytes(whole[:len(whole) // 2])
    refused(path, "paper", JournalCorrupt, "damaged")
    path.write_bytes(whole[:60])
    refused(path, "paper", JournalCorrupt, "truncated to 60 bytes")
    path.write_bytes(whole[:2 * page] + b"\xa5" * page + whole[3 * page:])
    refused(path, "paper", JournalCorrupt)
    path.write_bytes(b"\x00" * 100 + whole[100:])
    refused(path, "paper", JournalError, "not a SQLite database")


def test_a_full_disk_fails_the_batch_whole_and_the_journal_for_good(tmp_path: Path) -> None:
    path = path_in(tmp_path)
    journal = Journal.open(path, "paper")
    journal.append([plain(1), plain(2)])
    journal.close()
    pages = sqlite3.connect(path).execute("PRAGMA page_count").fetchone()[0]
    tiny = Journal.open(path, "paper", max_pages=pages + 2)  # a tiny filesystem
    batch = [plain(i, pad="x" * 1500) for i in range(3, 13)]  # the first few would fit
    with pytest.raises(JournalWriteError, match="SQLITE_FULL") as raised:
        tiny.append(batch)
    assert str(path) in str(raised.value) and "appending 10 event(s)" in str(raised.value)
    assert tiny.last_seq == 2 and tiny.failed is not None
    assert [seq for seq, _ in replayed(tiny)] == [1, 2]  # rolled back, even on this connection
    with pytest.raises(JournalWriteError, match="takes no more writes"):
        tiny.append([plain(3)])  # no retry: it might write out of order
    tiny.close()
    again = Journal.open(path, "paper")
    assert [r.body["n"] for _, r in replayed(again)] == [1, 2]
    again.close()


def test_an_injected_write_failure_leaves_nothing_half_written(tmp_path: Path) -> None:
    path = path_in(tmp_path)
    calls: list[int] = []

    def fail_second() -> bool:
        calls.append(1)
        return len(calls) == 2

    journal = Journal.open(path, "paper", fail_writes=fail_second)
    journal.append([plain(1)])
    with pytest.raises(JournalWriteError, match="injected"):
        journal.append([plain(2), plain(3)])
    assert [seq for seq, _ in replayed(journal)] == [1]
    journal.close()
    again = Journal.open(path, "paper")
    assert again.last_seq == 1 and [s for s, _ in replayed(again)] == [1]
    again.close()


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner,
                                                                 max_size=4),
    max_leaves=8)
labels = st.from_regex(r"[A-Za-z][A-Za-z0-9_.: -]{0,11}", fullmatch=True)
records = st.builds(JournalRecord, labels,
                    st.dictionaries(st.text(max_size=8), json_values, max_size=4),
                    st.none() | labels)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.lists(records, max_size=6), max_size=6))
def test_property_batches_replay_exactly_in_order(batches: list[list[JournalRecord]]) -> None:
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "journal-paper.sqlite3"
        journal = Journal.open(path, "paper")
        for batch in batches:
            journal.append(batch)
        journal.close()
        journal = Journal.open(path, "paper")
        expected = [record for batch in batches for record in batch]
        rows = replayed(journal)
        journal.close()
    assert [seq for seq, _ in rows] == list(range(1, len(expected) + 1))
    assert [record for _, record in rows] == expected
    assert [(r.kind, r.saga_id, dict(r.body)) for _, r in rows] == [
        (r.kind, r.saga_id, dict(r.body)) for r in expected]


# -- the actor ------------------------------------------------------------------------


def start(journal: Journal | None, halt_to: Any = None, source: Any = None,
          **config: Any) -> pykka.ActorRef[JournalActor]:
    settings_ = JournalConfig(enabled=journal is not None, **config)
    return JournalActor.start(journal, settings_, halt_to, source)


def published(ref: pykka.ActorRef[JournalActor]) -> JournalSnapshot:
    """The snapshot after every message sent so far was handled (an ask queues behind)."""
    return ref.proxy().snapshot.get(timeout=5).latest()  # type: ignore[no-any-return]


class SeenInFile:
    """A `then` recipient that, when told, reads the journal with its own connection."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.seen: list[tuple[int, bool]] = []
        self.done = Recorder()

    def tell(self, message: int) -> None:
        other = sqlite3.connect(self.path)
        try:
            found = other.execute("SELECT count(*) FROM events WHERE "
                                  "json_extract(body, '$.n') = ?", (message,)).fetchone()[0]
        finally:
            other.close()
        self.seen.append((message, found == 1))
        self.done.tell(message)


class Gate:
    """A `then` recipient that holds the journal actor's thread until released."""

    def __init__(self) -> None:
        self.entered = threading.Event()
        self.release = threading.Event()

    def tell(self, message: Any) -> None:
        self.entered.set()
        assert self.release.wait(10), "the test never opened the gate"


def test_then_is_delivered_only_after_its_record_is_in_the_file(tmp_path: Path) -> None:
    path = path_in(tmp_path)
    ref = start(Journal.open(path, "paper"))
    seen = SeenInFile(path)
    for n in range(1, 31):
        ref.tell(Append((plain(n),), then=((seen, n),)))
    seen.done.wait_for(lambda ms: len(ms) == 30)
    assert seen.seen == [(n, True) for n in range(1, 31)]  # in order, each already durable
    assert published(ref).last_seq == 30


def test_appends_that_wait_are_committed_together(tmp_path: Path) -> None:
    path = path_in(tmp_path)
    ref = start(Journal.open(path, "paper"))
    gate, inbox = Gate(), Recorder()
    ref.tell(Append((plain(0),), then=((gate, "held"),)))
    assert gate.entered.wait(5)  # the actor is busy: what follows waits in its inbox
    for n in range(1, 101):
        ref.tell(Append((plain(n), plain(n)), then=((inbox, n),)))
    gate.release.set()
    inbox.wait_for(lambda ms: len(ms) == 100)
    assert inbox.messages == list(range(1, 101))
    state = published(ref)
    assert (state.appends, state.batches, state.largest_batch) == (101, 2, 200)
    assert state.last_seq == state.events == 201 and state.write_p99_ms >= state.write_p50_ms > 0


def test_an_append_behind_a_proxy_call_is_still_committed(tmp_path: Path) -> None:
    ref = start(Journal.open(path_in(tmp_path), "paper"))
    gate, inbox = Gate(), Recorder()
    ref.tell(Append((plain(0),), then=((gate, "held"),)))
    assert gate.entered.wait(5)
    ref.tell(Append((plain(1),), then=((inbox, "committed"),)))
    pending = ref.proxy().snapshot  # an ask: handled by Pykka, never by on_receive
    gate.release.set()
    inbox.wait_for(lambda ms: ms == ["committed"])  # not stranded in the buffer
    assert pending.get(timeout=5).latest().last_seq >= 1


def test_a_batch_never_exceeds_max_batch(tmp_path: Path) -> None:
    ref = start(Journal.open(path_in(tmp_path), "paper"), max_batch=10)
    gate, inbox = Gate(), Recorder()
    ref.tell(Append((plain(0),), then=((gate, "held"),)))
    assert gate.entered.wait(5)
    for n in range(1, 101):
        ref.tell(Append((plain(n),), then=((inbox, n),)))
    gate.release.set()
    inbox.wait_for(lambda ms: len(ms) == 100)
    state = published(ref)
    assert (state.batches, state.largest_batch, state.last_seq) == (11, 10, 101)


def test_a_failed_write_halts_trading_and_nothing_proceeds(tmp_path: Path) -> None:
    path = path_in(tmp_path)
    journal = Journal.open(path, "paper")
    journal.append([plain(1)])
    journal.close()
    pages = sqlite3.connect(path).execute("PRAGMA page_count").fetchone()[0]
    halt, inbox = Recorder(), Recorder()
    with structlog.testing.capture_logs() as logs:
        ref = start(Journal.open(path, "paper", max_pages=pages + 1), halt_to=halt)
        ref.tell(Append((plain(2),), then=((inbox, "fits"),)))
        inbox.wait_for(lambda ms: ms == ["fits"])
        ref.tell(Append(tuple(plain(n, pad="x" * 2000) for n in range(3, 9)),
                        then=((inbox, "too big"),)))
        halt.wait_for_kind(SetTradingState)
        ref.tell(Append((plain(9),), then=((inbox, "after the failure"),)))
        halt.wait_for_kind(SetTradingState, count=2)
        state = published(ref)
    assert inbox.messages == ["fits"]  # neither the failed batch's nor a later then
    first = halt.of(SetTradingState)[0]
    assert first.state is TradingState.HALTED
    assert first.reason.startswith("journal write failed:") and "SQLITE_FULL" in first.reason
    assert state.failed and state.refused == 1 and "SQLITE_FULL" in (state.last_error or "")
    assert state.last_seq == 2
    alerts = [e for e in logs if e["event"] == "alert"]
    assert len(alerts) == 1 and alerts[0]["alert"] == "journal_write_failed"
    assert alerts[0]["log_level"] == "error" and alerts[0]["records_dropped"] == 6
    ref.stop()
    again = Journal.open(path, "paper")
    assert [r.body["n"] for _, r in replayed(again)] == [1, 2]  # nothing of the failed batch
    again.close()


def test_a_snapshot_is_written_every_n_events(tmp_path: Path) -> None:
    path = path_in(tmp_path)
    calls: list[int] = []

    def source() -> Mapping[str, Any]:
        calls.append(1)
        return {"taken": len(calls)}

    ref = start(Journal.open(path, "paper"), source=source, snapshot_every=5)
    inbox = Recorder()
    for n in range(1, 13):
        ref.tell(Append((plain(n),), then=((inbox, n),)))
        inbox.wait_for_kind(int, count=n)  # one batch each
    state = published(ref)
    assert (state.snapshots, len(calls)) == (2, 2)
    ref.stop()
    journal = Journal.open(path, "paper")
    assert journal.latest_snapshot() == (10, {"taken": 2})
    assert [seq for seq, _ in replayed(journal, after=10)] == [11, 12]
    journal.close()


def test_a_failed_snapshot_write_halts_too(tmp_path: Path) -> None:
    writes: list[int] = []

    def second_write_fails() -> bool:  # the append commits; the snapshot after it fails
        writes.append(1)
        return len(writes) == 2

    journal = Journal.open(path_in(tmp_path), "paper", fail_writes=second_write_fails)
    halt, inbox = Recorder(), Recorder()
    ref = start(journal, halt_to=halt, source=lambda: {"cash": 1}, snapshot_every=1)
    ref.tell(Append((plain(1),), then=((inbox, "saved"),)))
    halt.wait_for_kind(SetTradingState)
    assert inbox.messages == ["saved"]  # its record was committed before the snapshot
    state = published(ref)
    assert state.failed and state.snapshots == 0 and "snapshot at seq 1" in (
        state.last_error or "")


def test_stopping_commits_what_was_buffered(tmp_path: Path) -> None:
    path = path_in(tmp_path)
    ref = start(Journal.open(path, "paper"))
    gate, inbox = Gate(), Recorder()
    ref.tell(Append((plain(0),), then=((gate, "held"),)))
    assert gate.entered.wait(5)
    for n in range(1, 21):
        ref.tell(Append((plain(n),), then=((inbox, n),)))
    ref.stop(block=False)  # queued behind the Appends
    gate.release.set()
    inbox.wait_for(lambda ms: len(ms) == 20)
    wait_until(lambda: not ref.is_alive(), what="the journal actor stopped")
    journal = Journal.open(path, "paper")  # closed by the actor: reopens cleanly
    assert journal.last_seq == 21
    journal.close()


def test_a_dead_recipient_is_counted_not_fatal(tmp_path: Path) -> None:
    ref = start(Journal.open(path_in(tmp_path), "paper"))
    dead = start(None)
    dead.stop()
    inbox = Recorder()
    ref.tell(Append((plain(1),), then=((dead, "lost"), (inbox, "delivered"))))
    inbox.wait_for(lambda ms: ms == ["delivered"])
    state = published(ref)
    assert state.undelivered == 1 and not state.failed and ref.is_alive()


def test_without_a_journal_appends_pass_straight_through(tmp_path: Path) -> None:
    ref = start(None)
    inbox = Recorder()
    ref.tell(Append((plain(1),), then=((inbox, 1),)))
    ref.tell(Append((), then=((inbox, 2),)))  # a barrier
    inbox.wait_for(lambda ms: ms == [1, 2])
    state = published(ref)
    assert not state.enabled and state.last_seq == 0 and state.batches == 0
    with pytest.raises(ValueError, match="required"):
        JournalActor(None, JournalConfig())
    journal = Journal.open(path_in(tmp_path), "paper")
    with pytest.raises(ValueError, match="must be None"):
        JournalActor(journal, JournalConfig(enabled=False))
    journal.close()
    with pytest.raises(ValueError, match="then"):
        Append((plain(1),), then=((object(), 1),))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="records"):
        Append([plain(1)])  # type: ignore[arg-type]
