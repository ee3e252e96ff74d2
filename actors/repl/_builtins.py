"""The REPL's built-in functions: each one control request, its reply as a
:class:`~actors.repl._session.Result`."""

from __future__ import annotations

import dataclasses
import inspect as pyinspect
from collections.abc import Callable, Mapping
from typing import Any

import messages
from actors.cli import _control_text as text
from actors.control import READ_ONLY, ControlError
from actors.repl import _render as render
from actors.repl._session import ReplError, Result, Session

__all__ = ["ACTOR_ALIASES", "Builtin", "make_namespace"]

ACTOR_ALIASES = ("orders", "portfolio", "prices", "limits", "sync", "journal", "broker",
                 "feed", "supervisor")
"""Short names the engine resolves to its actors (``inspect("orders")``)."""



class Builtin:
    """A REPL built-in. Contract: calling it calls ``func``; ``summary`` (one line)
    and ``examples`` are what ``help()`` lists, ``__doc__`` what ``help(name)``
    shows; its repr tells how to call it."""

    def __init__(self, name: str, func: Callable[..., Any], summary: str,
                 examples: tuple[str, ...]) -> None:
        self.name = name
        self.func = func
        self.summary = summary
        self.examples = examples
        self.__doc__ = pyinspect.getdoc(func)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.func(*args, **kwargs)

    def __repr__(self) -> str:
        return f"<built-in {self.usage}: {self.summary}>"

    @property
    def usage(self) -> str:
        """How to call it: ``trace(target=None, n=50, timeout=None)``."""
        return self.name + _plain_signature(self.func)


def _plain_signature(func: Any) -> str:
    """``func``'s signature without annotations (empty when it has none)."""
    try:
        signature = pyinspect.signature(func)
    except (TypeError, ValueError):  # not every callable has one
        return ""
    return str(signature.replace(
        parameters=[p.replace(annotation=p.empty) for p in signature.parameters.values()],
        return_annotation=signature.empty))


def _is_message(value: Any) -> bool:
    cls = type(value)
    return (dataclasses.is_dataclass(value) and not isinstance(value, type)
            and getattr(messages, cls.__name__, None) is cls)


def _count(name: str, value: Any, low: int = 1) -> int:
    if type(value) is not int or value < low:
        raise ReplError(f"{name}: must be a whole number >= {low}, got {value!r}")
    return value


