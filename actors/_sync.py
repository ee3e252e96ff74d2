"""SyncActor: reconciliation with the broker (live mode; a later issue fills it in)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import structlog

from actors._base import EngineActor
from messages import Inbox

__all__ = ["Reconcile", "ReconcileSkipped", "SyncActor"]

_log = structlog.get_logger("kitesaga.sync")


@dataclass(frozen=True, slots=True)
class Reconcile:
    """Compare the engine's book with the broker's and adopt differences."""

    reply_to: Inbox | None = None


@dataclass(frozen=True, slots=True)
class ReconcileSkipped:
    """Reconciliation did not run, and why."""

    reason: str


class SyncActor(EngineActor):
    """Reconciles the book with the broker — never in paper mode.

    Contract: in paper mode it never reads or writes the paper book (the old
    system's sync wiped paper profits); every Reconcile is answered with
    ReconcileSkipped and counted.
    """

    def __init__(self, mode: str) -> None:
        super().__init__()
        self._mode = mode
        self.skipped = 0

    def on_receive(self, message: Any) -> Any:
        if isinstance(message, Reconcile):
            self.skipped += 1
            reason = ("paper mode: the paper book is never reconciled against a broker"
                      if self._mode == "paper" else "live reconciliation is not built yet")
            _log.info("reconcile_skipped", mode=self._mode, reason=reason)
            if message.reply_to is not None:
                message.reply_to.tell(ReconcileSkipped(reason))
        else:
            self.unhandled(message)
        return None
