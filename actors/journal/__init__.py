"""The journal: an append-only SQLite record of everything the engine must not lose.

Every saga step is recorded BEFORE its side effect, every fill and cash change
as an event; snapshots make start-up fast (load the latest, replay the tail).
The paper and the live book each have their own file (:func:`journal_path`).

- :class:`Journal` is the store (one owner thread at a time): ``open``,
  ``append`` (one transaction per batch), ``write_snapshot``,
  ``latest_snapshot``, ``replay``. It refuses, with :class:`JournalError` or
  :class:`JournalCorrupt`, any file that is not a whole, undamaged kitesaga
  journal of the requested mode, and never deletes or overwrites one.
- :class:`JournalActor` owns a Journal in the running engine: :class:`Append`
  commits records (group commit), then delivers the messages waiting on them;
  a failed write halts trading. It publishes a :class:`JournalSnapshot`.
"""

from __future__ import annotations

from actors.journal._actor import Append, JournalActor, JournalSnapshot
from actors.journal._records import (
    APPLICATION_ID,
    FORMAT_VERSION,
    JournalCorrupt,
    JournalError,
    JournalRecord,
    JournalWriteError,
)
from actors.journal._store import Journal, JournalStats, journal_path

__all__ = [
    "APPLICATION_ID",
    "FORMAT_VERSION",
    "Append",
    "Journal",
    "JournalActor",
    "JournalCorrupt",
    "JournalError",
    "JournalRecord",
    "JournalSnapshot",
    "JournalStats",
    "JournalWriteError",
    "journal_path",
]
