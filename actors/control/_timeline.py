"""Sagas as the journal tells them, for the REPL's ``saga(id)`` and ``sagas(open=False)``:
each event of one saga with a one-line summary, and the sagas that ended last.

The journal file is opened read-only beside the running engine (SQLite's WAL lets
a reader in while the JournalActor writes); every row's checksum is checked."""

from __future__ import annotations

import json
import sqlite3
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

import actors.journal._records as fmt
from actors.journal import JournalError
from actors.market import IST
from messages import Money

__all__ = ["ended_sagas", "saga_events", "summary"]


def _connect(path: Path) -> sqlite3.Connection:
    if not path.is_file():
        raise JournalError(f"{path}: no journal there")
    fmt.check_header(path)
    try:
        return sqlite3.connect(f"file:{quote(str(path))}?mode=ro", uri=True)
    except sqlite3.Error as bad:
        raise JournalError(f"{path}: cannot open the journal read-only: {bad}") from None


def _rows(path: Path, sql: str, params: tuple[Any, ...]) -> list[dict[str, Any]]:
    conn = _connect(path)
    try:
        found = conn.execute(sql, params).fetchall()
    except sqlite3.Error as bad:
        raise JournalError(f"{path}: cannot read the journal: {bad}") from None
    finally:
        conn.close()
    out = []
    for seq, at, kind, saga_id, text, crc in found:
        fmt.check_row(path, "event", seq, text, crc)
        out.append({"seq": seq, "at": _ist(at), "kind": kind, "saga_id": saga_id,
                    "body": json.loads(text)})
    return out


def _ist(at: str) -> str:
    """A journal time (UTC, ISO-8601) in IST, the market's time."""
    try:
        return datetime.fromisoformat(at).astimezone(IST).isoformat(timespec="milliseconds")
    except ValueError:
        return at


def _money(paise: Any) -> str:
    return str(Money(paise)) if type(paise) is int else "?"


def _leg(leg: Any) -> str:
    if not isinstance(leg, dict):
        return "?"
    instrument = leg.get("instrument") or {}
    symbol = f"{instrument.get('exchange', '?')}:{instrument.get('tradingsymbol', '?')}"
    price = leg.get("limit_price")
    at = f" @ {_money(price)}" if price is not None else ""
    return f"{leg.get('side', '?')} {leg.get('quantity', '?')} {symbol} " \
           f"{leg.get('order_type', '')}{at}".rstrip()


def summary(kind: str, body: dict[str, Any]) -> str:
    """One line saying what a journal event of ``kind`` records."""
    if kind == "saga":
        legs = "; ".join(_leg(leg) for leg in body.get("legs", ()))
        reason = f" ({body['reason']})" if body.get("reason") else ""
        return f"{body.get('kind', '?')} for {body.get('strategy', '?')}: {legs}{reason}"
    if kind == "order":
        return (f"{body.get('role', '?')} order {body.get('tag', '?')} (leg {body.get('index')}, "
                f"attempt {body.get('attempt')}): {_leg(body.get('leg'))}")
    if kind == "placed":
        return f"{body.get('tag', '?')} placed: broker order {body.get('broker_order_id', '?')}"
    if kind == "ended":
        return f"ended {body.get('outcome', '?')}: {body.get('reason', '')}".rstrip(": ")
    if kind == "ReserveCash":
        return f"ReserveCash {_money(body.get('amount'))}"
    if kind == "ReleaseCash":
        return "ReleaseCash: what is left of the reservation returns to free cash"
    if kind in ("ApplyFill", "AdoptPosition"):
        fill = body.get("fill") or {}
        return (f"{kind} {fill.get('side', '?')} {fill.get('quantity', '?')} @ "
                f"{_money(fill.get('price'))} (charges {_money(fill.get('charges'))}, "
                f"fill {fill.get('fill_id', '?')})")
    return ", ".join(f"{k}={v}" for k, v in body.items() if not isinstance(v, (dict, list)))


def saga_events(path: Path, saga_id: str, limit: int) -> list[dict[str, Any]]:
    """The journal's events of ``saga_id`` in order (at most ``limit``), each with
    its ``summary``; [] when the journal holds none."""
    rows = _rows(path, "SELECT seq, at, kind, saga_id, body, crc FROM events "
                       "WHERE saga_id = ? ORDER BY seq LIMIT ?", (saga_id, limit))
    return [{"seq": r["seq"], "at": r["at"], "kind": r["kind"],
             "summary": summary(r["kind"], r["body"]), "body": r["body"]} for r in rows]


def ended_sagas(path: Path, n: int) -> list[dict[str, Any]]:
    """The ``n`` sagas that ended last, newest first: id, kind, strategy, outcome,
    reason, and when they started and ended (the journal's times)."""
    ended = _rows(path, "SELECT seq, at, kind, saga_id, body, crc FROM events "
                        "WHERE kind = 'ended' ORDER BY seq DESC LIMIT ?", (n,))
    ids = tuple(r["saga_id"] for r in ended)
    started: dict[str, dict[str, Any]] = {}
    if ids:
        marks = ",".join("?" * len(ids))
        for row in _rows(path, f"SELECT seq, at, kind, saga_id, body, crc FROM events "
                               f"WHERE kind = 'saga' AND saga_id IN ({marks})", ids):
            started[row["saga_id"]] = row
    out = []
    for row in ended:
        begun = started.get(row["saga_id"], {})
        body = begun.get("body", {})
        out.append({"saga_id": row["saga_id"], "kind": body.get("kind"),
                    "strategy": body.get("strategy"), "outcome": row["body"].get("outcome"),
                    "reason": row["body"].get("reason"), "started_at": begun.get("at"),
                    "ended_at": row["at"]})
    return out
