"""Margins and charges, by the paper account's rules, in Kite's response shapes.

One order's margin: an option BUY needs its premium (``option_premium``),
any other BUY its full value (``var``: the paper account settles futures and
equity in full); a SELL needs the short margin of the part that opens a short
(``span``: ``engine.short_margin_pct`` of the strike for options, of the
price otherwise, as :class:`~actors.broker.BrokerAccount` holds it). Charges
come from the dated :class:`~actors.broker.ChargeSchedule` for the trade date,
brokerage included. Everything is integer paise until :func:`rupees`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import date
from decimal import Decimal, InvalidOperation
from typing import Any

from actors.broker import BrokerAccount, Charges, ChargeSchedule, segment_for
from actors.kitesim._kite import KiteError, field_int, field_str, rupees
from actors.market import InstrumentTable
from messages import Instrument, Money, OrderLeg, OrderType, Price, Product, Side

__all__ = ["MARGIN_PARTS", "Rms"]

MARGIN_PARTS = ("span", "exposure", "option_premium", "additional", "bo", "cash", "var")
"""The components of a Kite margin object whose sum is its ``total``."""

_CHARGE_PARTS = ("brokerage", "stt", "transaction", "sebi", "stamp", "gst")


def charges_json(charges: Sequence[int]) -> dict[str, Any]:
    """Kite's ``charges`` object from the six components (paise) in ``_CHARGE_PARTS`` order."""
    brokerage, stt, transaction, sebi, stamp, gst = charges
    return {"transaction_tax": rupees(stt), "transaction_tax_type": "stt",
            "exchange_turnover_charge": rupees(transaction),
            "sebi_turnover_charge": rupees(sebi), "brokerage": rupees(brokerage),
            "stamp_duty": rupees(stamp),
            "gst": {"igst": rupees(gst), "cgst": 0.0, "sgst": 0.0, "total": rupees(gst)},
            "total": rupees(sum(charges))}


def _parts(charges: Charges) -> list[int]:
    return [getattr(charges, name).paise for name in _CHARGE_PARTS]


class Rms:
    """Order margins, basket margins and contract-note charges.

    Contract: every item is validated (instrument, side, product, quantity a
    multiple of the lot); a bad one raises :class:`KiteError` (InputException)
    naming the field. A MARKET item, or one without a price, is valued at the
    last price (no price yet: InputException).
    """

    def __init__(self, instruments: InstrumentTable, account: BrokerAccount,
                 schedule: ChargeSchedule, quote: Callable[[int], Price | None],
                 trade_date: Callable[[], date]) -> None:
        self._instruments = instruments
        self._account = account
        self._schedule = schedule
        self._quote = quote
        self._trade_date = trade_date

    def order_margins(self, items: Any) -> list[dict[str, Any]]:
        """``POST /margins/orders``: one margin object per order."""
        return [self._json(*self._margin(item)) for item in self._items(items)]

    def basket(self, items: Any) -> dict[str, Any]:
        """``POST /margins/basket``: per order, their sum as ``initial`` and ``final``
        (no hedge benefit is modelled), and the summed charges."""
        margins = [self._margin(item) for item in self._items(items)]
        parts = {name: sum(m[1][name] for m in margins) for name in MARGIN_PARTS}
        charges = [sum(m[2][i] for m in margins) for i in range(len(_CHARGE_PARTS))]
        total = {"type": "", "tradingsymbol": "", "exchange": ""}
        summed = self._json(total, parts, charges)
        return {"initial": summed, "final": dict(summed),
                "orders": [self._json(*m) for m in margins],
                "charges": charges_json(charges)}

    def contract_note(self, items: Any) -> list[dict[str, Any]]:
        """``POST /charges/orders``: each item echoed with its ``charges``."""
        notes = []
        for item in self._items(items):
            instrument, side, product = self._terms(item)
            quantity = self._quantity(item, instrument)
            try:
                average = Decimal(field_str(item, "average_price"))
            except InvalidOperation:
                raise KiteError.input("Invalid `average_price`: must be a number") from None
            if not average.is_finite() or average < 0:
                raise KiteError.input("Invalid `average_price`: must be a number >= 0")
            turnover = Money.from_rupees(average * quantity, "average_price")
            charges = self._schedule.charges(self._trade_date(), segment_for(instrument, product),
                                             side, turnover, True)
            notes.append({**dict(item), "charges": charges_json(_parts(charges))})
        return notes

    @staticmethod
    def _items(items: Any) -> list[Mapping[str, Any]]:
        if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
            raise KiteError.input("Invalid body: expected a JSON list of order objects")
        return items

    def _terms(self, item: Mapping[str, Any]) -> tuple[Instrument, Side, Product]:
        exchange, symbol = field_str(item, "exchange"), field_str(item, "tradingsymbol")
        try:
            instrument = self._instruments.by_symbol(exchange, symbol)
        except ValueError:
            raise KiteError.input(f"Instrument {exchange}:{symbol} not found") from None
        try:
            side = Side(field_str(item, "transaction_type").upper())
            product = Product(field_str(item, "product").upper())
        except ValueError as error:
            raise KiteError.input(f"Invalid order: {error}") from None
        return instrument, side, product

    @staticmethod
    def _quantity(item: Mapping[str, Any], instrument: Instrument) -> int:
        quantity = field_int(item, "quantity") or 0
        try:
            return instrument.check_quantity("quantity", quantity)
        except ValueError as error:
            raise KiteError.input(f"Invalid `quantity`: {error}") from None

    def _margin(self, item: Mapping[str, Any]
                ) -> tuple[dict[str, str], dict[str, int], list[int]]:
        instrument, side, product = self._terms(item)
        quantity = self._quantity(item, instrument)
        order_type = field_str(item, "order_type", required=False, default="LIMIT").upper()
        price = Decimal(0)
        if order_type not in ("MARKET", "SL-M"):
            try:
                price = Decimal(field_str(item, "price", required=False, default="0"))
            except InvalidOperation:
                raise KiteError.input("Invalid `price`: must be a number") from None
            if not price.is_finite() or price < 0:
                raise KiteError.input("Invalid `price`: must be a number >= 0")
        reference = Money.from_rupees(price, "price")
        if reference.paise == 0:
            quote = self._quote(instrument.instrument_token)
            if quote is None:
                raise KiteError.input(f"No price for {instrument.key} yet")
            reference = quote.last
        reference = instrument.round_to_tick(reference.paise)
        leg = OrderLeg(instrument, side, quantity, OrderType.LIMIT, product, reference)
        value = reference * quantity
        parts = dict.fromkeys(MARGIN_PARTS, 0)
        if side is Side.SELL:
            per_unit = self._account.margin_per_unit(leg, reference)
            parts["span"] = self._account.need(leg, value, Money(0), per_unit).paise
        elif instrument.is_option:
            parts["option_premium"] = value.paise
        else:
            parts["var"] = value.paise
        charges = self._schedule.charges(self._trade_date(), segment_for(instrument, product),
                                         side, value, True)
        head = {"type": "equity", "tradingsymbol": instrument.tradingsymbol,
                "exchange": instrument.exchange.value}
        return head, parts, _parts(charges)

    @staticmethod
    def _json(head: Mapping[str, str], parts: Mapping[str, int],
              charges: Sequence[int]) -> dict[str, Any]:
        body: dict[str, Any] = dict(head)
        body.update({name: rupees(parts[name]) for name in MARGIN_PARTS})
        body.update({"pnl": {"realised": 0.0, "unrealised": 0.0}, "leverage": 1,
                     "charges": charges_json(charges),
                     "total": rupees(sum(parts.values()))})
        return body
