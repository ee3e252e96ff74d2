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
from typing import TYPE_CHECKING, Any

from actors._saga import UNDO_MARKS, Role
from actors.kite._convert import BrokerReplyError, as_ist, rupees
from messages import DriftDetected, DriftKind, OrderStatus, SyncCheck

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


@dataclass(frozen=True, slots=True)
class BrokerPosition:
    """One row of the broker's net positions."""

    instrument_token: int
    key: str
    product: str
    quantity: int
    average_price: int = 0  # paise; 0 when the broker gave none


@dataclass(frozen=True, slots=True)
class BrokerOrder:
    """One row of the broker's order book."""

    order_id: str
    tag: str
    status: OrderStatus
    instrument_token: int
    key: str
    side: str
    pending: int
    placed_at: datetime


@dataclass(frozen=True, slots=True)
class BrokerGtt:
    """One GTT trigger: its first order's side and quantity (every leg closes the same)."""

    trigger_id: int
    status: str
    instrument_token: int
    key: str
    side: str
    quantity: int


def _row(value: Any, where: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise BrokerReplyError(f"{where}: expected an object, got {value!r}"[:300])
    return value


def _text(row: Mapping[str, Any], name: str, where: str) -> str:
    value = row.get(name)
    if not isinstance(value, str) or not value:
        raise BrokerReplyError(f"{where}.{name}: expected a text, got {value!r}"[:300])
    return value


def _whole(row: Mapping[str, Any], name: str, where: str, low: int | None = 0) -> int:
    value = row.get(name)
    if type(value) is float and value.is_integer():
        value = int(value)
    if type(value) is not int or (low is not None and value < low):
        bound = "" if low is None else f" >= {low}"
        raise BrokerReplyError(f"{where}.{name}: expected an integer{bound}, got {value!r}"[:300])
    return value


def _list(reply: Any, where: str) -> list[Any]:
    if not isinstance(reply, list):
        raise BrokerReplyError(f"{where}: expected a list, got {reply!r}"[:300])
    return reply


def _key(row: Mapping[str, Any], where: str) -> str:
    return f"{_text(row, 'exchange', where)}:{_text(row, 'tradingsymbol', where)}"


def _side(row: Mapping[str, Any], where: str) -> str:
    side = row.get("transaction_type")
    if side not in ("BUY", "SELL"):
        raise BrokerReplyError(f"{where}.transaction_type: expected BUY or SELL, got {side!r}")
    return str(side)


def parse_positions(reply: Any) -> tuple[BrokerPosition, ...]:
    """The ``net`` rows of ``GET /portfolio/positions``."""
    rows = _list(_row(reply, "positions").get("net"), "positions.net")
    out = []
    for i, raw in enumerate(rows):
        where = f"positions.net[{i}]"
        row = _row(raw, where)
        average = row.get("average_price")
        out.append(BrokerPosition(_whole(row, "instrument_token", where, 1), _key(row, where),
                                  _text(row, "product", where),
                                  _whole(row, "quantity", where, None),
                                  0 if average is None else
                                  rupees(average, f"{where}.average_price").paise))
    return tuple(out)


def parse_orders(reply: Any) -> tuple[BrokerOrder, ...]:
    """The rows of ``GET /orders`` (every order of the day)."""
    out = []
    for i, raw in enumerate(_list(reply, "orders")):
        where = f"orders[{i}]"
        row = _row(raw, where)
        status_text = row.get("status")
        try:
            status = OrderStatus(status_text)
        except ValueError:
            raise BrokerReplyError(f"{where}.status: not a Kite order status, got "
                                   f"{status_text!r}") from None
        tag = row.get("tag")
        if tag is not None and not isinstance(tag, str):
            raise BrokerReplyError(f"{where}.tag: expected a text, got {tag!r}"[:300])
        order_id = row.get("order_id")
        if not isinstance(order_id, str | int) or isinstance(order_id, bool) or not order_id:
            raise BrokerReplyError(f"{where}.order_id: expected an id, got {order_id!r}")
        pending = 0 if status.is_terminal else _whole(row, "pending_quantity", where)
        out.append(BrokerOrder(str(order_id), tag or "", status,
                               _whole(row, "instrument_token", where, 1), _key(row, where),
                               _side(row, where), pending,
                               as_ist(row.get("order_timestamp"), f"{where}.order_timestamp")))
    return tuple(out)


def parse_gtts(reply: Any) -> tuple[BrokerGtt, ...]:
    """The triggers of ``GET /gtt/triggers``."""
    out = []
    for i, raw in enumerate(_list(reply, "gtts")):
        where = f"gtts[{i}]"
        row = _row(raw, where)
        condition = _row(row.get("condition"), f"{where}.condition")
        orders = _list(row.get("orders"), f"{where}.orders")
        if not orders:
            raise BrokerReplyError(f"{where}.orders: expected at least one order, got []")
        first = _row(orders[0], f"{where}.orders[0]")
        out.append(BrokerGtt(_whole(row, "id", where, 1), _text(row, "status", where),
                             _whole(condition, "instrument_token", f"{where}.condition", 1),
                             _key(condition, f"{where}.condition"),
                             _side(first, f"{where}.orders[0]"),
                             _whole(first, "quantity", f"{where}.orders[0]", 1)))
    return tuple(out)


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
    outstanding = counts.get("gtt_placed", 0) - counts.get("gtt_deleted", 0) - gateway.protected
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
