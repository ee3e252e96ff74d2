"""GTT protection: a broker-side OCO on every live position (a gateway mixin)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import structlog

from actors.kite._convert import BrokerReplyError, gtt_params
from actors.kite._replies import BrokerGtt, parse_gtts
from messages import (
    EndpointClass,
    PositionProtected,
    Priority,
    ProtectionFailed,
    ProtectionRemoved,
    ProtectPosition,
    RemoveProtection,
)

if TYPE_CHECKING:
    from actors.config._schema import LiveConfig
    from actors.kite._calls import CallError, Continuation
    from messages import Inbox

__all__ = ["GttProtection"]

_log = structlog.get_logger("kitesaga.kite")


class GttProtection:
    """Mixin for the Kite gateway: keeps one two-leg GTT per protected position.

    Contract: a position whose GTT cannot be placed is UNPROTECTED (listed in
    ``_unprotected``, answered with ProtectionFailed and raised as an alert)
    until a later ProtectPosition succeeds. Replacing a GTT places the new
    one before deleting the old; RemoveProtection (sent once the exit order
    has filled) deletes it. A GTT that cannot be deleted is an alert: it may
    still trigger.

    GTTs outlive the engine: before its first placement the gateway reads the
    broker's active GTTs once (``get_gtts``), and a ProtectPosition for a key
    it holds no GTT for ADOPTS an active one that closes exactly that
    position (same instrument, closing side and quantity; each adopted once,
    lowest trigger id first) instead of placing a second (``gtt_adopted``).
    Until that read has answered, ProtectPositions wait; if it fails, they
    place new GTTs.
    """

    _live: LiveConfig
    _gtts: dict[str, int]
    _unprotected: set[str]
    _counts: dict[str, int]

    if TYPE_CHECKING:
        def _request(self, endpoint: EndpointClass, priority: Priority, method: str,
                     kwargs: Mapping[str, Any], then: Continuation,
                     args: tuple[Any, ...] = ()) -> None: ...

        def reply_after_publish(self, to: Inbox | None, message: Any) -> None: ...

    def _init_protection(self, live: LiveConfig) -> None:
        self._live = live
        self._gtts = {}
        self._unprotected = set()
        self._orphans: list[BrokerGtt] | None = None  # None: the broker not read yet
        self._waiting: list[ProtectPosition] = []

    def _protect(self, message: ProtectPosition) -> None:
        if self._orphans is None:
            self._waiting.append(message)
            if len(self._waiting) == 1:
                self._request(EndpointClass.OTHER, Priority.EXIT, "get_gtts", {},
                              self._gtts_read)
            return
        if message.key not in self._gtts and self._adopt_gtt(message):
            return
        self._place_gtt(message)

    def _gtts_read(self, result: Any, error: CallError | None) -> None:
        orphans: list[BrokerGtt] = []
        if error is not None:
            _log.warning("gtts_not_read", error=error.message,
                         action="protections place new GTTs")
        else:
            try:
                orphans = sorted((g for g in parse_gtts(result) if g.status == "active"),
                                 key=lambda g: g.trigger_id)
            except BrokerReplyError as exc:
                _log.warning("gtts_not_read", error=str(exc)[:300],
                             action="protections place new GTTs")
        self._orphans = orphans
        waiting, self._waiting = self._waiting, []
        for message in waiting:
            self._protect(message)

    def _adopt_gtt(self, message: ProtectPosition) -> bool:
        assert self._orphans is not None
        token = message.instrument.instrument_token
        for gtt in self._orphans:
            if (gtt.instrument_token, gtt.side, gtt.quantity) == (
                    token, message.side.value, message.quantity):
                self._orphans.remove(gtt)
                self._counts["gtt_adopted"] += 1
                self._gtts[message.key] = gtt.trigger_id
                self._unprotected.discard(message.key)
                _log.info("position_protected", key=message.key, trigger_id=gtt.trigger_id,
                          adopted=True)
                self.reply_after_publish(message.reply_to,
                                         PositionProtected(message.key, gtt.trigger_id))
                return True
        return False

    def _place_gtt(self, message: ProtectPosition) -> None:
        try:
            params = gtt_params(message.instrument, message.side, message.quantity,
                                message.product.value, message.stop, message.target,
                                message.last, self._live.gtt_buffer_pct)
        except ValueError as exc:
            self._protection_failed(message, f"cannot build the GTT: {exc}")
            return

        def placed(result: Any, error: CallError | None) -> None:
            trigger = result.get("trigger_id") if isinstance(result, dict) else None
            if error is not None or type(trigger) is not int or trigger <= 0:
                why = error.message if error is not None else f"reply {result!r}"[:200]
                self._protection_failed(message, f"GTT not placed: {why}")
                return
            self._counts["gtt_placed"] += 1
            old = self._gtts.get(message.key)
            self._gtts[message.key] = trigger
            self._unprotected.discard(message.key)
            _log.info("position_protected", key=message.key, trigger_id=trigger)
            self.reply_after_publish(message.reply_to, PositionProtected(message.key, trigger))
            if old is not None:
                self._delete(message.key, old, None)

        self._request(EndpointClass.OTHER, Priority.EXIT, "place_gtt", params, placed)

    def _protection_failed(self, message: ProtectPosition, reason: str) -> None:
        self._counts["gtt_failed"] += 1
        self._unprotected.add(message.key)
        _log.error("alert", alert="position_unprotected", key=message.key, reason=reason)
        self.reply_after_publish(message.reply_to, ProtectionFailed(message.key, reason[:500]))

    def _unprotect(self, message: RemoveProtection) -> None:
        self._unprotected.discard(message.key)
        trigger = self._gtts.pop(message.key, None)
        if trigger is None:
            self.reply_after_publish(message.reply_to, ProtectionRemoved(message.key))
            return
        self._delete(message.key, trigger, message.reply_to)

    def _delete(self, key: str, trigger: int, reply_to: Inbox | None) -> None:
        def deleted(_: Any, error: CallError | None) -> None:
            if error is not None:
                _log.error("alert", alert="gtt_not_deleted", key=key, trigger_id=trigger,
                           reason=error.message, action="delete it in Kite: it may trigger")
                return
            self._counts["gtt_deleted"] += 1
            self.reply_after_publish(reply_to, ProtectionRemoved(key, trigger))

        self._request(EndpointClass.OTHER, Priority.EXIT, "delete_gtt", {"trigger_id": trigger},
                      deleted)
