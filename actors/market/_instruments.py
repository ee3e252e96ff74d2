"""The instruments table, read from Kite's daily instruments dump (CSV).

Lot sizes, tick sizes, strikes and expiries come from the dump, never from
code; tradingsymbols are looked up, never pattern-matched (``M&M`` and
``BAJAJ-AUTO`` are real symbols). :func:`synthetic_dump_csv` writes the
simulated market's own dump in the same format, so paper and live read
instruments through the same parser.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterable, Iterator, Mapping
from datetime import date
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

from actors.config._schema import MarketConfig, UnderlyingConfig
from actors.market._calendar import MarketCalendar, weekly_expiry
from messages import Exchange, Instrument, InstrumentKind, Money

__all__ = [
    "COLUMNS",
    "InstrumentTable",
    "index_tradingsymbol",
    "synthetic_dump_csv",
]

_HEADER = (
    "instrument_token,exchange_token,tradingsymbol,name,last_price,expiry,strike,tick_size,"
    "lot_size,instrument_type,segment,exchange"
)
COLUMNS: tuple[str, ...] = tuple(_HEADER.split(","))
"""The columns of Kite's instruments dump, in order."""

_INDEX_SEGMENT = "INDICES"
_INDEX_TICK_PAISE = 5  # Kite lists some indices with tick_size 0; their values move in 0.05
_INDEX_LOT_SIZE = 1  # Kite lists indices with lot_size 0; they are not traded
_INDEX_SYMBOLS = {  # Kite's tradingsymbol of the index behind an option chain's name
    "NIFTY": "NIFTY 50",
    "BANKNIFTY": "NIFTY BANK",
    "FINNIFTY": "NIFTY FIN SERVICE",
    "MIDCPNIFTY": "NIFTY MID SELECT",
    "SENSEX": "SENSEX",
}
_MONTHS = ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")
# Real-looking NSE equities in the synthetic dump: token, exchange token, symbol, name, rupees.
_REFERENCE_EQUITIES = (
    (519937, 2031, "M&M", "MAHINDRA & MAHINDRA", Decimal("3000")),
    (4267265, 16669, "BAJAJ-AUTO", "BAJAJ AUTO", Decimal("8500")),
    (738561, 2885, "RELIANCE", "RELIANCE INDUSTRIES", Decimal("1400")),
    (408065, 1594, "INFY", "INFOSYS", Decimal("1500")),
)
_SYNTHETIC_EQUITY_RUPEES = Decimal("100")  # starting price of each SYNnnnn equity
_SYNTHETIC_PREFIX = "SYN"
_NFO_OPT = ("NFO-OPT", Exchange.NFO.value)  # segment and exchange of an index option
# Kite's instrument_token is (exchange_token << 8) | segment code; KiteTicker reads the
# segment (and so the price divisor, and whether it is an index) from the low byte.
SEGMENT_CODES = {"NSE": 1, "NFO": 2, "INDICES": 9}


def instrument_token(exchange_token: int, segment: str) -> int:
    """Kite's instrument token for ``exchange_token`` in ``segment`` (NSE, NFO, INDICES)."""
    return (exchange_token << 8) | SEGMENT_CODES[segment]


def index_tradingsymbol(name: str) -> str:
    """Kite's tradingsymbol of the index an option chain named ``name`` is written on.

    ``NIFTY`` -> ``NIFTY 50``, ``BANKNIFTY`` -> ``NIFTY BANK``; unknown names
    map to ``"{name} INDEX"``.
    """
    return _INDEX_SYMBOLS.get(name, f"{name} INDEX")


def _option_order(instrument: Instrument) -> tuple[int, int]:
    strike = instrument.strike.paise if instrument.strike is not None else 0
    return strike, 0 if instrument.kind is InstrumentKind.CE else 1


