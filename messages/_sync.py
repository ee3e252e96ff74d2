"""Reconciliation with the broker (live mode): drifts between the book and the broker.

SyncActor compares the engine's book with the broker's positions, working
orders and GTTs. Each difference is a ``DriftDetected`` event carrying both
sides' figures; each forced round ends with ``Reconciled``. The step that
acts on drifts (adopting external positions, closing book positions with
the broker's trades as evidence) reads the same events: ``kind`` says what
to do, ``key`` names the thing to act on, ``instrument_token`` and
``product`` locate it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import Enum
from typing import Any

from messages._commands import Inbox
from messages._orders import ExitRules, Fill
from messages._validate import (
    require_aware,
    require_enum,
    require_instance,
    require_non_negative_int,
    require_text,
)
from messages._values import Product

__all__ = ["EXTERNAL", "SYNC_SAGA", "AdoptPosition", "DriftDetected", "DriftKind",
           "PositionAdopted", "Reconcile", "ReconcilePosition", "ReconcileSkipped",
           "Reconciled", "StrategyFill", "SyncCheck"]

EXTERNAL = "EXTERNAL"
"""The strategy adopted positions are booked under."""


class SyncCheck(str, Enum):
    """One of SyncActor's three comparisons, each on its own interval."""

    POSITIONS = "positions"
    ORDERS = "orders"
    GTTS = "gtts"


class DriftKind(str, Enum):
    """What disagrees between the engine's book and the broker.

    ``engine``/``broker`` of :class:`DriftDetected` hold, per kind:

    ==========================  ===============================  ==============================
    kind                        engine                           broker
    ==========================  ===============================  ==============================
    POSITION_MISSING_IN_BOOK    0                                net quantity over products
    POSITION_MISSING_AT_BROKER  net quantity over strategies     0
    QUANTITY_MISMATCH           net quantity over strategies     net quantity over products
    ORDER_UNKNOWN_TO_BOOK       0                                pending quantity (SELL < 0)
    STALE_IN_FLIGHT             in_flight_max_age_s              the order's age, seconds
    GTT_MISSING                 the position's quantity          what the instrument's other
                                                                 active GTTs of the closing
                                                                 side would close (signed
                                                                 like the position; 0: none)
    GTT_UNKNOWN                 0                                the GTT's order quantity
                                                                 (SELL < 0)
    ==========================  ===============================  ==============================

    Quantities are signed (short < 0); ages are seconds of the broker's clock.
    """

    POSITION_MISSING_IN_BOOK = "POSITION_MISSING_IN_BOOK"
    POSITION_MISSING_AT_BROKER = "POSITION_MISSING_AT_BROKER"
    QUANTITY_MISMATCH = "QUANTITY_MISMATCH"
    ORDER_UNKNOWN_TO_BOOK = "ORDER_UNKNOWN_TO_BOOK"
    STALE_IN_FLIGHT = "STALE_IN_FLIGHT"
    GTT_MISSING = "GTT_MISSING"
    GTT_UNKNOWN = "GTT_UNKNOWN"

    @property
    def check(self) -> SyncCheck:
        """The comparison that finds this kind of drift."""
        if self.name.startswith(("POSITION", "QUANTITY")):
            return SyncCheck.POSITIONS
        return SyncCheck.GTTS if self.name.startswith("GTT") else SyncCheck.ORDERS


def _figure(field: str, value: object) -> int | str:
    """A side's figure: an integer (quantity, seconds) or a short text."""
    if type(value) is int:
        return value
    if isinstance(value, str) and len(value) <= 100:
        return value
    raise ValueError(f"{field}: must be an integer or a text of at most 100 characters, "
                     f"got {value!r}")


@dataclass(frozen=True, slots=True)
class DriftDetected:
    """The engine's book and the broker disagree (see :class:`DriftKind`).

    ``key`` names what disagrees: ``EXCHANGE:TRADINGSYMBOL`` for positions,
    the broker's order id for orders, the trigger id for GTT_UNKNOWN and the
    position (``strategy:instrument_token``) for GTT_MISSING. The broker's
    figure is the authority; ``detail`` says how the figures were made up
    (per strategy, per product, the order's tag and status...).
    """

    kind: DriftKind
    key: str
    engine: int | str
    broker: int | str
    detail: str
    instrument_token: int = 0
    product: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "kind", require_enum("kind", self.kind, DriftKind))
        require_text("key", self.key, max_len=100)
        _figure("engine", self.engine)
        _figure("broker", self.broker)
        require_text("detail", self.detail, max_len=500)
        require_non_negative_int("instrument_token", self.instrument_token)
        require_instance("product", self.product, str)
        if len(self.product) > 20:
            raise ValueError(f"product: longer than 20 characters, got {self.product!r}")

    @property
    def identity(self) -> tuple[DriftKind, str, int | str, int | str]:
        """Two observations show the same drift when these agree."""
        return self.kind, self.key, self.engine, self.broker


