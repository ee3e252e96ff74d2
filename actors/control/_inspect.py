"""The control socket's introspection commands, behind the REPL's built-ins:
``actors``, ``inspect``, ``prices``, ``limits``, ``saga`` and the journal half of
``sagas``. They read the actors' :class:`~actors._introspect.ActorStats`, their
published snapshots and the journal file; none of them sends an actor a message
except ``saga`` (DescribeSagas, answered from OrderActor's inbox)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from enum import Enum, IntEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from actors._introspect import ActorHandle
from actors.control import _commands, _timeline
from actors.control._protocol import ControlError
from actors.control._views import Sources, rates
from actors.journal import JournalError, journal_path
from messages import Money, encode_scalar

if TYPE_CHECKING:
    from actors._system import Engine

__all__ = ["ALIASES", "actor_row", "actors", "find_actor", "inspect", "limits", "plain",
           "prices", "saga", "sagas"]

ALIASES = {"orders": "orders", "portfolio": "portfolio", "prices": "prices",
           "limits": "limiter", "limiter": "limiter", "sync": "sync", "journal": "journal",
           "broker": "broker", "feed": "feed", "supervisor": "supervisor",
           "strategies": "strategies"}
"""Short names of the engine's actors: alias -> the Engine attribute holding its ref."""
T = TypeVar("T")


def find_actor(engine: Engine, name: Any) -> ActorHandle:
    """The engine's actor called ``name``: its class name (any case) or an alias.
    ValueError naming the value and the choices otherwise."""
    if isinstance(name, str):
        wanted = name.strip()
        for handle in engine.actors:
            if handle.name.lower() == wanted.lower():
                return handle
        ref = getattr(engine, ALIASES.get(wanted.lower(), ""), None)
        for handle in engine.actors:
            if ref is not None and handle.ref is ref:
                return handle
    names = sorted({h.name for h in engine.actors} | {a for a in ALIASES
                                                      if getattr(engine, ALIASES[a], None)})
    raise ValueError(f"actor: no actor {name!r} in this engine (one of {', '.join(names)})")


def actor_row(handle: ActorHandle) -> dict[str, Any]:
    """One actor's line of ``actors()``."""
    view = handle.stats.read()
    alive = handle.ref.is_alive()
    return {"name": view.name,
            "state": "running" if alive else ("failed" if view.failures else "stopped"),
            "mailbox": handle.mailbox(), "processed": view.processed,
            "rate_per_s": view.rate_per_s, "last_message": view.last_message,
            "last_age_s": view.last_age_s, "busy_s": view.busy_s,
            "failures": view.failures, "last_failure": view.last_failure}


def actors(engine: Engine, sources: Sources, args: dict[str, Any]) -> dict[str, Any]:
    """Every actor of the engine, in start order."""
    return {"actors": [actor_row(h) for h in engine.actors]}


def plain(value: Any, limit: int, depth: int = 0) -> Any:
    """``value`` (a snapshot: dataclasses, mappings, Money...) as JSON-ready data;
    at most ``limit`` items per collection (the rest counted in a ``"…"`` entry)."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if depth > 12:
        return repr(value)[:200]
    if dataclasses.is_dataclass(value) and not isinstance(value, (type, Money)):
        return {f.name: plain(getattr(value, f.name), limit, depth + 1)
                for f in dataclasses.fields(value) if f.name not in ("reply_to", "then_to")}
    if isinstance(value, Mapping):
        out: dict[str, Any] = {}
        for i, (key, item) in enumerate(value.items()):
            if i == limit:
                out["…"] = f"{len(value) - limit} more"
                break
            if isinstance(key, tuple):
                text = ":".join(map(str, key))
            elif isinstance(key, Enum):  # an IntEnum's name says more than its number
                text = key.name if isinstance(key, IntEnum) else str(key.value)
            else:
                text = str(key)
            out[text] = plain(item, limit, depth + 1)
        return out
    if isinstance(value, (list, tuple, set, frozenset)):
        items = list(value)
        shown = [plain(item, limit, depth + 1) for item in items[:limit]]
        return shown + ([f"… {len(items) - limit} more"] if len(items) > limit else [])
    encoded = encode_scalar(value)  # Money, enums, dates, Decimal: as the journal writes them
    return repr(value)[:500] if encoded is value else encoded


def inspect(engine: Engine, sources: Sources, args: dict[str, Any]) -> dict[str, Any]:
    """One actor's published snapshot (JSON-ready) and its stats."""
    handle = find_actor(engine, args.get("name"))
    snapshot = None if handle.cell is None else plain(handle.cell.latest(),
                                                      engine.config.repl.inspect_max_items)
    return {"name": handle.name, "stats": actor_row(handle), "snapshot": snapshot}


