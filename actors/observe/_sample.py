"""One reading of the engine's published state, taken on an observer actor's timer.

:class:`Sources` holds read-only views of a started engine (each a function
returning a published immutable snapshot, never an actor's live state);
:func:`take_sample` turns them into one immutable :class:`Sample` that the
metrics collector and the alert conditions read.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

import psutil

from actors._base import ActorFailed
from actors._drift import SyncSnapshot
from actors._introspect import mailbox_depth
from actors._order import OrdersSnapshot
from actors._price import PriceBook
from actors._ratelimit import RateBook
from actors.journal import JournalSnapshot
from messages import DriftDetected

if TYPE_CHECKING:
    from actors._system import Engine

__all__ = ["Attach", "Sample", "Sources", "named_mailboxes", "sources_of", "take_sample"]

Mailboxes = tuple[tuple[str, Callable[[], int]], ...]


def _frozen(mapping: dict[Any, Any]) -> MappingProxyType[Any, Any]:
    return MappingProxyType(mapping)


@dataclass(frozen=True, slots=True)
class Sources:
    """Where an observer reads a running engine: published snapshots only.

    Every callable is safe on any thread (it returns the latest immutable
    snapshot an actor published, or a queue length). ``journal`` is None
    without a journal; ``token_expires_at`` is the live session's token
    expiry (None in paper mode); ``now`` is the engine's clock (IST-aware).
    """

    orders: Callable[[], OrdersSnapshot]
    rates: Callable[[], RateBook]
    prices: Callable[[], PriceBook]
    sync: Callable[[], SyncSnapshot]
    broker_rejected: Callable[[], int]
    failures: Callable[[], tuple[ActorFailed, ...]]
    now: Callable[[], datetime]
    mailboxes: Mailboxes
    journal: Callable[[], JournalSnapshot] | None = None
    token_expires_at: datetime | None = None

    def with_mailboxes(self, extra: Mailboxes) -> Sources:
        """The same sources with more named mailboxes (the observers' own)."""
        return Sources(self.orders, self.rates, self.prices, self.sync, self.broker_rejected,
                       self.failures, self.now, (*self.mailboxes, *extra), self.journal,
                       self.token_expires_at)


@dataclass(frozen=True, slots=True)
class Attach:
    """To an observer actor: the engine has started; read it through ``sources``."""

    sources: Sources


def _depth(ref: Any) -> Callable[[], int]:
    return lambda: mailbox_depth(ref)


def named_mailboxes(refs: list[Any] | tuple[Any, ...]) -> Mailboxes:
    """``(actor class name, mailbox depth)`` for each pykka ref (a repeated name gets
    ``#2``, ``#3``...)."""
    seen: dict[str, int] = {}
    out: list[tuple[str, Callable[[], int]]] = []
    for ref in refs:
        name = ref.actor_class.__name__
        seen[name] = seen.get(name, 0) + 1
        out.append((name if seen[name] == 1 else f"{name}#{seen[name]}", _depth(ref)))
    return tuple(out)


def sources_of(engine: Engine) -> Sources:
    """The sources of a started ``engine`` (call on the thread that started it: it
    asks RateLimitActor, PriceActor and JournalActor once for their published cells)."""
    rates = engine.published(engine.limiter)
    prices = engine.published(engine.prices)
    journal = None
    if hasattr(engine, "journal"):
        journal = engine.published(engine.journal).latest
    if engine.live is not None:
        def rejected() -> int:
            return int(engine.gateway_snapshot.counts.get("orders_rejected", 0))
    else:
        def rejected() -> int:
            return engine.broker_snapshot.orders_rejected
    refs = [handle.ref for handle in engine.actors]  # fixed once the engine has started
    return Sources(
        orders=lambda: engine.orders_snapshot, rates=rates.latest,
        prices=prices.latest, sync=lambda: engine.sync_snapshot,
        broker_rejected=rejected, failures=engine.failures, now=engine.clock.now,
        mailboxes=named_mailboxes(refs), journal=journal,
        token_expires_at=None if engine.live is None else engine.live.token.expires_at)


@dataclass(frozen=True, slots=True)
class Sample:
    """The engine's figures at one moment (``at``: engine clock, IST-aware).

    Counters (``stats``, ``granted``, ``throttled``, ``prices_rejected``...)
    are the actors' own running totals; gauges are as read. Price ages are
    seconds between ``at`` and the newest/oldest exchange timestamp held
    (None with no price). Journal latencies are None without a journal.
    """

    at: datetime
    stats: MappingProxyType[str, int]
    state: str
    state_reason: str
    in_flight: int
    open_positions: int
    unprotected: tuple[str, ...]
    broker_rejected: int
    granted: MappingProxyType[str, int]
    throttled: MappingProxyType[str, int]
    waiting: MappingProxyType[tuple[str, str], int]
    permits_refused: int
    prices_known: int
    prices_accepted: int
    prices_rejected: MappingProxyType[str, int]
    newest_price_age_s: float | None
    oldest_price_age_s: float | None
    mailboxes: MappingProxyType[str, int]
    rss_bytes: int
    threads: int
    drifts: tuple[DriftDetected, ...] = ()
    failures: tuple[ActorFailed, ...] = ()
    journal_p50_ms: float | None = None
    journal_p99_ms: float | None = None
    journal_failed: bool = False
    journal_error: str | None = None
    token_expires_at: datetime | None = None


def take_sample(sources: Sources, process: psutil.Process) -> Sample:
    """Read every source once (the caller's thread: an observer actor's)."""
    now = sources.now()
    orders = sources.orders()
    rates = sources.rates()
    book = sources.prices()
    stamps = [price.exchange_ts for price in book.prices.values()]
    journal = sources.journal() if sources.journal is not None else None
    with process.oneshot():
        rss, threads = int(process.memory_info().rss), int(process.num_threads())
    return Sample(
        at=now, stats=_frozen(dict(orders.stats)), state=orders.state.value,
        state_reason=orders.state_reason, in_flight=orders.in_flight,
        open_positions=orders.open_positions, unprotected=tuple(orders.unprotected),
        broker_rejected=sources.broker_rejected(),
        granted=_frozen({ep.value: n for ep, n in rates.granted.items()}),
        throttled=_frozen({ep.value: n for ep, n in rates.throttled.items()}),
        waiting=_frozen({(ep.value, lane.name): n for ep, lanes in rates.queued.items()
                         for lane, n in lanes.items()}),
        permits_refused=rates.refused, prices_known=len(stamps),
        prices_accepted=book.accepted, prices_rejected=_frozen(dict(book.rejected)),
        newest_price_age_s=(now - max(stamps)).total_seconds() if stamps else None,
        oldest_price_age_s=(now - min(stamps)).total_seconds() if stamps else None,
        mailboxes=_frozen({name: depth() for name, depth in sources.mailboxes}),
        rss_bytes=rss, threads=threads, drifts=tuple(sources.sync().drifts),
        failures=tuple(sources.failures()),
        journal_p50_ms=None if journal is None else journal.write_p50_ms,
        journal_p99_ms=None if journal is None else journal.write_p99_ms,
        journal_failed=bool(journal is not None and journal.failed),
        journal_error=None if journal is None else journal.last_error,
        token_expires_at=sources.token_expires_at)
