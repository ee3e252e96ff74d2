"""The portfolio's pure accounting: cash, reservations, positions, fill de-duplication.

:class:`Ledger` is plain single-threaded state with no actor, no clock, no
logging and no I/O. PortfolioActor owns one and drives it with the messages it
receives; start-up folds the journal's portfolio inputs into one
(``actors/_durable.py``), and a journal snapshot carries one as plain JSON
(:meth:`Ledger.to_body` / :meth:`Ledger.from_body`).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator, Mapping
from typing import Any

from actors.config import EngineConfig
from messages import AdoptPosition, ApplyFill

__all__ = ["LEDGER_FORMAT", "Ledger", "LedgerPosition", "PositionKey"]

PositionKey = tuple[str, int]
"""(strategy, instrument_token): positions are kept per strategy."""

LEDGER_FORMAT = 1
"""The layout :meth:`Ledger.to_body` writes (``format`` in the body)."""


class LedgerPosition:
    """One position's books, in paise: signed ``quantity`` (short < 0), the signed
    ``cost`` basis of the open quantity, ``realised`` P&L gross of charges,
    ``charges`` paid and the short ``margin`` blocked. Mutated only by its Ledger."""

    __slots__ = ("charges", "cost", "margin", "quantity", "realised")

    def __init__(self, quantity: int = 0, cost: int = 0, realised: int = 0, charges: int = 0,
                 margin: int = 0) -> None:
        self.quantity = quantity
        self.cost = cost
        self.realised = realised
        self.charges = charges
        self.margin = margin

    def as_list(self) -> list[int]:
        """``[quantity, cost, realised, charges, margin]``."""
        return [self.quantity, self.cost, self.realised, self.charges, self.margin]


def _share(total: int, part: int, whole: int) -> int:
    """``total * part / whole`` rounded toward zero, exact when part == whole."""
    if part >= whole:
        return total
    magnitude = abs(total) * part // whole
    return magnitude if total >= 0 else -magnitude


def _int(name: str, value: Any) -> int:
    if type(value) is not int:
        raise ValueError(f"{name}: must be an integer, got {value!r}")
    return value


class Ledger:
    """Cash, reservations keyed by saga, positions keyed by (strategy, token), totals.

    Contract (all money integer paise):
    - :meth:`reserve` moves free cash to the saga's reservation, or refuses
      (returns False, nothing changed) when free cash is short; ``force``
      (replaying a journaled reservation, a fact) never refuses.
    - :meth:`release` returns the saga's remaining reservation to free cash.
    - :meth:`apply` books a fill: a buy is paid (value + charges) from the
      saga's reservation first, then free cash; a sell's proceeds less charges
      go to free cash; opening a short moves ``short_margin_per_unit`` per unit
      from the reservation (then free cash) to the position's margin; closing
      releases margin and cost pro rata (integer division, the remainder in
      realised P&L, so no paisa leaks). A fill id already seen returns None and
      changes nothing except ``release_rest`` (see :meth:`release_rest`).
    - :meth:`adopt` books a position that arrived from outside (AdoptPosition):
      its signed value comes in as a capital transfer (BUY: +value, SELL:
      -value) and is paid at once, so free cash moves only by the fill's
      charges; no margin is blocked; same de-duplication as fills.
    - After every operation: ``initial + transfers == cash + reserved + margin
      + open_cost - realised + charges`` (``conservation_error`` is 0).
    - The last ``dedupe_window`` fill ids are remembered (oldest forgotten first).
    - :meth:`to_body` is plain JSON; ``Ledger.from_body(l.to_body())`` is a
      ledger equal to ``l`` (``==`` compares the bodies).
    """

    __slots__ = ("_applied", "_applied_order", "_cash", "_charges", "_fills", "_initial",
                 "_margin", "_open_cost", "_positions", "_realised", "_reservations",
                 "_reserved", "_transfers", "_window")

    def __init__(self, initial_cash: int = 0,
                 dedupe_window: int = EngineConfig().fill_dedupe_window) -> None:
        _int("initial_cash", initial_cash)
        if type(dedupe_window) is not int or dedupe_window < 1:
            raise ValueError(f"dedupe_window: must be an integer >= 1, got {dedupe_window!r}")
        self._initial = initial_cash
        self._cash = initial_cash
        self._window = dedupe_window
        self._reservations: dict[str, int] = {}
        self._positions: dict[PositionKey, LedgerPosition] = {}
        self._applied: set[str] = set()
        self._applied_order: deque[str] = deque()
        self._fills = 0
        self._reserved = 0
        self._margin = 0
        self._open_cost = 0
        self._realised = 0
        self._charges = 0
        self._transfers = 0

    # -- reading ----------------------------------------------------------------------

    @property
    def initial(self) -> int:
        """Opening cash."""
        return self._initial

    @property
    def cash(self) -> int:
        """Free cash."""
        return self._cash

    @property
    def reserved(self) -> int:
        """Sum of the sagas' reservations."""
        return self._reserved

    @property
    def margin(self) -> int:
        """Short margin blocked, over all positions."""
        return self._margin

    @property
    def open_cost(self) -> int:
        """Signed cost of the open quantities, over all positions."""
        return self._open_cost

    @property
    def realised(self) -> int:
        """Realised P&L gross of charges, over all positions."""
        return self._realised

    @property
    def charges(self) -> int:
        """Charges paid, over all positions."""
        return self._charges

    @property
    def transfers(self) -> int:
        """Capital transferred in (adoptions: BUY +value, SELL -value)."""
        return self._transfers

    @property
    def fills_applied(self) -> int:
        """Fills booked by :meth:`apply` (adoptions not counted)."""
        return self._fills

    @property
    def dedupe_window(self) -> int:
        """How many fill ids are remembered."""
        return self._window

    @property
    def conservation_error(self) -> int:
        """Paise unaccounted for (0 when the books balance)."""
        held = self._cash + self._reserved + self._margin + self._open_cost
        return self._initial + self._transfers - (held - self._realised + self._charges)

    def reservation(self, saga_id: str) -> int:
        """What saga ``saga_id`` holds reserved (0 if nothing)."""
        return self._reservations.get(saga_id, 0)

    def position(self, key: PositionKey) -> LedgerPosition | None:
        """The position of (strategy, token), or None if it never traded."""
        return self._positions.get(key)

    def positions(self) -> Iterator[tuple[PositionKey, LedgerPosition]]:
        """Every position ever booked (flat ones too), in booking order."""
        return iter(self._positions.items())

    def seen(self, fill_id: str) -> bool:
        """True if ``fill_id`` is in the de-duplication window."""
        return fill_id in self._applied

    # -- changing ---------------------------------------------------------------------

    def credit_opening(self, amount: int) -> None:
        """Add ``amount`` of opening cash (the journal's ``opening`` record)."""
        _int("amount", amount)
        self._initial += amount
        self._cash += amount

    def reserve(self, saga_id: str, amount: int, force: bool = False) -> bool:
        """Move ``amount`` of free cash to ``saga_id``'s reservation; False (nothing
        changed) if free cash is short, unless ``force``."""
        if amount > self._cash and not force:
            return False
        self._cash -= amount
        self._reserved += amount
        self._reservations[saga_id] = self._reservations.get(saga_id, 0) + amount
        return True

    def release(self, saga_id: str) -> int:
        """Return ``saga_id``'s whole reservation to free cash; the amount."""
        amount = self._reservations.pop(saga_id, 0)
        self._reserved -= amount
        self._cash += amount
        return amount

    def release_rest(self, msg: ApplyFill) -> int | None:
        """ApplyFill's ``release_rest``: :meth:`release` the saga (None without it)."""
        return self.release(msg.saga_id) if msg.release_rest else None

    def apply(self, msg: ApplyFill) -> int | None:
        """Book ``msg.fill``; the realised P&L it booked, or None for a duplicate
        (nothing changed). ``release_rest`` is NOT done here: :meth:`release_rest`."""
        fill = msg.fill
        return self.book(msg.saga_id, msg.strategy, fill.instrument_token, fill.side.sign,
                         fill.quantity, fill.price.paise, fill.charges.paise, fill.fill_id,
                         msg.short_margin_per_unit.paise)

    def adopt(self, msg: AdoptPosition) -> int | None:
        """Book an adopted position; the realised P&L, or None for a duplicate."""
        fill = msg.fill
        return self.book(None, msg.strategy, fill.instrument_token, fill.side.sign,
                         fill.quantity, fill.price.paise, fill.charges.paise, fill.fill_id, 0,
                         adopted=True)

    def book(self, saga_id: str | None, strategy: str, token: int, sign: int, qty: int,
             price: int, charges: int, fill_id: str, margin_per_unit: int,
             adopted: bool = False) -> int | None:
        """The one booking step behind :meth:`apply` and :meth:`adopt`, on plain values
        (start-up folds journal bodies through it without rebuilding messages)."""
        if fill_id in self._applied:
            return None
        self._remember(fill_id)
        key = (strategy, token)
        pos = self._positions.get(key)
        if pos is None:
            pos = self._positions[key] = LedgerPosition()
        before_cost, before_realised, before_margin = pos.cost, pos.realised, pos.margin
        pos.charges += charges
        closing = 0 if pos.quantity == 0 or (pos.quantity > 0) == (sign > 0) else min(
            qty, abs(pos.quantity))
        if closing:
            removed = _share(pos.cost, closing, abs(pos.quantity))
            released = _share(pos.margin, closing, abs(pos.quantity))
            pos.margin -= released
            self._cash += released
            pos.cost -= removed
            pos.realised += -sign * closing * price - removed
            pos.quantity += sign * closing
        opening = qty - closing
        if opening:
            pos.quantity += sign * opening
            pos.cost += sign * opening * price
            if sign < 0 and margin_per_unit:
                margin = margin_per_unit * opening
                self._take(saga_id, margin)
                pos.margin += margin
        if adopted:  # the position's value comes in from outside, and pays for itself
            self._transfers += sign * qty * price
            self._cash += sign * qty * price
        if sign > 0:
            self._take(saga_id, qty * price + charges)
        else:
            self._cash += qty * price - charges
        self._open_cost += pos.cost - before_cost
        self._realised += pos.realised - before_realised
        self._charges += charges
        self._margin += pos.margin - before_margin
        if not adopted:
            self._fills += 1
        return pos.realised - before_realised

    def _take(self, saga_id: str | None, amount: int) -> None:
        """Pay ``amount`` from the saga's reservation first, then free cash."""
        held = self._reservations.get(saga_id, 0) if saga_id is not None else 0
        from_reservation = min(held, amount)
        if held:
            assert saga_id is not None
            self._reservations[saga_id] = held - from_reservation
            self._reserved -= from_reservation
        self._cash -= amount - from_reservation

    def _remember(self, fill_id: str) -> None:
        self._applied.add(fill_id)
        self._applied_order.append(fill_id)
        if len(self._applied_order) > self._window:
            self._applied.discard(self._applied_order.popleft())

    # -- plain JSON ---------------------------------------------------------------------

    def to_body(self) -> dict[str, Any]:
        """The whole ledger as plain JSON (see :meth:`from_body`)."""
        return {
            "format": LEDGER_FORMAT, "initial": self._initial, "cash": self._cash,
            "transfers": self._transfers, "fills": self._fills,
            "reservations": [[saga, amount] for saga, amount in self._reservations.items()],
            "positions": [[key[0], key[1], *pos.as_list()]
                          for key, pos in self._positions.items()],
            "applied": list(self._applied_order)}

    @classmethod
    def from_body(cls, body: Mapping[str, Any],
                  dedupe_window: int = EngineConfig().fill_dedupe_window) -> Ledger:
        """Rebuild a ledger from :meth:`to_body`. The totals are recomputed from the
        positions and reservations and must balance; a window smaller than the body's
        keeps its newest fill ids. Raises ValueError naming the field otherwise."""
        if not isinstance(body, Mapping):
            raise ValueError(f"ledger: must be a mapping, got {type(body).__name__}")
        if body.get("format") != LEDGER_FORMAT:
            raise ValueError(f"ledger.format: this version reads {LEDGER_FORMAT}, got "
                             f"{body.get('format')!r}")
        ledger = cls(_int("ledger.initial", body.get("initial")), dedupe_window)
        ledger._cash = _int("ledger.cash", body.get("cash"))
        ledger._transfers = _int("ledger.transfers", body.get("transfers"))
        ledger._fills = _int("ledger.fills", body.get("fills"))
        for i, item in enumerate(_list("ledger.reservations", body.get("reservations"))):
            if not isinstance(item, list) or len(item) != 2 or type(item[0]) is not str:
                raise ValueError(f"ledger.reservations[{i}]: must be [saga_id, paise], "
                                 f"got {item!r}")
            ledger._reservations[item[0]] = _int(f"ledger.reservations[{i}]", item[1])
            ledger._reserved += item[1]
        for i, item in enumerate(_list("ledger.positions", body.get("positions"))):
            if (not isinstance(item, list) or len(item) != 7 or type(item[0]) is not str
                    or not all(type(v) is int for v in item[1:])):
                raise ValueError(f"ledger.positions[{i}]: must be [strategy, token, "
                                 f"quantity, cost, realised, charges, margin], got {item!r}")
            pos = LedgerPosition(*item[2:])
            ledger._positions[(item[0], item[1])] = pos
            ledger._open_cost += pos.cost
            ledger._realised += pos.realised
            ledger._charges += pos.charges
            ledger._margin += pos.margin
        applied = _list("ledger.applied", body.get("applied"))
        if not all(type(fid) is str for fid in applied) or len(set(applied)) != len(applied):
            raise ValueError("ledger.applied: must be distinct fill ids (strings)")
        ledger._applied_order = deque(applied[-dedupe_window:])
        ledger._applied = set(ledger._applied_order)
        if ledger.conservation_error:
            raise ValueError(f"ledger: the books do not balance (conservation error "
                             f"{ledger.conservation_error} paise)")
        return ledger

    def copy(self) -> Ledger:
        """An independent ledger equal to this one."""
        return Ledger.from_body(self.to_body(), self._window)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Ledger):
            return NotImplemented
        return self.to_body() == other.to_body()

    __hash__ = None  # type: ignore[assignment]  # mutable


def _list(name: str, value: Any) -> list[Any]:
    if not isinstance(value, list):
        raise ValueError(f"{name}: must be a list, got {type(value).__name__}")
    return value
