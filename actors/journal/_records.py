"""The journal's format: its records, its file's identity, its errors.

A :class:`JournalRecord` is one event: a ``kind``, a JSON body and the saga it
belongs to (if any). Its body is checked and encoded ONCE, at construction,
into canonical JSON text; that text is what the store writes and checksums
(crc32), so what is written is exactly what was validated, whatever the
caller does with its own objects afterwards.

A journal file is a SQLite database whose header carries kitesaga's
``application_id`` and the format version (``user_version``);
:func:`check_header` reads them from the raw bytes, before SQLite may write
anything, and refuses any other file.
"""

from __future__ import annotations

import json
import math
import sqlite3
import zlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any
from urllib.parse import quote

from messages import from_dict, to_dict

__all__ = [
    "APPLICATION_ID",
    "FORMAT_VERSION",
    "MODES",
    "SCHEMA",
    "TABLES",
    "JournalCorrupt",
    "JournalError",
    "JournalRecord",
    "JournalWriteError",
    "check_header",
    "check_mode",
    "check_row",
    "check_version",
    "checksum",
    "encode_body",
    "encode_built",
    "load_body",
    "refuse",
]

APPLICATION_ID = 0x4B534A4E
"""``PRAGMA application_id`` of every kitesaga journal ("KSJN")."""
FORMAT_VERSION = 1
"""``PRAGMA user_version``: the journal format this code writes and reads."""
MODES = ("paper", "live")

_MAGIC = b"SQLite format 3\x00"
_HEADER = 100

SCHEMA = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE events (seq INTEGER PRIMARY KEY, at TEXT NOT NULL, kind TEXT NOT NULL,
                     saga_id TEXT NULL, body TEXT NOT NULL, crc INTEGER NOT NULL);
CREATE TABLE snapshots (seq INTEGER PRIMARY KEY, at TEXT NOT NULL, body TEXT NOT NULL,
                        crc INTEGER NOT NULL);
CREATE TRIGGER events_append_only_u BEFORE UPDATE ON events
    BEGIN SELECT RAISE(ABORT, 'kitesaga journal events are append-only'); END;
CREATE TRIGGER events_append_only_d BEFORE DELETE ON events
    BEGIN SELECT RAISE(ABORT, 'kitesaga journal events are append-only'); END;
CREATE TRIGGER snapshots_append_only_u BEFORE UPDATE ON snapshots
    BEGIN SELECT RAISE(ABORT, 'kitesaga journal snapshots are append-only'); END;
CREATE TRIGGER snapshots_append_only_d BEFORE DELETE ON snapshots
    BEGIN SELECT RAISE(ABORT, 'kitesaga journal snapshots are append-only'); END;
