"""SyncActor's resolution of position drifts: quantities follow the broker.

A mixin: for each declared position drift it plans (``actors._resolve``) and
asks OrderActor, the book's owner, to act (ReconcilePosition). When the book
holds more than the broker, the day's trades and orders are read first (on
READ permits): only broker trades the engine did not place are evidence.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import structlog

from actors._resolve import BrokerTrade, foreign_trades, plan
from actors.kite._convert import BrokerReplyError
from messages import DriftDetected, DriftKind, EndpointClass, Priority

if TYPE_CHECKING:
    from datetime import datetime

    from actors._drift import BookView
    from actors.config._schema import SyncConfig
    from actors.kite._calls import CallError, Continuation
    from actors.kite._replies import BrokerPosition
    from messages import ExitRules, Inbox

__all__ = ["POSITION_KINDS", "DriftResolution"]

_log = structlog.get_logger("kitesaga.sync")

POSITION_KINDS = frozenset({DriftKind.POSITION_MISSING_IN_BOOK,
                            DriftKind.POSITION_MISSING_AT_BROKER,
                            DriftKind.QUANTITY_MISMATCH})


class DriftResolution:
    """Mixin for SyncActor: resolve declared position drifts (``sync.resolve_drifts``).

    Contract: at most one resolution per instrument is outstanding: after a
    ReconcilePosition is sent, that instrument is left alone until the book
    shows the planned quantity or ``sync.resolve_timeout_s`` has passed (then
    it may be asked again: every step is idempotent by fill id). Trades used
    as evidence are remembered once the book has followed, so one trade is
    never evidence for two drifts. A drift no evidence explains is logged
    once ("drift_unexplained") and stands.
    """

    _sync: SyncConfig
    _counts: dict[str, int]
    _resolving: dict[int, tuple[float, int, frozenset[str]]]
    _applied_trades: set[str]
    _unexplained: set[tuple[int, int, int]]

    if TYPE_CHECKING:
        def _request(self, endpoint: EndpointClass, priority: Priority, method: str,
                     kwargs: Mapping[str, Any], then: Continuation,
                     args: tuple[Any, ...] = ()) -> None: ...

        def tell_if_alive(self, to: Inbox, message: Any) -> bool: ...

    def _init_resolution(self) -> None:
        self._resolving = {}
        self._applied_trades = set()
        self._unexplained = set()

    def _resolve(self, drifts: list[DriftDetected], book: BookView,
                 rows: tuple[BrokerPosition, ...], orders: Inbox, rules: ExitRules,
                 now: datetime, ours: Callable[[str], bool]) -> int:
        """Plan and send the resolutions ``drifts`` call for; how many were sent or are
        waiting for the day's trades."""
        self._settle_resolutions(book)
        if not self._sync.resolve_drifts:
            return 0
        started = 0
        for drift in drifts:
            token = drift.instrument_token
            if drift.kind not in POSITION_KINDS or token in self._resolving:
                continue
            per = {s: q for (s, t), q in book.positions.items() if t == token}
            theirs = [row for row in rows if row.instrument_token == token]
            held, broker = sum(per.values()), sum(row.quantity for row in theirs)
            reason = (f"{drift.kind.value} {drift.key}: book {held:+d}, broker "
                      f"{broker:+d}")
            started += 1
            if (held and (held > 0) != (broker > 0)) or abs(broker) < abs(held):
                self._resolving[token] = (time.monotonic() + self._sync.resolve_timeout_s,
                                          broker, frozenset())
                self._read_trades(self._then_send(token, per, theirs, orders, rules, now,
                                                  reason), ours, token)
            else:
                self._send(token, per, theirs, None, orders, rules, now, reason)
        return started

    def _then_send(self, token: int, per: dict[str, int], rows: list[BrokerPosition],
                   orders: Inbox, rules: ExitRules, now: datetime, reason: str,
                   ) -> Callable[[list[BrokerTrade] | None], None]:
        def then(trades: list[BrokerTrade] | None) -> None:
            self._send(token, per, rows, trades, orders, rules, now, reason)
        return then

    def _settle_resolutions(self, book: BookView) -> None:
        """Forget resolutions the book has followed (keeping their evidence) or that
        timed out (their evidence may be used again)."""
        clock = time.monotonic()
        for token, (until, expected, evidence) in list(self._resolving.items()):
            net = sum(q for (_, t), q in book.positions.items() if t == token)
            if net == expected:
                self._applied_trades |= evidence
                del self._resolving[token]
            elif clock >= until:
                _log.warning("resolution_timed_out", instrument_token=token, book=net,
                             expected=expected)
                del self._resolving[token]

    def _read_trades(self, then: Callable[[list[BrokerTrade] | None], None],
                     ours: Callable[[str], bool], token: int) -> None:
        def got_trades(trades: Any, error: CallError | None) -> None:
            if error is not None:
                self._trades_failed(token, error.message)
                return

            def got_orders(orders: Any, failed: CallError | None) -> None:
                if failed is not None:
                    self._trades_failed(token, failed.message)
                    return
                try:
                    found = foreign_trades(trades, orders, ours)
                except BrokerReplyError as exc:
                    self._counts["bad_replies"] += 1
                    self._trades_failed(token, f"bad broker reply: {exc}")
                    return
                then([t for t in found if t.fill.instrument_token == token])

            self._request(EndpointClass.OTHER, Priority.READ, "orders", {}, got_orders)

        self._request(EndpointClass.OTHER, Priority.READ, "trades", {}, got_trades)

    def _trades_failed(self, token: int, why: str) -> None:
        _log.warning("resolution_evidence_unread", instrument_token=token, error=why[:300])
        self._resolving.pop(token, None)  # asked again after the next observation

    def _send(self, token: int, per: dict[str, int], rows: list[BrokerPosition],
              trades: list[BrokerTrade] | None, orders: Inbox, rules: ExitRules,
              now: datetime, reason: str) -> None:
        decided = plan(token, per, rows, trades, self._applied_trades, rules, now, reason)
        if decided.unexplained:
            mark = (token, sum(per.values()), sum(r.quantity for r in rows))
            if mark not in self._unexplained:
                self._unexplained.add(mark)
                _log.error("alert", alert="drift_unexplained", instrument_token=token,
                           reason=decided.unexplained)
        message = decided.message
        if message is None:
            self._resolving.pop(token, None)
            return
        self._counts["resolutions"] += 1
        evidence = frozenset(item.fill.fill_id.split(".")[0] for item in message.evidence)
        self._resolving[token] = (time.monotonic() + self._sync.resolve_timeout_s,
                                  decided.expected, evidence)
        _log.warning("drift_resolving", instrument_token=token, reason=reason,
                     evidence=sorted(evidence),
                     adopt=None if message.adopt is None else message.adopt.quantity)
        self.tell_if_alive(orders, message)
