"""The journal store: one append-only SQLite file per book (paper, live).

Durability choices:

- ``journal_mode=WAL`` with ``synchronous=FULL``: each commit fsyncs the WAL
  before it returns, so a committed batch survives a process kill AND a power
  cut (``NORMAL`` survives only the former: its last commits can vanish with
  the OS cache). The cost, one fsync per commit, is spread by group commit
  (many records per transaction) and measured by the benchmarks.
- A new journal is built whole in a temporary 0600 file beside it, fsynced,
  hard-linked into place, and the directory fsynced: the path holds a whole
  journal or nothing. So a 0-byte or half-made file there is never ours; it is
  refused, not "started fresh" (that would silently reset a truncated book).
- A file is checked before SQLite may write to it: the raw header must say
  SQLite, kitesaga's ``application_id`` and a format (``user_version``) this
  code reads; then ``quick_check``, the book's mode in ``meta``, every event
  present (seq 1..N) and every row's crc32. Failing any raises
  :class:`JournalError` / :class:`JournalCorrupt` naming the file; its bytes
  are left alone.
- Rows cannot be updated or deleted (triggers). A failed write rolls its
  transaction back and fails the store for good (after a failed fsync nobody
  knows what reached the disk); reopening re-verifies the file.

Not thread-safe: one thread owns a :class:`Journal` at a time (the start-up
thread that opens and replays it, then the JournalActor it is handed to).
"""

from __future__ import annotations

import os
import sqlite3
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

import actors.journal._records as fmt
from actors.config import Config, state_dir
from actors.journal._records import JournalCorrupt, JournalError, JournalRecord, JournalWriteError

__all__ = ["Journal", "JournalStats", "journal_path"]

_READ_CHUNK = 1000
_SYNCHRONOUS_FULL = 2  # what PRAGMA synchronous reports for FULL


def journal_path(config: Config, mode: str) -> Path:
    """The journal file of ``mode``'s book: ``[journal] file_paper`` or ``file_live``
    inside the state dir. Raises ValueError for an unknown mode, a file name that
    is not a plain name, or the same name for both books."""
    fmt.check_mode(mode)
    names = {"paper": config.journal.file_paper, "live": config.journal.file_live}
    for book, name in names.items():
        if not name or Path(name).name != name or name in (".", ".."):
            raise ValueError(f"journal.file_{book}: must be a plain file name inside the "
                             f"state dir, got {name!r}")
    if names["paper"] == names["live"]:
        raise ValueError(f"journal.file_paper and journal.file_live must differ (the paper "
                         f"and live books have separate journals), both are {names['paper']!r}")
    return state_dir(config) / names[mode]


@dataclass(frozen=True, slots=True)
class JournalStats:
    """Size and speed of one journal: events, snapshots, bytes on disk (file and
    WAL), and the latency of the last committed write in milliseconds."""

    events: int
    snapshots: int
    bytes: int
    last_write_ms: float


