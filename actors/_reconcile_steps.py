"""OrderActor's reconciliation step: a position follows the broker (live mode).

SyncActor plans (``actors._resolve``); OrderActor, the book's owner, acts:
evidence trades go to PortfolioActor as ApplyFill under ``SYNC_SAGA`` (real
fills: the book's money moves), an adoption as AdoptPosition (a capital
transfer: free cash does not move). Both are journaled by the portfolio before
it answers, and both are idempotent by fill id, so a plan asked twice (a
restart, a slow answer) books once. When the answers come, the book follows:
an adopted or crossed-through position becomes an OPEN ``EXTERNAL`` entry with
the plan's protective exit rules (and, live, a GTT); a position brought to
zero leaves the book (its GTT removed); a reduced one is re-protected.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import structlog

from actors._book import Book, BookEntry, BookStatus
from messages import (
    EXTERNAL,
    SYNC_SAGA,
    AdoptPosition,
    ApplyFill,
    ExitRules,
    FillApplied,
    PositionAdopted,
    Product,
    ReconcilePosition,
)

if TYPE_CHECKING:
    from collections.abc import Callable

    from messages import Inbox, Instrument, Price

__all__ = ["ReconcileSteps"]

_log = structlog.get_logger("kitesaga.orders")


class ReconcileSteps:
    """Mixin for OrderActor: :class:`messages.ReconcilePosition` and its answers.

    Contract: a ReconcilePosition for an instrument in which a saga of ours is
    working (an OPENING or EXITING entry) is deferred: nothing is sent, and
    SyncActor asks again after its next observation. Otherwise every evidence
    fill and the adoption go to the portfolio; the book changes only on the
    portfolio's answers (FillApplied / PositionAdopted), which carry the
    position's quantity after the change.
    """

    _book: Book
    _portfolio: Inbox
    _me: Inbox
    _stats: dict[str, int]
    _instrument: Callable[[int], Instrument]
    _prices: dict[int, Price]
    _pending_sync: dict[str, tuple[str, int, ExitRules, Product, int]]

    if TYPE_CHECKING:
        def _journal_book(self, opened: list[BookEntry], closed: list[BookEntry]) -> None: ...

        def _protect_settled(self, opened: list[BookEntry],
                             closed: list[BookEntry]) -> None: ...

    def _on_reconcile(self, msg: ReconcilePosition) -> None:
        token = msg.instrument_token
        entries = self._book.on_token(token)
        busy = [f"{e.key[0]}:{e.status.value}" for e in entries
                if e.status is not BookStatus.OPEN]
        net = sum(e.quantity for e in entries)
        if busy or net != msg.book_net:
            self._stats["reconciles_deferred"] += 1
            _log.info("reconcile_deferred", instrument_token=token, busy=busy, book_net=net,
                      planned_on=msg.book_net)
            return
        self._stats["reconciles"] += 1
        _log.warning("reconcile_position", instrument_token=token, reason=msg.reason,
                     evidence=[(s.strategy, s.fill.fill_id, s.fill.side.value, s.fill.quantity)
                               for s in msg.evidence],
                     adopt=None if msg.adopt is None else
                     (msg.adopt.side.value, msg.adopt.quantity, str(msg.adopt.price)))
        for item in msg.evidence:
            self._pending_sync[item.fill.fill_id] = (item.strategy, token, msg.rules,
                                                     msg.product, item.fill.price.paise)
            self._portfolio.tell(ApplyFill(SYNC_SAGA, item.strategy, item.fill,
                                           reply_to=self._me))
        if msg.adopt is not None:
            self._pending_sync[msg.adopt.fill_id] = (EXTERNAL, token, msg.rules, msg.product,
                                                     msg.adopt.price.paise)
            self._portfolio.tell(AdoptPosition(EXTERNAL, msg.adopt, msg.reason,
                                               reply_to=self._me))

    def _sync_fill_applied(self, msg: FillApplied) -> None:
        self._synced(msg.fill_id, msg.position_quantity, msg.duplicate,
                     msg.realised.paise)

    def _adopted(self, msg: PositionAdopted) -> None:
        self._synced(msg.fill_id, msg.position_quantity, msg.duplicate, 0)

    def _synced(self, fill_id: str, quantity: int, duplicate: bool, realised: int) -> None:
        pending = self._pending_sync.pop(fill_id, None)
        if pending is None or duplicate:
            return
        strategy, token, rules, product, _ = pending
        self._stats["reconciled_fills"] += 1
        key = (strategy, token)
        entry = self._book.get(key)
        if entry is None:
            if quantity == 0:
                return
            # adopted, or a foreign trade crossed through zero: a managed OPEN position
            # whose protective exit rules start from the market now (with no price yet,
            # from the first one that comes): they guard against what comes next
            known = self._prices.get(token)
            entry = self._book.open_settled(key, self._instrument(token), product, rules,
                                            quantity, known.last.paise if known else None)
            self._journal_book([entry], [])
            self._protect_settled([entry], [])  # (no plan yet: protected when it comes)
            return
        entry.quantity = quantity
        if quantity == 0:
            self._book.remove(entry)
            self._journal_book([], [entry])
            self._protect_settled([], [entry])
            _log.warning("position_closed_by_broker_trades", strategy=strategy,
                         instrument_token=token, realised=realised)
        else:
            self._journal_book([entry], [])
            self._protect_settled([entry], [])  # the GTT follows the new quantity