"""
TABLES = frozenset({"meta", "events", "snapshots"})
_MAX_KIND = 64
_MAX_SAGA_ID = 64


class JournalError(RuntimeError):
    """A journal that cannot be used: foreign, of another mode, newer, closed.

    Contract: the message names the file and what was found. Whatever raised
    it left the file's bytes as they were: a journal is never deleted or
    overwritten to make it usable.
    """


class JournalCorrupt(JournalError):  # noqa: N818  (the name the design uses)
    """A journal whose content fails its checks: a checksum (``crc``) that does
    not match its row, a missing event, a file SQLite itself finds damaged.

    Contract: the message names the file and, for a row, its ``seq``. Rows are
    never skipped: one bad row refuses the whole journal.
    """


class JournalWriteError(JournalError):
    """A write that did not commit (disk full, read-only file, I/O error).

    Contract: the message says what failed and names the file; nothing of the
    failed batch is in the journal (its transaction was rolled back).
    """


def _check_json(value: Any, where: str) -> None:
    """Accept exactly the types JSON gives back, so a body round-trips equal."""
    kind = type(value)
    if value is None or kind in (str, bool, int):
        return
    if kind is float:
        if not math.isfinite(value):
            raise ValueError(f"{where}: must be a finite number, got {value!r}")
        return
    if kind is list:
        for i, item in enumerate(value):
            _check_json(item, f"{where}[{i}]")
        return
    if kind is dict:
        for key, item in value.items():
            if type(key) is not str:
                raise ValueError(f"{where}: keys must be strings, got {key!r}")
            _check_json(item, f"{where}.{key}")
        return
    raise ValueError(f"{where}: not a JSON value (str, int, float, bool, None, list, dict), "
                     f"got {kind.__name__} {value!r}")


def encode_body(body: Mapping[str, Any], what: str = "body") -> str:
    """``body`` as canonical JSON text (sorted keys, no spaces).

    Raises ValueError naming the path of anything that is not plain JSON: a
    tuple, Decimal, enum, NaN or non-string key would not come back equal
    (protocol messages are encoded with :func:`messages.to_dict` first).
    """
    if not isinstance(body, Mapping):
        raise ValueError(f"{what}: must be a mapping, got {type(body).__name__}")
    plain = dict(body)
    _check_json(plain, what)
    text = json.dumps(plain, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                      allow_nan=False)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as bad:  # a lone surrogate: no UTF-8 file can hold it
        raise ValueError(f"{what}: text that is not valid Unicode: {bad}") from None
    return text


def encode_built(body: Mapping[str, Any], what: str = "body") -> str:
    """:func:`encode_body` for a body the engine built itself from plain JSON
    values: the same canonical text, without the deep walk (NaN, infinities
    and non-JSON types are still refused with ValueError; a tuple would come
    back as a list, so the caller must not put one in)."""
    try:
        return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                          allow_nan=False)
    except (TypeError, ValueError) as bad:
        raise ValueError(f"{what}: not plain JSON: {bad}") from None


@dataclass(frozen=True, slots=True)
class JournalRecord:
    """One journal event: ``kind`` (what happened), a JSON ``body``, its ``saga_id``.

    Contract: ``kind`` is a non-empty string of at most 64 characters;
    ``saga_id`` is None or such a string; ``body`` is a mapping of plain JSON
    values (see :func:`encode_body`). Construction raises ValueError naming
    the field otherwise. ``body`` is a read-only view of a private copy, and
    ``text`` is its canonical JSON, fixed at construction: the journal writes
    ``text``. Records compare equal by kind, body and saga_id.

    Protocol messages: :meth:`of` records a message (kind = its class name,
    body = :func:`messages.to_dict`); :meth:`message` rebuilds it through
    :func:`messages.from_dict`, which validates it again.
    """

    kind: str
    body: Mapping[str, Any]
    saga_id: str | None = None
    text: str = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        _check_label("kind", self.kind, _MAX_KIND)
        if self.saga_id is not None:
            _check_label("saga_id", self.saga_id, _MAX_SAGA_ID)
        text = encode_body(self.body)
        object.__setattr__(self, "text", text)
        object.__setattr__(self, "body", MappingProxyType(json.loads(text)))

    @classmethod
    def of(cls, message: Any, saga_id: str | None = None) -> JournalRecord:
        """Record a protocol message (any dataclass of :mod:`messages`)."""
        return cls.built(type(message).__name__, to_dict(message), saga_id)

    @classmethod
    def built(cls, kind: str, body: dict[str, Any], saga_id: str | None = None) -> JournalRecord:
        """The hot path for a body the engine built itself, JSON-ready (from
        :func:`messages.to_dict` and plain values) and handed over (not kept by
        the caller): the labels are checked and the text encoded (NaN still
        refused), but the deep walk and the defensive copy are skipped. Per
        saga step this saves most of a record's cost (docs/performance.md)."""
        _check_label("kind", kind, _MAX_KIND)
        if saga_id is not None:
            _check_label("saga_id", saga_id, _MAX_SAGA_ID)
        return cls.from_stored(kind, saga_id, encode_built(body), body)

    def message(self) -> Any:
        """The protocol message this record holds, rebuilt and validated again.

        Raises ValueError if the body is not a message (a plain record) or no
        longer validates.
        """
        return from_dict(json.loads(self.text))

    @classmethod
    def from_stored(cls, kind: str, saga_id: str | None, text: str,
                    body: dict[str, Any]) -> JournalRecord:
        """Rebuild a record read back from the journal: its crc verified, ``body``
        parsed from ``text``. Skips re-validation: ``text`` is what was validated
        when it was written (replay speed is start-up speed)."""
        record = object.__new__(cls)
        for name, value in (("kind", kind), ("saga_id", saga_id), ("text", text),
                            ("body", MappingProxyType(body))):
            object.__setattr__(record, name, value)
        return record


