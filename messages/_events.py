"""Events and replies: facts, in the past tense, that an actor announces.

Frozen, slotted, validated at construction like every message.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import Enum

from messages._commands import EndpointClass, TradingState
from messages._orders import Fill, OrderState
from messages._validate import (
    require_enum,
    require_instance,
    require_non_negative_int,
    require_positive_int,
    require_text,
)
from messages._values import Money, Price

__all__ = [
    "CashRefused",
    "CashReleased",
    "CashReserved",
    "ExitDecided",
    "FillApplied",
    "OrderOutcomeUnknown",
    "OrderPlaced",
    "OrderRejected",
    "OrderUpdated",
    "OrdersFound",
    "PermitGranted",
    "PermitRefused",
    "PriceRejected",
    "PricesUpdated",
    "SagaCompensated",
    "SagaCompleted",
    "SagaKind",
    "SagaRefused",
    "SagaStarted",
    "TradingStateChanged",
]


class SagaKind(str, Enum):
    """What a saga does."""

    ENTRY = "ENTRY"
    EXIT = "EXIT"


def _saga(saga_id: str) -> None:
    require_text("saga_id", saga_id, max_len=8)


def _money(name: str, value: Money, allow_negative: bool = False) -> None:
    require_instance(name, value, Money)
    if not allow_negative and value.paise < 0:
        raise ValueError(f"{name}: must be >= 0, got {value}")


# --- PortfolioActor ---------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CashReserved:
    """``amount`` of free cash is now set aside for saga ``saga_id``."""

    saga_id: str
    amount: Money

    def __post_init__(self) -> None:
        _saga(self.saga_id)
        _money("amount", self.amount)


@dataclass(frozen=True, slots=True)
class CashRefused:
    """Saga ``saga_id`` asked for ``amount`` but only ``available`` was free."""

    saga_id: str
    amount: Money
    available: Money

    def __post_init__(self) -> None:
        _saga(self.saga_id)
        _money("amount", self.amount)
        _money("available", self.available, allow_negative=True)


@dataclass(frozen=True, slots=True)
class CashReleased:
    """``amount`` went back from saga ``saga_id``'s reservation to free cash."""

    saga_id: str
    amount: Money

    def __post_init__(self) -> None:
        _saga(self.saga_id)
        _money("amount", self.amount)


@dataclass(frozen=True, slots=True)
class FillApplied:
    """The portfolio booked fill ``fill_id`` (or had already: ``duplicate``);
    ``released`` is what went back to free cash when the fill asked for it."""

    saga_id: str
    fill_id: str
    position_quantity: int
    realised: Money
    duplicate: bool = False
    released: Money | None = None

    def __post_init__(self) -> None:
        _saga(self.saga_id)
        require_text("fill_id", self.fill_id)
        require_instance("position_quantity", self.position_quantity, int)
        _money("realised", self.realised, allow_negative=True)


# --- RateLimitActor ---------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PermitGranted:
    """Request ``request_id`` may make its call now."""

    request_id: str
    endpoint: EndpointClass

    def __post_init__(self) -> None:
        require_text("request_id", self.request_id)
        object.__setattr__(self, "endpoint", require_enum("endpoint", self.endpoint,
                                                          EndpointClass))


@dataclass(frozen=True, slots=True)
class PermitRefused:
    """Request ``request_id`` will not get a permit (a hard budget is spent)."""

    request_id: str
    endpoint: EndpointClass
    reason: str

    def __post_init__(self) -> None:
        require_text("request_id", self.request_id)
        object.__setattr__(self, "endpoint", require_enum("endpoint", self.endpoint,
                                                          EndpointClass))
        require_text("reason", self.reason, max_len=200)


# --- PriceActor -------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PricesUpdated:
    """The latest validated price of each instrument that changed (one per token)."""

    prices: tuple[Price, ...]

    def __post_init__(self) -> None:
        require_instance("prices", self.prices, tuple)


@dataclass(frozen=True, slots=True)
class PriceRejected:
    """A feed offered a price that failed validation; PriceActor counts these."""

    instrument_token: int
    reason: str

    def __post_init__(self) -> None:
        require_instance("instrument_token", self.instrument_token, int)
        require_text("reason", self.reason, max_len=200)


