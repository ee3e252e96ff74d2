"""The protocol: every message validates at construction and survives serialisation."""

from __future__ import annotations

import dataclasses
import json
from datetime import date, datetime, time
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest

import messages as m
from messages import _codec

IST = ZoneInfo("Asia/Kolkata")
NOW = datetime(2026, 11, 25, 10, 0, tzinfo=IST)
CALL = m.Instrument(11, "NFO", "NIFTY26DEC24000CE", "NIFTY", "CE", 65, m.Money(5),
                    date(2026, 12, 29), m.Money(2_400_000))
MM = m.Instrument(519937, "NSE", "M&M", "M&M", "EQ", 1, m.Money(5))
FILL = m.Fill("F1", "B1", 11, m.Side.BUY, 65, m.Money(100_00), m.Money(25_00), NOW)
STATE = m.OrderState("B1", "AB12CD0E", m.OrderStatus.COMPLETE, 65, 65, m.Money(100_00), (FILL,))
PRICE = m.Price(11, m.Money(100_00), NOW, NOW, m.Money(99_95), m.Money(100_05))
LEG = m.OrderLeg(CALL, m.Side.BUY, 130, m.OrderType.LIMIT, m.Product.MIS, m.Money(100_05))
RULES = m.ExitRules(Decimal(25), Decimal(40), Decimal(15), Decimal(8), time(15, 15))

SAMPLES = [
    m.SubmitEntry("mom", (LEG,), RULES), m.SubmitExit("mom", 11, "manual"),
    m.CancelEntry("AB12CD"), m.SetTradingState(m.TradingState.HALTED, "loss"),
    m.ReserveCash("AB12CD", m.Money(10)), m.ReleaseCash("AB12CD"),
    m.ApplyFill("AB12CD", "mom", FILL, m.Money(3)),
    m.RequestPermit("AB12CD0E", m.EndpointClass.ORDERS, m.Priority.EXIT),
    m.RecordPrices((PRICE,)), m.Subscribe("orders", frozenset({11, 12})),
    m.PricesProcessed("orders"), m.PlaceOrder(m.OrderRequest("AB12CD0E", LEG)),
    m.CancelBrokerOrder("B1", "AB12CD0E"), m.QueryOrder("B1", "AB12CD0E"),
    m.FindOrdersByTag("AB12CD0E"), m.CashReserved("AB12CD", m.Money(10)),
    m.CashRefused("AB12CD", m.Money(10), m.Money(-5)), m.CashReleased("AB12CD", m.Money(0)),
    m.FillApplied("AB12CD", "F1", 65, m.Money(-10)),
    m.PermitGranted("x", m.EndpointClass.QUOTE),
    m.PermitRefused("x", m.EndpointClass.ORDERS, "daily budget"),
    m.PricesUpdated((PRICE,)), m.PriceRejected(11, "last: must be finite, got nan"),
    m.OrderPlaced("AB12CD0E", "B1"), m.OrderRejected("AB12CD0E", "insufficient funds"),
    m.OrderOutcomeUnknown("AB12CD0E", "timeout"), m.OrderUpdated(STATE),
    m.OrdersFound("AB12CD0E", (STATE,)), m.SagaStarted("AB12CD", m.SagaKind.ENTRY, "mom"),
    m.SagaRefused("mom", m.SagaKind.ENTRY, "holiday"),
    m.SagaCompleted("AB12CD", m.SagaKind.ENTRY, (65,), (FILL,)),
    m.SagaCompensated("AB12CD", m.SagaKind.ENTRY, "rejected", m.Money(-3)),
    m.ExitDecided("AB12CD", "mom", 11, "stop-loss", NOW),
    m.TradingStateChanged(m.TradingState.REDUCING, "manual"), MM,
    m.CheckMargins("AB12CD", (LEG,)),
    m.MarginsChecked("AB12CD", False, m.Money(20_000_00), m.Money(5_000_00), "short"),
    m.ProtectPosition("mom:11", CALL, m.Side.SELL, 130, m.Product.MIS, m.Money(75_00),
                      m.Money(140_00), m.Money(100_00)),
    m.RemoveProtection("mom:11"), m.PositionProtected("mom:11", 7),
    m.ProtectionFailed("mom:11", "gtt refused"), m.ProtectionRemoved("mom:11", 7),
    m.CallThrottled(m.EndpointClass.QUOTE, "quote"),
    m.DriftDetected(m.DriftKind.POSITION_MISSING_IN_BOOK, "NFO:NIFTY26DEC24000CE", 0, 65,
                    "book flat; broker NRML +65", 11, "NRML"),
    m.DriftDetected(m.DriftKind.STALE_IN_FLIGHT, "B1", "working", "OPEN", "tag AB12CD0E"),
    m.Reconciled(NOW, False, (m.SyncCheck.POSITIONS, m.SyncCheck.ORDERS, m.SyncCheck.GTTS), 1,
                 "1 drift(s): POSITION_MISSING_IN_BOOK x1"),
    m.Reconcile(), m.ReconcileSkipped("paper mode"),
    m.AdoptPosition(m.EXTERNAL, FILL, "found at the broker"),
    m.PositionAdopted(m.EXTERNAL, "F1", 11, 65),
    m.StrategyFill("mom", FILL),
    m.ReconcilePosition(11, m.Product.NRML, (m.StrategyFill("mom", FILL),), FILL, RULES,
                        "QUANTITY_MISMATCH", 130),
    m.FindOrdersByTag("AB12CD0E", leg=LEG),
    m.Halt("stop", flatten=True), m.ResumeTrading("resumed by the operator"),
    m.HaltStarted("halted: stop", True, 2, 3, 4, 5),
    m.DescribeSagas(),
    m.SagasDescribed((m.SagaView("AB12CD", "ENTRY", "mom", "WORKING AB12CD0E", "", 12.5, (
        m.OrderView("AB12CD0E", "B1", "OPEN", "BUY", "NIFTY26DEC24000CE", 130, 65,
                    "WORKING"),)),)),
]