@dataclass(frozen=True, slots=True)
class Reconciled:
    """A full reconciliation round ended at ``at`` (the engine's clock).

    ``ok`` is True only when every check in ``checked`` answered and no drift
    stands; ``drifts`` counts the drifts standing after the round; ``reason``
    says what was wrong (drift kinds and counts, or the failed checks).
    """

    at: datetime
    ok: bool
    checked: tuple[SyncCheck, ...]
    drifts: int
    reason: str = ""

    def __post_init__(self) -> None:
        require_aware("at", self.at)
        require_instance("ok", self.ok, bool)
        require_instance("checked", self.checked, tuple)
        checked = tuple(require_enum("checked", c, SyncCheck) for c in self.checked)
        if len(set(checked)) != len(checked):
            raise ValueError(f"checked: a check named twice, got {self.checked!r}")
        object.__setattr__(self, "checked", checked)
        require_non_negative_int("drifts", self.drifts)
        if self.ok and self.drifts:
            raise ValueError(f"drifts: an ok round has none, got {self.drifts}")
        if self.ok:
            require_instance("reason", self.reason, str)
        else:
            require_text("reason", self.reason, max_len=500)


def _reply() -> Any:
    return field(default=None, compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class AdoptPosition:
    """Book ``fill`` for ``strategy`` as a position that arrived from outside the book.

    An adopted position was paid for outside the engine (a trade behind its
    back, found at the broker): the portfolio books it at ``fill``'s price
    with free cash unchanged, the position's cost coming in as a capital
    transfer (``transfers`` in the snapshot), so money stays conserved. No
    short margin is blocked (the broker holds it). ``fill.fill_id`` is the
    adoption's id: adopting it twice changes nothing (PositionAdopted
    ``duplicate``). ``reason`` says what was found (kept in the journal).
    """

    strategy: str
    fill: Fill
    reason: str
    reply_to: Inbox | None = _reply()

    def __post_init__(self) -> None:
        require_text("strategy", self.strategy, max_len=32)
        require_instance("fill", self.fill, Fill)
        require_text("reason", self.reason, max_len=500)


@dataclass(frozen=True, slots=True)
class PositionAdopted:
    """The portfolio booked adoption ``fill_id`` (or had already: ``duplicate``);
    ``position_quantity`` is the position's signed quantity after it."""

    strategy: str
    fill_id: str
    instrument_token: int
    position_quantity: int
    duplicate: bool = False

    def __post_init__(self) -> None:
        require_text("strategy", self.strategy, max_len=32)
        require_text("fill_id", self.fill_id)
        require_non_negative_int("instrument_token", self.instrument_token)
        require_instance("position_quantity", self.position_quantity, int)
        require_instance("duplicate", self.duplicate, bool)


SYNC_SAGA = "SYNC"
"""The saga id fills applied by reconciliation carry (they belong to no saga)."""


@dataclass(frozen=True, slots=True)
class StrategyFill:
    """A broker trade attributed to one strategy's position."""

    strategy: str
    fill: Fill

    def __post_init__(self) -> None:
        require_text("strategy", self.strategy, max_len=32)
        require_instance("fill", self.fill, Fill)


@dataclass(frozen=True, slots=True)
class ReconcilePosition:
    """Make the book's position in ``instrument_token`` follow the broker's.

    Sent by SyncActor for a declared position drift, to OrderActor (the book's
    owner). ``evidence``: broker trades the engine did not place, each applied
    to the strategy named (they close book positions, so the book's own money
    moves: ApplyFill under :data:`SYNC_SAGA`). ``adopt``: what the broker holds
    beyond the book, booked as :data:`EXTERNAL` at the broker's average price
    (AdoptPosition) and given ``rules`` as protective exit rules. OrderActor
    does nothing while a saga of its own is working in that instrument, or when
    its book no longer holds ``book_net`` there (the plan was made on a view
    that has moved on): the next observation asks again. ``reason`` is the
    drift, for the journal.
    """

    instrument_token: int
    product: Product
    evidence: tuple[StrategyFill, ...]
    adopt: Fill | None
    rules: ExitRules
    reason: str
    book_net: int = 0

    def __post_init__(self) -> None:
        require_non_negative_int("instrument_token", self.instrument_token)
        object.__setattr__(self, "product", require_enum("product", self.product, Product))
        require_instance("evidence", self.evidence, tuple)
        for item in self.evidence:
            require_instance("evidence", item, StrategyFill)
            if item.fill.instrument_token != self.instrument_token:
                raise ValueError(f"evidence: a fill of instrument {item.fill.instrument_token} "
                                 f"in the reconciliation of {self.instrument_token}")
        if self.adopt is not None:
            require_instance("adopt", self.adopt, Fill)
            if self.adopt.instrument_token != self.instrument_token:
                raise ValueError(f"adopt: a fill of instrument {self.adopt.instrument_token} "
                                 f"in the reconciliation of {self.instrument_token}")
        if not self.evidence and self.adopt is None:
            raise ValueError("evidence: nothing to reconcile (no evidence and nothing to adopt)")
        require_instance("rules", self.rules, ExitRules)
        require_text("reason", self.reason, max_len=500)
        require_instance("book_net", self.book_net, int)


@dataclass(frozen=True, slots=True)
class Reconcile:
    """Run a full reconciliation round now; answered with Reconciled (or, in paper
    mode, ReconcileSkipped)."""

    reply_to: Inbox | None = _reply()


@dataclass(frozen=True, slots=True)
class ReconcileSkipped:
    """Reconciliation did not run, and why."""

    reason: str

    def __post_init__(self) -> None:
        require_text("reason", self.reason, max_len=500)