# --- Gateways ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class OrderPlaced:
    """The broker registered the order tagged ``tag`` as ``broker_order_id``.

    Registration is no proof the exchange has it. ``state``, when present, is
    the order's first state (e.g. filled at once), saving a separate
    OrderUpdated.
    """

    tag: str
    broker_order_id: str
    state: OrderState | None = None

    def __post_init__(self) -> None:
        require_text("tag", self.tag, max_len=8)
        require_text("broker_order_id", self.broker_order_id)
        if self.state is not None:
            require_instance("state", self.state, OrderState)


@dataclass(frozen=True, slots=True)
class OrderRejected:
    """The broker refused the order tagged ``tag``; nothing was placed."""

    tag: str
    reason: str

    def __post_init__(self) -> None:
        require_text("tag", self.tag, max_len=8)
        require_text("reason", self.reason, max_len=500)


@dataclass(frozen=True, slots=True)
class OrderOutcomeUnknown:
    """The place call for ``tag`` timed out or lost its answer: the order may
    exist. It is resolved by FindOrdersByTag, never by placing again."""

    tag: str
    reason: str

    def __post_init__(self) -> None:
        require_text("tag", self.tag, max_len=8)
        require_text("reason", self.reason, max_len=500)


@dataclass(frozen=True, slots=True)
class OrderUpdated:
    """The broker reports ``state`` for one order (push or poll)."""

    state: OrderState

    def __post_init__(self) -> None:
        require_instance("state", self.state, OrderState)


@dataclass(frozen=True, slots=True)
class OrdersFound:
    """Every order the broker holds under ``tag`` (possibly none)."""

    tag: str
    orders: tuple[OrderState, ...]

    def __post_init__(self) -> None:
        require_text("tag", self.tag, max_len=8)
        for order in self.orders:
            require_instance("orders", order, OrderState)


# --- OrderActor -------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SagaStarted:
    """Saga ``saga_id`` of ``kind`` began for ``strategy``."""

    saga_id: str
    kind: SagaKind
    strategy: str

    def __post_init__(self) -> None:
        _saga(self.saga_id)
        object.__setattr__(self, "kind", require_enum("kind", self.kind, SagaKind))
        require_text("strategy", self.strategy, max_len=32)


@dataclass(frozen=True, slots=True)
class SagaRefused:
    """A submission was refused before any step ran (validation, risk, state)."""

    strategy: str
    kind: SagaKind
    reason: str

    def __post_init__(self) -> None:
        require_text("strategy", self.strategy, max_len=32)
        object.__setattr__(self, "kind", require_enum("kind", self.kind, SagaKind))
        require_text("reason", self.reason, max_len=500)


@dataclass(frozen=True, slots=True)
class SagaCompleted:
    """Saga ``saga_id`` committed: ``filled_quantity`` per leg, in leg order."""

    saga_id: str
    kind: SagaKind
    filled_quantities: tuple[int, ...]
    fills: tuple[Fill, ...] = ()

    def __post_init__(self) -> None:
        _saga(self.saga_id)
        object.__setattr__(self, "kind", require_enum("kind", self.kind, SagaKind))
        for qty in self.filled_quantities:
            require_non_negative_int("filled_quantities", qty)


@dataclass(frozen=True, slots=True)
class SagaCompensated:
    """Saga ``saga_id`` was undone for ``reason``; undoing it realised
    ``realised_cost`` (gross P&L of the compensating orders plus charges)."""

    saga_id: str
    kind: SagaKind
    reason: str
    realised_cost: Money = Money(0)

    def __post_init__(self) -> None:
        _saga(self.saga_id)
        object.__setattr__(self, "kind", require_enum("kind", self.kind, SagaKind))
        require_text("reason", self.reason, max_len=500)
        _money("realised_cost", self.realised_cost, allow_negative=True)


@dataclass(frozen=True, slots=True)
class ExitDecided:
    """An exit rule fired for a position on the tick received at ``tick_received_ts``."""

    saga_id: str
    strategy: str
    instrument_token: int
    rule: str
    tick_received_ts: datetime

    def __post_init__(self) -> None:
        _saga(self.saga_id)
        require_text("strategy", self.strategy, max_len=32)
        require_positive_int("instrument_token", self.instrument_token)
        require_text("rule", self.rule, max_len=200)


@dataclass(frozen=True, slots=True)
class TradingStateChanged:
    """The engine moved to ``state`` for ``reason``."""

    state: TradingState
    reason: str

    def __post_init__(self) -> None:
        object.__setattr__(self, "state", require_enum("state", self.state, TradingState))
        require_text("reason", self.reason, max_len=500)