class InstrumentTable:
    """An immutable, indexed set of instruments (one day's instruments dump).

    Contract: tokens are unique and so are ``(exchange, tradingsymbol)`` keys
    (``ValueError`` otherwise). Lookups of unknown instruments raise
    ``ValueError`` naming the field and the value. Index instruments (Kite's
    segment ``INDICES``) are equities of lot 1, quoted but not traded.
    ``reference_price`` is the dump's ``last_price`` (None when 0).
    """

    def __init__(
        self,
        instruments: Iterable[Instrument],
        index_tokens: Iterable[int] = (),
        reference_prices: Mapping[int, Money] | None = None,
    ) -> None:
        by_token: dict[int, Instrument] = {}
        by_key: dict[tuple[Exchange, str], Instrument] = {}
        for instrument in instruments:
            if not isinstance(instrument, Instrument):
                raise ValueError(f"instruments: must be Instrument, got {instrument!r}")
            if instrument.instrument_token in by_token:
                raise ValueError(
                    f"instrument_token: duplicate instrument {instrument.instrument_token}"
                )
            key = (instrument.exchange, instrument.tradingsymbol)
            if key in by_key:
                raise ValueError(f"tradingsymbol: duplicate instrument {instrument.key}")
            by_token[instrument.instrument_token] = instrument
            by_key[key] = instrument
        self._by_token = {token: by_token[token] for token in sorted(by_token)}
        self._by_key = by_key
        self._indices: dict[str, Instrument] = {}
        for token in index_tokens:
            index = self.get(token)
            self._indices[index.tradingsymbol] = index
        self._reference = dict(reference_prices or {})
        for token in self._reference:
            self.get(token)
        chains: dict[tuple[str, date], list[Instrument]] = {}
        for instrument in self._by_token.values():
            if instrument.is_option and instrument.expiry is not None:
                chains.setdefault((instrument.name, instrument.expiry), []).append(instrument)
        self._chains = {key: sorted(chain, key=_option_order) for key, chain in chains.items()}
        expiries: dict[str, list[date]] = {}
        for name, expiry in sorted(self._chains):
            expiries.setdefault(name, []).append(expiry)
        self._expiries = expiries

    @classmethod
    def from_csv(cls, text: str, on_bad_row: Callable[[str], None] | None = None,
                 limit: int | None = None) -> InstrumentTable:
        """Parse Kite's instruments dump; ``ValueError`` names row, column and value.

        With ``on_bad_row`` (a live dump of tens of thousands of rows), a bad or
        duplicate row is reported to it and skipped instead; with ``limit``,
        rows beyond the first ``limit`` good ones are reported and skipped
        (the cache stays bounded)."""
        reader = csv.reader(io.StringIO(text.removeprefix("\ufeff")))
        header = next(reader, None)
        if header is None or tuple(column.strip() for column in header) != COLUMNS:
            raise ValueError(f"header: expected columns {','.join(COLUMNS)}, got {header!r}")
        instruments: list[Instrument] = []
        indices: list[int] = []
        prices: dict[int, Money] = {}
        seen_tokens: set[int] = set()
        seen_keys: set[str] = set()
        for row_no, row in enumerate(reader, start=1):
            if not row:
                continue
            try:
                if limit is not None and len(instruments) >= limit:
                    raise ValueError(f"row {row_no}: beyond the cache's limit of {limit} "
                                     "instruments")
                instrument, is_index, price = _parse_row(row_no, row)
                if instrument.instrument_token in seen_tokens:
                    raise ValueError(
                        f"row {row_no}, column instrument_token: duplicate instrument, "
                        f"got {instrument.instrument_token}"
                    )
                if instrument.key in seen_keys:
                    raise ValueError(
                        f"row {row_no}, column tradingsymbol: duplicate instrument, "
                        f"got {instrument.key}"
                    )
            except ValueError as error:
                if on_bad_row is None:
                    raise
                on_bad_row(str(error))
                continue
            seen_tokens.add(instrument.instrument_token)
            seen_keys.add(instrument.key)
            instruments.append(instrument)
            if is_index:
                indices.append(instrument.instrument_token)
            if price is not None:
                prices[instrument.instrument_token] = price
        return cls(instruments, indices, prices)

    def get(self, token: int) -> Instrument:
        """The instrument with this token; ``ValueError`` if unknown."""
        instrument = self._by_token.get(token)
        if instrument is None:
            raise ValueError(f"instrument_token: unknown instrument {token}")
        return instrument

    def by_symbol(self, exchange: Exchange | str, tradingsymbol: str) -> Instrument:
        """The instrument ``exchange:tradingsymbol``; ``ValueError`` if unknown."""
        try:
            market = Exchange(exchange)
        except ValueError:
            allowed = ", ".join(e.value for e in Exchange)
            raise ValueError(f"exchange: must be one of {allowed}, got {exchange!r}") from None
        instrument = self._by_key.get((market, tradingsymbol))
        if instrument is None:
            raise ValueError(f"tradingsymbol: unknown instrument {market.value}:{tradingsymbol}")
        return instrument

    def __contains__(self, token: object) -> bool:
        return type(token) is int and token in self._by_token

    def __len__(self) -> int:
        return len(self._by_token)

    def __iter__(self) -> Iterator[Instrument]:
        """Every instrument, in ascending token order."""
        return iter(self._by_token.values())

    def is_index(self, token: int) -> bool:
        """True iff ``token`` is an index (segment ``INDICES``)."""
        instrument = self._by_token.get(token)
        return instrument is not None and self._indices.get(instrument.tradingsymbol) is instrument

    def reference_price(self, token: int) -> Money | None:
        """The dump's ``last_price`` of ``token`` (None when the dump gave 0)."""
        self.get(token)
        return self._reference.get(token)

    def expiries(self, name: str) -> list[date]:
        """The option expiries listed for underlying ``name``, ascending."""
        return list(self._expiries.get(name, ()))

    def options(self, name: str, expiry: date) -> list[Instrument]:
        """The option chain of ``name`` expiring on ``expiry``: by strike, CE before PE."""
        return list(self._chains.get((name, expiry), ()))

    def underlying_index(self, name: str) -> Instrument:
        """The index instrument an option chain named ``name`` is written on."""
        symbol = index_tradingsymbol(name)
        index = self._indices.get(symbol) or self._indices.get(name)
        if index is None:
            raise ValueError(f"name: no index instrument {symbol!r} for underlying {name}")
        return index


