"""Drift: the engine's book against the broker's replies, and the immutable values
SyncActor publishes. Pure functions, no I/O.

Readers (``parse_*``) validate what they take from a broker reply and raise
``BrokerReplyError`` naming the field and the value. Comparisons
(``compare_*``) return one ``DriftDetected`` per difference, with both
sides' figures; :func:`confirm` applies the two-observation rule.

The two-observation rule: a difference seen while something of ours was
moving (a saga in flight, a GTT being placed or deleted) may only be a fill
or a protection in transit, so it is a *candidate*, declared a drift only
when the next observation of the same check shows the very same difference
(kind, key and both figures). A difference seen in a *settled* observation
(nothing of ours moving before the call and after its answer) cannot be in
transit and is declared at once; so are the order kinds (a foreign order is
foreign, a stale order is already past its age limit). Until the start-up
reconciliation is decided only a settled observation declares anything
(SyncActor passes no earlier candidates and no immediate kinds): sagas
recovered from the journal may still be moving.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from types import MappingProxyType
from typing import TYPE_CHECKING

from actors._saga import UNDO_MARKS, Role
from actors.kite._replies import (
    BrokerGtt,
    BrokerOrder,
    BrokerPosition,
    parse_gtts,
    parse_orders,
    parse_positions,
)
from messages import DriftDetected, DriftKind, SyncCheck

if TYPE_CHECKING:
    from actors._order import OrdersSnapshot
    from actors._portfolio import PortfolioSnapshot
    from actors.kite._gateway import GatewaySnapshot

__all__ = ["IMMEDIATE", "BookView", "BrokerGtt", "BrokerOrder", "BrokerPosition", "CheckStatus",
           "SyncSnapshot", "book_view", "compare_gtts", "compare_orders", "compare_positions",
           "confirm", "is_engine_tag", "parse_gtts", "parse_orders", "parse_positions",
           "round_reason"]

PositionKey = tuple[str, int]
Identity = tuple[DriftKind, str, int | str, int | str]

_TAG = re.compile(f"[0-9A-Z]{{6}}[0-9][{Role.OPEN.value}{Role.CLOSE.value}{UNDO_MARKS}]")

IMMEDIATE = frozenset({DriftKind.ORDER_UNKNOWN_TO_BOOK, DriftKind.STALE_IN_FLIGHT})
"""Kinds declared without a second observation."""


def is_engine_tag(tag: str) -> bool:
    """True for a tag in the engine's format (``make_tag``: saga id, leg, role)."""
    return _TAG.fullmatch(tag) is not None


@dataclass(frozen=True, slots=True)
class BookView:
    """What the engine holds, read from its published snapshots at one moment.

    ``positions``: non-flat positions, signed. ``protected``: the positions
    that should have an active GTT at the broker. ``quiet``: no saga in
    flight. ``gtts_quiet``: the gateway holds one GTT per protected position
    and none is being placed or deleted. ``sagas_started`` tells two views
    apart when a saga started and ended between them.
    """

    positions: Mapping[PositionKey, int]
    protected: frozenset[PositionKey]
    quiet: bool
    gtts_quiet: bool
    sagas_started: int


@dataclass(frozen=True, slots=True)
class CheckStatus:
    """One check's last completed observation: ``result`` is "pending" (none yet),
    "ok", "drift" (``drifts`` standing) or "error" (``error`` says why)."""

    at: datetime | None = None
    result: str = "pending"
    drifts: int = 0
    candidates: int = 0
    error: str = ""