def prices(engine: Engine, sources: Sources, args: dict[str, Any]) -> dict[str, Any]:
    """The validated prices PriceActor holds; ``stale`` False leaves out the ones
    older than ``prices.max_price_age_s``."""
    stale = args.get("stale", True)
    if type(stale) is not bool:
        raise ValueError(f"stale: must be true or false, got {stale!r}")
    book = sources.prices.latest()
    now = engine.clock.now()
    limit = engine.config.prices.max_price_age_s
    rows: list[dict[str, Any]] = []
    for token, price in book.prices.items():
        age = price.age_seconds(now)
        if age > limit and not stale:
            continue
        try:
            name = engine.instruments.get(token).key
        except ValueError:
            name = str(token)
        rows.append({"instrument": name, "token": token, "last_paise": price.last.paise,
                     "bid_paise": None if price.bid is None else price.bid.paise,
                     "ask_paise": None if price.ask is None else price.ask.paise,
                     "exchange_ts": price.exchange_ts.isoformat(), "age_s": round(age, 3),
                     "stale": age > limit})
    rows.sort(key=lambda row: row["instrument"])
    return {"max_age_s": limit, "accepted": book.accepted, "rejected": dict(book.rejected),
            "prices": rows}


def limits(engine: Engine, sources: Sources, args: dict[str, Any]) -> dict[str, Any]:
    """RateLimitActor's buckets: per endpoint class its grants, queue, 429s, cooling
    and sliding windows; the day's order budget."""
    return rates(sources.rates.latest())


def _journaled(read: Callable[[Path], T], engine: Engine) -> T:
    """``read`` the engine's journal file; a journal that cannot be read is a refusal
    naming the file, not an internal error."""
    try:
        return read(journal_path(engine.config, engine.config.engine.mode))
    except JournalError as bad:
        raise ControlError(str(bad), 1) from None


def sagas(engine: Engine, sources: Sources, args: dict[str, Any]) -> dict[str, Any]:
    """The sagas in flight; with ``open`` false also the last ``n`` that ended (from
    the journal)."""
    only_open = args.get("open", True)
    if type(only_open) is not bool:
        raise ValueError(f"open: must be true or false, got {only_open!r}")
    result = _commands.sagas(engine, args)
    if not only_open:
        n = args.get("n", 50)
        if type(n) is not int or not 0 < n <= engine.config.repl.saga_events_max:
            raise ValueError(f"n: must be a whole number from 1 to "
                             f"{engine.config.repl.saga_events_max} (repl.saga_events_max), "
                             f"got {n!r}")
        result["ended"] = _journaled(lambda path: _timeline.ended_sagas(path, n), engine)
    return result


def saga(engine: Engine, sources: Sources, args: dict[str, Any]) -> dict[str, Any]:
    """One saga: its live state if it is in flight, and every journal event it wrote."""
    saga_id = args.get("saga_id")
    if not isinstance(saga_id, str) or not saga_id.strip() or len(saga_id) > 64:
        raise ValueError(f"saga_id: must be a saga id such as 'a1b2c3d4', got {saga_id!r}")
    saga_id = saga_id.strip()
    live = [s for s in _commands.sagas(engine, {})["sagas"] if s["saga_id"] == saga_id]
    most = engine.config.repl.saga_events_max
    timeline = _journaled(lambda path: _timeline.saga_events(path, saga_id, most), engine)
    if not live and not timeline:
        raise ValueError(f"saga_id: no saga {saga_id!r} in flight or in the journal")
    return {"saga_id": saga_id, "live": live[0] if live else None, "timeline": timeline}
