"""The REPL's ``ask(actor, message)`` and ``tell(actor, message)``: a typed protocol
message, encoded by :func:`messages.to_dict` on the console's side, rebuilt (and so
validated again) here and sent to one of the engine's actors.

The policy lives here, in one place: :data:`READ_ONLY` messages may be sent by any
session; every other one needs a session started with ``--allow-write`` (the
request's ``write``), and the :data:`DANGEROUS` ones (they move money or orders,
or stop or start trading) are refused until the request says ``confirmed``, with
the refusal's ``confirm`` text saying what the message would do."""

from __future__ import annotations

import dataclasses
import time
from typing import TYPE_CHECKING, Any

from actors.control._commands import _Reply
from actors.control._inspect import find_actor
from actors.control._protocol import ControlError
from actors.control._views import Sources
from messages import (
    CancelEntry,
    Halt,
    SagaCompensated,
    SagaCompleted,
    SagaRefused,
    SubmitEntry,
    SubmitExit,
    from_dict,
    to_dict,
)

if TYPE_CHECKING:
    from actors._introspect import ActorHandle
    from actors._system import Engine

__all__ = ["DANGEROUS", "READ_ONLY", "ask", "tell"]

READ_ONLY = frozenset({"DescribeSagas"})
"""Messages that change nothing: any session may send them."""

DANGEROUS = {
    "SubmitEntry": "opens a position: places orders at the broker",
    "SubmitExit": "closes a position at the market",
    "CancelEntry": "cancels an entry saga's orders",
    "Halt": "halts trading and cancels every working order",
    "ResumeTrading": "resumes trading: strategies may open positions again",
    "SetTradingState": "changes whether trading is active",
    "ReserveCash": "reserves cash outside a saga",
    "ReleaseCash": "releases a saga's reserved cash",
    "ApplyFill": "books a fill into the portfolio outside a saga",
    "AdoptPosition": "adds a position to the book",
    "ReconcilePosition": "changes the book to match the broker",
    "PlaceOrder": "sends an order to the broker outside a saga",
    "CancelBrokerOrder": "cancels a broker order outside a saga",
    "RecordPrices": "injects prices that every actor will trade on",
}
"""Messages that need ``confirmed`` (and ``write``), with what they would do."""

_VALUES = ("messages._values", "messages._orders")  # value types, not messages
_SAGA_STARTERS = (SubmitEntry, SubmitExit, CancelEntry)
_SAGA_ENDS = (SagaCompleted, SagaCompensated, SagaRefused)
_MAX_WAIT_S = 600.0


def _message(engine: Engine, args: dict[str, Any],
             reply: _Reply | None) -> tuple[Any, ActorHandle]:
    """The message ``args`` describe, after the policy checks; and its actor."""
    handle = find_actor(engine, args.get("actor"))
    data = args.get("message")
    if not isinstance(data, dict) or not isinstance(data.get("type"), str):
        raise ValueError(f"message: must be an encoded message such as "
                         f"{{\"type\": \"DescribeSagas\"}}, got {data!r}")
    kind = data["type"]
    write, confirmed = args.get("write", False), args.get("confirmed", False)
    if type(write) is not bool or type(confirmed) is not bool:
        raise ValueError(f"write, confirmed: must be true or false, got {write!r}, "
                         f"{confirmed!r}")
    message = from_dict(data, reply_to=reply)  # validated again, here
    if type(message).__module__ in _VALUES:
        raise ValueError(f"message: {kind} is a value, not a message an actor handles")
    if kind not in READ_ONLY and not write:
        raise ControlError(f"read-only session: {kind} changes the engine's state; start "
                           f"kitesaga repl with --allow-write to send it", 1)
    danger = DANGEROUS.get(kind)
    if isinstance(message, Halt) and message.flatten:
        danger = "halts trading, cancels every working order and squares off every position"
    if danger is not None and not confirmed:
        raise ControlError(f"{kind} to {handle.name} {danger}: it needs confirming",
                           1, confirm=f"{kind} to {handle.name} {danger}")
    return message, handle


def tell(engine: Engine, sources: Sources, args: dict[str, Any]) -> dict[str, Any]:
    """Send a message and do not wait (no reply address)."""
    message, handle = _message(engine, args, None)
    handle.ref.tell(message)
    return {"actor": handle.name, "sent": type(message).__name__}


def ask(engine: Engine, sources: Sources, args: dict[str, Any]) -> dict[str, Any]:
    """Send a message with a reply address and wait (``timeout_s``, default
    ``control.timeout_s``) for its answer: the first reply, or for a saga's
    command every reply until the saga ends. ``answered`` is False when the
    wait ran out."""
    timeout = args.get("timeout_s")
    if timeout is None:
        timeout = engine.config.control.timeout_s
    if type(timeout) not in (int, float) or not 0 < timeout <= _MAX_WAIT_S:
        raise ValueError(f"timeout_s: must be a number of seconds > 0 and <= "
                         f"{_MAX_WAIT_S:g}, got {timeout!r}")
    reply = _Reply()
    message, handle = _message(engine, args, reply)
    if not hasattr(message, "reply_to"):
        raise ValueError(f"message: {type(message).__name__} takes no reply address; "
                         f"send it with tell()")
    handle.ref.tell(message)
    deadline = time.monotonic() + float(timeout)
    wanted: tuple[type[Any], ...] = _SAGA_ENDS if isinstance(message, _SAGA_STARTERS) \
        else (object,)
    answered = reply.next_of(wanted, deadline) is not None
    return {"actor": handle.name, "sent": type(message).__name__, "answered": answered,
            "replies": [to_dict(m) if dataclasses.is_dataclass(m) else
                        {"type": type(m).__name__, "repr": repr(m)[:300]} for m in reply.seen]}
