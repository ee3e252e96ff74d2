"""The market: exchange calendar, clocks, instruments table and the simulated market.

* :class:`MarketCalendar` - XNSE trading days and session hours, with overrides.
* :class:`Clock`, :class:`WallClock`, :class:`SimClock` - where actors get the time.
* :class:`InstrumentTable` - Kite's instruments dump, indexed; :func:`synthetic_dump_csv`
  writes the simulated market's dump in the same format.
* :class:`SyntheticMarket` - seeded random walks and Black-Scholes option quotes.
"""

from actors.market._calendar import IST, MarketCalendar, weekly_expiry
from actors.market._clock import Clock, SimClock, WallClock
from actors.market._instruments import (
    COLUMNS,
    InstrumentTable,
    index_tradingsymbol,
    synthetic_dump_csv,
)
from actors.market._synthetic import SyntheticMarket, black_scholes, smile_volatility

__all__ = [
    "COLUMNS",
    "IST",
    "Clock",
    "InstrumentTable",
    "MarketCalendar",
    "SimClock",
    "SyntheticMarket",
    "WallClock",
    "black_scholes",
    "index_tradingsymbol",
    "smile_volatility",
    "synthetic_dump_csv",
    "weekly_expiry",
]
