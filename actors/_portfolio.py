"""PortfolioActor: the one owner of cash, reservations, positions and P&L."""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import immutables
import structlog

from actors._base import EngineActor
from actors._published import Published
from actors.config import EngineConfig
from actors.journal import Append, JournalRecord
from messages import (
    ApplyFill,
    CashRefused,
    CashReleased,
    CashReserved,
    FillApplied,
    Inbox,
    Money,
    PricesProcessed,
    PricesUpdated,
    ReleaseCash,
    ReserveCash,
    SetTradingState,
    TradingState,
)

__all__ = ["PortfolioActor", "PortfolioSnapshot", "PositionKey", "PositionView"]

_log = structlog.get_logger("kitesaga.portfolio")

PositionKey = tuple[str, int]
"""(strategy, instrument_token): positions are kept per strategy."""


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

    ``conservation_error`` is zero whenever money is conserved exactly:
    initial cash = cash + reserved + margin + cost of open positions
    - realised P&L (gross) + charges paid.
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

    @property
    def conservation_error(self) -> int:
        """Paise unaccounted for (0 when the books balance)."""
        held = self.cash + self.reserved + self.margin + self.open_cost
        return self.initial_cash - (held - self.realised + self.charges)

    @property
    def open_positions(self) -> int:
        """Number of non-flat positions."""
        return sum(1 for p in self.positions.values() if p.quantity)

    @property
    def net_pnl(self) -> int:
        """Realised + unrealised - charges, in paise."""
        return self.realised + self.unrealised - self.charges


class _Position:
    __slots__ = ("charges", "cost", "margin", "quantity", "realised")

    def __init__(self) -> None:
        self.quantity = 0
        self.cost = 0
        self.realised = 0
        self.charges = 0
        self.margin = 0


def _share(total: int, part: int, whole: int) -> int:
    """``total * part / whole`` rounded toward zero, exact when part == whole."""
    if part >= whole:
        return total
    magnitude = abs(total) * part // whole
    return magnitude if total >= 0 else -magnitude


