"""The journal's projection: an incremental, serialisable fold of its records.

:class:`Projection` takes the journal's records one at a time (:meth:`add`)
and keeps exactly what start-up needs: the portfolio's :class:`Ledger`, the
unfinished sagas with their orders and fills, the book of managed positions,
the saga-id prefixes used, the opening cash and (paper) the broker's compact
:class:`PaperBook`. It keeps them as the journal's own JSON bodies, so adding
a record is a few dict operations (no message is rebuilt), a snapshot body is
a copy (:meth:`to_body`), and messages are rebuilt once, at start-up
(:meth:`recovered`). Whatever the snapshot seq, ``from_body(snapshot)`` plus
the tail equals the fold of every record (``tests/test_snapshots.py``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from decimal import Decimal
from typing import Any

from actors._journaled import BookRecord, OrderRecord, Recovered, SagaRecord
from actors._ledger import Ledger
from actors.broker._restore import PaperBook
from actors.config import EngineConfig
from actors.journal import JournalRecord
from messages import Fill, Product, SagaKind, from_dict

__all__ = ["SNAPSHOT_FORMAT", "Projection"]

SNAPSHOT_FORMAT = 1
"""The layout of a snapshot body (its ``format``); see :meth:`Projection.from_body`."""

_DEFAULT_WINDOW = EngineConfig().fill_dedupe_window
_ORDER_KEYS = ("tag", "index", "role", "attempt", "leg", "broker_order_id", "fills", "margin")


def _order_copy(order: dict[str, Any]) -> dict[str, Any]:
    return {**order, "fills": list(order["fills"])}


class Projection:
    """The fold of a journal's records, one :meth:`add` at a time.

    Contract:
    - :meth:`add` folds one record (in seq order); an unknown kind or a body
      that cannot be folded raises ValueError naming the kind and the saga.
    - ``events`` counts the records folded, snapshot included: after folding
      events 1..n it is n.
    - Portfolio inputs are facts: a journaled ReserveCash is booked even if
      the cash it needs only arrives with a later ``opening`` record (a
      journal written before openings were recorded).
    - The first ``opening`` record sets the opening cash; later ones are
      ignored.
    - Only unfinished sagas' orders are kept: an ``ended`` record drops the
      saga with its orders (a fill for an order no longer kept still changes
      the ledger, but not the paper broker's account).
    - :meth:`to_body` is plain JSON and shares nothing with the projection;
      ``from_body(p.to_body())`` is a projection equal to ``p`` (``==``).
    - :meth:`recovered` rebuilds the messages and hands out copies: the
      projection may go on folding on another thread.
    - Not thread-safe: one thread at a time.
    """

    def __init__(self, dedupe_window: int = _DEFAULT_WINDOW,
                 paper_margin_pct: Decimal | None = None) -> None:
        self.ledger = Ledger(0, dedupe_window)
        self.paper = PaperBook(paper_margin_pct) if paper_margin_pct is not None else None
        self.opening: int | None = None
        self.halted: str | None = None
        self.events = 0
        self._sagas: dict[str, dict[str, Any]] = {}
        self._by_tag: dict[str, dict[str, Any]] = {}  # orders of unfinished sagas, in order
        self._by_broker_id: dict[str, dict[str, Any]] = {}
        self._book: dict[tuple[str, int], dict[str, Any]] = {}
        self._prefixes: set[str] = set()

    # -- folding ------------------------------------------------------------------------

    def add_all(self, records: Iterable[JournalRecord]) -> None:
        """:meth:`add` each record, in order."""
        for record in records:
            self.add(record)

    def add(self, record: JournalRecord) -> None:
        """Fold one record."""
        try:
            self._add(record.kind, record.body, record.saga_id or "")
        except (KeyError, TypeError, ValueError, AttributeError) as bad:
            raise ValueError(f"kind: cannot fold a {record.kind!r} record (saga "
                             f"{record.saga_id or '-'}): {type(bad).__name__}: {bad}") from None
        self.events += 1

    def _add(self, kind: str, body: Mapping[str, Any], saga_id: str) -> None:
        if kind == "ApplyFill":
            self._apply(body)
        elif kind == "ReserveCash":
            self.ledger.reserve(body["saga_id"], body["amount"], force=True)
        elif kind == "ReleaseCash":
            self.ledger.release(body["saga_id"])
        elif kind == "saga":
            self._sagas[saga_id] = {"saga_id": saga_id, "body": dict(body), "tags": [],
                                    "release_sent": False}
            self._prefixes.add(saga_id[:2])
        elif kind == "order":
            saga = self._sagas.get(saga_id)
            if saga is not None:  # OrderActor records a saga before its orders
                order = {"tag": body["tag"], "index": body["index"], "role": body["role"],
                         "attempt": body["attempt"], "leg": body["leg"],
                         "broker_order_id": None, "fills": [], "margin": None}
                saga["tags"].append(order["tag"])
                self._by_tag[order["tag"]] = order
        elif kind == "placed":
            broker_order_id = body["broker_order_id"]
            named = self._by_tag.get(body["tag"])
            if named is not None:
                named["broker_order_id"] = broker_order_id
                self._by_broker_id[broker_order_id] = named
            if self.paper is not None:
                self.paper.placed(broker_order_id)
        elif kind == "ended":
            self._end(saga_id)
        elif kind == "book":
            key = (body["strategy"], body["instrument"]["instrument_token"])
            if body["entry"] is None:
                self._book.pop(key, None)
            else:
                self._book[key] = dict(body)
        elif kind == "AdoptPosition":
            fill = body["fill"]
            self.ledger.book(None, body["strategy"], fill["instrument_token"],
                             1 if fill["side"] == "BUY" else -1, fill["quantity"],
                             fill["price"], fill["charges"], fill["fill_id"], 0, adopted=True)
        elif kind == "trading":
            halted = body["halted"]
            if halted is not None and not isinstance(halted, str):
                raise ValueError(f"halted: must be a text or null, got {halted!r}")
            self.halted = halted
        elif kind == "opening":
            if self.opening is None:
                self.opening = body["cash"]
                self.ledger.credit_opening(body["cash"])
        else:
            raise ValueError("not a record kitesaga writes")

    def _apply(self, body: Mapping[str, Any]) -> None:
        fill = body["fill"]
        saga_id = body["saga_id"]
        realised = self.ledger.book(
            saga_id, body["strategy"], fill["instrument_token"],
            1 if fill["side"] == "BUY" else -1, fill["quantity"], fill["price"],
            fill["charges"], fill["fill_id"], body.get("short_margin_per_unit", 0))
        if realised is not None:
            order = self._by_broker_id.get(fill["broker_order_id"])
            if order is not None:
                order["fills"].append(fill)
                if self.paper is not None:
                    self.paper.fill(order, fill)
        if body.get("release_rest"):
            self.ledger.release(saga_id)
            saga = self._sagas.get(saga_id)
            if saga is not None:
                saga["release_sent"] = True

    def _end(self, saga_id: str) -> None:
        saga = self._sagas.pop(saga_id, None)
        if saga is None:
            return
        for tag in saga["tags"]:
            order = self._by_tag.pop(tag, None)
            if order is not None and order["broker_order_id"] is not None:
                self._by_broker_id.pop(order["broker_order_id"], None)

    # -- start-up -----------------------------------------------------------------------

    def recovered(self) -> Recovered:
        """What start-up hands the actors, rebuilt as messages (copies throughout)."""
        orders: dict[str, OrderRecord] = {}
        for tag, raw in self._by_tag.items():
            orders[tag] = OrderRecord(
                tag, raw["index"], raw["role"], raw["attempt"], from_dict(dict(raw["leg"])),
                raw["broker_order_id"], [_fill(f) for f in raw["fills"]])
        unfinished: list[SagaRecord] = []
        for saga_id, saga in self._sagas.items():
            body = saga["body"]
            record = SagaRecord(
                saga_id, SagaKind(body["kind"]), body["strategy"],
                tuple(from_dict(dict(leg)) for leg in body["legs"]),
                from_dict(dict(body["rules"])),
                {int(k): int(v) for k, v in body["margins"].items()}, body["reason"],
                [orders[tag] for tag in saga["tags"] if tag in orders])
            record.release_sent = saga["release_sent"]
            unfinished.append(record)
        book: dict[tuple[str, int], BookRecord] = {}
        for key, raw in self._book.items():
            book[key] = BookRecord(raw["strategy"], from_dict(dict(raw["instrument"])),
                                   Product(raw["product"]), from_dict(dict(raw["rules"])),
                                   raw["entry"], raw["peak"])
        return Recovered(
            ledger=self.ledger.copy(), unfinished=unfinished, book=book,
            orders=list(orders.values()),
            paper=self.paper.copy() if self.paper is not None else None,
            prefixes=set(self._prefixes), opening=self.opening, halted=self.halted,
            events=self.events)

    # -- snapshots ------------------------------------------------------------------------

    def to_body(self) -> dict[str, Any]:
        """The projection as a snapshot body (plain JSON)."""
        return {
            "format": SNAPSHOT_FORMAT, "events": self.events, "opening": self.opening,
            "halted": self.halted,
            "ledger": self.ledger.to_body(),
            "sagas": [{**saga, "tags": list(saga["tags"])} for saga in self._sagas.values()],
            "orders": [_order_copy(order) for order in self._by_tag.values()],
            "book": list(self._book.values()), "prefixes": sorted(self._prefixes),
            "paper": self.paper.to_body() if self.paper is not None else None}

    @classmethod
    def from_body(cls, body: Mapping[str, Any], dedupe_window: int = _DEFAULT_WINDOW,
                  paper_margin_pct: Decimal | None = None) -> Projection:
        """Rebuild a projection from :meth:`to_body`. The paper book is the body's
        (``paper_margin_pct`` only says whether to keep one: a body without one gets
        a fresh book). Raises ValueError naming what is wrong."""
        if not isinstance(body, Mapping):
            raise ValueError(f"snapshot: must be a mapping, got {type(body).__name__}")
        if body.get("format") != SNAPSHOT_FORMAT:
            raise ValueError(f"format: this version reads snapshot format {SNAPSHOT_FORMAT}, "
                             f"got {body.get('format')!r}")
        out = cls(dedupe_window, paper_margin_pct)
        try:
            out._load(body, dedupe_window, paper_margin_pct)
        except (KeyError, TypeError, AttributeError) as bad:
            raise ValueError(f"snapshot: malformed ({type(bad).__name__}: {bad})") from None
        return out

    def _load(self, body: Mapping[str, Any], window: int, pct: Decimal | None) -> None:
        events, opening = body["events"], body["opening"]
        if type(events) is not int or events < 0:
            raise ValueError(f"events: must be an integer >= 0, got {events!r}")
        if opening is not None and type(opening) is not int:
            raise ValueError(f"opening: must be an integer or null, got {opening!r}")
        self.events, self.opening = events, opening
        halted = body.get("halted")  # absent from snapshots written before halts were kept
        if halted is not None and not isinstance(halted, str):
            raise ValueError(f"halted: must be a text or null, got {halted!r}")
        self.halted = halted
        self.ledger = Ledger.from_body(body["ledger"], window)
        for raw in body["orders"]:
            if set(raw) != set(_ORDER_KEYS) or not isinstance(raw["fills"], list):
                raise ValueError(f"orders: an order must have exactly {_ORDER_KEYS}, got "
                                 f"{sorted(raw)}")
            order = _order_copy(raw)
            self._by_tag[order["tag"]] = order
            if order["broker_order_id"] is not None:
                self._by_broker_id[order["broker_order_id"]] = order
        for raw in body["sagas"]:
            tags = [str(tag) for tag in raw["tags"]]
            missing = [tag for tag in tags if tag not in self._by_tag]
            if missing:
                raise ValueError(f"sagas: saga {raw['saga_id']!r} names orders not in the "
                                 f"snapshot: {missing}")
            self._sagas[raw["saga_id"]] = {"saga_id": raw["saga_id"], "body": dict(raw["body"]),
                                           "tags": tags,
                                           "release_sent": bool(raw["release_sent"])}
        for raw in body["book"]:
            self._book[(raw["strategy"], raw["instrument"]["instrument_token"])] = dict(raw)
        self._prefixes = {str(prefix) for prefix in body["prefixes"]}
        if pct is not None:
            paper = body["paper"]
            self.paper = PaperBook.from_body(paper) if paper is not None else PaperBook(pct)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Projection):
            return NotImplemented
        return self.to_body() == other.to_body()

    __hash__ = None  # type: ignore[assignment]  # mutable


def _fill(raw: Mapping[str, Any]) -> Fill:
    fill: Fill = from_dict(dict(raw))
    return fill
