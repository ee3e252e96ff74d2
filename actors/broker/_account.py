"""The paper broker's own view of the trading account: cash, holds, positions, margin."""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal

from messages import Money, OrderLeg, Side

__all__ = ["BrokerAccount"]

_HUNDRED = Decimal(100)


class BrokerAccount:
    """Broker-side funds, what working orders hold, positions and short margin.

    Contract:
    * ``funds`` (cash) moves only by :meth:`settle`: a BUY fill takes value +
      charges, a SELL fill adds value - charges.
    * ``blocked`` is the sum of per-order holds (set by :meth:`hold`) and of
      the margin held by open short positions: ``short_margin_pct`` % of the
      strike for options, of the order's reference price otherwise, per unit
      a SELL takes short; released pro rata as a BUY covers the short.
    * ``available = funds - blocked``; it may go negative only when a fill
      costs more than its hold estimated (a gap through an SL-M trigger).
    * Futures are settled like premium (full value), not as margin plus
      mark-to-market; delivery equity is not modelled.
    """

    def __init__(self, initial_cash: Money, short_margin_pct: Decimal) -> None:
        if not short_margin_pct.is_finite() or short_margin_pct < 0:
            raise ValueError(f"short_margin_pct: must be >= 0, got {short_margin_pct!r}")
        self._short_margin_pct = short_margin_pct
        self._cash = initial_cash.paise
        self._holds: dict[str, int] = {}  # order id -> paise held by the working order
        self._holds_total = 0
        self._positions: dict[int, int] = {}  # token -> signed quantity
        self._margin: dict[int, int] = {}  # token -> paise held for the open short
        self._margin_total = 0

    @property
    def funds(self) -> Money:
        """Broker-side cash."""
        return Money(self._cash)

    @property
    def blocked(self) -> Money:
        """Held by working orders plus open shorts' margin."""
        return Money(self._holds_total + self._margin_total)

    @property
    def available(self) -> Money:
        """Funds a new order may use: ``funds - blocked``."""
        return Money(self._cash - self._holds_total - self._margin_total)

    def blocked_for(self, order_id: str) -> Money:
        """What one working order holds (zero once released)."""
        return Money(self._holds.get(order_id, 0))

    def position(self, instrument_token: int) -> int:
        """Signed quantity held at the broker (short < 0)."""
        return self._positions.get(instrument_token, 0)

    def short_margin(self, instrument_token: int) -> Money:
        """Margin held for the open short in ``instrument_token``."""
        return Money(self._margin.get(instrument_token, 0))

    def margin_per_unit(self, leg: OrderLeg, reference: Money) -> Money:
        """Margin each unit a SELL takes short holds (zero for a BUY)."""
        if leg.side is Side.BUY:
            return Money(0)
        strike = leg.instrument.strike
        basis = strike if leg.instrument.is_option and strike is not None else reference
        margin = Decimal(basis.paise) * self._short_margin_pct / _HUNDRED
        return Money(int(margin.to_integral_value(ROUND_HALF_UP)))

    def need(self, leg: OrderLeg, value: Money, charges: Money, margin_per_unit: Money) -> Money:
        """Funds an order must find available: a BUY its value + charges less the
        short margin it would free; a SELL the margin of the part that opens a short."""
        token = leg.instrument.instrument_token
        if leg.side is Side.SELL:
            return margin_per_unit * self._opening_short(token, leg.quantity)
        return Money(max(0, (value + charges).paise - self._released(token, leg.quantity)))

    def hold(self, order_id: str, amount: Money) -> None:
        """Set what ``order_id`` holds (zero releases it)."""
        if amount.paise < 0:
            raise ValueError(f"amount: a hold must be >= 0, got {amount}")
        self._holds_total += amount.paise - self._holds.pop(order_id, 0)
        if amount.paise:
            self._holds[order_id] = amount.paise

    def settle(self, token: int, side: Side, quantity: int, value: Money, charges: Money,
               margin_per_unit: Money) -> None:
        """Book one fill: cash, the position and the short margin it holds."""
        self._cash += side.sign * -value.paise - charges.paise
        if side is Side.BUY:
            change = -self._released(token, quantity)
        else:
            change = self._opening_short(token, quantity) * margin_per_unit.paise
        self._margin_total += change
        self._set(self._margin, token, self._margin.get(token, 0) + change)
        self._set(self._positions, token, self.position(token) + side.sign * quantity)

    def _opening_short(self, token: int, quantity: int) -> int:
        return quantity - min(quantity, max(0, self.position(token)))

    def _released(self, token: int, quantity: int) -> int:
        """Short margin a BUY of ``quantity`` frees by covering the open short."""
        short = max(0, -self.position(token))
        covered = min(quantity, short)
        if covered == 0:
            return 0
        margin = self._margin.get(token, 0)
        return margin if covered == short else margin * covered // short

    @staticmethod
    def _set(book: dict[int, int], token: int, amount: int) -> None:
        if amount:
            book[token] = amount
        else:
            book.pop(token, None)
