"""OrderActor's book of the positions it manages, and their exit state."""

from __future__ import annotations

from enum import Enum

from actors._exits import ExitPlan
from actors._saga import Role, Saga
from messages import ExitRules, Instrument, OrderLeg, OrderType, Product, Side

__all__ = ["Book", "BookEntry", "BookStatus"]

Key = tuple[str, int]
"""(strategy, instrument_token)."""


class BookStatus(str, Enum):
    """Where a position stands in the order book of sagas."""

    OPENING = "OPENING"
    OPEN = "OPEN"
    EXITING = "EXITING"


class BookEntry:
    """OrderActor's record of one position it manages (mutable, actor-private).

    Contract: exists from the moment an entry saga starts (OPENING, which
    blocks a second entry) until a fill brings the position to zero; at
    most one exit saga runs while it is EXITING.
    """

    __slots__ = ("instrument", "key", "peak", "plan", "product", "quantity", "rules", "status")

    def __init__(self, key: tuple[str, int], instrument: Instrument, product: Product,
                 rules: ExitRules) -> None:
        self.key = key
        self.instrument = instrument
        self.product = product
        self.rules = rules
        self.status = BookStatus.OPENING
        self.quantity = 0
        self.plan: ExitPlan | None = None
        self.peak = 0

    def plan_at(self, entry_price: int, peak: int | None = None) -> ExitPlan:
        """Compile the exit plan from ``entry_price`` paise (and the trailing peak)."""
        self.plan = ExitPlan.compile(self.rules, self.instrument, self.product,
                                     self.quantity > 0, max(entry_price, 1))
        self.peak = self.plan.entry if peak is None else peak
        return self.plan

    def closing_leg(self) -> OrderLeg:
        """A MARKET order that closes the whole position."""
        side = Side.SELL if self.quantity > 0 else Side.BUY
        return OrderLeg(self.instrument, side, abs(self.quantity), OrderType.MARKET,
                        self.product)


class Book:
    """Every position OrderActor manages, indexed by key and by instrument.

    Contract: OrderActor-private (one thread). An entry exists from the start
    of its entry saga until a fill brings it to zero; ``exiting`` counts the
    EXITING entries without a scan.
    """

    def __init__(self) -> None:
        self._entries: dict[Key, BookEntry] = {}
        self._by_token: dict[int, list[BookEntry]] = {}
        self.exiting = 0

    def __len__(self) -> int:
        return len(self._entries)

    def entries(self) -> list[BookEntry]:
        """Every entry, as a list the caller may keep while the book changes."""
        return list(self._entries.values())

    def get(self, key: Key) -> BookEntry | None:
        """The entry for ``key``, if any."""
        return self._entries.get(key)

    def on_token(self, token: int) -> list[BookEntry]:
        """Entries in instrument ``token`` (the caller must not keep the list)."""
        return self._by_token.get(token, _EMPTY)

    def open(self, key: Key, instrument: Instrument, product: Product,
             rules: ExitRules) -> None:
        """Record an entry saga's position as OPENING (blocks a duplicate entry)."""
        entry = BookEntry(key, instrument, product, rules)
        self._entries[key] = entry
        self._by_token.setdefault(key[1], []).append(entry)

    def open_settled(self, key: Key, instrument: Instrument, product: Product,
                     rules: ExitRules, quantity: int, entry_price: int | None,
                     peak: int | None = None) -> BookEntry:
        """Record a position that is already OPEN (recovered from the journal, or adopted
        from the broker) with its exit plan compiled at ``entry_price`` paise (None: at
        the first price that comes, see :meth:`BookEntry.plan_at`)."""
        self.open(key, instrument, product, rules)
        entry = self._entries[key]
        entry.quantity = quantity
        entry.status = BookStatus.OPEN
        if entry_price is not None:
            entry.plan_at(entry_price, peak)
        return entry

    def remove(self, entry: BookEntry) -> None:
        """An OPEN position left the book outside any saga (reconciliation)."""
        if entry.status is BookStatus.EXITING:
            self.exiting -= 1
        self._remove(entry)

    def mark_exiting(self, entry: BookEntry) -> None:
        """The one exit saga of ``entry`` starts."""
        entry.status = BookStatus.EXITING
        self.exiting += 1

    def fill(self, key: Key, position_quantity: int) -> None:
        """The portfolio reports the position's quantity after a fill."""
        entry = self._entries.get(key)
        if entry is not None:
            entry.quantity = position_quantity

    def settle(self, saga: Saga) -> tuple[list[BookEntry], list[BookEntry]]:
        """At a saga's end: flat positions leave; others are OPEN with an exit plan.
        Returns the saga's entries now OPEN and those that left the book."""
        opened: list[BookEntry] = []
        closed: list[BookEntry] = []
        for leg in saga.legs:
            key = (saga.strategy, leg.instrument.instrument_token)
            entry = self._entries.get(key)
            if entry is None:
                continue
            if entry.status is BookStatus.EXITING:
                self.exiting -= 1
            if entry.quantity == 0:
                self._remove(entry)
                closed.append(entry)
                continue
            if entry.status is BookStatus.OPENING:
                opens = [o for o in saga.orders if o.role is Role.OPEN and o.leg == leg]
                price = opens[-1].average_price if opens else 0
                entry.plan = ExitPlan.compile(entry.rules, entry.instrument, entry.product,
                                              entry.quantity > 0, max(price, 1))
                entry.peak = entry.plan.entry
            entry.status = BookStatus.OPEN
            opened.append(entry)
        return opened, closed

    def _remove(self, entry: BookEntry) -> None:
        del self._entries[entry.key]
        same = self._by_token[entry.key[1]]
        same.remove(entry)
        if not same:
            del self._by_token[entry.key[1]]


_EMPTY: list[BookEntry] = []
