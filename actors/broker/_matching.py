"""The paper broker's matching engine: orders, fills, charges and the broker's account.

Pure and single-threaded: the owning actor calls it one message at a time.
Randomness (injected faults) comes only from a seeded ``random.Random``, so a
seed and a sequence of calls reproduce the same run.
"""

from __future__ import annotations

import random
from collections import deque
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal
from enum import StrEnum

from actors.broker._account import BrokerAccount
from actors.broker._charges import ChargeSchedule, segment_for
from actors.broker._crossing import crossing_price, triggered
from actors.config._schema import PaperConfig
from actors.market._calendar import IST
from messages import (
    Fill,
    Instrument,
    Money,
    OrderLeg,
    OrderRequest,
    OrderState,
    OrderStatus,
    OrderType,
    Price,
    Side,
)

__all__ = ["DRAW_SCALE", "FIRST_FILL_ID", "FIRST_ORDER_ID", "TERMINAL_ORDER_CAP",
           "MatchingEngine", "PlaceOutcome", "PlaceResult"]

TERMINAL_ORDER_CAP = 100_000
"""Terminal orders kept for queries; beyond this the oldest are forgotten."""

FIRST_ORDER_ID = 100_000_000_000_001
"""First broker order id: numeric and 15 digits, like Kite's."""

FIRST_FILL_ID = 10_000_001
"""First fill (trade) id: numeric, like Kite's trade ids."""

DRAW_SCALE = 1_000_000
"""Resolution of fault draws: a ratio r fires when randrange(DRAW_SCALE) < r * DRAW_SCALE."""

_BPS = Decimal(10_000)


class PlaceOutcome(StrEnum):
    """What the broker said to a place call."""

    PLACED = "PLACED"
    REJECTED = "REJECTED"
    UNKNOWN = "UNKNOWN"


@dataclass(frozen=True, slots=True)
class PlaceResult:
    """The answer to :meth:`MatchingEngine.place`.

    Contract: REJECTED carries a ``reason`` and no ``state`` (nothing was
    registered). PLACED and UNKNOWN carry the order's ``state`` right after
    placement (with every fill so far). UNKNOWN: the order IS registered and
    keeps working, but the caller must report OrderOutcomeUnknown (``reason``).
    """

    outcome: PlaceOutcome
    tag: str
    state: OrderState | None = None
    reason: str = ""

    def __post_init__(self) -> None:
        rejected = self.outcome is PlaceOutcome.REJECTED
        if (self.state is None) != rejected:
            raise ValueError(f"state: a {self.outcome.value} result "
                             f"{'takes none' if rejected else 'needs one'}, got {self.state!r}")
        if self.outcome is not PlaceOutcome.PLACED and not self.reason:
            raise ValueError(f"reason: a {self.outcome.value} result needs one")

    @property
    def broker_order_id(self) -> str | None:
        """The registered order's id (None when rejected)."""
        return None if self.state is None else self.state.broker_order_id


@dataclass(slots=True, eq=False)
class _Order:
    """One registered order; mutable, owned by the engine alone."""

    order_id: str
    request: OrderRequest
    segment: str
    status: OrderStatus
    working_type: OrderType  # LIMIT once an SL triggers or a partial remainder rests
    limit: Money | None
    margin_per_unit: Money  # short margin for each unit this SELL opens short
    need: Money  # funds blocked at placement for the whole quantity
    fills: list[Fill] = field(default_factory=list)
    filled: int = 0
    value: int = 0  # paise traded
    reported: int = 0  # fills already carried by a published state
    reason: str = ""

    @property
    def leg(self) -> OrderLeg:
        return self.request.leg

    @property
    def remaining(self) -> int:
        return self.leg.quantity - self.filled


def _ist_date(now: datetime) -> date:
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError(f"now: must be timezone-aware, got {now!r}")
    return now.astimezone(IST).date()


def _check_ratio(name: str, value: Decimal) -> None:
    if not isinstance(value, Decimal) or not value.is_finite() or not 0 <= value <= 1:
        raise ValueError(f"paper.{name}: must be a Decimal in [0, 1], got {value!r}")