@pytest.mark.parametrize("message", SAMPLES, ids=lambda x: type(x).__name__)
def test_round_trip_through_json(message: object) -> None:
    encoded = json.loads(json.dumps(m.to_dict(message)))
    assert m.from_dict(encoded) == message


def test_every_message_class_has_a_sample() -> None:
    sampled = {type(s).__name__ for s in SAMPLES}
    registry = set(_codec._REGISTRY)
    skipped = {"Money", "Instrument", "Price", "Fill", "OrderLeg", "OrderRequest", "OrderState",
               "ExitRules", "SagaView", "OrderView"}  # value types, inside the samples
    assert registry - skipped - sampled == set()


@pytest.mark.parametrize(("build", "field"), [
    (lambda: m.CheckMargins("S", ()), "legs"),
    (lambda: m.MarginsChecked("S", False, m.Money(1), m.Money(0)), "reason"),
    (lambda: m.ProtectPosition("k", CALL, m.Side.SELL, 130, m.Product.MIS, m.Money(120_00),
                               m.Money(140_00), m.Money(100_00)), "stop"),
    (lambda: m.ProtectPosition("k", CALL, m.Side.SELL, 7, m.Product.MIS, m.Money(75_00),
                               m.Money(140_00), m.Money(100_00)), "quantity"),
    (lambda: m.PositionProtected("k", 0), "trigger_id"),
    (lambda: m.CallThrottled("nope", "x"), "endpoint"),  # type: ignore[arg-type]
    (lambda: m.DriftDetected("NOPE", "k", 0, 1, "d"), "kind"),  # type: ignore[arg-type]
    (lambda: m.DriftDetected(m.DriftKind.GTT_UNKNOWN, "k", 0.5, 1, "d"), "engine"),
    (lambda: m.DriftDetected(m.DriftKind.GTT_UNKNOWN, "k", 0, True, "d"), "broker"),
    (lambda: m.DriftDetected(m.DriftKind.GTT_UNKNOWN, "k", 0, 1, ""), "detail"),
    (lambda: m.Reconciled(NOW.replace(tzinfo=None), True, (), 0), "at"),
    (lambda: m.Reconciled(NOW, False, (), 0), "reason"),
    (lambda: m.Reconciled(NOW, True, (m.SyncCheck.GTTS, m.SyncCheck.GTTS), 0), "checked"),
    (lambda: m.Reconciled(NOW, True, ("nope",), 0), "checked"),  # type: ignore[arg-type]
    (lambda: m.AdoptPosition(m.EXTERNAL, FILL, ""), "reason"),
    (lambda: m.AdoptPosition("", FILL, "x"), "strategy"),
    (lambda: m.PositionAdopted(m.EXTERNAL, "F1", 11, 65, "no"), "duplicate"),  # type: ignore[arg-type]
    (lambda: m.StrategyFill("mom", "F1"), "fill"),  # type: ignore[arg-type]
    (lambda: m.ReconcilePosition(11, "BAD", (), FILL, RULES, "x"), "product"),  # type: ignore[arg-type]
    (lambda: m.ReconcilePosition(11, m.Product.NRML, (), FILL, RULES, "x", 0.5), "book_net"),  # type: ignore[arg-type]
    (lambda: m.FindOrdersByTag("AB12CD0E", leg="leg"), "leg"),  # type: ignore[arg-type]
    (lambda: m.Halt(""), "reason"),
    (lambda: m.Halt("x", flatten=1), "flatten"),  # type: ignore[arg-type]
    (lambda: m.HaltStarted("x", False, -1, 0, 0, 0), "cancels"),
    (lambda: m.ReconcileSkipped(""), "reason"),
    (lambda: m.ResumeTrading(""), "reason"),
    (lambda: m.RequestPermit("x", m.EndpointClass.OTHER, m.Priority.READ, merge=1),  # type: ignore[arg-type]
     "merge"),
])
def test_live_messages_refuse_bad_values(build: object, field: str) -> None:
    with pytest.raises(ValueError, match=field):
        build()  # type: ignore[operator]