@dataclass(frozen=True, slots=True)
class SyncSnapshot:
    """SyncActor's published state.

    ``startup``: "pending" (the first full round has not agreed yet), "clean"
    (it agreed: trading was resumed), "drift" or "error" (new entries stay
    HALTED; ``startup_reason`` says why), or "skipped" (paper mode).
    ``last_at``: when any check last completed (engine clock);
    ``round_at``/``round_ok``: the last full round; ``drifts``: standing now.
    """

    mode: str
    startup: str = "pending"
    startup_reason: str = ""
    last_at: datetime | None = None
    round_at: datetime | None = None
    round_ok: bool | None = None
    checks: Mapping[SyncCheck, CheckStatus] = field(default_factory=lambda: MappingProxyType(
        dict.fromkeys(SyncCheck, CheckStatus())))
    drifts: tuple[DriftDetected, ...] = ()
    counts: Mapping[str, int] = field(default_factory=lambda: MappingProxyType({}))

    def summary(self) -> str:
        """One status line, e.g. ``positions ok, orders 1 drift, gtts error``."""
        return ", ".join(f"{check.value} " + (f"{s.drifts} drift" if s.result == "drift"
                                              else s.result)
                         for check, s in self.checks.items())


def _listed(parts: Mapping[str, int]) -> str:
    return ", ".join(f"{name} {qty:+d}" for name, qty in sorted(parts.items()) if qty) or "flat"


def compare_positions(book: Mapping[PositionKey, int], broker: Iterable[BrokerPosition],
                      name_of: Callable[[int], str]) -> list[DriftDetected]:
    """Net quantity per instrument: the book summed over strategies, the broker over
    products (the broker knows no strategies). One drift per instrument that differs."""
    ours: dict[int, dict[str, int]] = {}
    for (strategy, token), quantity in book.items():
        if quantity:
            per = ours.setdefault(token, {})
            per[strategy] = per.get(strategy, 0) + quantity
    theirs: dict[int, dict[str, int]] = {}
    names: dict[int, str] = {}
    for row in broker:
        if row.quantity:
            per = theirs.setdefault(row.instrument_token, {})
            per[row.product] = per.get(row.product, 0) + row.quantity
            names[row.instrument_token] = row.key
    drifts = []
    for token in sorted(ours.keys() | theirs.keys()):
        engine = sum(ours.get(token, {}).values())
        products = theirs.get(token, {})
        broker_qty = sum(products.values())
        if engine == broker_qty:
            continue
        kind = (DriftKind.POSITION_MISSING_IN_BOOK if not engine else
                DriftKind.POSITION_MISSING_AT_BROKER if not broker_qty else
                DriftKind.QUANTITY_MISMATCH)
        drifts.append(DriftDetected(
            kind, names.get(token) or name_of(token), engine, broker_qty,
            f"book by strategy: {_listed(ours.get(token, {}))}; broker by product: "
            f"{_listed(products)}"[:500], token,
            "+".join(sorted(p for p, q in products.items() if q))[:20]))
    return drifts


def compare_orders(orders: Iterable[BrokerOrder], ours: Callable[[str], bool], settled: bool,
                   now: datetime, max_age_s: float) -> list[DriftDetected]:
    """Working orders the engine does not own, and ours working longer than ``max_age_s``.

    An order whose tag is not ours is ORDER_UNKNOWN_TO_BOOK; so is an order
    with our tag while no saga runs at all (``settled``: nobody of ours can
    be waiting for it, e.g. one left by an earlier run)."""
    drifts = []
    for order in orders:
        if order.status.is_terminal:
            continue
        signed = order.pending if order.side == "BUY" else -order.pending
        what = (f"{order.status.value} {order.side} {order.pending} {order.key}, tag "
                f"{order.tag or '(none)'!r}")
        age = int((now - order.placed_at).total_seconds())
        if not ours(order.tag) or settled:
            why = "the tag is not the engine's" if not ours(order.tag) else \
                "the engine's tag format, but no saga is in flight"
            drifts.append(DriftDetected(DriftKind.ORDER_UNKNOWN_TO_BOOK, order.order_id, 0,
                                        signed, f"{what}: {why}"[:500], order.instrument_token))
        elif age > max_age_s:
            drifts.append(DriftDetected(
                DriftKind.STALE_IN_FLIGHT, order.order_id, int(max_age_s), age,
                f"{what}: still working {age}s after placement (limit {max_age_s:g}s)"[:500],
                order.instrument_token))
    return drifts


