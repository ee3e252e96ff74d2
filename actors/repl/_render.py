"""The REPL's text for each control reply (``--json`` prints the replies as they are).

Each function takes a reply dict as the control socket sends it and returns text; none
raises on a missing optional key (the engine's replies may grow).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from actors.cli import _control_text as text
from messages import Money

__all__ = ["actors", "ask", "ended_sagas", "generic", "inspect", "limits", "pretty",
           "prices", "saga", "sagas", "tell", "trace_event", "trace_summary"]


def pretty(value: Any) -> str:
    """A JSON value, indented (non-JSON values as their text)."""
    return json.dumps(value, indent=2, ensure_ascii=False, default=str)


def _num(value: Any, spec: str = ".1f", none: str = "-") -> str:
    if value is None:
        return none
    if isinstance(value, int | float) and not isinstance(value, bool):
        return format(value, spec)
    return str(value)


def _money(paise: Any) -> str:
    return str(Money(paise)) if isinstance(paise, int) and not isinstance(paise, bool) else "-"


def _time_of(at: Any) -> str:
    """The time part of an ISO timestamp, to the millisecond (``HH:MM:SS.fff``)."""
    if not isinstance(at, str):
        return "-"
    clock = at.partition("T")[2] or at
    for cut in ("+", "Z"):
        clock = clock.partition(cut)[0]
    whole, _, fraction = clock.partition(".")
    return f"{whole}.{(fraction + '000')[:3]}"


def generic(rows: Sequence[Mapping[str, Any]]) -> str:
    """A table of dict rows: one column per key, in order of first appearance."""
    keys: list[str] = []
    for row in rows:
        keys += [k for k in row if k not in keys]
    return text.table(keys, [[_cell(row.get(k)) for k in keys] for row in rows])


def _cell(value: Any) -> Any:
    if value is None:
        return "-"
    if isinstance(value, float):
        return format(value, ".2f")
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False)
    return value


def _actor_rows(rows: Sequence[Mapping[str, Any]]) -> list[list[Any]]:
    return [[a.get("name", "?"), a.get("state", "?"), a.get("mailbox", "-"),
             a.get("processed", "-"), _num(a.get("rate_per_s")), a.get("last_message") or "-",
             _num(a.get("last_age_s"), ".1f"),
             _num(a.get("busy_s"), ".1f"), a.get("failures", 0)] for a in rows]


def actors(result: Mapping[str, Any]) -> str:
    """``actors()``: one row per actor, then its last failure if any."""
    rows = result.get("actors") or []
    if not rows:
        return "no actors"
    lines = [text.table(("actor", "state", "mailbox", "processed", "msg/s", "last message",
                         "age s", "busy s", "failures"), _actor_rows(rows))]
    lines += [f"  {a.get('name')}: last failure: {a['last_failure']}" for a in rows
              if a.get("last_failure")]
    return "\n".join(lines)


def inspect(result: Mapping[str, Any]) -> str:
    """``inspect(name)``: the actor's counters, then its snapshot."""
    lines = [f"{result.get('name', '?')}"]
    stats = result.get("stats")
    if isinstance(stats, dict):
        lines.append(text.table(("state", "mailbox", "processed", "msg/s", "last message",
                                 "age s", "busy s", "failures"), [_actor_rows([stats])[0][1:]]))
        if stats.get("last_failure"):
            lines.append(f"last failure: {stats['last_failure']}")
    snapshot = result.get("snapshot")
    lines.append("snapshot: " + ("none" if snapshot is None else pretty(snapshot)))
    return "\n".join(lines)


def ended_sagas(rows: Sequence[Mapping[str, Any]]) -> str:
    """The sagas that ended, newest as the engine sends them."""
    if not rows:
        return "no ended sagas"
    return text.table(("saga", "kind", "strategy", "outcome", "started", "ended", "reason"),
                      [(s.get("saga_id"), s.get("kind"), s.get("strategy"), s.get("outcome"),
                        _time_of(s.get("started_at")), _time_of(s.get("ended_at")),
                        s.get("reason") or "-") for s in rows])


def sagas(result: Mapping[str, Any]) -> str:
    """``sagas()``: those in flight, and with ``open=False`` those that ended."""
    lines = [text.sagas({"sagas": result.get("sagas") or []})]
    if "ended" in result:
        lines += ["", "ended:", ended_sagas(result.get("ended") or [])]
    return "\n".join(lines)


