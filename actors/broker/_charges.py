"""Zerodha's charges on one fill, from the dated schedule in configuration.

Each component is computed in :class:`~decimal.Decimal` rupees and rounded to
the paisa half-up, as contract notes do; the total is the sum of the rounded
components, so a breakdown always adds up.
"""

from __future__ import annotations

from bisect import bisect_right
from dataclasses import dataclass
from datetime import date
from decimal import ROUND_HALF_UP, Decimal

from actors.config._schema import ChargeRate, ChargesConfig
from messages import Instrument, InstrumentKind, Money, Product, Side

__all__ = ["ChargeSchedule", "Charges", "segment_for"]

RUPEES_PER_CRORE = Decimal(10_000_000)
"""One crore: SEBI's fee is quoted in rupees per crore of turnover."""

_HUNDRED = Decimal(100)
_PAISA = Decimal("0.01")

_SEGMENTS = {
    InstrumentKind.CE: "options",
    InstrumentKind.PE: "options",
    InstrumentKind.FUT: "futures",
    InstrumentKind.EQ: "equity_intraday",
}


def segment_for(instrument: Instrument, product: Product) -> str:
    """The charges segment of an order: ``options``, ``futures`` or ``equity_intraday``.

    CE/PE are options, FUT futures, EQ intraday equity. Delivery equity (CNC)
    is not modelled: an EQ order is charged at intraday rates whatever its
    ``product``. Exchange differences (NSE vs BSE transaction charges) are not
    modelled either; the schedule is per segment.
    """
    del product  # accepted so callers need not change when delivery is modelled
    return _SEGMENTS[instrument.kind]


def _to_paise(rupees: Decimal) -> Money:
    return Money(int(rupees.quantize(_PAISA, rounding=ROUND_HALF_UP) * _HUNDRED))


@dataclass(frozen=True, slots=True)
class Charges:
    """The charges on one fill, each component rounded to the paisa.

    Contract: every component is >= 0 and ``total`` is exactly their sum
    (construct through :meth:`of` to have it computed).
    """

    brokerage: Money
    stt: Money
    transaction: Money
    sebi: Money
    stamp: Money
    gst: Money
    total: Money

    def __post_init__(self) -> None:
        parts = (self.brokerage, self.stt, self.transaction, self.sebi, self.stamp, self.gst)
        for name, part in zip(("brokerage", "stt", "transaction", "sebi", "stamp", "gst"),
                              parts, strict=True):
            if not isinstance(part, Money) or part.paise < 0:
                raise ValueError(f"{name}: must be Money >= 0, got {part!r}")
        expected = sum(part.paise for part in parts)
        if not isinstance(self.total, Money) or self.total.paise != expected:
            raise ValueError(f"total: must be the sum of the components {expected}, "
                             f"got {self.total!r}")

    @classmethod
    def of(cls, brokerage: Money, stt: Money, transaction: Money, sebi: Money, stamp: Money,
           gst: Money) -> Charges:
        """Build a breakdown whose total is the sum of the components."""
        total = Money(sum(m.paise for m in (brokerage, stt, transaction, sebi, stamp, gst)))
        return cls(brokerage, stt, transaction, sebi, stamp, gst, total)


class ChargeSchedule:
    """Zerodha's dated charges, looked up by trade date and segment.

    Contract: the rate row that applies is the latest whose ``effective_from``
    is on or before the trade date for that segment; a segment or date with no
    row raises ``ValueError`` naming both. Two rows for the same segment and
    date are a configuration error (``ValueError`` at construction).
    Brokerage is charged per executed order: pass ``include_brokerage=True``
    for an order's first fill only. When a row has ``brokerage_pct`` the
    brokerage is min(pct of that fill's turnover, flat).
    """

    def __init__(self, config: ChargesConfig) -> None:
        rows: dict[str, list[ChargeRate]] = {}
        for rate in config.rates:
            rows.setdefault(rate.segment, []).append(rate)
        self._rates: dict[str, tuple[ChargeRate, ...]] = {}
        self._dates: dict[str, tuple[date, ...]] = {}
        for segment, segment_rows in rows.items():
            ordered = tuple(sorted(segment_rows, key=lambda r: r.effective_from))
            dates = tuple(r.effective_from for r in ordered)
            if len(set(dates)) != len(dates):
                raise ValueError(f"charges.rates: segment {segment!r} has two rows for one "
                                 f"effective_from date: {sorted(dates)}")
            self._rates[segment] = ordered
            self._dates[segment] = dates

    @property
    def segments(self) -> frozenset[str]:
        """The segments the schedule knows."""
        return frozenset(self._rates)

    def rate(self, trade_date: date, segment: str) -> ChargeRate:
        """The row in force for ``segment`` on ``trade_date``."""
        dates = self._dates.get(segment)
        if dates is None:
            raise ValueError(f"segment: no charge rates for segment {segment!r} "
                             f"(known: {sorted(self._rates)})")
        index = bisect_right(dates, trade_date)
        if index == 0:
            raise ValueError(f"trade_date: no charge rate for segment {segment!r} in force on "
                             f"{trade_date.isoformat()} (earliest {dates[0].isoformat()})")
        return self._rates[segment][index - 1]

    def charges(self, trade_date: date, segment: str, side: Side, turnover: Money,
                include_brokerage: bool) -> Charges:
        """The charges on one fill of ``turnover`` (premium for options) on ``side``."""
        if turnover.paise < 0:
            raise ValueError(f"turnover: must be >= 0, got {turnover}")
        rate = self.rate(trade_date, segment)
        value = turnover.rupees
        brokerage = Money(0)
        if include_brokerage:
            flat = rate.brokerage_flat_rupees
            if rate.brokerage_pct is not None:
                flat = min(value * rate.brokerage_pct / _HUNDRED, flat)
            brokerage = _to_paise(flat)
        stt_pct = rate.stt_buy_pct if side is Side.BUY else rate.stt_sell_pct
        stt = _to_paise(value * stt_pct / _HUNDRED)
        transaction = _to_paise(value * rate.transaction_pct / _HUNDRED)
        sebi = _to_paise(value * rate.sebi_rupees_per_crore / RUPEES_PER_CRORE)
        stamp = _to_paise(value * rate.stamp_buy_pct / _HUNDRED) if side is Side.BUY else Money(0)
        taxable = (brokerage + transaction + sebi).rupees
        gst = _to_paise(taxable * rate.gst_pct / _HUNDRED)
        return Charges.of(brokerage, stt, transaction, sebi, stamp, gst)
