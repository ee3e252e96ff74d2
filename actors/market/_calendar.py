"""The exchange trading calendar: which days trade, and when the session is open.

Holidays come from the ``holidays`` package's financial calendar (``XNSE`` by
default) plus the configuration's overrides: ``extra_holidays`` close a day,
``extra_sessions`` open one (even on a weekend or a listed holiday).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import holidays

from actors.config._schema import CalendarConfig
from messages._validate import require_aware

__all__ = ["IST", "MarketCalendar", "weekly_expiry"]

IST = ZoneInfo("Asia/Kolkata")
"""India Standard Time: every session time in the configuration is IST."""

_SATURDAY = 5  # date.weekday() of Saturday; Sunday is 6
_MAX_CACHED_YEARS = 16  # holiday years kept in memory; the oldest loaded is evicted first
_MAX_SEARCH_DAYS = 366  # next/previous trading day gives up after this many days
_ONE_DAY = timedelta(days=1)
_DAYS_PER_WEEK = 7
_MAX_EXPIRY_WEEKS = 8  # weekly_expiry gives up after this many weeks without a trading day


def _require_date(field: str, value: object) -> date:
    if isinstance(value, datetime) or not isinstance(value, date):
        raise ValueError(f"{field}: must be a date (not a datetime), got {value!r}")
    return value


def _to_ist(field: str, value: object) -> datetime:
    return require_aware(field, value).astimezone(IST)


class MarketCalendar:
    """The trading calendar of one exchange, with configured overrides.

    Contract: a day trades iff it is in ``extra_sessions``, or it is a weekday
    that is neither in ``extra_holidays`` nor an exchange holiday. The session
    is open iff the day trades and ``session_open <= time < session_close``
    (IST). Every datetime argument must be timezone-aware (``ValueError``
    otherwise); it is converted to IST before its date and time are read.
    Holiday years are loaded lazily and at most ``_MAX_CACHED_YEARS`` are kept.
    Any thread may call it without locks: the year cache is replaced
    copy-on-write (an atomic reference swap), never mutated in place; a race
    costs at most a second load of the same year.
    """

    def __init__(self, config: CalendarConfig) -> None:
        if config.exchange not in holidays.list_supported_financial():
            raise ValueError(
                f"calendar.exchange: not a financial calendar of the holidays package, "
                f"got {config.exchange!r}"
            )
        if not config.session_open < config.session_close:
            raise ValueError(
                f"calendar.session_open: must be before session_close "
                f"{config.session_close.isoformat()}, got {config.session_open.isoformat()}"
            )
        for name, days in (
            ("extra_holidays", config.extra_holidays),
            ("extra_sessions", config.extra_sessions),
        ):
            for day in days:
                _require_date(f"calendar.{name}", day)
        both = sorted(set(config.extra_holidays) & set(config.extra_sessions))
        if both:
            raise ValueError(
                f"calendar.extra_sessions: {both[0].isoformat()} is also in extra_holidays"
            )
        self._config = config
        self._extra_holidays = frozenset(config.extra_holidays)
        self._extra_sessions = frozenset(config.extra_sessions)
        self._years: dict[int, Mapping[date, str]] = {}

    @property
    def config(self) -> CalendarConfig:
        """The configuration this calendar was built from."""
        return self._config

    def _exchange_holidays(self, year: int) -> Mapping[date, str]:
        cached = self._years.get(year)
        if cached is None:
            listed = holidays.financial_holidays(self._config.exchange, years=year)
            cached = {day: str(name) for day, name in listed.items()}
            years = dict(self._years)  # copy-on-write: readers never see a dict change
            if len(years) >= _MAX_CACHED_YEARS:
                del years[next(iter(years))]
            years[year] = cached
            self._years = years
        return cached

    def holiday_name(self, d: date) -> str | None:
        """The reason ``d`` is closed as a holiday (listed or configured), else None.

        Weekends are not holidays; a configured extra session is never one.
        """
        _require_date("d", d)
        if d in self._extra_sessions:
            return None
        if d in self._extra_holidays:
            return "unscheduled closure, calendar.extra_holidays"
        return self._exchange_holidays(d.year).get(d)

    def _closed_reason(self, d: date) -> str | None:
        """Why ``d`` does not trade, or None if it does."""
        if d in self._extra_sessions:
            return None
        if d.weekday() >= _SATURDAY:
            return f"{d.isoformat()} is a weekend ({d.strftime('%A')})"
        name = self.holiday_name(d)
        if name is not None:
            return f"{d.isoformat()} is an exchange holiday ({name})"
        return None

    def is_trading_day(self, d: date) -> bool:
        """True iff the exchange holds a session on ``d``."""
        _require_date("d", d)
        return self._closed_reason(d) is None

    def is_session_open(self, now: datetime) -> bool:
        """True iff ``now`` (aware) falls inside a trading day's session, in IST."""
        return self.entry_refusal(now) is None

    def entry_refusal(self, now: datetime) -> str | None:
        """None if a new entry may be placed at ``now`` (aware), else a human reason.

        Reasons: ``"2026-11-24 is an exchange holiday (Guru Nanak Jayanti)"``,
        ``"2026-11-21 is a weekend (Saturday)"``, ``"before session open 09:15 IST
        (now 09:14:59 IST)"``, ``"after session close 15:30 IST (now 15:30:00 IST)"``.
        """
        local = _to_ist("now", now)
        closed = self._closed_reason(local.date())
        if closed is not None:
            return closed
        t = local.time()
        cfg = self._config
        if t < cfg.session_open:
            return (
                f"before session open {cfg.session_open.strftime('%H:%M')} IST "
                f"(now {t.strftime('%H:%M:%S')} IST)"
            )
        if t >= cfg.session_close:
            return (
                f"after session close {cfg.session_close.strftime('%H:%M')} IST "
                f"(now {t.strftime('%H:%M:%S')} IST)"
            )
        return None

    def next_trading_day(self, d: date) -> date:
        """The first trading day on or after ``d`` (``d`` itself if it trades)."""
        return self._search(d, _ONE_DAY)

    def previous_trading_day(self, d: date) -> date:
        """The last trading day on or before ``d`` (``d`` itself if it trades)."""
        return self._search(d, -_ONE_DAY)

    def _search(self, d: date, step: timedelta) -> date:
        _require_date("d", d)
        day = d
        for _ in range(_MAX_SEARCH_DAYS):
            if self._closed_reason(day) is None:
                return day
            day += step
        raise ValueError(f"d: no trading day within {_MAX_SEARCH_DAYS} days of {d.isoformat()}")


def weekly_expiry(trade_date: date, expiry_weekday: int, calendar: MarketCalendar) -> date:
    """The nearest weekly expiry on or after ``trade_date``.

    The first date >= ``trade_date`` whose weekday is ``expiry_weekday``
    (0 = Monday); if it does not trade, the trading day before it; if that is
    before ``trade_date`` (already expired), the same rule one week later.
    """
    _require_date("trade_date", trade_date)
    if isinstance(expiry_weekday, bool) or expiry_weekday not in range(_DAYS_PER_WEEK):
        raise ValueError(f"expiry_weekday: must be 0 (Monday) .. 6, got {expiry_weekday!r}")
    offset = (expiry_weekday - trade_date.weekday()) % _DAYS_PER_WEEK
    candidate = trade_date + timedelta(days=offset)
    for _ in range(_MAX_EXPIRY_WEEKS):
        expiry = calendar.previous_trading_day(candidate)
        if expiry >= trade_date:
            return expiry
        candidate += timedelta(days=_DAYS_PER_WEEK)
    raise ValueError(
        f"trade_date: no weekly expiry within {_MAX_EXPIRY_WEEKS} weeks of {trade_date}"
    )