def _parse_row(row_no: int, row: list[str]) -> tuple[Instrument, bool, Money | None]:
    """One dump row -> (instrument, is it an index, reference price or None)."""
    if len(row) != len(COLUMNS):
        raise ValueError(f"row {row_no}: expected {len(COLUMNS)} columns, got {len(row)}")
    cells = dict(zip(COLUMNS, (cell.strip() for cell in row), strict=True))

    def bad(column: str, problem: str) -> ValueError:
        return ValueError(f"row {row_no}, column {column}: {problem}, got {cells[column]!r}")

    def integer(column: str) -> int:
        try:
            return int(cells[column])
        except ValueError:
            raise bad(column, "must be an integer") from None

    def rupees(column: str) -> Decimal:
        try:
            value = Decimal(cells[column] or "0")
        except InvalidOperation:
            raise bad(column, "must be a number") from None
        if not value.is_finite() or value < 0:
            raise bad(column, "must be a finite number >= 0")
        return value

    token = integer("instrument_token")
    if token <= 0:
        raise bad("instrument_token", "must be > 0")
    integer("exchange_token")
    symbol = cells["tradingsymbol"]
    if not symbol:
        raise bad("tradingsymbol", "must not be empty")
    try:
        exchange = Exchange(cells["exchange"])
    except ValueError:
        raise bad("exchange", "must be one of " + ", ".join(e.value for e in Exchange)) from None
    try:
        kind = InstrumentKind(cells["instrument_type"])
    except ValueError:
        allowed = ", ".join(k.value for k in InstrumentKind)
        raise bad("instrument_type", "must be one of " + allowed) from None
    is_index = cells["segment"] == _INDEX_SEGMENT
    tick = Money.from_rupees(rupees("tick_size"))
    lot = integer("lot_size")
    if is_index:
        tick = tick if tick.paise > 0 else Money(_INDEX_TICK_PAISE)
        lot = lot if lot > 0 else _INDEX_LOT_SIZE
    if tick.paise <= 0:
        raise bad("tick_size", "must be > 0")
    if lot <= 0:
        raise bad("lot_size", "must be > 0")
    expiry: date | None = None
    if cells["expiry"]:
        try:
            expiry = date.fromisoformat(cells["expiry"])
        except ValueError:
            raise bad("expiry", "must be a date YYYY-MM-DD") from None
    strike_rupees = rupees("strike")
    strike = Money.from_rupees(strike_rupees) if strike_rupees > 0 else None
    if kind in (InstrumentKind.CE, InstrumentKind.PE):
        if strike is None:
            raise bad("strike", "an option needs a strike > 0")
        if expiry is None:
            raise bad("expiry", "an option needs an expiry")
    elif kind is InstrumentKind.FUT and expiry is None:
        raise bad("expiry", "a future needs an expiry")
    last = rupees("last_price")
    try:
        instrument = Instrument(
            instrument_token=token,
            exchange=exchange,
            tradingsymbol=symbol,
            name=cells["name"] or symbol,
            kind=kind,
            lot_size=lot,
            tick_size=tick,
            expiry=expiry,
            strike=strike if kind in (InstrumentKind.CE, InstrumentKind.PE) else None,
        )
    except ValueError as error:
        raise ValueError(f"row {row_no}: {error}") from None
    return instrument, is_index, Money.from_rupees(last) if last > 0 else None