class Journal:
    """An append-only journal of :class:`JournalRecord` events, with snapshots.

    Contract:
    - :meth:`open` opens or creates the journal of one book (``mode``) and
      refuses, with :class:`JournalError` / :class:`JournalCorrupt`, anything
      that is not a whole, undamaged kitesaga journal of that mode.
    - Events get seq 1, 2, 3, ... with no gap; :meth:`append` commits a batch
      in ONE transaction (durable on return) or raises
      :class:`JournalWriteError` with none of it written; after that the
      journal takes no more writes.
    - A snapshot's seq is the last event it includes; start-up loads
      :meth:`latest_snapshot`, then :meth:`replay` ``(after=seq)``.
    - Every row read is checked against its crc32; a mismatch raises
      :class:`JournalCorrupt` naming the seq, never skips.
    - ``fail_writes`` (tests): called in each write transaction just before its
      commit; True makes that write fail as a full disk would.
    - Not thread-safe: use it from one thread at a time (see the module doc).
    """

    def __init__(self, conn: sqlite3.Connection, path: Path, mode: str, last_seq: int,
                 snapshots: int, fail_writes: Callable[[], bool] | None) -> None:
        """Use :meth:`open`; this wraps a connection it has verified."""
        self._conn: sqlite3.Connection | None = conn
        self._path = path
        self._mode = mode
        self._last_seq = last_seq
        self._snapshots = snapshots
        self._fail_writes = fail_writes
        self._failed: str | None = None
        self._last_write_s = 0.0

    @classmethod
    def open(cls, path: Path, mode: str, *, fail_writes: Callable[[], bool] | None = None,
             max_pages: int | None = None) -> Journal:
        """Open the ``mode`` journal at ``path``, creating it (0600, its missing
        directories 0700) if there is no file there.

        ``max_pages`` caps the file at that many pages (``PRAGMA max_page_count``):
        a tiny disk for tests, whose writes then fail with SQLITE_FULL.
        """
        fmt.check_mode(mode)
        path = Path(path)
        if not path.exists():
            _create(path, mode)
        fmt.check_header(path)
        conn = _connect(path)
        try:
            last_seq, snapshots = _verify(conn, path, mode)
            if max_pages is not None:
                conn.execute(f"PRAGMA max_page_count = {int(max_pages)}")
        except BaseException:
            conn.close()
            raise
        return cls(conn, path, mode, last_seq, snapshots, fail_writes)

    @property
    def path(self) -> Path:
        """The journal file."""
        return self._path

    @property
    def mode(self) -> str:
        """The book this journal belongs to: ``paper`` or ``live``."""
        return self._mode

    @property
    def last_seq(self) -> int:
        """The seq of the last committed event (0 when there is none)."""
        return self._last_seq

    @property
    def event_count(self) -> int:
        """Committed events (equal to :attr:`last_seq`: seqs have no gaps)."""
        return self._last_seq

    @property
    def failed(self) -> str | None:
        """Why the journal takes no more writes, or None while it does."""
        return self._failed

    def append(self, records: Sequence[JournalRecord]) -> int:
        """Commit ``records`` in one transaction; return the last seq (an empty
        batch writes nothing)."""
        for record in records:
            if not isinstance(record, JournalRecord):
                raise ValueError(f"records: must be JournalRecords, got {record!r}")
        if not records:
            return self._last_seq
        at = _now()
        first = self._last_seq + 1
        rows = [(first + i, at, r.kind, r.saga_id, r.text, fmt.checksum(r.text))
                for i, r in enumerate(records)]
        self._write(f"appending {len(rows)} event(s) from seq {first}",
                    "INSERT INTO events (seq, at, kind, saga_id, body, crc) "
                    "VALUES (?, ?, ?, ?, ?, ?)", rows)
        self._last_seq = first + len(rows) - 1
        return self._last_seq

    def write_snapshot(self, seq: int, body: Mapping[str, Any], built: bool = False) -> None:
        """Record ``body`` (plain JSON) as the state after events 1..``seq``: a
        committed seq (or 0) after the latest snapshot's. ``built``: a body the engine
        built itself, encoded without the deep walk (``encode_built``: half the cost)."""
        if type(seq) is not int or not 0 <= seq <= self._last_seq:
            raise ValueError(f"seq: must be an int in 0..{self._last_seq}, got {seq!r}")
        latest = self._conn_or_raise().execute("SELECT max(seq) FROM snapshots").fetchone()[0]
        if latest is not None and seq <= latest:
            raise ValueError(f"seq: must be after the latest snapshot ({latest}), got {seq}")
        text = (fmt.encode_built if built else fmt.encode_body)(body, "snapshot body")
        self._write(f"writing the snapshot at seq {seq}",
                    "INSERT INTO snapshots (seq, at, body, crc) VALUES (?, ?, ?, ?)",
                    [(seq, _now(), text, fmt.checksum(text))])
        self._snapshots += 1

    def latest_snapshot(self) -> tuple[int, dict[str, Any]] | None:
        """The latest snapshot as (seq, body), or None; its crc is checked."""
        row = self._conn_or_raise().execute(
            "SELECT seq, body, crc FROM snapshots ORDER BY seq DESC LIMIT 1").fetchone()
        if row is None:
            return None
        seq, text, stored = row
        fmt.check_row(self._path, "snapshot", seq, text, stored)
        return seq, fmt.load_body(self._path, "snapshot", seq, text)

    def replay(self, after: int = 0) -> Iterator[tuple[int, JournalRecord]]:
        """Yield (seq, record) for every event after ``after``, in seq order.

        Each row's crc is checked as it is read; a mismatch or a missing seq
        raises :class:`JournalCorrupt`. Do not write while iterating.
        """
        if type(after) is not int or after < 0:
            raise ValueError(f"after: must be an int >= 0, got {after!r}")
        cursor = self._conn_or_raise().execute(
            "SELECT seq, kind, saga_id, body, crc FROM events WHERE seq > ? ORDER BY seq",
            (after,))
        expected = after + 1
        while rows := cursor.fetchmany(_READ_CHUNK):
            for seq, kind, saga_id, text, stored in rows:
                if seq != expected:
                    raise JournalCorrupt(f"{self._path}: event seq {expected} is missing "
                                         f"(the next event found is seq {seq})")
                fmt.check_row(self._path, "event", seq, text, stored)
                body = fmt.load_body(self._path, "event", seq, text)
                yield seq, JournalRecord.from_stored(kind, saga_id, text, body)
                expected += 1

    def pragmas(self) -> dict[str, Any]:
        """This connection's journal_mode, synchronous (2 = FULL), application_id
        and user_version, as SQLite reports them."""
        conn = self._conn_or_raise()
        return {name: conn.execute(f"PRAGMA {name}").fetchone()[0] for name in
                ("journal_mode", "synchronous", "application_id", "user_version")}

    def stats(self) -> JournalStats:
        """Events, snapshots, bytes on disk and the last write's latency."""
        files = (self._path, Path(f"{self._path}-wal"))
        size = sum(file.stat().st_size for file in files if file.exists())
        return JournalStats(self._last_seq, self._snapshots, size, self._last_write_s * 1000)

    def close(self) -> None:
        """Close the file (idempotent); the journal is unusable afterwards."""
        if self._conn is not None:
            conn, self._conn = self._conn, None
            conn.close()

    # -- internals ---------------------------------------------------------------

    def _conn_or_raise(self) -> sqlite3.Connection:
        if self._conn is None:
            raise JournalError(f"{self._path}: the journal is closed")
        return self._conn

    def _write(self, what: str, sql: str, rows: list[tuple[Any, ...]]) -> None:
        conn = self._conn_or_raise()
        if self._failed is not None:
            raise JournalWriteError(f"{self._path}: {what}: refused, the journal failed "
                                    f"earlier and takes no more writes ({self._failed})")
        started = time.perf_counter()
        try:
            conn.execute("BEGIN IMMEDIATE")
            try:
                conn.executemany(sql, rows)
                if self._fail_writes is not None and self._fail_writes():
                    raise sqlite3.OperationalError("database or disk is full "
                                                   "(injected by fail_writes)")
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
        except sqlite3.Error as bad:
            code = getattr(bad, "sqlite_errorname", type(bad).__name__)
            self._failed = f"{what} failed: {code}: {bad}"
            raise JournalWriteError(f"{self._path}: {self._failed}") from bad
        self._last_write_s = time.perf_counter() - started


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds")