def test_protection_mirrors_for_a_short() -> None:
    short = m.ProtectPosition("k", CALL, m.Side.BUY, 65, m.Product.NRML, m.Money(130_00),
                              m.Money(60_00), m.Money(100_00))
    assert short.stop.paise > short.last.paise > short.target.paise


def test_messages_are_immutable() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        SAMPLES[0].strategy = "other"  # type: ignore[misc]


def test_reply_to_is_not_data() -> None:
    class Box:
        def tell(self, message: object) -> None:
            raise AssertionError("never called")

    a, b = m.ReleaseCash("AB12CD", Box()), m.ReleaseCash("AB12CD")
    assert a == b and "reply_to" not in m.to_dict(a)


@pytest.mark.parametrize(("build", "field", "value"), [
    (lambda: m.OrderLeg(CALL, "BUY", 100), "quantity", "100"),
    (lambda: m.OrderLeg(CALL, "BUY", 0), "quantity", "0"),
    (lambda: m.OrderLeg(CALL, "BUY", -65), "quantity", "-65"),
    (lambda: m.OrderLeg(CALL, "BUY", float("nan")), "quantity", "nan"),
    (lambda: m.OrderLeg(CALL, "BUY", float("inf")), "quantity", "inf"),
    (lambda: m.OrderLeg(CALL, "HOLD", 65), "side", "HOLD"),
    (lambda: m.OrderLeg(CALL, "BUY", 65, "LIMIT", limit_price=m.Money(100_03)),
     "limit_price", "100.03"),
    (lambda: m.OrderLeg(CALL, "BUY", 65, "LIMIT"), "limit_price", "None"),
    (lambda: m.OrderLeg(CALL, "BUY", 65, "SL-M"), "trigger_price", "None"),
    (lambda: m.Money.from_rupees(float("nan")), "rupees", "nan"),
    (lambda: m.Money.from_rupees(float("inf")), "rupees", "inf"),
    (lambda: m.Money.from_rupees("abc"), "rupees", "abc"),
    (lambda: m.Money(1.5), "paise", "1.5"),  # type: ignore[arg-type]
    (lambda: m.Price(11, m.Money(0), NOW, NOW), "last", "0.00"),
    (lambda: m.Price(11, m.Money(-5), NOW, NOW), "last", "-"),
    (lambda: m.Price(11, m.Money(5), datetime(2026, 11, 25, 10), NOW), "exchange_ts", "2026"),
    (lambda: m.Price(11, m.Money(5), NOW, NOW, m.Money(10), m.Money(6)), "bid", "10"),
    (lambda: m.Instrument(1, "NFO", "X", "X", "CE", 65, m.Money(5)), "strike", "None"),
    (lambda: m.Instrument(1, "XYZ", "X", "X", "EQ", 1, m.Money(5)), "exchange", "XYZ"),
    (lambda: m.Instrument(1, "NSE", "X", "X", "EQ", 0, m.Money(5)), "lot_size", "0"),
    (lambda: m.OrderRequest("bad tag!", LEG), "tag", "bad tag!"),
    (lambda: m.OrderRequest("ABCDEFGHI", LEG), "tag", "ABCDEFGHI"),
    (lambda: m.SubmitEntry("s", ()), "legs", "0"),
    (lambda: m.SubmitEntry("s", (LEG, LEG)), "legs", "11"),
    (lambda: m.ExitRules(stop_loss_pct=Decimal("NaN")), "stop_loss_pct", "NaN"),
    (lambda: m.ExitRules(stop_loss_pct=Decimal(0)), "stop_loss_pct", "0"),
    (lambda: m.ExitRules(trail_activation_pct=Decimal(5)), "trail_giveback_pct", "None"),
    (lambda: m.ReserveCash("S", m.Money(0)), "amount", "0.00"),
    (lambda: m.OrderState("B", "T", "COMPLETE", 65, 70), "filled_quantity", "70"),
    (lambda: m.Fill("F", "B", 1, "BUY", 1, m.Money(1), m.Money(-1), NOW), "charges", "-"),
])
def test_invalid_messages_cannot_be_built(build, field: str, value: str) -> None:
    with pytest.raises(ValueError) as err:
        build()
    text = str(err.value)
    assert text.startswith(field) and value in text