def _plain(value: Decimal) -> str:
    """A Decimal without exponent or trailing zeros: 24000.0 -> '24000', 22.50 -> '22.5'."""
    return format(value.normalize(), "f")


def _chain_rows(
    underlying: UnderlyingConfig, market: MarketConfig, expiry: date
) -> tuple[list[list[object]], int]:
    """The chain's CSV rows and the last exchange token they use."""
    step = underlying.strike_step_rupees
    atm = (underlying.spot_rupees / step).to_integral_value(rounding=ROUND_HALF_UP) * step
    prefix = f"{underlying.name}{expiry.year % 100:02d}{_MONTHS[expiry.month - 1]}"
    name, day, lot = underlying.name, expiry.isoformat(), underlying.lot_size
    tick = _plain(market.tick_size_rupees)
    rows: list[list[object]] = []
    exchange_token = underlying.token_base
    for k in range(-market.strikes_each_side, market.strikes_each_side + 1):
        strike = _plain(atm + k * step)
        if atm + k * step <= 0:
            continue
        for kind in (InstrumentKind.CE.value, InstrumentKind.PE.value):
            exchange_token += 1
            symbol = f"{prefix}{strike}{kind}"
            rows.append([instrument_token(exchange_token, "NFO"), exchange_token, symbol, name,
                         0, day, strike, tick, lot, kind, *_NFO_OPT])
    return rows, exchange_token


def _equity_row(
    token: int, exchange_token: int, symbol: str, name: str, rupees: Decimal, tick: str, lot: int
) -> list[object]:
    """An NSE equity row; lot 0 makes it an index row (segment INDICES), as Kite lists them."""
    nse, eq, price = Exchange.NSE.value, InstrumentKind.EQ.value, _plain(rupees)
    segment = _INDEX_SEGMENT if lot == 0 else nse
    return [token, exchange_token, symbol, name, price, "", 0, tick, lot, eq, segment, nse]


def synthetic_dump_csv(market: MarketConfig, trade_date: date, calendar: MarketCalendar) -> str:
    """The simulated market's instruments dump, in Kite's CSV format.

    Tokens are Kite's: ``(exchange_token << 8) | segment`` (see
    :func:`instrument_token`). For each underlying: its index (exchange token
    ``token_base``, segment INDICES, lot 0 as Kite lists it, ``last_price`` =
    the configured spot) and the option chain of its nearest weekly expiry
    (:func:`weekly_expiry`): ``strikes_each_side`` strikes either side of the
    at-the-money strike (spot rounded to the strike step), CE and PE each,
    exchange tokens ``token_base + 1`` upwards. Symbols use the monthly style
    ``NIFTY26DEC24000CE``. Then a few real NSE equities (``M&M``,
    ``BAJAJ-AUTO``, ...) and ``market.extra_instruments`` equities
    ``SYN0001``... with exchange tokens after the highest one used so far.
    """
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(COLUMNS)
    tick = _plain(market.tick_size_rupees)
    highest = max(exchange_token for _, exchange_token, *_ in _REFERENCE_EQUITIES)
    for underlying in market.underlyings:
        base, symbol = underlying.token_base, index_tradingsymbol(underlying.name)
        writer.writerow(_equity_row(instrument_token(base, _INDEX_SEGMENT), base, symbol, symbol,
                                    underlying.spot_rupees, tick, 0))
        expiry = weekly_expiry(trade_date, underlying.expiry_weekday, calendar)
        rows, last_token = _chain_rows(underlying, market, expiry)
        writer.writerows(rows)
        highest = max(highest, last_token)
    for token, exchange_token, symbol, name, rupees in _REFERENCE_EQUITIES:
        writer.writerow(_equity_row(token, exchange_token, symbol, name, rupees, tick, 1))
    for number in range(1, market.extra_instruments + 1):
        exchange_token, symbol = highest + number, f"{_SYNTHETIC_PREFIX}{number:04d}"
        row = _equity_row(instrument_token(exchange_token, "NSE"), exchange_token, symbol,
                          symbol, _SYNTHETIC_EQUITY_RUPEES, tick, 1)
        writer.writerow(row)
    return buffer.getvalue()