class MatchingEngine:
    """A simulated broker: validates, fills and charges orders, and keeps its own account.

    Contract:
    * ``account`` (a :class:`BrokerAccount`) is the broker's view of funds;
      a working order holds its need (BUY: value + estimated charges; SELL:
      margin of what it takes short) pro rata to its unfilled quantity.
    * ``place`` rejects an order with no known price, a stop whose trigger the
      last price has already crossed, or a need above ``available``. Then it
      draws faults in order from the seeded generator: reject, unknown outcome,
      stuck (OPEN PENDING until cancelled, never fills), partial (a MARKET or
      marketable LIMIT order of two lots or more fills 1..lots-1 lots now; the
      rest rests as a LIMIT — a MARKET one at that fill price — and fills on a
      later price that crosses it).
    * MARKET fills at ask (buy) / bid (sell), or last without a quote, worsened
      by ``slippage_bps`` and rounded to the tick away from the trader (buys
      up, sells down, never below one tick). LIMIT fills when the quote
      crosses, at the quote. SL/SL-M trigger on last (buy: last >= trigger;
      sell: last <= trigger), then act as LIMIT / MARKET.
    * Each fill has a unique id and its charges (brokerage on an order's first
      fill only; rates of the IST trade date). States returned by ``place``,
      ``on_price`` and ``cancel`` carry only fills not carried before; states
      from ``query`` and ``find_by_tag`` carry every fill (idempotent by id).
    * Memory is bounded: beyond ``terminal_cap`` terminal orders, the oldest
      are forgotten (``query`` then raises ``ValueError``).
    """

    def __init__(self, paper: PaperConfig, schedule: ChargeSchedule, initial_cash: Money,
                 short_margin_pct: Decimal, rng_seed: int,
                 terminal_cap: int = TERMINAL_ORDER_CAP) -> None:
        for name in ("partial_fill_ratio", "reject_ratio", "unknown_outcome_ratio",
                     "stuck_ratio"):
            _check_ratio(name, getattr(paper, name))
        if not paper.slippage_bps.is_finite() or paper.slippage_bps < 0:
            raise ValueError(f"paper.slippage_bps: must be >= 0, got {paper.slippage_bps!r}")
        if terminal_cap < 1:
            raise ValueError(f"terminal_cap: must be >= 1, got {terminal_cap!r}")
        self._paper = paper
        self._schedule = schedule
        self._terminal_cap = terminal_cap
        self._rng = random.Random(rng_seed)
        self._account = BrokerAccount(initial_cash, short_margin_pct)
        self._orders: dict[str, _Order] = {}
        self._by_tag: dict[str, dict[str, None]] = {}
        self._resting: dict[int, dict[str, None]] = {}  # token -> working orders, time order
        self._terminal: deque[str] = deque()
        self._next_order_id = FIRST_ORDER_ID
        self._next_fill_id = FIRST_FILL_ID

    @property
    def account(self) -> BrokerAccount:
        """The broker-side account (read it; only the engine changes it)."""
        return self._account

    @property
    def working_orders(self) -> int:
        """Orders not yet terminal (including stuck ones)."""
        return len(self._orders) - len(self._terminal)

    @property
    def known_orders(self) -> int:
        """Orders held in memory (working plus retained terminal ones)."""
        return len(self._orders)

    def place(self, request: OrderRequest, now: datetime, price: Price | None) -> PlaceResult:
        """Validate, draw faults for and register ``request``; fill it if it can fill now."""
        trade_date = _ist_date(now)
        leg = request.leg
        instrument = leg.instrument
        if price is None:
            return self._refuse(request, f"no market price for {instrument.key}")
        if price.instrument_token != instrument.instrument_token:
            raise ValueError(f"price: token {price.instrument_token} is not that of "
                             f"{instrument.key} ({instrument.instrument_token})")
        if leg.trigger_price is not None and triggered(leg.side, leg.trigger_price, price.last):
            return self._refuse(request, f"trigger price {leg.trigger_price} of a stop-loss "
                                         f"{leg.side.value} order is already crossed by the "
                                         f"last price {price.last}")
        segment = segment_for(instrument, leg.product)
        reference = self._reference_price(leg, price)
        margin_per_unit = self._account.margin_per_unit(leg, reference)
        value = reference * leg.quantity
        charges = Money(0) if leg.side is Side.SELL else \
            self._schedule.charges(trade_date, segment, Side.BUY, value, True).total
        need = self._account.need(leg, value, charges, margin_per_unit)
        available = self._account.available
        if need > available:
            return self._refuse(request, f"insufficient funds: need {need}, "
                                         f"available {available}")
        rejected, unknown, stuck, partial = (
            self._chance(self._paper.reject_ratio),
            self._chance(self._paper.unknown_outcome_ratio),
            self._chance(self._paper.stuck_ratio),
            self._chance(self._paper.partial_fill_ratio),
        )
        if rejected:
            return self._refuse(request, "paper broker: simulated rejection (reject_ratio)")
        order = self._register(request, segment, margin_per_unit, need)
        if stuck:
            order.status = OrderStatus.OPEN_PENDING
        elif leg.order_type in (OrderType.SL, OrderType.SL_M):
            order.status = OrderStatus.TRIGGER_PENDING
            self._rest(order)
        elif partial and leg.quantity > instrument.lot_size and \
                (crossing := crossing_price(leg, price)) is not None:
            lots = self._rng.randint(1, leg.quantity // instrument.lot_size - 1)
            if leg.order_type is OrderType.MARKET:
                crossing = self._market_price(instrument, leg.side, price)
                order.working_type, order.limit = OrderType.LIMIT, crossing
            self._fill(order, lots * instrument.lot_size, crossing, now)
            self._rest(order)
        else:
            self._rest(order)
            self._match(order, price, now)
        state = self._publish(order)
        if unknown:
            return PlaceResult(PlaceOutcome.UNKNOWN, request.tag, state,
                               "paper broker: simulated lost answer (unknown_outcome_ratio)")
        return PlaceResult(PlaceOutcome.PLACED, request.tag, state)

    def on_price(self, price: Price, now: datetime) -> list[OrderState]:
        """Match the working orders on ``price``'s instrument; return the states that changed."""
        _ist_date(now)
        ids = list(self._resting.get(price.instrument_token, {}))
        orders = [self._orders[order_id] for order_id in ids]
        changed = [order for order in orders if self._match(order, price, now)]
        return [self._publish(order) for order in changed]

    def cancel(self, broker_order_id: str, now: datetime) -> OrderState:
        """Cancel a working order's unfilled rest; a terminal order is returned as it is."""
        _ist_date(now)
        order = self._get(broker_order_id)
        if not order.status.is_terminal:
            self._finish(order, OrderStatus.CANCELLED, "cancelled by the user")
        return self._publish(order)

    def query(self, broker_order_id: str) -> OrderState:
        """The order's current state with every fill so far; ``ValueError`` if unknown."""
        order = self._get(broker_order_id)
        return self._state(order, tuple(order.fills))

    def find_by_tag(self, tag: str) -> list[OrderState]:
        """Every order held under ``tag``, oldest first, each with every fill so far."""
        return [self.query(order_id) for order_id in self._by_tag.get(tag, {})]

    def _market_price(self, instrument: Instrument, side: Side, price: Price) -> Money:
        return self._slipped(instrument, side, price.fill_price(side).paise)

    def _slipped(self, instrument: Instrument, side: Side, base: int) -> Money:
        tick = instrument.tick_size.paise
        raw = Decimal(base) * (_BPS + side.sign * self._paper.slippage_bps) / _BPS / tick
        ticks = raw.to_integral_value(ROUND_CEILING if side is Side.BUY else ROUND_FLOOR)
        return Money(max(1, int(ticks)) * tick)

    def _reference_price(self, leg: OrderLeg, price: Price) -> Money:
        """The price an order is expected to fill at, for funds and margin checks."""
        if leg.limit_price is not None:
            return leg.limit_price
        if leg.trigger_price is not None:
            return self._slipped(leg.instrument, leg.side, leg.trigger_price.paise)
        return self._market_price(leg.instrument, leg.side, price)

    def _chance(self, ratio: Decimal) -> bool:
        return Decimal(self._rng.randrange(DRAW_SCALE)) < ratio * DRAW_SCALE

    def _refuse(self, request: OrderRequest, reason: str) -> PlaceResult:
        return PlaceResult(PlaceOutcome.REJECTED, request.tag, None, reason)

    def _register(self, request: OrderRequest, segment: str, margin_per_unit: Money,
                  need: Money) -> _Order:
        order_id = str(self._next_order_id)
        self._next_order_id += 1
        leg = request.leg
        order = _Order(order_id, request, segment, OrderStatus.OPEN, leg.order_type,
                       leg.limit_price, margin_per_unit, need)
        self._orders[order_id] = order
        self._by_tag.setdefault(request.tag, {})[order_id] = None
        self._set_block(order)
        return order

    def _rest(self, order: _Order) -> None:
        self._resting.setdefault(order.leg.instrument.instrument_token, {})[order.order_id] = None

    def _get(self, broker_order_id: str) -> _Order:
        order = self._orders.get(broker_order_id)
        if order is None:
            raise ValueError(f"broker_order_id: no order {broker_order_id!r} at the paper broker")
        return order

    def _match(self, order: _Order, price: Price, now: datetime) -> bool:
        """Trigger and/or fill ``order`` on ``price``; True if its state changed."""
        leg = order.leg
        changed = False
        if order.status is OrderStatus.TRIGGER_PENDING:
            if leg.trigger_price is None or not triggered(leg.side, leg.trigger_price,
                                                           price.last):
                return False
            order.status = OrderStatus.OPEN
            is_sl = leg.order_type is OrderType.SL
            order.working_type = OrderType.LIMIT if is_sl else OrderType.MARKET
            changed = True
        if order.status is not OrderStatus.OPEN:
            return changed
        if order.working_type is OrderType.MARKET:
            self._fill(order, order.remaining,
                       self._market_price(leg.instrument, leg.side, price), now)
            return True
        quote = price.fill_price(leg.side)
        limit = order.limit
        if limit is None or (quote > limit if leg.side is Side.BUY else quote < limit):
            return changed
        self._fill(order, order.remaining, quote, now)
        return True

    def _fill(self, order: _Order, quantity: int, price: Money, now: datetime) -> None:
        leg = order.leg
        token = leg.instrument.instrument_token
        value = price * quantity
        charges = self._schedule.charges(_ist_date(now), order.segment, leg.side, value,
                                         include_brokerage=not order.fills).total
        fill = Fill(str(self._next_fill_id), order.order_id, token, leg.side, quantity, price,
                    charges, now)
        self._next_fill_id += 1
        order.fills.append(fill)
        order.filled += quantity
        order.value += value.paise
        self._account.settle(token, leg.side, quantity, value, charges, order.margin_per_unit)
        if order.remaining == 0:
            self._finish(order, OrderStatus.COMPLETE)
        else:
            self._set_block(order)

    def _set_block(self, order: _Order) -> None:
        held = 0 if order.status.is_terminal else \
            order.need.paise * order.remaining // order.leg.quantity
        self._account.hold(order.order_id, Money(held))

    def _finish(self, order: _Order, status: OrderStatus, reason: str = "") -> None:
        order.status, order.reason = status, reason
        self._set_block(order)
        token = order.leg.instrument.instrument_token
        resting = self._resting.get(token)
        if resting is not None:
            resting.pop(order.order_id, None)
            if not resting:
                del self._resting[token]
        self._terminal.append(order.order_id)
        while len(self._terminal) > self._terminal_cap:
            self._forget(self._terminal.popleft())

    def _forget(self, order_id: str) -> None:
        order = self._orders.pop(order_id)
        tagged = self._by_tag[order.request.tag]
        del tagged[order_id]
        if not tagged:
            del self._by_tag[order.request.tag]

    def _publish(self, order: _Order) -> OrderState:
        """The state to push: it carries the fills no earlier pushed state carried."""
        new = tuple(order.fills[order.reported:])
        order.reported = len(order.fills)
        return self._state(order, new)

    def _state(self, order: _Order, fills: tuple[Fill, ...]) -> OrderState:
        average = None
        if order.filled:
            average = Money((2 * order.value + order.filled) // (2 * order.filled))
        return OrderState(order.order_id, order.request.tag, order.status, order.leg.quantity,
                          order.filled, average, fills, order.reason)