class PortfolioActor(EngineActor):
    """Owns cash, reservations keyed by saga, positions and P&L; nothing else may.

    Contract:
    - ReserveCash moves free cash to the saga's reservation (CashReserved) or
      refuses (CashRefused) without changing anything.
    - ApplyFill pays a buy from the saga's reservation first, then free cash;
      books a sell's proceeds to free cash; opening a short blocks margin.
      A fill_id already applied changes nothing (FillApplied duplicate=True).
    - ReleaseCash returns the saga's remaining reservation (CashReleased).
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
                 history: Iterable[ReserveCash | ReleaseCash | ApplyFill] = ()) -> None:
        super().__init__()
        self._initial = initial_cash.paise
        self._cash = initial_cash.paise
        self._reservations: dict[str, int] = {}
        self._positions: dict[PositionKey, _Position] = {}
        self._views: immutables.Map[PositionKey, PositionView] = immutables.Map()
        self._by_token: dict[int, set[PositionKey]] = {}
        self._marks: dict[int, int] = {}
        self._applied: set[str] = set()
        self._applied_order: deque[str] = deque()
        self._dedupe_window = dedupe_window
        self._fill_count = 0
        self._reserved = 0
        self._margin = 0
        self._open_cost = 0
        self._realised = 0
        self._charges = 0
        self._unrealised = 0
        self._pos_unrealised: dict[PositionKey, int] = {}
        self._loss_limit = daily_loss_limit.paise
        self._control = trading_control
        self._price_source = price_source
        self._dirty = False
        self._halt_sent = False
        self._journal = journal
        self._records: list[JournalRecord] = []
        self._replaying = True
        for message in history:  # start-up: the journal's inputs, in order, rebuild the state
            self._handle(message)
        self._replaying = False
        self._records.clear()
        self.snapshot: Published[PortfolioSnapshot] = Published(self._build())

    # -- messages ------------------------------------------------------------

    def on_receive(self, message: Any) -> Any:
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
        else:
            self.unhandled(message)

    def _record(self, message: ReserveCash | ReleaseCash | ApplyFill) -> None:
        if self._journal is not None and not self._replaying:
            self._records.append(JournalRecord.of(message, message.saga_id))

    def _reserve(self, msg: ReserveCash) -> None:
        amount = msg.amount.paise
        if amount > self._cash:
            self.reply_after_publish(msg.reply_to, CashRefused(msg.saga_id, msg.amount,
                                                               Money(self._cash)))
            return
        self._record(msg)
        self._cash -= amount
        self._reserved += amount
        self._reservations[msg.saga_id] = self._reservations.get(msg.saga_id, 0) + amount
        self._changed()
        self.reply_after_publish(msg.reply_to, CashReserved(msg.saga_id, msg.amount))

    def _release(self, msg: ReleaseCash) -> None:
        self._record(msg)
        amount = self._reservations.pop(msg.saga_id, 0)
        self._reserved -= amount
        self._cash += amount
        self._changed()
        self.reply_after_publish(msg.reply_to, CashReleased(msg.saga_id, Money(amount)))

    def _take(self, saga_id: str, amount: int) -> None:
        """Pay ``amount`` from the saga's reservation first, then free cash."""
        held = self._reservations.get(saga_id, 0)
        from_reservation = min(held, amount)
        if held:
            self._reservations[saga_id] = held - from_reservation
            self._reserved -= from_reservation
        self._cash -= amount - from_reservation

    def _apply(self, msg: ApplyFill) -> None:
        fill = msg.fill
        key = (msg.strategy, fill.instrument_token)
        if fill.fill_id in self._applied:
            pos = self._positions.get(key)
            self.reply_after_publish(msg.reply_to, FillApplied(
                msg.saga_id, fill.fill_id, pos.quantity if pos else 0, Money(0), True,
                self._release_rest(msg)))
            return
        self._record(msg)
        self._remember(fill.fill_id)
        pos = self._positions.get(key)
        if pos is None:
            pos = self._positions[key] = _Position()
            self._by_token.setdefault(fill.instrument_token, set()).add(key)
        sign = fill.side.sign
        qty, price, charges = fill.quantity, fill.price.paise, fill.charges.paise
        before = (pos.cost, pos.realised, pos.charges, pos.margin)
        pos.charges += charges
        closing = 0 if pos.quantity == 0 or (pos.quantity > 0) == (sign > 0) else min(
            qty, abs(pos.quantity))
        if closing:
            removed = _share(pos.cost, closing, abs(pos.quantity))
            released = _share(pos.margin, closing, abs(pos.quantity))
            pos.margin -= released
            self._cash += released
            pos.cost -= removed
            pos.realised += -sign * closing * price - removed
            pos.quantity += sign * closing
        opening = qty - closing
        if opening:
            pos.quantity += sign * opening
            pos.cost += sign * opening * price
            if sign < 0:
                margin = msg.short_margin_per_unit.paise * opening
                self._take(msg.saga_id, margin)
                pos.margin += margin
        # cash legs of the trade itself
        if sign > 0:
            self._take(msg.saga_id, qty * price + charges)
        else:
            self._cash += qty * price - charges
        if self._cash < 0:
            _log.error("cash_negative", cash=self._cash, fill=fill.fill_id, saga=msg.saga_id)
        self._open_cost += pos.cost - before[0]
        self._realised += pos.realised - before[1]
        self._charges += pos.charges - before[2]
        self._margin += pos.margin - before[3]
        self._fill_count += 1
        self._views = self._views.set(key, PositionView(
            key[0], key[1], pos.quantity, pos.cost, pos.realised, pos.charges, pos.margin))
        self._revalue(key, pos)
        self._changed()
        self.reply_after_publish(msg.reply_to, FillApplied(
            msg.saga_id, fill.fill_id, pos.quantity, Money(pos.realised - before[1]),
            released=self._release_rest(msg)))

    def _release_rest(self, msg: ApplyFill) -> Money | None:
        if not msg.release_rest:
            return None
        amount = self._reservations.pop(msg.saga_id, 0)
        self._reserved -= amount
        self._cash += amount
        self._changed()
        return Money(amount)

    def _remember(self, fill_id: str) -> None:
        self._applied.add(fill_id)
        self._applied_order.append(fill_id)
        if len(self._applied_order) > self._dedupe_window:
            self._applied.discard(self._applied_order.popleft())

    def _revalue(self, key: PositionKey, pos: _Position) -> None:
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
                    self._revalue(key, self._positions[key])
                changed = True
        if changed:
            self._changed()
        self._ack_prices()

    def _ack_prices(self) -> None:
        if self._price_source is not None:
            self.tell_if_alive(self._price_source, PricesProcessed("portfolio"))

    # -- publication ---------------------------------------------------------

    def _build(self) -> PortfolioSnapshot:
        return PortfolioSnapshot(
            initial_cash=self._initial,
            cash=self._cash,
            reserved=self._reserved,
            margin=self._margin,
            open_cost=self._open_cost,
            realised=self._realised,
            charges=self._charges,
            unrealised=self._unrealised,
            fills_applied=self._fill_count,
            positions=self._views,
        )

    def _changed(self) -> None:
        self._dirty = True
        net = self._realised + self._unrealised - self._charges
        if (not self._halt_sent and not self._replaying and self._control is not None
                and self._loss_limit > 0
                and net <= -self._loss_limit):
            self._halt_sent = True
            loss = Money(-net)
            _log.warning("daily_loss_limit", loss=str(loss), limit=str(Money(self._loss_limit)))
            self._control.tell(SetTradingState(
                TradingState.HALTED, f"daily loss {loss} reached the limit "
                                     f"{Money(self._loss_limit)}"))


