"""PortfolioActor: the one owner of cash, reservations, positions and P&L."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import immutables
import structlog

from actors._base import EngineActor
from actors._ledger import Ledger, LedgerPosition, PositionKey
from actors._published import Published
from actors.config import EngineConfig
from actors.journal import Append, JournalRecord
from messages import (
    AdoptPosition,
    ApplyFill,
    CashRefused,
    CashReleased,
    CashReserved,
    FillApplied,
    Inbox,
    Money,
    PositionAdopted,
    PricesProcessed,
    PricesUpdated,
    ReleaseCash,
    ReserveCash,
    SetTradingState,
    TradingState,
)

__all__ = ["PortfolioActor", "PortfolioSnapshot", "PositionKey", "PositionView"]

_log = structlog.get_logger("kitesaga.portfolio")


@dataclass(frozen=True, slots=True)
class PositionView:
    """One position as published: quantity signed (short < 0), all money in paise.

    ``cost`` is the signed cost basis of the open quantity (negative for a
    short); ``realised`` is gross of charges; ``margin`` is cash blocked for a
    short.
    """

    strategy: str
    instrument_token: int
    quantity: int
    cost: int
    realised: int
    charges: int
    margin: int

    @property
    def average_price(self) -> int:
        """Average entry price in paise (0 when flat)."""
        return abs(self.cost) // abs(self.quantity) if self.quantity else 0


@dataclass(frozen=True, slots=True)
class PortfolioSnapshot:
    """An immutable picture of the book, published after every change.

    ``transfers`` is the capital that came in with adopted positions (a BUY
    +value, a SELL -value). ``conservation_error`` is zero whenever money is
    conserved exactly: initial cash + transfers = cash + reserved + margin +
    cost of open positions - realised P&L (gross) + charges paid.
    """

    initial_cash: int
    cash: int
    reserved: int
    margin: int
    open_cost: int
    realised: int
    charges: int
    unrealised: int
    fills_applied: int
    positions: Mapping[PositionKey, PositionView] = field(default_factory=immutables.Map)
    transfers: int = 0

    @property
    def conservation_error(self) -> int:
        """Paise unaccounted for (0 when the books balance)."""
        held = self.cash + self.reserved + self.margin + self.open_cost
        return self.initial_cash + self.transfers - (held - self.realised + self.charges)

    @property
    def open_positions(self) -> int:
        """Number of non-flat positions."""
        return sum(1 for p in self.positions.values() if p.quantity)

    @property
    def net_pnl(self) -> int:
        """Realised + unrealised - charges, in paise."""
        return self.realised + self.unrealised - self.charges


class PortfolioActor(EngineActor):
    """Owns cash, reservations keyed by saga, positions and P&L; nothing else may.

    Contract:
    - ReserveCash moves free cash to the saga's reservation (CashReserved) or
      refuses (CashRefused) without changing anything.
    - ApplyFill pays a buy from the saga's reservation first, then free cash;
      books a sell's proceeds to free cash; opening a short blocks margin.
      A fill_id already applied changes nothing (FillApplied duplicate=True).
    - AdoptPosition books a position found outside the book with free cash
      unchanged: its value comes in as a capital transfer (``transfers``) and
      pays for it; no margin is blocked; only charges the fill carries are
      paid. Idempotent by fill_id (the fills' de-duplication set):
      PositionAdopted, ``duplicate=True`` for a repeat.
    - ReleaseCash returns the saga's remaining reservation (CashReleased).
    - The accounting itself is a :class:`actors._ledger.Ledger`; ``ledger``
      (start-up: folded from the journal) is the state to start from, else
      ``initial_cash`` with nothing booked.
    - With a ``journal``, every input that changes the books is recorded, and
      every reply waits for that record's commit (write-ahead).
    - Money is conserved exactly in paise after every message; the snapshot
      is republished after every change.
    - The last ``dedupe_window`` fill ids are remembered for de-duplication.
    - When net P&L falls to minus ``daily_loss_limit``, HALTED is requested
      from ``trading_control`` once.
    """

    def __init__(self, initial_cash: Money, daily_loss_limit: Money,
                 trading_control: Inbox | None = None,
                 dedupe_window: int = EngineConfig().fill_dedupe_window,
                 price_source: Inbox | None = None, journal: Inbox | None = None,
                 ledger: Ledger | None = None) -> None:
        super().__init__()
        self._ledger = ledger if ledger is not None else Ledger(initial_cash.paise,
                                                                dedupe_window)
        self._views: immutables.Map[PositionKey, PositionView] = immutables.Map()
        self._by_token: dict[int, set[PositionKey]] = {}
        self._marks: dict[int, int] = {}
        self._unrealised = 0
        self._pos_unrealised: dict[PositionKey, int] = {}
        self._loss_limit = daily_loss_limit.paise
        self._control = trading_control
        self._price_source = price_source
        self._dirty = False
        self._halt_sent = False
        self._journal = journal
        self._records: list[JournalRecord] = []
        for key, pos in self._ledger.positions():  # start-up: the books folded from the journal
            self._view(key, pos)
        self.snapshot: Published[PortfolioSnapshot] = Published(self._build())

    # -- messages ------------------------------------------------------------

    def receive(self, message: Any) -> Any:
        self._handle(message)
        if self._dirty:
            self.snapshot.publish(self._build())
            self._dirty = False
        if self._journal is not None and (self._records or self._replies):
            # write-ahead: the journal commits this message's record, then delivers its
            # replies (all replies ride the journal, so they stay in order)
            replies, self._replies = tuple(self._replies), []
            records, self._records = tuple(self._records), []
            self._journal.tell(Append(records, then=replies))
        else:
            self.send_replies()
        return None

    def _handle(self, message: Any) -> None:
        if isinstance(message, ApplyFill):
            self._apply(message)
        elif isinstance(message, PricesUpdated):
            self._mark(message)
        elif isinstance(message, ReserveCash):
            self._reserve(message)
        elif isinstance(message, ReleaseCash):
            self._release(message)
        elif isinstance(message, AdoptPosition):
            self._adopt(message)
        else:
            self.unhandled(message)

    def _record(self, message: ReserveCash | ReleaseCash | ApplyFill | AdoptPosition,
                saga_id: str | None) -> None:
        if self._journal is not None:
            self._records.append(JournalRecord.of(message, saga_id))

    def _reserve(self, msg: ReserveCash) -> None:
        if not self._ledger.reserve(msg.saga_id, msg.amount.paise):
            self.reply_after_publish(msg.reply_to, CashRefused(
                msg.saga_id, msg.amount, Money(self._ledger.cash)))
            return
        self._record(msg, msg.saga_id)
        self._changed()
        self.reply_after_publish(msg.reply_to, CashReserved(msg.saga_id, msg.amount))

    def _release(self, msg: ReleaseCash) -> None:
        self._record(msg, msg.saga_id)
        amount = self._ledger.release(msg.saga_id)
        self._changed()
        self.reply_after_publish(msg.reply_to, CashReleased(msg.saga_id, Money(amount)))

    def _apply(self, msg: ApplyFill) -> None:
        fill = msg.fill
        key = (msg.strategy, fill.instrument_token)
        realised = self._ledger.apply(msg)
        if realised is None:
            released = self._release_rest(msg)
            if released:  # the release is a change: journaled, so a replay repeats it
                self._record(msg, msg.saga_id)
            pos = self._ledger.position(key)
            self.reply_after_publish(msg.reply_to, FillApplied(
                msg.saga_id, fill.fill_id, pos.quantity if pos else 0, Money(0), True,
                released))
            return
        self._record(msg, msg.saga_id)
        if self._ledger.cash < 0:
            _log.error("cash_negative", cash=self._ledger.cash, fill=fill.fill_id,
                       saga=msg.saga_id)
        pos = self._booked(key)
        self.reply_after_publish(msg.reply_to, FillApplied(
            msg.saga_id, fill.fill_id, pos.quantity, Money(realised),
            released=self._release_rest(msg)))

    def _adopt(self, msg: AdoptPosition) -> None:
        fill = msg.fill
        key = (msg.strategy, fill.instrument_token)
        if self._ledger.adopt(msg) is None:
            pos = self._ledger.position(key)
            self.reply_after_publish(msg.reply_to, PositionAdopted(
                msg.strategy, fill.fill_id, fill.instrument_token, pos.quantity if pos else 0,
                duplicate=True))
            return
        self._record(msg, None)
        _log.warning("position_adopted", strategy=msg.strategy, fill=fill.fill_id,
                     instrument_token=fill.instrument_token, side=fill.side.value,
                     quantity=fill.quantity, price=str(fill.price), reason=msg.reason)
        pos = self._booked(key)
        self.reply_after_publish(msg.reply_to, PositionAdopted(
            msg.strategy, fill.fill_id, fill.instrument_token, pos.quantity))

    def _booked(self, key: PositionKey) -> LedgerPosition:
        """Republish and revalue the position ``key`` the ledger just booked."""
        pos = self._ledger.position(key)
        assert pos is not None
        self._view(key, pos)
        self._changed()
        return pos

    def _view(self, key: PositionKey, pos: LedgerPosition) -> None:
        self._by_token.setdefault(key[1], set()).add(key)
        self._views = self._views.set(key, PositionView(
            key[0], key[1], pos.quantity, pos.cost, pos.realised, pos.charges, pos.margin))
        self._revalue(key, pos)

    def _release_rest(self, msg: ApplyFill) -> Money | None:
        amount = self._ledger.release_rest(msg)
        if amount is None:
            return None
        self._changed()
        return Money(amount)

    def _revalue(self, key: PositionKey, pos: LedgerPosition) -> None:
        mark = self._marks.get(key[1])
        value = pos.quantity * mark - pos.cost if mark is not None and pos.quantity else 0
        self._unrealised += value - self._pos_unrealised.get(key, 0)
        self._pos_unrealised[key] = value

    def _mark(self, msg: PricesUpdated) -> None:
        changed = False
        for price in msg.prices:
            keys = self._by_token.get(price.instrument_token)
            if keys:
                self._marks[price.instrument_token] = price.last.paise
                for key in keys:
                    pos = self._ledger.position(key)
                    assert pos is not None
                    self._revalue(key, pos)
                changed = True
        if changed:
            self._changed()
        self._ack_prices()

    def _ack_prices(self) -> None:
        if self._price_source is not None:
            self.tell_if_alive(self._price_source, PricesProcessed("portfolio"))

    # -- publication ---------------------------------------------------------

    def _build(self) -> PortfolioSnapshot:
        ledger = self._ledger
        return PortfolioSnapshot(
            initial_cash=ledger.initial,
            cash=ledger.cash,
            reserved=ledger.reserved,
            margin=ledger.margin,
            open_cost=ledger.open_cost,
            realised=ledger.realised,
            charges=ledger.charges,
            unrealised=self._unrealised,
            fills_applied=ledger.fills_applied,
            positions=self._views,
            transfers=ledger.transfers,
        )

    def _changed(self) -> None:
        self._dirty = True
        net = self._ledger.realised + self._unrealised - self._ledger.charges
        if (not self._halt_sent and self._control is not None
                and self._loss_limit > 0
                and net <= -self._loss_limit):
            self._halt_sent = True
            loss = Money(-net)
            _log.warning("daily_loss_limit", loss=str(loss), limit=str(Money(self._loss_limit)))
            self._control.tell(SetTradingState(
                TradingState.HALTED, f"daily loss {loss} reached the limit "
                                     f"{Money(self._loss_limit)}"))


