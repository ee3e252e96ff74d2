"""OrderActor's live-only saga steps: the broker margin check and GTT protection.

Both are off in paper mode (the engine passes ``margin_check=False`` and no
protector), so the paper path is unchanged.

==========================  ==============================================
step                        compensation
==========================  ==============================================
CheckMargins (before any    ReleaseCash (nothing was placed)
leg is placed)
ProtectPosition (after the  none: a failed GTT leaves the position OPEN,
entry settles OPEN)         marked UNPROTECTED, with an alert
RemoveProtection (after     none: a GTT that cannot be deleted is an alert
the exit has filled)
==========================  ==============================================
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import structlog

from actors._book import BookEntry
from actors._saga import Role, Saga, SagaOutcome
from messages import (
    CheckMargins,
    MarginsChecked,
    Money,
    PositionProtected,
    Priority,
    ProtectionFailed,
    ProtectionRemoved,
    ProtectPosition,
    RemoveProtection,
    Side,
)

if TYPE_CHECKING:
    from messages import Inbox, Price

__all__ = ["LiveSteps", "position_key"]

_log = structlog.get_logger("kitesaga.orders")


def position_key(entry: BookEntry) -> str:
    """The name a position's protection goes by: ``strategy:instrument_token``."""
    return f"{entry.key[0]}:{entry.key[1]}"


class LiveSteps:
    """Mixin for OrderActor: the margin-check step and GTT protection.

    Contract: with ``_margin_check`` an entry's legs are placed only after the
    broker's margin covers them; a short margin compensates the saga (its
    reservation is released) with a reason naming both figures. With a
    ``_protector``, every position an entry leaves OPEN is protected and
    every position that leaves the book has its protection removed; the
    positions without protection are ``_unprotected`` (published).
    """

    _margin_check: bool
    _protector: Inbox | None
    _unprotected: set[str]
    _sagas: dict[str, Saga]
    _prices: dict[int, Price]
    _stats: dict[str, int]
    _me: Inbox

    if TYPE_CHECKING:
        def _call(self, request_id: str, call: Any, lane: Priority) -> None: ...

        def _place(self, saga: Saga, index: int, role: Role, leg: Any,
                   attempt: int = 0) -> None: ...

        def _release(self, saga: Saga, outcome: SagaOutcome) -> None: ...

    def _start_legs(self, saga: Saga) -> None:
        """The reservation is held: check the broker's margin (live), then place."""
        if self._margin_check:
            saga.step = "CHECKING MARGINS"
            self._call(f"{saga.saga_id}:m", CheckMargins(saga.saga_id, saga.legs, self._me),
                       Priority.ENTRY)
        else:
            self._place(saga, 0, Role.OPEN, saga.legs[0])

    def _margins_checked(self, msg: MarginsChecked) -> None:
        saga = self._sagas.get(msg.saga_id)
        if saga is None or saga.step != "CHECKING MARGINS":
            return
        if msg.ok and not saga.reason:
            self._place(saga, 0, Role.OPEN, saga.legs[0])
            return
        self._stats["margin_refusals"] += 1
        saga.reason = saga.reason or msg.reason
        self._release(saga, SagaOutcome.COMPENSATED)

    def _protect_settled(self, opened: list[BookEntry], closed: list[BookEntry]) -> None:
        """After a saga: protect what it left open, unprotect what it closed."""
        if self._protector is None:
            return
        for entry in closed:
            self._unprotected.discard(position_key(entry))
            self._protector.tell(RemoveProtection(position_key(entry), self._me))
        for entry in opened:
            self._protect(entry)

    def _protect(self, entry: BookEntry) -> None:
        key = position_key(entry)
        plan = entry.plan
        if self._protector is None or plan is None:
            return
        price = self._prices.get(entry.key[1])
        last = price.last.paise if price is not None else plan.entry
        if plan.stop is None or plan.target is None:
            self._unprotected.add(key)
            _log.error("alert", alert="position_unprotected", key=key,
                       reason="exit rules need both a stop-loss and a take-profit for a GTT")
            return
        side = Side.SELL if entry.quantity > 0 else Side.BUY
        try:
            message = ProtectPosition(key, entry.instrument, side, abs(entry.quantity),
                                      entry.product, Money(plan.stop), Money(plan.target),
                                      Money(last), self._me)
        except ValueError as exc:  # e.g. the price already beyond a trigger
            self._unprotected.add(key)
            _log.error("alert", alert="position_unprotected", key=key, reason=str(exc))
            return
        self._protector.tell(message)

    def _protection_answer(self, msg: PositionProtected | ProtectionFailed |
                           ProtectionRemoved) -> None:
        if isinstance(msg, ProtectionFailed):
            self._unprotected.add(msg.key)
            self._stats["unprotected"] += 1
        elif isinstance(msg, PositionProtected):
            self._unprotected.discard(msg.key)
            self._stats["protected"] += 1
