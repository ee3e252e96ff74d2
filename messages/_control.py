"""The operator's commands to the engine (the control socket, the REPL)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from messages._validate import require_instance, require_non_negative_int, require_text

__all__ = ["DescribeSagas", "Halt", "HaltStarted", "OrderView", "ResumeTrading", "SagaView",
           "SagasDescribed"]


def _reply() -> Any:
    return field(default=None, compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class Halt:
    """The emergency stop, to OrderActor: no new entries (HALTED for ``reason``);
    every working order of every saga cancelled (each cancel confirmed by the
    order's status, as always); with ``flatten``, every position squared off by a
    MARKET exit, including those an interrupted saga leaves open. Answered at once
    with HaltStarted; the snapshot shows when it is done (nothing in flight, and
    with ``flatten`` no position left)."""

    reason: str
    flatten: bool = False
    reply_to: Any = _reply()

    def __post_init__(self) -> None:
        require_text("reason", self.reason, max_len=150)
        require_instance("flatten", self.flatten, bool)


@dataclass(frozen=True, slots=True)
class ResumeTrading:
    """The operator lifts a halt: trading ACTIVE again for ``reason``. Only this
    lifts an operator's :class:`Halt` (which is journaled and outlives a restart);
    a SetTradingState(ACTIVE) from anyone else leaves it standing."""

    reason: str

    def __post_init__(self) -> None:
        require_text("reason", self.reason, max_len=200)


@dataclass(frozen=True, slots=True)
class HaltStarted:
    """What the halt set in motion: ``cancels`` requested, ``exits`` started,
    sagas that were in flight and positions that were open when it came."""

    reason: str
    flatten: bool
    cancels: int
    exits: int
    sagas_in_flight: int
    positions_open: int

    def __post_init__(self) -> None:
        require_text("reason", self.reason, max_len=200)
        for name in ("cancels", "exits", "sagas_in_flight", "positions_open"):
            require_non_negative_int(name, getattr(self, name))


@dataclass(frozen=True, slots=True)
class OrderView:
    """One broker order of a saga, as OrderActor knows it."""

    tag: str
    broker_order_id: str
    role: str
    side: str
    tradingsymbol: str
    quantity: int
    filled: int
    status: str


@dataclass(frozen=True, slots=True)
class SagaView:
    """One saga in flight: its step, why it is there, and its orders."""

    saga_id: str
    kind: str
    strategy: str
    step: str
    reason: str
    seconds_left: float
    orders: tuple[OrderView, ...]


@dataclass(frozen=True, slots=True)
class DescribeSagas:
    """Ask OrderActor for every saga in flight; answered with SagasDescribed."""

    reply_to: Any = _reply()


@dataclass(frozen=True, slots=True)
class SagasDescribed:
    """Every saga in flight when OrderActor read its inbox's DescribeSagas."""

    sagas: tuple[SagaView, ...]