def _check_label(name: str, value: Any, max_len: int) -> None:
    if type(value) is not str or not value.strip() or not value.isprintable():
        raise ValueError(f"{name}: must be a non-empty printable string, got {value!r}")
    if len(value) > max_len:
        raise ValueError(f"{name}: longer than {max_len} characters, got {value!r}")


# -- the file's identity and checksums --------------------------------------------


def checksum(text: str) -> int:
    """The crc32 stored with a row: of its body's UTF-8 bytes."""
    return zlib.crc32(text.encode("utf-8"))


def check_row(path: Path, what: str, seq: int, text: Any, stored: Any) -> None:
    """Raise :class:`JournalCorrupt` naming ``what`` and ``seq`` unless ``stored``
    is the checksum of ``text``."""
    if not isinstance(text, str) or stored != checksum(text):
        raise JournalCorrupt(f"{path}: {what} seq {seq}: checksum mismatch (crc {stored!r} "
                             f"stored, the body does not match it: bit rot or an edit); "
                             f"refusing the journal")


def load_body(path: Path, what: str, seq: int, text: str) -> dict[str, Any]:
    """A checked row's body as a dict; :class:`JournalCorrupt` if it is not one."""
    try:
        body = json.loads(text)
    except ValueError as bad:  # JSONDecodeError
        raise JournalCorrupt(f"{path}: {what} seq {seq}: unreadable body: {bad}") from None
    if not isinstance(body, dict):
        raise JournalCorrupt(f"{path}: {what} seq {seq}: the body is not a JSON object")
    return body


def check_mode(mode: str) -> None:
    """Raise ValueError unless ``mode`` names a book: paper or live."""
    if mode not in MODES:
        raise ValueError(f"mode: must be one of {', '.join(MODES)}, got {mode!r}")


def refuse(path: Path, found: str) -> JournalError:
    """The error for a file that is not a kitesaga journal."""
    return JournalError(f"{path}: not a kitesaga journal: {found}; refusing it (the file is "
                        f"left untouched: move it away, or point engine.state_dir elsewhere)")


def check_version(path: Path, version: int) -> None:
    """Refuse a journal format other than :data:`FORMAT_VERSION`."""
    if version > FORMAT_VERSION:
        raise JournalError(f"{path}: written by a newer kitesaga (journal format {version}; "
                           f"this version reads format {FORMAT_VERSION}); refusing it (left "
                           f"untouched): upgrade kitesaga")
    if version != FORMAT_VERSION:
        raise JournalCorrupt(f"{path}: unknown journal format {version} (this version reads "
                             f"format {FORMAT_VERSION}); refusing it (left untouched)")


def check_header(path: Path) -> None:
    """Refuse, before SQLite may touch the file, anything that is not our journal."""
    try:
        with path.open("rb") as file:
            head = file.read(_HEADER)
    except OSError as bad:
        raise JournalError(f"{path}: cannot read the journal: {bad}") from None
    if not head:
        raise refuse(path, "an empty (0-byte) file; kitesaga never leaves one (a new journal "
                      "appears whole), so it is a truncated journal or someone else's file")
    if not head.startswith(_MAGIC):
        raise refuse(path, f"not a SQLite database (it starts with {head[:16]!r})")
    if len(head) < _HEADER:
        raise JournalCorrupt(f"{path}: truncated to {len(head)} bytes, shorter than a SQLite "
                             f"header; refusing it (left untouched)")
    app = int.from_bytes(head[68:72], "big", signed=True)
    if app != APPLICATION_ID:
        raise refuse(path, f"a SQLite database with application_id {app:#x} (a kitesaga "
                      f"journal has {APPLICATION_ID:#x}){_tables(path)}")
    check_version(path, int.from_bytes(head[60:64], "big", signed=True))


def _tables(path: Path) -> str:
    """A foreign database's tables, read with SQLite's no-write ``immutable`` mode."""
    try:
        conn = sqlite3.connect(f"file:{quote(str(path))}?mode=ro&immutable=1", uri=True)
        try:
            names = [row[0] for row in conn.execute(
                "SELECT name FROM sqlite_schema WHERE type = 'table' ORDER BY name")]
        finally:
            conn.close()
    except sqlite3.Error as bad:
        return f", whose tables cannot be listed ({bad})"
    return f", with tables: {', '.join(names) or 'none'}"
