"""The supervisor: every actor's failure becomes HALTED trading and a clear log line."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pykka
import structlog

from actors._base import ActorFailed, EngineActor
from actors._introspect import ActorStats
from actors._published import Published
from messages import Inbox, SetTradingState, TradingState

__all__ = ["Failures", "SupervisorActor"]

_log = structlog.get_logger("kitesaga.system")


@dataclass(frozen=True, slots=True)
class Failures:
    """Actors that died, as published by the supervisor."""

    items: tuple[ActorFailed, ...] = ()


class SupervisorActor(EngineActor):
    """Turns any actor's failure into HALTED trading and a clear log line.

    Contract: never a silently dead actor — each ActorFailed is logged at
    ERROR, published in ``failures`` and halts new entries.
    """

    def __init__(self) -> None:
        super().__init__()
        self.failures: Published[Failures] = Published(Failures())
        self.orders: Inbox | None = None

    def introspection(self) -> tuple[ActorStats, Published[Any] | None]:
        return self.stats, self.failures  # its snapshot: the failures so far

    def receive(self, message: Any) -> Any:
        if isinstance(message, ActorFailed):
            _log.error("trading_halted_actor_failed", actor=message.actor, error=message.error)
            self.failures.publish(Failures((*self.failures.latest().items, message)))
            if self.orders is not None and message.actor != "OrderActor":
                try:
                    self.orders.tell(SetTradingState(
                        TradingState.HALTED, f"{message.actor} failed: {message.error}"[:200]))
                except pykka.ActorDeadError:
                    _log.error("trading_halted_order_actor_dead", actor=message.actor)
        elif isinstance(message, _Orders):
            self.orders = message.ref
        else:
            self.unhandled(message)
        return None


@dataclass(frozen=True, slots=True)
class _Orders:
    """Wiring: where the supervisor sends SetTradingState."""

    ref: Inbox