def _seconds(name: str, value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        raise ReplError(f"{name}: must be a number of seconds > 0 or None, got {value!r}")
    return float(value)


def _name(what: str, value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ReplError(f"{what}: must be a name such as \"orders\", got {value!r}")
    return value


class _Builtins:
    """The built-ins of one session (their docstrings are ``help(name)``)."""

    def __init__(self, session: Session) -> None:
        self.s = session

    def _call(self, command: str, args: Mapping[str, Any], show: Callable[[Any], str],
              wait_s: float | None = None) -> Result:
        data = self.s.request(command, args, wait_s)
        result = Result(data, show(data))
        self.s.record(result.text)
        return result

    def status(self) -> Result:
        """The engine at a glance, as ``kitesaga status`` shows it."""
        return self._call("status", {}, text.status)

    def actors(self) -> Result:
        """Every actor: state, mailbox depth, messages processed and per second, the
        last message and its age, how long the current one has run, failures."""
        return self._call("actors", {}, render.actors)

    def inspect(self, name: str) -> Result:
        """One actor's counters and its published snapshot. ``name`` is its class
        name ("OrderActor") or a short name: orders, portfolio, prices, limits, sync,
        journal, broker, feed, supervisor."""
        return self._call("inspect", {"name": _name("name", name)}, render.inspect)

    def sagas(self, open: bool = True, n: int = 50) -> Result:
        """The sagas in flight, step by step; with ``open=False`` also the last ``n``
        that ended (outcome, reason, start and end)."""
        return self._call("sagas", {"open": bool(open), "n": _count("n", n)}, render.sagas)

    def saga(self, saga_id: str) -> Result:
        """One saga: where it stands if in flight, and its journal timeline."""
        return self._call("saga", {"saga_id": _name("saga_id", saga_id)}, render.saga)

    def positions(self) -> Result:
        """Open positions with average price, last price and P&L."""
        return self._call("positions", {}, text.positions)

    def orders(self) -> Result:
        """Working orders of the sagas in flight."""
        return self._call("orders", {}, text.orders)

    def prices(self, stale: bool = True) -> Result:
        """The prices PriceActor holds, their age and validation counters;
        ``stale=False`` leaves out those older than ``prices.max_price_age_s``."""
        return self._call("prices", {"stale": bool(stale)}, render.prices)

    def limits(self) -> Result:
        """The rate limiter: each permit class's rate, tokens, queue, grants and
        cool-down, and the day's orders against the daily limit."""
        return self._call("limits", {}, render.limits)

    def trace(self, target: str | None = None, n: int = 50,
              timeout: float | None = None) -> Result:
        """Watch messages as the actors receive them: ``target`` is an actor ("orders",
        "PriceActor"), a message type ("RecordPrices") or None for all; it stops after
        ``n`` messages or ``timeout`` seconds. Ctrl-C stops it early. Each message is
        printed as it comes, then a summary; the result holds them all."""
        if target is not None:
            _name("target", target)
        wait_s = _seconds("timeout", timeout)
        args = {"target": target, "n": _count("n", n), "timeout_s": wait_s}
        events: list[Any] = []
        lines: list[str] = []
        summary: dict[str, Any] = {}
        stream = self.s.stream("trace", args, wait_s)
        try:
            if not self.s.json_output:
                most = wait_s or self.s.config.repl.trace_timeout_s
                print(f"tracing {target or 'every actor'}: up to {n} message(s), {most:g}s; "
                      f"Ctrl-C stops", file=self.s.out, flush=True)
            for item in stream:
                if "event" in item:
                    events.append(item["event"])
                    lines.append(render.trace_event(item["event"]))
                    if not self.s.json_output:
                        print(lines[-1], file=self.s.out, flush=True)
                elif "result" in item:
                    summary = dict(item["result"])
        except KeyboardInterrupt:
            summary = {"count": len(events), "dropped": summary.get("dropped", 0),
                       "ended": "stopped by Ctrl-C"}
        finally:
            stream.close()  # ends the trace at the engine too
        result = Result({"events": events, "summary": summary},
                        "\n".join([*lines, render.trace_summary(summary)]))
        self.s.record(result.text)
        if not self.s.json_output:
            print(render.trace_summary(summary), file=self.s.out, flush=True)
            self.s.printed(result)
        return result

    def _send(self, command: str, actor: str, message: Any,
              extra: Mapping[str, Any]) -> dict[str, Any]:
        _name("actor", actor)
        if not _is_message(message):
            raise ReplError(f"message: must be a message such as DescribeSagas(), got "
                            f"{message!r}")
        kind = type(message).__name__
        if kind not in READ_ONLY:  # the engine's own list; it checks again
            self.s.require_write(f"send {kind} to {actor}")
        args = {"actor": actor, "message": messages.to_dict(message),
                "write": self.s.allow_write, "confirmed": False, **extra}
        wait_s = extra.get("timeout_s")
        try:
            return self.s.request(command, args, wait_s)
        except ControlError as refused:
            if not refused.confirm:
                raise
            self.s.confirm(refused.confirm, refused.message)
            return self.s.request(command, {**args, "confirmed": True}, wait_s)

    def ask(self, actor: str, message: Any, timeout: float | None = None) -> Result:
        """Send ``message`` (built here, so checked here: ``DescribeSagas()``) to
        ``actor`` and show its replies. Anything but a query needs --allow-write; the
        engine may ask for a confirmation."""
        data = self._send("ask", actor, message, {"timeout_s": _seconds("timeout", timeout)})
        result = Result(data, render.ask(data))
        self.s.record(result.text)
        return result

    def tell(self, actor: str, message: Any) -> Result:
        """Send ``message`` to ``actor`` without waiting for an answer (needs
        --allow-write; the engine may ask for a confirmation)."""
        data = self._send("tell", actor, message, {})
        result = Result(data, render.tell(data))
        self.s.record(result.text)
        return result

    def halt(self, reason: str = "halted from the REPL", flatten: bool = False) -> Result:
        """Emergency stop: no new entries, every working order cancelled; with
        ``flatten=True`` every position squared off. Needs --allow-write and a
        confirmation."""
        self.s.require_write("halt trading")
        _name("reason", reason)
        self.s.confirm(f"halt trading ({reason})"
                       + (" and close every open position" if flatten else ""))
        return self._call("halt", {"reason": reason, "flatten": bool(flatten)}, text.halted)

    def resume(self, force: bool = False) -> Result:
        """Trading ACTIVE again (``force=True``: even while the live start-up
        reconciliation is not clean). Needs --allow-write and a confirmation."""
        self.s.require_write("resume trading")
        self.s.confirm("resume trading" + (" (forced)" if force else ""))
        return self._call("resume", {"force": bool(force)}, text.resumed)


_SUMMARIES: dict[str, tuple[str, tuple[str, ...]]] = {
    "status": ("the engine at a glance", ("status()",)),
    "actors": ("every actor: state, mailbox, rate, last message, failures", ("actors()",)),
    "inspect": ("one actor's counters and snapshot", ('inspect("orders")',
                                                     'inspect("PriceActor").data')),
    "sagas": ("sagas in flight (open=False: also those that ended)",
              ("sagas()", "sagas(open=False, n=20)")),
    "saga": ("one saga's live state and journal timeline", ('saga("a1b2c3d4")',)),
    "positions": ("open positions and P&L", ("positions()",)),
    "orders": ("working orders", ("orders()",)),
    "prices": ("prices held, their age and staleness", ("prices()", "prices(stale=False)")),
    "limits": ("rate-limit classes and the day's orders", ("limits()",)),
    "trace": ("watch messages live (Ctrl-C stops)",
              ('trace("prices", n=10)', 'trace("SubmitEntry", timeout=60)')),
    "ask": ("send a message, show the replies", ('ask("orders", DescribeSagas())',)),
    "tell": ("send a message, no reply (write)", ('tell("orders", ResumeTrading("ok"))',)),
    "halt": ("emergency stop (write, confirmed)", ("halt()", 'halt("news", flatten=True)')),
    "resume": ("trading ACTIVE again (write, confirmed)", ("resume()", "resume(force=True)")),
}


def _help(table: Mapping[str, Builtin], session: Session) -> Builtin:
    def help(what: Any = None) -> Result:
        """``help()`` lists the built-ins; ``help(name)`` (a name, a built-in or a
        message class) shows its documentation."""
        if what is None:
            lines = ["built-ins (help(name) for one; message classes such as "
                     "DescribeSagas are in scope too):"]
            for b in table.values():
                usage = b.usage if len(b.usage) <= 40 else f"{b.usage}\n  {'':<40}"
                lines.append(f"  {usage:<40} {b.summary}")
                lines += [f"      e.g. {example}" for example in b.examples]
            shown = "\n".join(lines)
        else:
            found = table.get(what) if isinstance(what, str) else what
            if found is None and isinstance(what, str):
                found = getattr(messages, what, None)
            if found is None:
                raise ReplError(f"help: no built-in or message named {what!r}")
            shown = _doc(found)
        session.record(shown)
        return Result(shown, shown)
    return Builtin("help", help, "this list, or help(name) for one", ("help()", 'help("trace")'))


def _doc(thing: Any) -> str:
    if isinstance(thing, Builtin):
        return "\n".join([thing.usage, "", thing.__doc__ or thing.summary,
                          *(f"  e.g. {e}" for e in thing.examples)])
    name = getattr(thing, "__name__", type(thing).__name__)
    return f"{name}{_plain_signature(thing)}\n\n{pyinspect.getdoc(thing) or 'no documentation'}"


def make_namespace(session: Session) -> dict[str, Any]:
    """The REPL's globals: every public name of ``messages``, then the built-ins."""
    namespace: dict[str, Any] = {"__name__": "__repl__"}
    namespace.update({name: getattr(messages, name) for name in messages.__all__})
    functions = _Builtins(session)
    table = {name: Builtin(name, getattr(functions, name), summary, examples)
             for name, (summary, examples) in _SUMMARIES.items()}
    table["help"] = _help(table, session)
    namespace.update(table)
    return namespace