# -- creating and checking the file ------------------------------------------------


def _make_dirs(directory: Path) -> None:
    """Create ``directory`` and its missing parents, each 0700 whatever the umask."""
    missing = [d for d in (directory, *directory.parents) if not d.exists()]
    for each in reversed(missing):
        try:
            each.mkdir(mode=0o700)
        except FileExistsError:  # made meanwhile by someone else: theirs, left as it is
            continue
        each.chmod(0o700)


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)  # a directory too: makes a new name in it durable
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _create(path: Path, mode: str) -> None:
    """Build a whole journal in a temporary file, then link it in at ``path``."""
    try:
        _make_dirs(path.parent)
        fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".creating",
                                    dir=path.parent)  # mkstemp: 0600
    except OSError as bad:
        raise JournalError(f"{path}: cannot create the journal: {bad}") from None
    os.close(fd)
    temp = Path(name)
    try:
        conn = sqlite3.connect(temp, isolation_level=None)
        try:
            conn.executescript(f"BEGIN IMMEDIATE; PRAGMA application_id = "
                               f"{fmt.APPLICATION_ID}; PRAGMA user_version = "
                               f"{fmt.FORMAT_VERSION}; {fmt.SCHEMA}")
            conn.executemany("INSERT INTO meta (key, value) VALUES (?, ?)",
                             [("application", "kitesaga journal"), ("mode", mode),
                              ("created_at", _now()), ("format", str(fmt.FORMAT_VERSION))])
            conn.execute("COMMIT")
            conn.execute("PRAGMA journal_mode = WAL")
        finally:
            conn.close()  # the last connection: checkpoints and removes the temp's WAL
        _fsync(temp)
        try:
            os.link(temp, path)
        except FileExistsError:
            return  # made meanwhile: checked like any existing file
        except OSError:  # a filesystem without hard links
            if path.exists():
                return
            os.replace(temp, path)
        _fsync(path.parent)
    except (OSError, sqlite3.Error) as bad:
        raise JournalError(f"{path}: cannot create the journal: {bad}") from None
    finally:
        temp.unlink(missing_ok=True)