def test_real_symbols_are_not_rejected_by_a_regex() -> None:
    for symbol in ("M&M", "BAJAJ-AUTO", "NIFTY 50"):
        assert m.Instrument(1, "NSE", symbol, symbol, "EQ", 1, m.Money(5)).tradingsymbol == symbol


def test_money_is_exact() -> None:
    assert m.Money.from_rupees("0.1") + m.Money.from_rupees("0.2") == m.Money(30)
    assert str(m.Money(-123456789)) == "-₹1,234,567.89"
    assert m.Money.from_rupees(Decimal("1.005")).paise == 101
    assert m.Money(5) * 3 == m.Money(15) and -m.Money(5) == m.Money(-5)
    assert m.Money(250).rupees == Decimal("2.5")


def test_decoding_bad_data_names_the_field() -> None:
    data = m.to_dict(m.ReserveCash("AB12CD", m.Money(10)))
    data["amount"] = "ten"
    with pytest.raises(ValueError, match="amount"):
        m.from_dict(data)
    with pytest.raises(ValueError, match="type: unknown message type 'Nope'"):
        m.from_dict({"type": "Nope"})
    with pytest.raises(ValueError, match="message: must be a dict"):
        m.from_dict([1])  # type: ignore[arg-type]


def test_instrument_helpers() -> None:
    assert CALL.key == "NFO:NIFTY26DEC24000CE" and CALL.is_option and not MM.is_option
    assert CALL.round_to_tick(10_003) == m.Money(10_005)
    assert CALL.round_to_tick(1) == m.Money(5)
    assert PRICE.fill_price(m.Side.BUY) == m.Money(100_05)
    assert PRICE.fill_price(m.Side.SELL) == m.Money(99_95)
    assert m.Side.SELL.opposite is m.Side.BUY and m.Side.SELL.sign == -1
    assert STATE.pending_quantity == 0 and FILL.value == m.Money(65 * 100_00)
    assert PRICE.age_seconds(NOW.replace(minute=1)) == 60.0


def test_permit_with_a_call_needs_its_target() -> None:
    call = m.PlaceOrder(m.OrderRequest("AB12CD0E", LEG))
    with pytest.raises(ValueError, match="then: needs then_to"):
        m.RequestPermit("x", m.EndpointClass.ORDERS, m.Priority.ENTRY, then=call)
    request = m.RequestPermit("x", m.EndpointClass.ORDERS, m.Priority.ENTRY, then=call,
                              then_to=object())  # type: ignore[arg-type]
    assert "then" not in m.to_dict(request)
