"""Order-level value types: legs, requests, fills, broker order status, exit rules."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, time
from decimal import Decimal
from enum import Enum

from messages._validate import (
    require_aware,
    require_enum,
    require_instance,
    require_non_negative_int,
    require_positive_int,
    require_text,
)
from messages._values import Instrument, Money, OrderType, Product, Side

__all__ = ["ExitRules", "Fill", "OrderLeg", "OrderRequest", "OrderState", "OrderStatus"]


class OrderStatus(str, Enum):
    """Kite order statuses. Anything not terminal is pending."""

    PUT_ORDER_REQUEST_RECEIVED = "PUT ORDER REQUEST RECEIVED"
    VALIDATION_PENDING = "VALIDATION PENDING"
    OPEN_PENDING = "OPEN PENDING"
    OPEN = "OPEN"
    TRIGGER_PENDING = "TRIGGER PENDING"
    MODIFY_VALIDATION_PENDING = "MODIFY VALIDATION PENDING"
    MODIFY_PENDING = "MODIFY PENDING"
    CANCEL_PENDING = "CANCEL PENDING"
    AMO_REQ_RECEIVED = "AMO REQ RECEIVED"
    COMPLETE = "COMPLETE"
    CANCELLED = "CANCELLED"
    REJECTED = "REJECTED"

    @property
    def is_terminal(self) -> bool:
        """COMPLETE, CANCELLED and REJECTED end an order; nothing else does."""
        return self in _TERMINAL


_TERMINAL = frozenset({OrderStatus.COMPLETE, OrderStatus.CANCELLED, OrderStatus.REJECTED})


def _check_pct(field: str, value: Decimal | None, upper: Decimal = Decimal(100)) -> None:
    if value is None:
        return
    require_instance(field, value, Decimal)
    if not value.is_finite() or value <= 0 or value > upper:
        raise ValueError(f"{field}: must be a percentage in (0, {upper}], got {value}")


@dataclass(frozen=True, slots=True)
class ExitRules:
    """Per-position exit rules, evaluated on every validated tick.

    Contract: each percentage is a ``Decimal`` in (0, 100] (stop-loss and
    give-back below 100 so an exit price stays positive); ``None`` disables a
    rule. ``square_off_at`` is an IST wall-clock time for intraday products.
    """

    stop_loss_pct: Decimal | None = None
    take_profit_pct: Decimal | None = None
    trail_activation_pct: Decimal | None = None
    trail_giveback_pct: Decimal | None = None
    square_off_at: time | None = None
    exit_on_expiry_day: bool = True

    def __post_init__(self) -> None:
        _check_pct("stop_loss_pct", self.stop_loss_pct, Decimal("99.99"))
        _check_pct("take_profit_pct", self.take_profit_pct, Decimal(1000))
        _check_pct("trail_activation_pct", self.trail_activation_pct, Decimal(1000))
        _check_pct("trail_giveback_pct", self.trail_giveback_pct, Decimal("99.99"))
        if (self.trail_activation_pct is None) != (self.trail_giveback_pct is None):
            raise ValueError(
                "trail_giveback_pct: a trailing stop needs both activation and give-back, "
                f"got activation={self.trail_activation_pct} give-back={self.trail_giveback_pct}"
            )
        if self.square_off_at is not None:
            require_instance("square_off_at", self.square_off_at, time)
        require_instance("exit_on_expiry_day", self.exit_on_expiry_day, bool)


@dataclass(frozen=True, slots=True)
class OrderLeg:
    """One leg of an entry: what to trade, which way, how much, at what price.

    Contract: quantity is a positive multiple of the instrument's lot size;
    LIMIT needs ``limit_price``; SL needs both prices; SL-M needs a trigger;
    every price is on the instrument's tick size.
    """

    instrument: Instrument
    side: Side
    quantity: int
    order_type: OrderType = OrderType.MARKET
    product: Product = Product.NRML
    limit_price: Money | None = None
    trigger_price: Money | None = None

    def __post_init__(self) -> None:
        require_instance("instrument", self.instrument, Instrument)
        object.__setattr__(self, "side", require_enum("side", self.side, Side))
        object.__setattr__(
            self, "order_type", require_enum("order_type", self.order_type, OrderType)
        )
        object.__setattr__(self, "product", require_enum("product", self.product, Product))
        self.instrument.check_quantity("quantity", self.quantity)
        needs_limit = self.order_type in (OrderType.LIMIT, OrderType.SL)
        needs_trigger = self.order_type in (OrderType.SL, OrderType.SL_M)
        if needs_limit and self.limit_price is None:
            raise ValueError(f"limit_price: a {self.order_type.value} order needs one, got None")
        if not needs_limit and self.limit_price is not None:
            raise ValueError(
                f"limit_price: a {self.order_type.value} order takes none, got {self.limit_price}"
            )
        if needs_trigger and self.trigger_price is None:
            raise ValueError(
                f"trigger_price: a {self.order_type.value} order needs one, got None"
            )
        if not needs_trigger and self.trigger_price is not None:
            raise ValueError(
                f"trigger_price: a {self.order_type.value} order takes none, "
                f"got {self.trigger_price}"
            )
        if self.limit_price is not None:
            self.instrument.check_price("limit_price", self.limit_price)
        if self.trigger_price is not None:
            self.instrument.check_price("trigger_price", self.trigger_price)


@dataclass(frozen=True, slots=True)
class OrderRequest:
    """What a gateway sends to the broker for one leg.

    Contract: ``tag`` is 1-8 alphanumeric characters and is the only handle
    for finding the order again after an unknown outcome.
    ``market_protection`` is sent on every MARKET and SL-M order.
    """

    tag: str
    leg: OrderLeg
    market_protection: int = -1

    def __post_init__(self) -> None:
        require_text("tag", self.tag, max_len=8)
        if not self.tag.isalnum() or not self.tag.isascii():
            raise ValueError(f"tag: must be ASCII alphanumeric, got {self.tag!r}")
        require_instance("leg", self.leg, OrderLeg)
        if self.market_protection != -1 and not 1 <= self.market_protection <= 100:
            raise ValueError(
                f"market_protection: must be -1 or 1..100, got {self.market_protection!r}"
            )


@dataclass(frozen=True, slots=True)
class Fill:
    """One execution (trade) against a broker order.

    Contract: ``fill_id`` is unique per execution; applying the same fill
    twice is a no-op for the portfolio. ``charges`` are the statutory and
    brokerage charges attributed to this fill.
    """

    fill_id: str
    broker_order_id: str
    instrument_token: int
    side: Side
    quantity: int
    price: Money
    charges: Money
    timestamp: datetime

    def __post_init__(self) -> None:
        require_text("fill_id", self.fill_id)
        require_text("broker_order_id", self.broker_order_id)
        require_positive_int("instrument_token", self.instrument_token)
        object.__setattr__(self, "side", require_enum("side", self.side, Side))
        require_positive_int("quantity", self.quantity)
        require_instance("price", self.price, Money)
        if self.price.paise <= 0:
            raise ValueError(f"price: must be > 0, got {self.price}")
        require_instance("charges", self.charges, Money)
        if self.charges.paise < 0:
            raise ValueError(f"charges: must be >= 0, got {self.charges}")
        require_aware("timestamp", self.timestamp)

    @property
    def value(self) -> Money:
        """Quantity times price (turnover of this fill)."""
        return Money(self.price.paise * self.quantity)


@dataclass(frozen=True, slots=True)
class OrderState:
    """The broker's view of one order at one moment.

    Contract: ``filled_quantity`` never exceeds ``quantity``; ``fills`` are
    the executions that are new since the previous state the sender
    published for this order (so a listener applies each exactly once, and
    the portfolio de-duplicates by ``fill_id`` anyway).
    """

    broker_order_id: str
    tag: str
    status: OrderStatus
    quantity: int
    filled_quantity: int
    average_price: Money | None = None
    fills: tuple[Fill, ...] = ()
    reason: str = ""

    def __post_init__(self) -> None:
        require_text("broker_order_id", self.broker_order_id)
        require_text("tag", self.tag, max_len=8)
        object.__setattr__(self, "status", require_enum("status", self.status, OrderStatus))
        require_positive_int("quantity", self.quantity)
        require_non_negative_int("filled_quantity", self.filled_quantity)
        if self.filled_quantity > self.quantity:
            raise ValueError(
                f"filled_quantity: {self.filled_quantity} exceeds quantity {self.quantity}"
            )
        for fill in self.fills:
            require_instance("fills", fill, Fill)

    @property
    def pending_quantity(self) -> int:
        """Quantity neither filled nor finished."""
        return 0 if self.status.is_terminal else self.quantity - self.filled_quantity

