"""SimulatedFeedActor: drives the synthetic market on the simulated clock."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from actors._base import EngineActor, Wake, WakeTimer
from messages import Inbox, RecordPrices

if TYPE_CHECKING:
    from actors.market import SimClock, SyntheticMarket

__all__ = ["SimulatedFeedActor"]


class SimulatedFeedActor(EngineActor):
    """Steps the synthetic market every ``tick_interval_s`` simulated seconds and
    offers the prices to every target (PriceActor, the paper broker).

    Contract: never sleeps; a WakeTimer brings the next step. Steps missed
    while busy are not replayed: the market jumps to the clock's time.
    """

    def __init__(self, market: SyntheticMarket, clock: SimClock, tick_interval_s: float,
                 targets: tuple[Inbox, ...]) -> None:
        super().__init__()
        self._market = market
        self._clock = clock
        self._interval = clock.seconds_to_wall(tick_interval_s)
        self._targets = targets
        self.steps = 0

    def on_start(self) -> None:
        self._timer = WakeTimer(self.actor_ref)
        self._timer.arm(time.monotonic())

    def on_stop(self) -> None:
        self._timer.cancel()

    def receive(self, message: Any) -> Any:
        if isinstance(message, Wake):
            self._timer.fired(message)
            started = time.monotonic()
            message_out = RecordPrices(tuple(self._market.step(self._clock.now())))
            for target in self._targets:
                target.tell(message_out)
            self.steps += 1
            self._timer.arm(started + self._interval)
        else:
            self.unhandled(message)
        return None