def saga(result: Mapping[str, Any]) -> str:
    """``saga(id)``: where it stands now, then its journal timeline."""
    lines = [f"saga {result.get('saga_id')}"]
    live = result.get("live")
    lines.append("live: " + (text.sagas({"sagas": [live]}) if isinstance(live, dict)
                             else "not in flight"))
    timeline = result.get("timeline") or []
    lines.append(f"timeline ({len(timeline)} entries):" if timeline else "timeline: empty")
    lines += [f"  {e.get('seq', '?'):>6}  {_time_of(e.get('at'))}  {e.get('kind', '?'):<18} "
              f"{e.get('summary', '')}".rstrip() for e in timeline]
    return "\n".join(lines)


def prices(result: Mapping[str, Any]) -> str:
    """``prices()``: validation counters, then one row per instrument."""
    rejected = result.get("rejected") or {}
    lines = [f"max age {_num(result.get('max_age_s'), 'g')}s; accepted "
             f"{result.get('accepted', '-')}; rejected "
             + (", ".join(f"{k} {v}" for k, v in sorted(rejected.items())) or "none")]
    rows = result.get("prices") or []
    if not rows:
        lines.append("no prices")
    else:
        lines.append(text.table(
            ("instrument", "token", "last", "bid", "ask", "exchange time", "age s", "stale"),
            [(p.get("instrument"), p.get("token"), _money(p.get("last_paise")),
              _money(p.get("bid_paise")), _money(p.get("ask_paise")),
              _time_of(p.get("exchange_ts")), _num(p.get("age_s")),
              "STALE" if p.get("stale") else "") for p in rows]))
    return "\n".join(lines)


def _windows(windows: Any) -> Any:
    if isinstance(windows, list) and all(isinstance(w, dict) for w in windows):
        return ", ".join(f"{w.get('used', '?')}/{w.get('limit', '?')} per "
                         f"{_num(w.get('span_s'), 'g')}s" for w in windows) or "-"
    return windows


def limits(result: Mapping[str, Any]) -> str:
    """``limits()``: a row per permit class (whatever keys it carries; ``classes`` a
    list of rows or a mapping of name to row), then the day's order budget and the
    rest of the reply's keys."""
    classes = result.get("classes") or []
    if isinstance(classes, dict):
        classes = [{"name": name, **row} for name, row in classes.items()
                   if isinstance(row, dict)]
    rows = [{k: _windows(v) if k == "windows" else v for k, v in row.items()}
            for row in classes if isinstance(row, dict)]
    lines = [generic(rows) if rows else "no rate-limit classes"]
    day_limit = result.get("daily_order_limit", result.get("orders_per_day"))
    lines.append(f"orders today {_num(result.get('orders_today'), 'd')}/{_num(day_limit, 'd')}")
    shown = ("classes", "orders_today", "daily_order_limit", "orders_per_day")
    lines += [f"{k}: {json.dumps(v, ensure_ascii=False, default=str)}"
              for k, v in result.items() if k not in shown]
    return "\n".join(lines)


def trace_event(event: Mapping[str, Any]) -> str:
    """One traced message: ``HH:MM:SS.fff  Actor  Type  message``."""
    return (f"{_time_of(event.get('at'))}  {event.get('actor', '?'):<16} "
            f"{event.get('type', '?'):<20} {event.get('message', '')}").rstrip()


def trace_summary(summary: Mapping[str, Any]) -> str:
    """The trace's last line: how many, how many dropped, why it ended."""
    return (f"trace: {summary.get('count', 0)} message(s), {summary.get('dropped', 0)} "
            f"dropped; {summary.get('ended', 'ended')}")


def _reply(reply: Mapping[str, Any]) -> str:
    body = {k: v for k, v in reply.items() if k != "type"}
    return f"{reply.get('type', '?')} " + pretty(body).replace("\n", "\n  ")


def ask(result: Mapping[str, Any]) -> str:
    """``ask(actor, message)``: what was sent, then every reply."""
    replies = result.get("replies") or []
    head = (f"{result.get('actor')} answered {result.get('sent')} with "
            f"{len(replies)} repl{'y' if len(replies) == 1 else 'ies'}"
            + ("" if result.get("answered", True) else " (no answer within the wait)"))
    return "\n".join([head + (":" if replies else "")]
                     + [f"  {_reply(r)}" for r in replies if isinstance(r, dict)])


def tell(result: Mapping[str, Any]) -> str:
    """``tell(actor, message)``."""
    return f"told {result.get('actor')}: {result.get('sent')}"
