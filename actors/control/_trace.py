"""The REPL's ``trace(target, n)``: the live message flow through the engine's actors.

A trace attaches one :class:`~actors._introspect.TraceSink` to the actors it
watches (by telling them :class:`~actors._introspect.AttachTrace`, so each actor
changes its own state), streams what they offer to the console as one JSON line
per event, and detaches when ``n`` events went out, the time ran out, or the
console went away. While no trace runs, an actor pays one truth test per message.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any

import pykka

from actors._introspect import AttachTrace, DetachTrace, TraceEvent, TraceSink
from actors.control._inspect import find_actor
from actors.control._views import Sources
from actors.market import IST
from messages import Price, to_dict

if TYPE_CHECKING:
    from actors._introspect import ActorHandle
    from actors._system import Engine

__all__ = ["trace"]

_MESSAGE_CHARS = 300
Send = Callable[[dict[str, Any]], None]
Closed = Callable[[float], bool]
"""Waits up to the given seconds; True once the console has gone away."""


def _target(engine: Engine, target: Any) -> tuple[list[ActorHandle], frozenset[str] | None]:
    """The actors to watch and the message types to keep (None: every type)."""
    if target is None:
        return list(engine.actors), None
    if not isinstance(target, str) or not target.strip():
        raise ValueError(f"target: must be an actor or a message type name, got {target!r}")
    try:
        return [find_actor(engine, target)], None
    except ValueError:
        pass  # not an actor: a message type, then
    known = _message_types()
    if target.strip() not in known:
        actors = ", ".join(h.name for h in engine.actors)
        raise ValueError(f"target: {target!r} is neither an actor ({actors}) nor a message "
                         f"type (such as RecordPrices, SubmitEntry, PermitGranted)") from None
    return list(engine.actors), frozenset({target.strip()})


def _message_types() -> frozenset[str]:
    import messages  # every public message and value type

    names = {name for name in dir(messages) if name[:1].isupper()}
    return frozenset(names | {"Wake"})


def _prices(prices: tuple[Price, ...], name: Callable[[int], str]) -> str:
    shown = ", ".join(f"{name(p.instrument_token)} {p.last}" for p in prices[:5])
    more = f", … {len(prices) - 5} more" if len(prices) > 5 else ""
    return f"{len(prices)} price(s): {shown}{more}"


def _text(message: Any, name: Callable[[int], str]) -> str:
    prices = getattr(message, "prices", None)
    if isinstance(prices, tuple) and all(isinstance(p, Price) for p in prices):
        return _prices(prices, name)  # a tick batch: what moved, not every field
    try:
        body = to_dict(message)
        body.pop("type", None)
        text = ", ".join(f"{k}={v}" for k, v in body.items())
    except TypeError:  # not a dataclass: an internal object
        text = repr(message)
    return text if len(text) <= _MESSAGE_CHARS else text[:_MESSAGE_CHARS - 1] + "…"


def _event(event: TraceEvent, name: Callable[[int], str]) -> dict[str, Any]:
    return {"at": datetime.fromtimestamp(event.at, IST).isoformat(timespec="milliseconds"),
            "actor": event.actor, "type": type(event.message).__name__,
            "message": _text(event.message, name)}


def _tell_all(handles: list[ActorHandle], message: Any) -> None:
    for handle in handles:
        try:
            handle.ref.tell(message)
        except pykka.ActorDeadError:
            continue  # a stopped actor sends nothing to trace


def trace(engine: Engine, sources: Sources, args: dict[str, Any], send: Send,
          closed: Closed) -> dict[str, Any]:
    """Stream ``{"event": ...}`` lines through ``send`` until ``n`` went out,
    ``timeout_s`` passed or ``closed`` says the console left; the result counts
    what was sent and dropped, and says why it ended."""
    repl = engine.config.repl
    n = args.get("n", 50)
    if type(n) is not int or not 0 < n <= repl.trace_max_events:
        raise ValueError(f"n: must be a whole number from 1 to {repl.trace_max_events} "
                         f"(repl.trace_max_events), got {n!r}")
    timeout = args.get("timeout_s")
    if timeout is None:
        timeout = repl.trace_timeout_s
    if type(timeout) not in (int, float) or not timeout > 0:
        raise ValueError(f"timeout_s: must be a number of seconds > 0, got {timeout!r}")
    handles, types = _target(engine, args.get("target"))

    def name(token: int) -> str:
        try:
            return engine.instruments.get(token).key
        except ValueError:
            return str(token)

    sink = TraceSink(types, repl.trace_buffer)
    _tell_all(handles, AttachTrace(sink))
    sent, ended = 0, "timeout"
    deadline = time.monotonic() + float(timeout)
    try:
        while sent < n:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            if closed(min(engine.config.control.poll_interval_s, left)):
                ended = "console gone"
                break
            for event in sink.take()[:n - sent]:
                send({"event": _event(event, name)})
                sent += 1
        else:
            ended = "n reached"
    finally:
        _tell_all(handles, DetachTrace(sink))
    return {"count": sent, "dropped": sink.dropped, "ended": ended,
            "actors": [h.name for h in handles], "types": sorted(types) if types else None}
