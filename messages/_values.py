"""Value types of the protocol: enums, Money, Instrument, Price.

Every value is immutable (frozen, slotted) and validated when it is built:
a value that cannot be valid cannot be constructed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import date, datetime
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from enum import Enum

from messages._validate import (
    require_aware,
    require_enum,
    require_instance,
    require_int,
    require_positive_int,
    require_text,
)

__all__ = [
    "Exchange",
    "Instrument",
    "InstrumentKind",
    "Money",
    "OrderType",
    "Price",
    "Product",
    "Side",
]


class Side(str, Enum):
    """Direction of an order or a fill."""

    BUY = "BUY"
    SELL = "SELL"

    @property
    def sign(self) -> int:
        """+1 for BUY, -1 for SELL: multiply a quantity to sign it."""
        return 1 if self is Side.BUY else -1

    @property
    def opposite(self) -> Side:
        """The side that closes a position opened on this side."""
        return Side.SELL if self is Side.BUY else Side.BUY


class OrderType(str, Enum):
    """Kite order types."""

    MARKET = "MARKET"
    LIMIT = "LIMIT"
    SL = "SL"
    SL_M = "SL-M"


class Product(str, Enum):
    """Kite products (margin treatment)."""

    CNC = "CNC"
    NRML = "NRML"
    MIS = "MIS"
    MTF = "MTF"


class InstrumentKind(str, Enum):
    """What an instrument is: call, put, future or equity."""

    CE = "CE"
    PE = "PE"
    FUT = "FUT"
    EQ = "EQ"


class Exchange(str, Enum):
    """Exchanges (segments) Kite trades on."""

    NSE = "NSE"
    NFO = "NFO"
    BSE = "BSE"
    BFO = "BFO"
    MCX = "MCX"
    CDS = "CDS"


_PAISE = Decimal(100)


@dataclass(frozen=True, slots=True, order=True)
class Money:
    """An amount of rupees held as an exact integer number of paise.

    Contract: ``paise`` is an ``int`` (never a float); arithmetic keeps it
    exact. Use :meth:`from_rupees` to convert user input, which rejects NaN,
    infinity and sub-paisa precision.
    """

    paise: int

    def __post_init__(self) -> None:
        require_int("paise", self.paise)

    @classmethod
    def from_rupees(cls, rupees: Decimal | str | int | float, field: str = "rupees") -> Money:
        """Convert rupees to Money, rounding half-up to the paisa.

        Raises ValueError naming ``field`` for NaN, infinity or non-numbers.
        """
        if isinstance(rupees, bool):
            raise ValueError(f"{field}: must be a number, got {rupees!r}")
        if isinstance(rupees, float) and not math.isfinite(rupees):
            raise ValueError(f"{field}: must be finite, got {rupees!r}")
        try:
            amount = Decimal(str(rupees)) if not isinstance(rupees, Decimal) else rupees
        except InvalidOperation:
            raise ValueError(f"{field}: must be a number, got {rupees!r}") from None
        if not amount.is_finite():
            raise ValueError(f"{field}: must be finite, got {rupees!r}")
        paise = (amount * _PAISE).quantize(Decimal(1), rounding=ROUND_HALF_UP)
        return cls(int(paise))

    @property
    def rupees(self) -> Decimal:
        """The amount in rupees, exact."""
        return Decimal(self.paise) / _PAISE

    def __add__(self, other: Money) -> Money:
        return Money(self.paise + other.paise)

    def __sub__(self, other: Money) -> Money:
        return Money(self.paise - other.paise)

    def __neg__(self) -> Money:
        return Money(-self.paise)

    def __mul__(self, factor: int) -> Money:
        return Money(self.paise * require_int("factor", factor))

    def __str__(self) -> str:
        sign = "-" if self.paise < 0 else ""
        rupees, paise = divmod(abs(self.paise), 100)
        return f"{sign}₹{rupees:,}.{paise:02d}"


ZERO = Money(0)


@dataclass(frozen=True, slots=True)
class Instrument:
    """A tradable contract, as a row of Kite's instruments dump describes it.

    Contract: lot and tick sizes come from the dump, never from code. Options
    carry a strike and an expiry; futures an expiry; equities neither.
    ``tick_size`` is in paise (0.05 rupees = 5).
    """

    instrument_token: int
    exchange: Exchange
    tradingsymbol: str
    name: str
    kind: InstrumentKind
    lot_size: int
    tick_size: Money
    expiry: date | None = None
    strike: Money | None = None

    def __post_init__(self) -> None:
        require_positive_int("instrument_token", self.instrument_token)
        object.__setattr__(self, "exchange", require_enum("exchange", self.exchange, Exchange))
        require_text("tradingsymbol", self.tradingsymbol)
        require_text("name", self.name)
        object.__setattr__(self, "kind", require_enum("kind", self.kind, InstrumentKind))
        require_positive_int("lot_size", self.lot_size)
        require_instance("tick_size", self.tick_size, Money)
        if self.tick_size.paise <= 0:
            raise ValueError(f"tick_size: must be > 0, got {self.tick_size!r}")
        if self.kind in (InstrumentKind.CE, InstrumentKind.PE):
            if self.strike is None or self.strike.paise <= 0:
                raise ValueError(f"strike: an option needs a strike > 0, got {self.strike!r}")
            if self.expiry is None:
                raise ValueError(f"expiry: an option needs an expiry, got {self.expiry!r}")
        if self.kind is InstrumentKind.FUT and self.expiry is None:
            raise ValueError(f"expiry: a future needs an expiry, got {self.expiry!r}")
        if self.expiry is not None:
            require_instance("expiry", self.expiry, date)
        if self.strike is not None:
            require_instance("strike", self.strike, Money)

    @property
    def key(self) -> str:
        """``EXCHANGE:TRADINGSYMBOL``, Kite's instrument key."""
        return f"{self.exchange.value}:{self.tradingsymbol}"

    @property
    def is_option(self) -> bool:
        """True for calls and puts."""
        return self.kind in (InstrumentKind.CE, InstrumentKind.PE)

    def check_quantity(self, field: str, quantity: int) -> int:
        """Validate ``quantity`` as a positive multiple of the lot size."""
        require_positive_int(field, quantity)
        if quantity % self.lot_size:
            raise ValueError(
                f"{field}: {quantity} is not a multiple of the lot size {self.lot_size} "
                f"of {self.tradingsymbol}"
            )
        return quantity

    def check_price(self, field: str, price: Money) -> Money:
        """Validate ``price`` as positive and on the tick size."""
        require_instance(field, price, Money)
        if price.paise <= 0:
            raise ValueError(f"{field}: must be > 0, got {price}")
        if price.paise % self.tick_size.paise:
            raise ValueError(
                f"{field}: {price} is not a multiple of the tick size {self.tick_size} "
                f"of {self.tradingsymbol}"
            )
        return price

    def round_to_tick(self, paise: int) -> Money:
        """Round a price in paise to the nearest tick (half up), at least one tick."""
        tick = self.tick_size.paise
        ticks = max(1, (paise + tick // 2) // tick)
        return Money(ticks * tick)


@dataclass(frozen=True, slots=True)
class Price:
    """A validated quote for one instrument, with the time the exchange set it.

    Contract: ``last`` (and ``bid``/``ask`` when given) are > 0; bid <= ask;
    both timestamps are timezone-aware. A price without an exchange timestamp
    cannot exist. Staleness is judged by PriceActor against its own clock.
    """

    instrument_token: int
    last: Money
    exchange_ts: datetime
    received_ts: datetime
    bid: Money | None = None
    ask: Money | None = None

    def __post_init__(self) -> None:
        require_positive_int("instrument_token", self.instrument_token)
        require_instance("last", self.last, Money)
        if self.last.paise <= 0:
            raise ValueError(f"last: price must be > 0, got {self.last}")
        for name in ("bid", "ask"):
            value = getattr(self, name)
            if value is not None:
                require_instance(name, value, Money)
                if value.paise <= 0:
                    raise ValueError(f"{name}: price must be > 0, got {value}")
        if self.bid is not None and self.ask is not None and self.bid.paise > self.ask.paise:
            raise ValueError(f"bid: {self.bid} is above ask {self.ask}")
        require_aware("exchange_ts", self.exchange_ts)
        require_aware("received_ts", self.received_ts)

    def age_seconds(self, now: datetime) -> float:
        """Seconds between the exchange timestamp and ``now``."""
        return (now - self.exchange_ts).total_seconds()

    def fill_price(self, side: Side) -> Money:
        """Where a market order on ``side`` fills: the ask to buy, the bid to sell."""
        quote = self.ask if side is Side.BUY else self.bid
        return quote if quote is not None else self.last


def check_quantity_field(field: str, value: int) -> int:
    """Validate a bare quantity (used where the instrument is not at hand)."""
    return require_positive_int(field, require_int(field, value))
