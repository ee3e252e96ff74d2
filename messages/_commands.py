"""Commands: imperatives sent to one actor, which may refuse them.

Every command is frozen, slotted and validated at construction. A command
that expects an answer carries ``reply_to``: anything with a ``tell``
method (a Pykka ``ActorRef`` in production). ``reply_to`` is an address, not
data: it is left out of equality and of serialisation.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum, IntEnum
from typing import Any, Protocol

from messages._orders import ExitRules, Fill, OrderLeg, OrderRequest
from messages._validate import (
    require_enum,
    require_instance,
    require_positive_int,
    require_text,
)
from messages._values import Instrument, Money, OrderType, Price, Product, Side


class Inbox(Protocol):
    """A reply address: anything that accepts a message with ``tell``."""

    def tell(self, message: Any) -> None:
        """Deliver ``message`` without waiting."""


__all__ = [
    "ApplyFill",
    "CancelBrokerOrder",
    "CancelEntry",
    "EndpointClass",
    "FindOrdersByTag",
    "Inbox",
    "PlaceOrder",
    "PricesProcessed",
    "Priority",
    "QueryOrder",
    "RecordPrices",
    "ReleaseCash",
    "RequestPermit",
    "ReserveCash",
    "SetTradingState",
    "SubmitEntry",
    "SubmitExit",
    "Subscribe",
    "TradingState",
]


class EndpointClass(str, Enum):
    """Kite's rate-limit classes: each broker call belongs to exactly one."""

    QUOTE = "quote"
    HISTORICAL = "historical"
    ORDERS = "orders"
    OTHER = "other"


class Priority(IntEnum):
    """Permit lanes, most urgent first: cancels, exits, entries, reads."""

    CANCEL = 0
    EXIT = 1
    ENTRY = 2
    READ = 3


class TradingState(str, Enum):
    """ACTIVE trades; REDUCING only reduces exposure; HALTED takes no new entries.

    Cancels and exits go through in every state.
    """

    ACTIVE = "ACTIVE"
    REDUCING = "REDUCING"
    HALTED = "HALTED"


def _reply() -> Any:
    return field(default=None, compare=False, repr=False)


# --- OrderActor -------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SubmitEntry:
    """Open a position: all ``legs`` fill, or none stays open.

    Contract: 1-4 legs, no instrument twice; ``strategy`` names the owner (the
    duplicate guard is per instrument and strategy).
    """

    strategy: str
    legs: tuple[OrderLeg, ...]
    exit_rules: ExitRules = ExitRules()
    reply_to: Inbox | None = _reply()

    def __post_init__(self) -> None:
        require_text("strategy", self.strategy, max_len=32)
        require_instance("legs", self.legs, tuple)
        if not 1 <= len(self.legs) <= 4:
            raise ValueError(f"legs: an entry takes 1 to 4 legs, got {len(self.legs)}")
        tokens = [require_instance("legs", leg, OrderLeg).instrument.instrument_token
                  for leg in self.legs]
        if len(set(tokens)) != len(tokens):
            raise ValueError(f"legs: an instrument appears twice, got tokens {tokens}")
        require_instance("exit_rules", self.exit_rules, ExitRules)

    @classmethod
    def single(
        cls,
        strategy: str,
        instrument: Instrument,
        side: Side | str,
        quantity: int,
        order_type: OrderType | str = OrderType.MARKET,
        limit_price: Money | None = None,
        trigger_price: Money | None = None,
        product: Product | str = Product.NRML,
        exit_rules: ExitRules | None = None,
        reply_to: Inbox | None = None,
    ) -> SubmitEntry:
        """Build a one-leg entry."""
        leg = OrderLeg(
            instrument=instrument,
            side=side,  # type: ignore[arg-type]
            quantity=quantity,
            order_type=order_type,  # type: ignore[arg-type]
            product=product,  # type: ignore[arg-type]
            limit_price=limit_price,
            trigger_price=trigger_price,
        )
        return cls(strategy, (leg,), exit_rules or ExitRules(), reply_to)


@dataclass(frozen=True, slots=True)
class SubmitExit:
    """Close the whole position of ``strategy`` in ``instrument_token``.

    Never blocked by entry filters, the session clock or a halted state.
    """

    strategy: str
    instrument_token: int
    reason: str
    reply_to: Inbox | None = _reply()

    def __post_init__(self) -> None:
        require_text("strategy", self.strategy, max_len=32)
        require_positive_int("instrument_token", self.instrument_token)
        require_text("reason", self.reason, max_len=200)


@dataclass(frozen=True, slots=True)
class CancelEntry:
    """Abandon a running entry saga: cancel its working orders and compensate."""

    saga_id: str
    reply_to: Inbox | None = _reply()

    def __post_init__(self) -> None:
        require_text("saga_id", self.saga_id, max_len=8)


@dataclass(frozen=True, slots=True)
class SetTradingState:
    """Move the engine to ``state`` (ACTIVE, REDUCING, HALTED) for ``reason``."""

    state: TradingState
    reason: str

    def __post_init__(self) -> None:
        object.__setattr__(self, "state", require_enum("state", self.state, TradingState))
        require_text("reason", self.reason, max_len=200)


# --- PortfolioActor ---------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ReserveCash:
    """Set ``amount`` of free cash aside for saga ``saga_id``.

    Answered with CashReserved, or CashRefused when free cash is short.
    """

    saga_id: str
    amount: Money
    reply_to: Inbox | None = _reply()

    def __post_init__(self) -> None:
        require_text("saga_id", self.saga_id, max_len=8)
        require_instance("amount", self.amount, Money)
        if self.amount.paise <= 0:
            raise ValueError(f"amount: must be > 0, got {self.amount}")


