"""The records the engine journals, and :class:`Recovered`: what start-up hands the actors.

OrderActor writes (kinds): ``saga`` when a saga starts (its legs, rules and
margins), ``order`` BEFORE a broker order is sent (tag, leg, role),
``placed`` when the broker names it, ``ended`` when the saga ends, and
``book`` when a position settles OPEN or leaves the book. PortfolioActor
writes its inputs (``ReserveCash``, ``ReleaseCash``, ``ApplyFill``,
``AdoptPosition``) as protocol messages. The engine writes ``opening`` (the
opening cash) on a journal's first start. ``actors/_projection.py`` folds
them; ``actors/_durable.py`` is the start-up path. See docs/sagas.md.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from actors.journal import JournalRecord
from messages import (
    ExitRules,
    Fill,
    Instrument,
    OrderLeg,
    Product,
    SagaKind,
    to_dict,
)

if TYPE_CHECKING:
    from actors._ledger import Ledger
    from actors.broker._restore import PaperBook

__all__ = ["PORTFOLIO_KINDS", "BookRecord", "OrderRecord", "Recovered", "SagaRecord",
           "book_record", "ended_record", "opening_record", "order_record", "placed_record",
           "saga_record", "trading_record"]

PORTFOLIO_KINDS = frozenset({"ReserveCash", "ReleaseCash", "ApplyFill", "AdoptPosition"})
"""The portfolio's inputs, journaled as protocol messages and folded into its Ledger."""


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


def trading_record(halted: str | None) -> JournalRecord:
    """The operator halted trading (``halted`` its reason) or resumed it (None): an
    emergency stop outlives a restart."""
    return JournalRecord.built("trading", {"halted": halted})


def opening_record(cash: int) -> JournalRecord:
    """The opening cash (paise), written once, on a journal's first start."""
    if type(cash) is not int:
        raise ValueError(f"cash: must be an integer number of paise, got {cash!r}")
    return JournalRecord.built("opening", {"cash": cash})


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

    ``ledger`` is PortfolioActor's books (None: no journal, start from the
    configured cash); ``unfinished`` sagas are resumed by OrderActor (their
    broker orders looked up by tag); ``book`` the positions OrderActor
    manages; ``orders`` the journaled broker orders of the unfinished sagas,
    in journal order; ``paper`` the paper broker's account and id counters
    (None in live mode); ``prefixes`` the saga-id prefixes already used (never
    reused); ``opening`` the journaled opening cash; ``halted`` the reason of
    an operator's halt still standing (None: none); ``events`` how many events
    the state covers (snapshot and tail together).
    """

    ledger: Ledger | None = None
    unfinished: list[SagaRecord] = field(default_factory=list)
    book: dict[tuple[str, int], BookRecord] = field(default_factory=dict)
    orders: list[OrderRecord] = field(default_factory=list)
    paper: PaperBook | None = None
    prefixes: set[str] = field(default_factory=set)
    opening: int | None = None
    halted: str | None = None
    events: int = 0
