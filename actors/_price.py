"""PriceActor: the one owner of validated prices, and the feeds' boundary check.

Feeds turn raw quotes into :class:`Price` values with :func:`parse_quote`
(anything that cannot become a Price is reported as ``PriceRejected``), then
offer them with ``RecordPrices``. PriceActor judges their age against the
engine clock, keeps the latest per instrument and fans changes out to
subscribers with coalescing, lock-free back-pressure.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from types import MappingProxyType
from typing import Any

import pykka
import structlog

from actors._base import EngineActor
from actors._published import Published
from actors.config._schema import PricesConfig
from messages import (
    Inbox,
    Money,
    Price,
    PriceRejected,
    PricesProcessed,
    PricesUpdated,
    RecordPrices,
    Subscribe,
)

__all__ = [
    "FUTURE_SKEW_S",
    "REASON_FUTURE",
    "REASON_OLDER_THAN_HELD",
    "REASON_STALE",
    "PriceActor",
    "PriceBook",
    "parse_quote",
]

_log = structlog.get_logger("kitesaga.prices")

FUTURE_SKEW_S = 5.0
"""A price stamped more than this many seconds after the engine clock is rejected."""

REASON_STALE = "stale"
REASON_FUTURE = "future"
REASON_OLDER_THAN_HELD = "older_than_held"
_FEED_PREFIX = "feed:"
_MAX_REASON_KEYS = 64  # bounds the rejection counters whatever feeds send
_REASON_OVERFLOW = "feed:other"
_MAX_REASON_LEN = 200  # PriceRejected.reason's limit

Rupees = float | int | Decimal


# --- the feeds' boundary -----------------------------------------------------


def _money(name: str, value: object) -> Money:
    if value is None:
        raise ValueError(f"{name}: missing, got None")
    if isinstance(value, bool) or not isinstance(value, (int, float, Decimal)):
        raise ValueError(f"{name}: must be a number of rupees, got {value!r}")
    money = Money.from_rupees(value, field=name)  # rejects NaN and infinity, naming name
    if money.paise <= 0:
        raise ValueError(f"{name}: must be > 0, got {value!r}")
    return money


def _book_side(name: str, value: object) -> Money | None:
    # Kite sends 0 for an empty side of the book: no quote there, not a zero price.
    if value is None or (isinstance(value, (int, float, Decimal)) and value == 0):
        return None
    return _money(name, value)


def _timestamp(name: str, value: object) -> datetime:
    if value is None:
        raise ValueError(f"{name}: missing, got None")
    if not isinstance(value, datetime):
        raise ValueError(f"{name}: must be a datetime, got {value!r}")
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{name}: must be timezone-aware, got naive {value.isoformat()}")
    return value


def parse_quote(
    instrument_token: int,
    last: Rupees | None,
    exchange_ts: datetime | None,
    received_ts: datetime | None,
    bid: Rupees | None = None,
    ask: Rupees | None = None,
) -> Price | PriceRejected:
    """Turn one raw quote (rupees as float, int or Decimal) into a Price, or say why not.

    Contract: never raises for bad data. ``last`` must be finite and > 0, both
    timestamps present and timezone-aware; ``bid``/``ask`` may be None, and 0
    (Kite's empty side of the book) is read as None, but a NaN, infinite or
    negative bid/ask, or bid above ask, rejects the quote. A rejection's reason
    names the field and its value, e.g. ``"last: must be finite, got nan"``.
    Send the PriceRejected to PriceActor so it is counted.
    """
    token = instrument_token if type(instrument_token) is int else 0
    try:
        if type(instrument_token) is not int or instrument_token <= 0:
            raise ValueError(f"instrument_token: must be an integer > 0, got {instrument_token!r}")
        return Price(
            instrument_token=instrument_token,
            last=_money("last", last),
            exchange_ts=_timestamp("exchange_ts", exchange_ts),
            received_ts=_timestamp("received_ts", received_ts),
            bid=_book_side("bid", bid),
            ask=_book_side("ask", ask),
        )
    except ValueError as exc:
        return PriceRejected(token, str(exc)[:_MAX_REASON_LEN])


# --- the actor ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PriceBook:
    """PriceActor's published state: an immutable snapshot any thread may read.

    ``prices`` maps instrument_token to the latest validated Price (judge its
    age with ``Price.age_seconds``). ``rejected`` counts by reason key:
    ``stale``, ``future``, ``older_than_held``, and ``feed:<field>`` for
    PriceRejected reports (``feed:other`` once 64 keys exist). ``max_pending``
    is the largest backlog (instruments) waiting for any one subscriber.
    """

    prices: Mapping[int, Price] = field(default_factory=lambda: MappingProxyType({}))
    accepted: int = 0
    rejected: Mapping[str, int] = field(default_factory=lambda: MappingProxyType({}))
    subscribers: int = 0
    max_pending: int = 0
    unknown_messages: int = 0

    @property
    def rejected_total(self) -> int:
        """All rejections, whatever the reason."""
        return sum(self.rejected.values())


@dataclass(slots=True)
class _Subscription:
    subscriber_id: str
    tokens: frozenset[int]
    reply_to: Inbox
    pending: dict[int, Price] = field(default_factory=dict)
    in_flight: bool = False


class PriceActor(EngineActor):
    """The one owner of the latest validated price of every instrument.

    Contract:
    - ``RecordPrices``: a price whose ``exchange_ts`` is more than
      ``config.max_price_age_s`` before ``now()``, more than
      :data:`FUTURE_SKEW_S` after it, or older than the price held for its
      token is rejected and counted by reason; the rest are kept (an
      identical repeat is kept silently) and fanned out.
    - ``PriceRejected`` (from feeds, see :func:`parse_quote`): counted under
      ``feed:<field>``.
    - ``Subscribe(subscriber_id, tokens, reply_to)``: empty ``tokens`` means
      every instrument. The subscriber first gets the prices already held for
      its tokens. Subscribing again with the same id replaces the
      subscription and resets its flow control.
    - Delivery is coalesced: at most one ``PricesUpdated`` is in flight per
      subscriber; changes wait in a per-instrument ``pending`` map (so memory
      is bounded by the number of instruments) and go out as one batch, the
      latest price per instrument, when ``PricesProcessed(subscriber_id)``
      arrives. A subscriber whose actor is dead is dropped.
    - Unknown messages are logged and counted. ``snapshot`` holds a
      :class:`PriceBook`, republished after every message.
    """

    def __init__(self, config: PricesConfig, now: Callable[[], datetime]) -> None:
        super().__init__()
        if not config.max_price_age_s > 0:
            raise ValueError(f"max_price_age_s: must be > 0, got {config.max_price_age_s!r}")
        self._max_age = timedelta(seconds=config.max_price_age_s)
        self._skew = timedelta(seconds=FUTURE_SKEW_S)
        self._now = now
        self._prices: dict[int, Price] = {}
        self._prices_view: Mapping[int, Price] = MappingProxyType({})
        self._prices_dirty = False
        self._accepted = 0
        self._rejected: dict[str, int] = {}
        self._unknown = 0
        self._subs: dict[str, _Subscription] = {}
        self._wants_all: list[_Subscription] = []
        self._wants_token: dict[int, list[_Subscription]] = {}
        self.snapshot: Published[PriceBook] = Published(PriceBook())

    def receive(self, message: Any) -> Any:
        if isinstance(message, RecordPrices):
            self._record(message.prices)
        elif isinstance(message, PricesProcessed):
            self._processed(message.subscriber_id)
        elif isinstance(message, PriceRejected):
            self._count_feed_rejection(message)
        elif isinstance(message, Subscribe):
            self._subscribe(message)
        else:
            self._unknown += 1
            self.unhandled(message)
        self._publish()
        return None

    # -- prices ----------------------------------------------------------------

    def _record(self, prices: tuple[Price, ...]) -> None:
        now = self._now()
        oldest, newest = now - self._max_age, now + self._skew
        held = self._prices
        changed: list[Price] = []
        stale = future = older = 0
        for price in prices:
            ts = price.exchange_ts
            if ts < oldest:
                stale += 1
                continue
            if ts > newest:
                future += 1
                continue
            token = price.instrument_token
            current = held.get(token)
            if current is not None:
                if ts < current.exchange_ts:
                    older += 1
                    continue
                if ts == current.exchange_ts and current == price:
                    self._accepted += 1
                    continue
            held[token] = price
            changed.append(price)
        self._accepted += len(changed)
        for reason, count in ((REASON_STALE, stale), (REASON_FUTURE, future),
                              (REASON_OLDER_THAN_HELD, older)):
            if count:
                self._count(reason, count)
        if changed:
            self._prices_dirty = True
            self._fan_out(changed)

    def _count(self, reason: str, count: int = 1) -> None:
        if reason not in self._rejected:
            if len(self._rejected) >= _MAX_REASON_KEYS:
                reason = _REASON_OVERFLOW
            _log.warning("price_rejected_first", reason=reason)
        self._rejected[reason] = self._rejected.get(reason, 0) + count

    def _count_feed_rejection(self, message: PriceRejected) -> None:
        field_name = message.reason.partition(":")[0].strip()[:32] or "unknown"
        _log.debug("price_rejected", token=message.instrument_token, reason=message.reason)
        self._count(_FEED_PREFIX + field_name)

    # -- subscribers -------------------------------------------------------------

    def _fan_out(self, changed: list[Price]) -> None:
        if not self._subs:
            return
        wants_all, wants_token = self._wants_all, self._wants_token
        for price in changed:
            token = price.instrument_token
            for sub in wants_all:
                sub.pending[token] = price
            for sub in wants_token.get(token, ()):
                sub.pending[token] = price
        ready = [sub for sub in self._subs.values() if sub.pending and not sub.in_flight]
        for sub in ready:
            self._send(sub)

    def _send(self, sub: _Subscription) -> None:
        """Send ``sub``'s pending batch; drop the subscription if its inbox is dead."""
        batch = PricesUpdated(tuple(sub.pending.values()))
        sub.pending = {}
        sub.in_flight = True
        try:
            sub.reply_to.tell(batch)
        except pykka.ActorDeadError:
            _log.warning("subscriber_dead", subscriber=sub.subscriber_id)
            self._drop(sub.subscriber_id)

    def _subscribe(self, message: Subscribe) -> None:
        if message.reply_to is None:
            _log.warning("subscribe_without_reply_to", subscriber=message.subscriber_id)
            return
        self._drop(message.subscriber_id)
        sub = _Subscription(message.subscriber_id, message.tokens, message.reply_to)
        self._subs[sub.subscriber_id] = sub
        if sub.tokens:
            for token in sub.tokens:
                self._wants_token.setdefault(token, []).append(sub)
                price = self._prices.get(token)
                if price is not None:
                    sub.pending[token] = price
        else:
            self._wants_all.append(sub)
            sub.pending.update(self._prices)
        if sub.pending:
            self._send(sub)

    def _drop(self, subscriber_id: str) -> None:
        sub = self._subs.pop(subscriber_id, None)
        if sub is None:
            return
        if sub.tokens:
            for token in sub.tokens:
                others = [s for s in self._wants_token[token] if s is not sub]
                if others:
                    self._wants_token[token] = others
                else:
                    del self._wants_token[token]
        else:
            self._wants_all = [s for s in self._wants_all if s is not sub]

    def _processed(self, subscriber_id: str) -> None:
        sub = self._subs.get(subscriber_id)
        if sub is None:
            _log.warning("ack_from_unknown_subscriber", subscriber=subscriber_id)
            return
        sub.in_flight = False
        if sub.pending:
            self._send(sub)

    # -- publication ---------------------------------------------------------------

    def _publish(self) -> None:
        if self._prices_dirty:
            self._prices_view = MappingProxyType(self._prices.copy())
            self._prices_dirty = False
        self.snapshot.publish(PriceBook(
            prices=self._prices_view,
            accepted=self._accepted,
            rejected=MappingProxyType(self._rejected.copy()),
            subscribers=len(self._subs),
            max_pending=max((len(s.pending) for s in self._subs.values()), default=0),
            unknown_messages=self._unknown,
        ))