def _connect(path: Path) -> sqlite3.Connection:
    if not os.access(path, os.R_OK | os.W_OK):
        raise JournalError(f"{path}: the journal is not readable and writable by this user; "
                           f"refusing to run on a journal it cannot write")
    try:
        return sqlite3.connect(f"file:{quote(str(path))}?mode=rw", uri=True,
                               isolation_level=None, check_same_thread=False)
    except sqlite3.Error as bad:
        raise JournalError(f"{path}: cannot open the journal: {bad}") from None


def _verify(conn: sqlite3.Connection, path: Path, mode: str) -> tuple[int, int]:
    """Check a connected journal from end to end; (last seq, snapshot count)."""
    try:
        problems = [row[0] for row in conn.execute("PRAGMA quick_check")]
        if problems != ["ok"]:
            raise JournalCorrupt(f"{path}: SQLite finds the file damaged: "
                                 f"{'; '.join(map(str, problems[:5]))}")
        app = conn.execute("PRAGMA application_id").fetchone()[0]
        if app != fmt.APPLICATION_ID:
            raise fmt.refuse(path, f"a SQLite database with application_id {app:#x}")
        fmt.check_version(path, conn.execute("PRAGMA user_version").fetchone()[0])
        tables = {row[0] for row in conn.execute(
            "SELECT name FROM sqlite_schema WHERE type = 'table'")}
        if not tables >= fmt.TABLES:
            missing = ", ".join(sorted(fmt.TABLES - tables))
            raise JournalCorrupt(f"{path}: tables missing: {missing}")
        meta = dict(conn.execute("SELECT key, value FROM meta").fetchall())
        book = meta.get("mode")
        if book not in fmt.MODES:
            raise JournalCorrupt(f"{path}: meta records no book mode (found {book!r})")
        if book != mode:
            raise JournalError(f"{path}: is the {book} journal (created "
                               f"{meta.get('created_at')}); refusing to open it as the {mode} "
                               f"journal: the paper and live books have separate journals")
        count, first, last = conn.execute(
            "SELECT count(*), min(seq), max(seq) FROM events").fetchone()
        if count and (first != 1 or last != count):
            raise JournalCorrupt(f"{path}: events missing: {count} event(s) with seqs "
                                 f"{first}..{last}")
        for table, what in (("events", "event"), ("snapshots", "snapshot")):
            for seq, text, stored in conn.execute(f"SELECT seq, body, crc FROM {table}"):
                fmt.check_row(path, what, seq, text, stored)
        snapshots, newest = conn.execute("SELECT count(*), max(seq) FROM snapshots").fetchone()
        if newest is not None and not 0 <= newest <= (last or 0):
            raise JournalCorrupt(f"{path}: snapshot seq {newest} is beyond the last event "
                                 f"({last or 0})")
    except sqlite3.DatabaseError as bad:
        raise JournalCorrupt(f"{path}: SQLite finds the file damaged: {bad}") from None
    try:
        wal = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        conn.execute("PRAGMA synchronous = FULL")
        synchronous = conn.execute("PRAGMA synchronous").fetchone()[0]
    except sqlite3.Error as bad:
        raise JournalError(f"{path}: cannot set up the journal: {bad}") from None
    if wal != "wal" or synchronous != _SYNCHRONOUS_FULL:
        raise JournalError(f"{path}: SQLite refused WAL/synchronous=FULL (journal_mode "
                           f"{wal!r}, synchronous {synchronous!r})")
    return last or 0, snapshots
