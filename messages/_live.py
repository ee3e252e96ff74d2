"""Messages only a live broker needs: margin pre-checks, GTT protection, 429s.

The paper broker answers the margin check too (from its own account), so a
saga reads the same either way; protection and throttling exist only in
live mode, where the broker can die with the engine's positions open and
can answer HTTP 429.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from messages._commands import EndpointClass
from messages._orders import OrderLeg
from messages._validate import require_enum, require_instance, require_text
from messages._values import Instrument, Money, Product, Side

__all__ = [
    "CallThrottled",
    "CheckMargins",
    "MarginsChecked",
    "PositionProtected",
    "ProtectPosition",
    "ProtectionFailed",
    "ProtectionRemoved",
    "RemoveProtection",
]


def _reply() -> Any:
    return field(default=None, compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class CheckMargins:
    """Ask the broker whether its margin covers ``legs`` (entered together).

    Answered with MarginsChecked. A saga step: nothing is placed, so the
    compensation of a failed check is releasing the saga's reservation.
    """

    saga_id: str
    legs: tuple[OrderLeg, ...]
    reply_to: Any = _reply()

    def __post_init__(self) -> None:
        require_text("saga_id", self.saga_id)
        require_instance("legs", self.legs, tuple)
        if not self.legs:
            raise ValueError("legs: at least one leg, got ()")
        for leg in self.legs:
            require_instance("legs", leg, OrderLeg)


@dataclass(frozen=True, slots=True)
class MarginsChecked:
    """The broker's answer to CheckMargins: ``required`` against ``available``.

    ``ok`` is False when the margin is short or the check itself failed;
    ``reason`` then says why (naming the figures).
    """

    saga_id: str
    ok: bool
    required: Money
    available: Money
    reason: str = ""

    def __post_init__(self) -> None:
        require_text("saga_id", self.saga_id)
        require_instance("ok", self.ok, bool)
        require_instance("required", self.required, Money)
        require_instance("available", self.available, Money)
        if not self.ok:
            require_text("reason", self.reason, max_len=500)


@dataclass(frozen=True, slots=True)
class ProtectPosition:
    """Keep a broker-side OCO (two-leg GTT) on a position: close ``quantity``
    with a ``side`` order when the price reaches ``stop`` or ``target``.

    ``key`` names the position (strategy and instrument token). Sent again
    for the same key (e.g. after a partial exit), the new GTT is placed first
    and the old one deleted only after. Answered with PositionProtected or
    ProtectionFailed.
    """

    key: str
    instrument: Instrument
    side: Side
    quantity: int
    product: Product
    stop: Money
    target: Money
    last: Money
    reply_to: Any = _reply()

    def __post_init__(self) -> None:
        require_text("key", self.key, max_len=100)
        require_instance("instrument", self.instrument, Instrument)
        object.__setattr__(self, "side", require_enum("side", self.side, Side))
        object.__setattr__(self, "product", require_enum("product", self.product, Product))
        self.instrument.check_quantity("quantity", self.quantity)
        for name in ("stop", "target", "last"):
            value = getattr(self, name)
            require_instance(name, value, Money)
            if value.paise <= 0:
                raise ValueError(f"{name}: must be > 0, got {value}")
        low, high = (self.stop, self.target) if self.side is Side.SELL else (
            self.target, self.stop)
        if not low.paise < self.last.paise < high.paise:
            raise ValueError(f"stop: the last price {self.last} must lie between the two "
                             f"triggers, got stop={self.stop} target={self.target}")


@dataclass(frozen=True, slots=True)
class RemoveProtection:
    """The position ``key`` is closed (its exit order filled): delete its GTT."""

    key: str
    reply_to: Any = _reply()

    def __post_init__(self) -> None:
        require_text("key", self.key, max_len=100)


@dataclass(frozen=True, slots=True)
class PositionProtected:
    """The broker holds GTT ``trigger_id`` for position ``key``."""

    key: str
    trigger_id: int

    def __post_init__(self) -> None:
        require_text("key", self.key, max_len=100)
        if type(self.trigger_id) is not int or self.trigger_id <= 0:
            raise ValueError(f"trigger_id: must be an integer > 0, got {self.trigger_id!r}")


@dataclass(frozen=True, slots=True)
class ProtectionFailed:
    """No GTT protects position ``key``: the position is UNPROTECTED."""

    key: str
    reason: str

    def __post_init__(self) -> None:
        require_text("key", self.key, max_len=100)
        require_text("reason", self.reason, max_len=500)


@dataclass(frozen=True, slots=True)
class ProtectionRemoved:
    """Position ``key``'s GTT is deleted (or was already gone)."""

    key: str
    trigger_id: int | None = None

    def __post_init__(self) -> None:
        require_text("key", self.key, max_len=100)


@dataclass(frozen=True, slots=True)
class CallThrottled:
    """The broker answered HTTP 429 to a call in ``endpoint``: it was not
    executed. RateLimitActor cools that class down."""

    endpoint: EndpointClass
    call: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "endpoint", require_enum("endpoint", self.endpoint,
                                                          EndpointClass))
        require_instance("call", self.call, str)