@dataclass(frozen=True, slots=True)
class ReleaseCash:
    """Return what is left of saga ``saga_id``'s reservation to free cash.

    The compensation of ReserveCash. Releasing twice releases nothing more.
    """

    saga_id: str
    reply_to: Inbox | None = _reply()

    def __post_init__(self) -> None:
        require_text("saga_id", self.saga_id, max_len=8)


@dataclass(frozen=True, slots=True)
class ApplyFill:
    """Book ``fill`` for ``strategy``, paying from saga ``saga_id``'s reservation.

    Opening a short moves ``margin`` (per unit) from the reservation to the
    position's blocked margin. A fill already applied is ignored. With
    ``release_rest`` (the saga's last fill) the rest of the reservation is
    released too, as ReleaseCash would.
    """

    saga_id: str
    strategy: str
    fill: Fill
    short_margin_per_unit: Money = Money(0)
    reply_to: Inbox | None = _reply()
    release_rest: bool = False

    def __post_init__(self) -> None:
        require_text("saga_id", self.saga_id, max_len=8)
        require_text("strategy", self.strategy, max_len=32)
        require_instance("fill", self.fill, Fill)
        require_instance("short_margin_per_unit", self.short_margin_per_unit, Money)
        if self.short_margin_per_unit.paise < 0:
            raise ValueError(
                f"short_margin_per_unit: must be >= 0, got {self.short_margin_per_unit}"
            )


# --- RateLimitActor ---------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RequestPermit:
    """Ask for one call's permit in ``endpoint``'s budget, in ``priority``'s lane.

    Answered with PermitGranted when the call's slot comes (never refused
    except by the daily order budget, with PermitRefused). With ``then`` (the
    message that makes the call: a gateway command, or a gateway's own
    follow-up call), the grant instead delivers ``then`` to ``then_to`` (one
    hop instead of two); a refusal still goes to ``reply_to``. ``merge`` marks
    an idempotent look-up: asked again while the same ``request_id`` still
    waits, it is served by that one slot.
    """

    request_id: str
    endpoint: EndpointClass
    priority: Priority
    reply_to: Inbox | None = _reply()
    then: Any = field(default=None, compare=False, repr=False)
    then_to: Inbox | None = _reply()
    merge: bool = False

    def __post_init__(self) -> None:
        require_text("request_id", self.request_id)
        require_instance("merge", self.merge, bool)
        if (self.then is None) != (self.then_to is None):
            raise ValueError(f"then: needs then_to and the reverse, got then={self.then!r}")
        object.__setattr__(self, "endpoint", require_enum("endpoint", self.endpoint,
                                                          EndpointClass))
        object.__setattr__(self, "priority", require_enum("priority", self.priority, Priority))


# --- PriceActor -------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RecordPrices:
    """Offer new prices; PriceActor keeps those that pass its age check."""

    prices: tuple[Price, ...]

    def __post_init__(self) -> None:
        require_instance("prices", self.prices, tuple)
        for price in self.prices:
            require_instance("prices", price, Price)


@dataclass(frozen=True, slots=True)
class Subscribe:
    """Send ``subscriber`` the latest prices of ``tokens`` (all when empty).

    Delivery is coalesced: one PricesUpdated batch at a time per subscriber,
    acknowledged with PricesProcessed, so a slow subscriber sees the latest
    price of each instrument instead of a growing backlog.
    """

    subscriber_id: str
    tokens: frozenset[int] = frozenset()
    reply_to: Inbox | None = _reply()

    def __post_init__(self) -> None:
        require_text("subscriber_id", self.subscriber_id)
        require_instance("tokens", self.tokens, frozenset)
        for token in self.tokens:
            require_positive_int("tokens", token)


@dataclass(frozen=True, slots=True)
class PricesProcessed:
    """A subscriber's acknowledgement of one PricesUpdated batch."""

    subscriber_id: str

    def __post_init__(self) -> None:
        require_text("subscriber_id", self.subscriber_id)


# --- Gateways ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PlaceOrder:
    """Send ``request`` to the broker, once. Answered with OrderPlaced,
    OrderRejected or OrderOutcomeUnknown; later states come as OrderUpdated."""

    request: OrderRequest
    reply_to: Inbox | None = _reply()

    def __post_init__(self) -> None:
        require_instance("request", self.request, OrderRequest)


@dataclass(frozen=True, slots=True)
class CancelBrokerOrder:
    """Ask the broker to cancel an order. The result is confirmed only by an
    OrderUpdated whose status is terminal."""

    broker_order_id: str
    tag: str
    reply_to: Inbox | None = _reply()

    def __post_init__(self) -> None:
        require_text("broker_order_id", self.broker_order_id)
        require_text("tag", self.tag, max_len=8)


@dataclass(frozen=True, slots=True)
class QueryOrder:
    """Poll one order's state; answered with OrderUpdated."""

    broker_order_id: str
    tag: str
    reply_to: Inbox | None = _reply()

    def __post_init__(self) -> None:
        require_text("broker_order_id", self.broker_order_id)
        require_text("tag", self.tag, max_len=8)


@dataclass(frozen=True, slots=True)
class FindOrdersByTag:
    """Look orders up by tag after an unknown outcome; answered with OrdersFound.

    ``leg`` is what was intended under the tag: a gateway that did not place
    it (a restarted engine) tracks what it finds as that leg's order.
    """

    tag: str
    reply_to: Inbox | None = _reply()
    leg: OrderLeg | None = None

    def __post_init__(self) -> None:
        require_text("tag", self.tag, max_len=8)
        if self.leg is not None:
            require_instance("leg", self.leg, OrderLeg)
