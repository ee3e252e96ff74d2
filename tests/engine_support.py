"""Builds a real engine (all actors, paper broker) for tests, fed by hand-made prices."""

from __future__ import annotations

import atexit
import dataclasses
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pykka

from actors._system import Engine
from actors.config import Config
from messages import Instrument, InstrumentKind, Money, Price, RecordPrices
from tests.support import Recorder, wait_until


def make_config(**sections: dict[str, Any]) -> Config:
    """Default config with fast timeouts and generous limits, plus overrides per section.
    Each call gets a fresh state directory, so every engine starts from an empty journal."""
    config = Config()
    engine = dataclasses.replace(config.engine, fill_timeout_s=0.5, cancel_timeout_s=0.5,
                                 poll_interval_s=0.2, saga_deadline_s=20.0,
                                 drain_timeout_s=5.0)
    limits = dataclasses.replace(config.rate_limits, orders_per_s=1000, orders_per_min=100000,
                                 orders_per_day=1000000, other_per_s=1000)
    paper = dataclasses.replace(config.paper, slippage_bps=Decimal(0))
    state = tempfile.mkdtemp(prefix="kitesaga-test-")
    atexit.register(shutil.rmtree, state, True)
    engine = dataclasses.replace(engine, state_dir=state)
    config = dataclasses.replace(config, engine=engine, rate_limits=limits, paper=paper)
    for name, values in sections.items():
        config = dataclasses.replace(
            config, **{name: dataclasses.replace(getattr(config, name), **values)})
    return config


class Harness:
    """A started engine without feed or strategies; the test sets prices."""

    def __init__(self, engine: Engine, events: Recorder) -> None:
        self.engine = engine
        self.events = events

    def option(self, kind: InstrumentKind = InstrumentKind.CE, offset: int = 0) -> Instrument:
        expiry = min(self.engine.instruments.expiries("NIFTY"))
        chain = [i for i in self.engine.instruments.options("NIFTY", expiry) if i.kind is kind]
        chain.sort(key=lambda i: i.strike.paise if i.strike else 0)
        return chain[len(chain) // 2 + offset]

    def quote(self, instrument: Instrument, last: int, spread: int = 10,
              to_broker: bool = True, age: float = 0.0) -> Price:
        seen = self.engine.orders_snapshot.stats["price_batches"]
        now = self.engine.clock.now() - timedelta(seconds=age)
        price = Price(instrument.instrument_token, Money(last), now, now,
                      Money(last - spread // 2), Money(last + spread // 2))
        message = RecordPrices((price,))
        self.engine.prices.tell(message)
        if to_broker:
            self.engine.broker.tell(message)
        if age == 0.0:
            wait_until(lambda: self.engine.orders_snapshot.stats["price_batches"] > seen,
                       what="OrderActor saw the price")
        return price

    def submit(self, message: Any) -> None:
        self.engine.orders.tell(message)


@contextmanager
def running(config: Config | None = None) -> Iterator[Harness]:
    events = Recorder()
    engine = Engine(config or make_config(), run_strategies=False, run_feed=False,
                    listeners=(events,)).start()
    try:
        yield Harness(engine, events)
    finally:
        engine.stop(drain=False)
        pykka.ActorRegistry.stop_all()
