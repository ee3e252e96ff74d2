"""The saga records OrderActor keeps: one per entry or exit, one per broker order.

A saga is a sequence of steps, each with a compensating step:

====================  ==========================================
step                  compensation
====================  ==========================================
ReserveCash           ReleaseCash
place leg k           cancel it (confirmed by its status), then
                      close whatever of legs 1..k filled
ApplyFill             (none: a fill is a fact; closing orders undo it)
mark EXITING          clear the mark
====================  ==========================================

Every saga ends COMPLETED or COMPENSATED. These records are private to the
OrderActor thread; nothing else reads or writes them.
"""

from __future__ import annotations

from enum import Enum

from messages import ExitRules, Fill, Inbox, OrderLeg, OrderStatus, SagaKind

__all__ = ["LegOrder", "Role", "Saga", "SagaOutcome", "make_tag"]

_BASE36 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"
UNDO_MARKS = "UVWYZ"
"""Tag suffixes of the successive attempts to close a leg while compensating."""


class Role(str, Enum):
    """Why a broker order exists: to open a leg, to close a position, to undo a leg."""

    OPEN = "E"
    CLOSE = "X"
    UNDO = "U"


class SagaOutcome(str, Enum):
    """How a saga ended."""

    COMPLETED = "COMPLETED"
    COMPENSATED = "COMPENSATED"


def to_base36(number: int, width: int) -> str:
    """``number`` in ``width`` base-36 digits (wrapping)."""
    digits = []
    for _ in range(width):
        number, rest = divmod(number, 36)
        digits.append(_BASE36[rest])
    return "".join(reversed(digits))


def make_tag(saga_id: str, leg_index: int, role: Role, attempt: int = 0) -> str:
    """The broker tag of one order: saga id (6), leg (1), role or undo attempt (1)."""
    mark = UNDO_MARKS[attempt] if role is Role.UNDO else role.value
    return f"{saga_id}{leg_index}{mark}"


class LegOrder:
    """One broker order of a saga and everything learnt about it."""

    __slots__ = ("asks", "attempt", "broker_order_id", "cancel_sent", "fill_value", "filled",
                 "index", "leg", "role", "seen", "tag", "terminal", "unknown")

    def __init__(self, index: int, role: Role, leg: OrderLeg, tag: str, attempt: int) -> None:
        self.index = index
        self.role = role
        self.leg = leg
        self.tag = tag
        self.attempt = attempt
        self.broker_order_id: str | None = None
        self.filled = 0
        self.fill_value = 0
        self.seen: set[str] = set()
        self.terminal: OrderStatus | None = None
        self.cancel_sent = False
        self.unknown = False
        self.asks = 0  # look-ups made while waiting on the broker (they back off)

    def take_new(self, fills: tuple[Fill, ...]) -> list[Fill]:
        """The fills not seen before for this order (each one exactly once)."""
        new = []
        for fill in fills:
            if fill.fill_id not in self.seen:
                self.seen.add(fill.fill_id)
                self.filled += fill.quantity
                self.fill_value += fill.quantity * fill.price.paise
                new.append(fill)
        return new

    @property
    def average_price(self) -> int:
        """Average fill price in paise (0 before any fill)."""
        return self.fill_value // self.filled if self.filled else 0


class Saga:
    """The state of one running saga (OrderActor-private, mutable)."""

    __slots__ = (
        "charges",
        "current",
        "deadline",
        "due",
        "kind",
        "legs",
        "margins",
        "opened",
        "orders",
        "outcome",
        "pending_fills",
        "realised",
        "reason",
        "release_sent",
        "reply_to",
        "rules",
        "saga_id",
        "step",
        "strategy",
        "unacked",
        "undo",
    )

    def __init__(self, saga_id: str, kind: SagaKind, strategy: str, legs: tuple[OrderLeg, ...],
                 rules: ExitRules, reply_to: Inbox | None, deadline: float) -> None:
        self.saga_id = saga_id
        self.kind = kind
        self.strategy = strategy
        self.legs = legs
        self.rules = rules
        self.reply_to = reply_to
        self.deadline = deadline
        self.due: float | None = None
        self.step = "START"
        self.orders: list[LegOrder] = []
        self.current: LegOrder | None = None
        self.opened: list[LegOrder] = []
        self.undo: list[LegOrder] = []
        self.margins: dict[int, int] = {}
        self.reason = ""
        self.realised = 0
        self.charges = 0
        self.outcome: SagaOutcome | None = None
        self.unacked = 0
        self.release_sent = False
        self.pending_fills: dict[str, LegOrder] = {}

    def new_order(self, index: int, role: Role, leg: OrderLeg, attempt: int = 0) -> LegOrder:
        """Record a broker order this saga is about to place."""
        order = LegOrder(index, role, leg, make_tag(self.saga_id, index, role, attempt), attempt)
        self.orders.append(order)
        self.current = order
        return order
