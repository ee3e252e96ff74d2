"""StrategyHostActor: runs strategies on validated prices and forwards their intents."""

from __future__ import annotations

from typing import Any

import structlog

from actors._base import EngineActor
from actors.strategy._base import Bar, Strategy, StrategyContext
from messages import Inbox, Price, PricesProcessed, PricesUpdated

__all__ = ["StrategyHostActor"]

_log = structlog.get_logger("kitesaga.strategy")


class StrategyHostActor(EngineActor):
    """Feeds each strategy the ticks and one-minute bars of what it watches.

    Contract: strategies run on this actor's thread only; their intents go
    to ``orders`` as messages (OrderActor decides). A strategy that raises is
    logged and counted, and keeps running on later ticks.
    """

    def __init__(self, strategies: tuple[Strategy, ...], ctx: StrategyContext, orders: Inbox,
                 price_source: Inbox | None = None, subscriber_id: str = "strategies") -> None:
        super().__init__()
        self._strategies = strategies
        self._ctx = ctx
        self._orders = orders
        self._source = price_source
        self._subscriber_id = subscriber_id
        self._watch: dict[int, list[Strategy]] = {}
        for strategy in strategies:
            for token in strategy.watch(ctx):
                self._watch.setdefault(token, []).append(strategy)
        self._bars: dict[int, list[Any]] = {}
        self.errors = 0
        self.intents = 0

    @property
    def tokens(self) -> frozenset[int]:
        """Every token some strategy watches."""
        return frozenset(self._watch)

    def receive(self, message: Any) -> Any:
        if isinstance(message, PricesUpdated):
            for price in message.prices:
                self._on_price(price)
            if self._source is not None:
                self.tell_if_alive(self._source, PricesProcessed(self._subscriber_id))
        else:
            self.unhandled(message)
        return None

    def _on_price(self, price: Price) -> None:
        strategies = self._watch.get(price.instrument_token)
        if not strategies:
            return
        bar = self._roll_bar(price)
        for strategy in strategies:
            self._run(strategy, "on_tick", price)
            if bar is not None:
                self._run(strategy, "on_bar", bar)

    def _roll_bar(self, price: Price) -> Bar | None:
        minute = price.exchange_ts.replace(second=0, microsecond=0)
        last = price.last.paise
        state = self._bars.get(price.instrument_token)
        if state is None or state[0] != minute:
            self._bars[price.instrument_token] = [minute, last, last, last, last, 1]
            if state is None:
                return None
            return Bar(price.instrument_token, state[0], state[1], state[2], state[3], state[4],
                       state[5])
        state[2] = max(state[2], last)
        state[3] = min(state[3], last)
        state[4] = last
        state[5] += 1
        return None

    def _run(self, strategy: Strategy, hook: str, arg: Any) -> None:
        try:
            intents = getattr(strategy, hook)(arg, self._ctx)
        except Exception as exc:  # noqa: BLE001 - a strategy bug must not stop the others
            self.errors += 1
            _log.error("strategy_failed", strategy=strategy.name, hook=hook, error=repr(exc))
            return
        for intent in intents:
            self.intents += 1
            self._orders.tell(intent)
