"""PriceActor and parse_quote: validation at the boundary, age checks, coalesced fan-out."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from decimal import Decimal

import pykka
import pytest

from actors._price import (
    FUTURE_SKEW_S,
    REASON_FUTURE,
    REASON_OLDER_THAN_HELD,
    REASON_STALE,
    PriceActor,
    PriceBook,
    parse_quote,
)
from actors.config._schema import PricesConfig
from messages import (
    Money,
    Price,
    PriceRejected,
    PricesProcessed,
    PricesUpdated,
    RecordPrices,
    Subscribe,
)
from tests.support import Recorder

IST = timezone(timedelta(hours=5, minutes=30))
T0 = datetime(2026, 1, 6, 10, 0, 0, tzinfo=IST)
MAX_AGE_S = 120.0


class Clock:
    """The engine clock, moved by the test."""

    def __init__(self, at: datetime) -> None:
        self.at = at

    def __call__(self) -> datetime:
        return self.at


def price(token: int, rupees: str, ts: datetime) -> Price:
    return Price(token, Money.from_rupees(Decimal(rupees)), ts, ts)


@pytest.fixture
def clock() -> Clock:
    return Clock(T0)


@pytest.fixture
def actor(clock: Clock) -> Iterator[pykka.ActorRef[PriceActor]]:
    ref = PriceActor.start(PricesConfig(max_price_age_s=MAX_AGE_S), clock)
    yield ref
    pykka.ActorRegistry.stop_all()


def book(ref: pykka.ActorRef[PriceActor]) -> PriceBook:
    """The published snapshot, read after every message sent so far was handled."""
    published = ref.proxy().snapshot.get(timeout=5)  # an ask: queued behind earlier tells
    return published.latest()  # type: ignore[no-any-return]


def subscribe(ref: pykka.ActorRef[PriceActor], sid: str, tokens: frozenset[int] = frozenset(),
              ) -> Recorder:
    inbox = Recorder()
    ref.tell(Subscribe(sid, tokens, inbox))
    return inbox


# --- validation ---------------------------------------------------------------


def test_a_fresh_price_is_kept_published_and_sent(actor: pykka.ActorRef[PriceActor]) -> None:
    inbox = subscribe(actor, "s")
    p = price(101, "250.05", T0 - timedelta(seconds=1))
    actor.tell(RecordPrices((p,)))
    [batch] = inbox.wait_for_kind(PricesUpdated)
    assert batch.prices == (p,)
    snap = book(actor)
    assert snap.prices[101] == p
    assert snap.accepted == 1
    assert snap.rejected_total == 0


def test_a_stale_price_is_rejected_and_counted(actor: pykka.ActorRef[PriceActor]) -> None:
    stale = price(101, "10", T0 - timedelta(seconds=MAX_AGE_S + 1))
    fresh = price(102, "10", T0 - timedelta(seconds=MAX_AGE_S - 1))
    actor.tell(RecordPrices((stale, fresh)))
    snap = book(actor)
    assert 101 not in snap.prices
    assert snap.prices[102] == fresh
    assert snap.rejected == {REASON_STALE: 1}
    assert snap.accepted == 1


def test_the_clock_is_read_at_each_batch(actor: pykka.ActorRef[PriceActor],
                                         clock: Clock) -> None:
    p = price(101, "10", T0)
    clock.at = T0 + timedelta(seconds=MAX_AGE_S + 1)
    actor.tell(RecordPrices((p,)))
    assert book(actor).rejected == {REASON_STALE: 1}


def test_a_price_older_than_the_one_held_is_rejected(actor: pykka.ActorRef[PriceActor]) -> None:
    newer = price(101, "11", T0 - timedelta(seconds=1))
    older = price(101, "10", T0 - timedelta(seconds=2))
    actor.tell(RecordPrices((newer,)))
    actor.tell(RecordPrices((older,)))
    snap = book(actor)
    assert snap.prices[101] == newer
    assert snap.rejected == {REASON_OLDER_THAN_HELD: 1}


def test_a_price_from_the_future_is_rejected(actor: pykka.ActorRef[PriceActor]) -> None:
    ahead = price(101, "10", T0 + timedelta(seconds=FUTURE_SKEW_S + 1))
    within_skew = price(102, "10", T0 + timedelta(seconds=FUTURE_SKEW_S - 1))
    actor.tell(RecordPrices((ahead, within_skew)))
    snap = book(actor)
    assert set(snap.prices) == {102}
    assert snap.rejected == {REASON_FUTURE: 1}


def test_feed_rejections_are_counted_by_field(actor: pykka.ActorRef[PriceActor]) -> None:
    for bad in (parse_quote(7, float("nan"), T0, T0), parse_quote(7, 0, T0, T0),
                parse_quote(7, 10, None, T0)):
        assert isinstance(bad, PriceRejected)
        actor.tell(bad)
    assert book(actor).rejected == {"feed:last": 2, "feed:exchange_ts": 1}


def test_unknown_messages_are_counted(actor: pykka.ActorRef[PriceActor]) -> None:
    actor.tell("not a message")
    assert book(actor).unknown_messages == 1


# --- parse_quote ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({"last": float("nan")}, "last: must be finite, got nan"),
        ({"last": float("inf")}, "last: must be finite, got inf"),
        ({"last": float("-inf")}, "last: must be finite, got -inf"),
        ({"last": Decimal("NaN")}, "last: must be finite"),
        ({"last": 0}, "last: must be > 0, got 0"),
        ({"last": 0.0}, "last: must be > 0, got 0.0"),
        ({"last": -1}, "last: must be > 0, got -1"),
        ({"last": None}, "last: missing, got None"),
        ({"last": "12.5"}, "last: must be a number of rupees, got '12.5'"),
        ({"exchange_ts": None}, "exchange_ts: missing, got None"),
        ({"exchange_ts": datetime(2026, 1, 6, 10, 0)},
         "exchange_ts: must be timezone-aware, got naive 2026-01-06T10:00:00"),
        ({"received_ts": None}, "received_ts: missing, got None"),
        ({"bid": float("nan")}, "bid: must be finite, got nan"),
        ({"ask": -2.5}, "ask: must be > 0, got -2.5"),
        ({"bid": 11, "ask": 10}, "bid: ₹11.00 is above ask ₹10.00"),
        ({"instrument_token": 0}, "instrument_token: must be an integer > 0, got 0"),
    ],
)
def test_parse_quote_rejects_naming_the_field(kwargs: dict[str, object], expected: str) -> None:
    args: dict[str, object] = {"instrument_token": 42, "last": 10.5, "exchange_ts": T0,
                               "received_ts": T0}
    args.update(kwargs)
    result = parse_quote(**args)  # type: ignore[arg-type]
    assert isinstance(result, PriceRejected)
    assert result.reason.startswith(expected), result.reason
    assert result.instrument_token == (42 if "instrument_token" not in kwargs else 0)


def test_parse_quote_builds_prices_from_floats_ints_and_decimals() -> None:
    p = parse_quote(42, 100.05, T0, T0, bid=Decimal("100"), ask=101)
    assert isinstance(p, Price)
    assert (p.last.paise, p.bid, p.ask) == (10005, Money(10000), Money(10100))
    assert p.exchange_ts == T0


def test_parse_quote_reads_a_zero_bid_or_ask_as_an_empty_book_side() -> None:
    p = parse_quote(42, 3.5, T0, T0, bid=0, ask=0.0)
    assert isinstance(p, Price)
    assert (p.bid, p.ask) == (None, None)


# --- fan-out ----------------------------------------------------------------------


def test_fan_out_follows_each_subscribers_tokens(actor: pykka.ActorRef[PriceActor]) -> None:
    one = subscribe(actor, "one", frozenset({1}))
    two = subscribe(actor, "two", frozenset({2, 3}))
    ts = T0 - timedelta(seconds=1)
    p1, p2, p3, p4 = (price(t, "10", ts) for t in (1, 2, 3, 4))
    actor.tell(RecordPrices((p1, p2, p3, p4)))
    [to_one] = one.wait_for_kind(PricesUpdated)
    [to_two] = two.wait_for_kind(PricesUpdated)
    assert to_one.prices == (p1,)
    assert set(to_two.prices) == {p2, p3}
    assert book(actor).subscribers == 2


def test_a_new_subscriber_first_gets_the_prices_held(actor: pykka.ActorRef[PriceActor]) -> None:
    held = price(5, "10", T0 - timedelta(seconds=1))
    actor.tell(RecordPrices((held,)))
    late = subscribe(actor, "late", frozenset({5, 6}))
    [batch] = late.wait_for_kind(PricesUpdated)
    assert batch.prices == (held,)


def test_resubscribing_replaces_the_token_filter(actor: pykka.ActorRef[PriceActor]) -> None:
    subscribe(actor, "s", frozenset({1}))
    inbox = subscribe(actor, "s", frozenset({2}))
    p1, p2 = price(1, "10", T0), price(2, "10", T0)
    actor.tell(RecordPrices((p1, p2)))
    [batch] = inbox.wait_for_kind(PricesUpdated)
    assert batch.prices == (p2,)
    assert book(actor).subscribers == 1


def test_a_slow_subscriber_gets_one_batch_then_the_latest_per_instrument(
    actor: pykka.ActorRef[PriceActor],
) -> None:
    inbox = subscribe(actor, "slow")
    actor.tell(RecordPrices((price(1, "1", T0 - timedelta(seconds=60)),)))
    inbox.wait_for_kind(PricesUpdated)

    tokens = range(1, 11)
    latest: dict[int, Price] = {}
    for i in range(1000):
        token = tokens[i % 10]
        p = price(token, str(100 + i), T0 - timedelta(seconds=59) + timedelta(milliseconds=i))
        latest[token] = p
        actor.tell(RecordPrices((p,)))
    snap = book(actor)
    assert snap.accepted == 1001
    assert snap.max_pending == 10
    assert len(inbox.of(PricesUpdated)) == 1  # nothing more while the first is unacknowledged

    actor.tell(PricesProcessed("slow"))
    batches = inbox.wait_for_kind(PricesUpdated, count=2)
    assert len(batches[1].prices) == 10
    assert {p.instrument_token: p for p in batches[1].prices} == latest

    assert book(actor).max_pending == 0
    assert len(inbox.of(PricesUpdated)) == 2


def test_a_dead_subscriber_is_dropped(actor: pykka.ActorRef[PriceActor]) -> None:
    class Dead:
        def tell(self, message: object) -> None:
            raise pykka.ActorDeadError("gone")

    actor.tell(Subscribe("dead", frozenset(), Dead()))
    actor.tell(RecordPrices((price(1, "10", T0),)))
    snap = book(actor)
    assert snap.subscribers == 0
    assert snap.prices[1].last == Money(1000)
