"""The saga records OrderActor journals, and the fold that rebuilds them at start-up.

OrderActor writes (kinds): ``saga`` when a saga starts (its legs, rules and
margins), ``order`` BEFORE a broker order is sent (tag, leg, role),
``placed`` when the broker names it, ``ended`` when the saga ends, and
``book`` when a position settles OPEN or leaves the book. PortfolioActor
writes its inputs (``ReserveCash``, ``ReleaseCash``, ``ApplyFill``) as
protocol messages. :func:`fold` reads a journal's records back into
:class:`Recovered`: what start-up gives each actor. See docs/sagas.md.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from actors.journal import JournalRecord
from messages import (
    ApplyFill,
    ExitRules,
    Fill,
    Instrument,
    OrderLeg,
    Product,
    SagaKind,
    from_dict,
    to_dict,
)

__all__ = ["BookRecord", "OrderRecord", "Recovered", "SagaRecord", "book_record",
           "ended_record", "fold", "order_record", "placed_record", "saga_record"]

PORTFOLIO_KINDS = frozenset({"ReserveCash", "ReleaseCash", "ApplyFill"})


def saga_record(saga_id: str, kind: SagaKind, strategy: str, legs: tuple[OrderLeg, ...],
                rules: ExitRules, margins: Mapping[int, int], reason: str = "") -> JournalRecord:
    """A saga starts."""
    return JournalRecord.built("saga", {
        "kind": kind.value, "strategy": strategy, "legs": [to_dict(leg) for leg in legs],
        "rules": to_dict(rules), "margins": {str(k): v for k, v in margins.items()},
        "reason": reason}, saga_id)


def order_record(saga_id: str, tag: str, index: int, role: str, attempt: int,
                 leg: OrderLeg) -> JournalRecord:
    """A broker order is about to be sent (write-ahead)."""
    return JournalRecord.built("order", {"tag": tag, "index": index, "role": role,
                                   "attempt": attempt, "leg": to_dict(leg)}, saga_id)


def placed_record(saga_id: str, tag: str, broker_order_id: str) -> JournalRecord:
    """The broker named the order."""
    return JournalRecord.built("placed", {"tag": tag, "broker_order_id": broker_order_id}, saga_id)


def ended_record(saga_id: str, outcome: str, reason: str) -> JournalRecord:
    """The saga ended COMPLETED or COMPENSATED."""
    return JournalRecord.built("ended", {"outcome": outcome, "reason": reason[:500]}, saga_id)


def book_record(strategy: str, instrument: Instrument, product: Product, rules: ExitRules,
                entry: int | None, peak: int) -> JournalRecord:
    """A managed position settled OPEN (``entry`` its plan's price) or left (None)."""
    return JournalRecord.built("book", {
        "strategy": strategy, "instrument": to_dict(instrument), "product": product.value,
        "rules": to_dict(rules), "entry": entry, "peak": peak})


@dataclass(slots=True)
class OrderRecord:
    """One broker order of an unfinished saga, as journaled."""

    tag: str
    index: int
    role: str
    attempt: int
    leg: OrderLeg
    broker_order_id: str | None = None
    fills: list[Fill] = field(default_factory=list)


@dataclass(slots=True)
class SagaRecord:
    """A saga as journaled: its start, its orders, whether it ended."""

    saga_id: str
    kind: SagaKind
    strategy: str
    legs: tuple[OrderLeg, ...]
    rules: ExitRules
    margins: dict[int, int]
    reason: str
    orders: list[OrderRecord] = field(default_factory=list)
    ended: bool = False
    release_sent: bool = False


@dataclass(slots=True)
class BookRecord:
    """A managed position as last journaled."""

    strategy: str
    instrument: Instrument
    product: Product
    rules: ExitRules
    entry: int
    peak: int


@dataclass(slots=True)
class Recovered:
    """What start-up hands the actors.

    ``portfolio`` replays into PortfolioActor; ``unfinished`` sagas are
    resumed by OrderActor (its broker orders looked up by tag); ``book`` the
    positions OrderActor manages; ``orders`` every journaled broker order
    (the paper broker rebuilds its account and answers look-ups from them);
    ``prefixes`` the saga-id prefixes already used (never reused).
    """

    portfolio: list[Any] = field(default_factory=list)
    unfinished: list[SagaRecord] = field(default_factory=list)
    book: dict[tuple[str, int], BookRecord] = field(default_factory=dict)
    orders: list[OrderRecord] = field(default_factory=list)
    prefixes: set[str] = field(default_factory=set)
    events: int = 0


def fold(records: Iterable[JournalRecord]) -> Recovered:
    """Rebuild :class:`Recovered` from a journal's records, in order."""
    out = Recovered()
    sagas: dict[str, SagaRecord] = {}
    by_tag: dict[str, OrderRecord] = {}
    by_broker_id: dict[str, OrderRecord] = {}
    for record in records:
        out.events += 1
        kind, body, saga_id = record.kind, record.body, record.saga_id or ""
        if kind in PORTFOLIO_KINDS:
            message = record.message()
            out.portfolio.append(message)
            if isinstance(message, ApplyFill):
                order = by_broker_id.get(message.fill.broker_order_id)
                if order is not None:
                    order.fills.append(message.fill)
                if message.release_rest and message.saga_id in sagas:
                    sagas[message.saga_id].release_sent = True
        elif kind == "saga":
            sagas[saga_id] = SagaRecord(
                saga_id, SagaKind(body["kind"]), body["strategy"],
                tuple(from_dict(dict(leg)) for leg in body["legs"]),
                from_dict(dict(body["rules"])),
                {int(k): int(v) for k, v in body["margins"].items()}, body["reason"])
            out.prefixes.add(saga_id[:2])
        elif kind == "order":
            order = OrderRecord(body["tag"], body["index"], body["role"], body["attempt"],
                                from_dict(dict(body["leg"])))
            by_tag[order.tag] = order
            out.orders.append(order)
            if saga_id in sagas:
                sagas[saga_id].orders.append(order)
        elif kind == "placed":
            order = by_tag.get(body["tag"])
            if order is not None:
                order.broker_order_id = body["broker_order_id"]
                by_broker_id[order.broker_order_id] = order
        elif kind == "ended":
            if saga_id in sagas:
                sagas.pop(saga_id).ended = True
        elif kind == "book":
            instrument: Instrument = from_dict(dict(body["instrument"]))
            key = (body["strategy"], instrument.instrument_token)
            if body["entry"] is None:
                out.book.pop(key, None)
            else:
                out.book[key] = BookRecord(body["strategy"], instrument,
                                           Product(body["product"]),
                                           from_dict(dict(body["rules"])), body["entry"],
                                           body["peak"])
        else:
            raise ValueError(f"kind: not a record kitesaga writes, got {kind!r} "
                             f"(saga {saga_id or '-'})")
    out.unfinished = list(sagas.values())
    return out