def compare_gtts(gtts: Iterable[BrokerGtt], positions: Mapping[PositionKey, int],
                 protected: Collection[PositionKey]) -> list[DriftDetected]:
    """Each protected position needs an active GTT closing exactly its quantity; every
    other active GTT is unknown to the engine. Matching is by instrument, closing side
    and quantity, each GTT used once (lowest trigger id first)."""
    active = sorted((g for g in gtts if g.status == "active"), key=lambda g: g.trigger_id)
    used: set[int] = set()
    drifts = []
    for key in sorted(protected):
        quantity = positions.get(key, 0)
        if not quantity:
            continue
        side = "SELL" if quantity > 0 else "BUY"
        token = key[1]
        same = [g for g in active if g.instrument_token == token and g.side == side
                and g.trigger_id not in used]
        match = next((g for g in same if g.quantity == abs(quantity)), None)
        if match is not None:
            used.add(match.trigger_id)
            continue
        covered = sum(g.quantity for g in same)
        drifts.append(DriftDetected(
            DriftKind.GTT_MISSING, f"{key[0]}:{token}", quantity,
            covered if quantity > 0 else -covered,
            f"no active {side} GTT for {abs(quantity)} of instrument {token}; other active "
            f"{side} GTTs there: {[g.trigger_id for g in same] or 'none'}"[:500], token))
    drifts.extend(DriftDetected(
        DriftKind.GTT_UNKNOWN, str(gtt.trigger_id), 0,
        gtt.quantity if gtt.side == "BUY" else -gtt.quantity,
        f"active GTT {gtt.trigger_id} ({gtt.side} {gtt.quantity} {gtt.key}) protects no "
        "position of the book", gtt.instrument_token)
        for gtt in active if gtt.trigger_id not in used)
    return drifts


def confirm(found: Sequence[DriftDetected], candidates: Mapping[Identity, DriftDetected],
            settled: bool, immediate: Collection[DriftKind] = IMMEDIATE,
            ) -> tuple[list[DriftDetected], dict[Identity, DriftDetected]]:
    """The two-observation rule (module doc): (declared drifts, new candidates).
    ``immediate``: the kinds a single observation declares."""
    declared: list[DriftDetected] = []
    pending: dict[Identity, DriftDetected] = {}
    for drift in found:
        if settled or drift.kind in immediate or drift.identity in candidates:
            declared.append(drift)
        else:
            pending[drift.identity] = drift
    return declared, pending


def book_view(portfolio: PortfolioSnapshot, orders: OrdersSnapshot, gateway: GatewaySnapshot,
              protection: bool) -> BookView:
    """The engine's side, from its published snapshots (read in this order: the
    portfolio before the saga count that vouches for it)."""
    positions = {key: view.quantity for key, view in portfolio.positions.items()
                 if view.quantity}
    unprotected = set(orders.unprotected)
    protected = frozenset(key for key in positions
                          if protection and f"{key[0]}:{key[1]}" not in unprotected)
    counts = gateway.counts
    outstanding = (counts.get("gtt_placed", 0) + counts.get("gtt_adopted", 0)
                   - counts.get("gtt_deleted", 0) - gateway.protected)
    return BookView(positions, protected, orders.in_flight == 0,
                    gateway.protected == len(protected) and outstanding == 0,
                    orders.stats.get("sagas_started", 0))


def round_reason(standing: Sequence[DriftDetected], candidates: int,
                 errors: Mapping[SyncCheck, str]) -> str:
    """Why a round is not clean ("" when it is): drift count and kinds, differences
    awaiting confirmation, failed checks."""
    parts = []
    if standing:
        kinds = Counter(d.kind.value for d in standing)
        parts.append(f"{len(standing)} drift(s): " + ", ".join(
            f"{kind} x{n}" for kind, n in sorted(kinds.items())))
    if candidates:
        parts.append(f"{candidates} difference(s) to confirm on the next observation")
    parts.extend(f"{check.value}: {error}" for check, error in errors.items())
    return "; ".join(parts)
