"""The XNSE trading calendar, session hours, weekly expiries and the clocks."""

from __future__ import annotations

import math
import time
from datetime import UTC, date, datetime, timedelta
from datetime import time as clock_time

import pytest

from actors.config._schema import CalendarConfig
from actors.market import IST, Clock, MarketCalendar, SimClock, WallClock, weekly_expiry

MONDAY = date(2026, 11, 23)
GURU_NANAK = date(2026, 11, 24)
CHRISTMAS = date(2026, 12, 25)
SATURDAY = date(2026, 11, 21)
SUNDAY = date(2026, 11, 22)


@pytest.fixture
def calendar() -> MarketCalendar:
    return MarketCalendar(CalendarConfig())


def at(day: date, hour: int, minute: int, second: int = 0, micro: int = 0) -> datetime:
    return datetime(day.year, day.month, day.day, hour, minute, second, micro, tzinfo=IST)


# --- trading days --------------------------------------------------------------------------


def test_xnse_2026_holidays_are_closed(calendar: MarketCalendar) -> None:
    assert not calendar.is_trading_day(GURU_NANAK)
    assert not calendar.is_trading_day(CHRISTMAS)
    assert calendar.holiday_name(GURU_NANAK) == "Guru Nanak Jayanti"


def test_ordinary_monday_is_open(calendar: MarketCalendar) -> None:
    assert MONDAY.weekday() == 0
    assert calendar.is_trading_day(MONDAY)
    assert calendar.holiday_name(MONDAY) is None


@pytest.mark.parametrize("day", [SATURDAY, SUNDAY])
def test_weekends_are_closed(calendar: MarketCalendar, day: date) -> None:
    assert not calendar.is_trading_day(day)
    reason = calendar.entry_refusal(at(day, 11, 0))
    assert reason is not None
    assert "weekend" in reason
    assert day.isoformat() in reason


def test_holiday_refusal_names_the_holiday(calendar: MarketCalendar) -> None:
    reason = calendar.entry_refusal(at(GURU_NANAK, 11, 0))
    assert reason == "2026-11-24 is an exchange holiday (Guru Nanak Jayanti)"
    christmas = calendar.entry_refusal(at(CHRISTMAS, 10, 0))
    assert christmas is not None
    assert "Christmas" in christmas


def test_next_and_previous_trading_day(calendar: MarketCalendar) -> None:
    assert calendar.next_trading_day(MONDAY) == MONDAY
    assert calendar.previous_trading_day(MONDAY) == MONDAY
    assert calendar.next_trading_day(SATURDAY) == MONDAY
    assert calendar.previous_trading_day(SUNDAY) == date(2026, 11, 20)
    assert calendar.next_trading_day(GURU_NANAK) == date(2026, 11, 25)
    assert calendar.previous_trading_day(GURU_NANAK) == MONDAY
    assert calendar.next_trading_day(CHRISTMAS) == date(2026, 12, 28)


def test_datetime_is_not_a_date(calendar: MarketCalendar) -> None:
    with pytest.raises(ValueError, match="d: must be a date"):
        calendar.is_trading_day(at(MONDAY, 10, 0))


def test_holiday_years_are_cached_within_a_bound(calendar: MarketCalendar) -> None:
    for year in range(2000, 2040):
        calendar.is_trading_day(date(year, 1, 26))
    assert 0 < len(calendar._years) <= 16
    assert not calendar.is_trading_day(date(2026, 1, 26))  # Republic Day, reloaded


# --- session hours -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("moment", "is_open"),
    [
        (at(MONDAY, 9, 14, 59), False),
        (at(MONDAY, 9, 14, 59, 999_999), False),
        (at(MONDAY, 9, 15), True),
        (at(MONDAY, 12, 0), True),
        (at(MONDAY, 15, 29, 59), True),
        (at(MONDAY, 15, 30), False),
        (at(MONDAY, 23, 59), False),
    ],
)
def test_session_boundaries(calendar: MarketCalendar, moment: datetime, is_open: bool) -> None:
    assert calendar.is_session_open(moment) is is_open
    assert (calendar.entry_refusal(moment) is None) is is_open


def test_other_time_zones_are_converted_to_ist(calendar: MarketCalendar) -> None:
    assert calendar.is_session_open(datetime(2026, 11, 23, 3, 45, tzinfo=UTC))  # 09:15 IST
    assert not calendar.is_session_open(datetime(2026, 11, 23, 3, 44, 59, tzinfo=UTC))
    assert not calendar.is_session_open(datetime(2026, 11, 23, 10, 0, tzinfo=UTC))  # 15:30
    # 20:00 UTC on Sunday is 01:30 IST on Monday: a trading day, before the open.
    reason = calendar.entry_refusal(datetime(2026, 11, 22, 20, 0, tzinfo=UTC))
    assert reason is not None
    assert reason.startswith("before session open 09:15 IST")


def test_naive_datetime_is_rejected(calendar: MarketCalendar) -> None:
    naive = datetime(2026, 11, 23, 10, 0)
    with pytest.raises(ValueError, match="now: must be timezone-aware"):
        calendar.is_session_open(naive)
    with pytest.raises(ValueError, match="now: must be timezone-aware"):
        calendar.entry_refusal(naive)


def test_entry_refusal_reasons(calendar: MarketCalendar) -> None:
    assert calendar.entry_refusal(at(MONDAY, 10, 0)) is None
    early = calendar.entry_refusal(at(MONDAY, 9, 14, 59))
    assert early == "before session open 09:15 IST (now 09:14:59 IST)"
    late = calendar.entry_refusal(at(MONDAY, 15, 30, 19))
    assert late == "after session close 15:30 IST (now 15:30:19 IST)"


def test_configured_session_hours_are_used() -> None:
    config = CalendarConfig(session_open=clock_time(10, 0), session_close=clock_time(11, 0))
    calendar = MarketCalendar(config)
    assert not calendar.is_session_open(at(MONDAY, 9, 30))
    assert calendar.is_session_open(at(MONDAY, 10, 30))
    refusal = calendar.entry_refusal(at(MONDAY, 11, 0))
    assert refusal is not None
    assert "after session close 11:00 IST" in refusal


# --- overrides and configuration errors ----------------------------------------------------


def test_extra_holiday_closes_a_trading_day() -> None:
    calendar = MarketCalendar(CalendarConfig(extra_holidays=(MONDAY,)))
    assert not calendar.is_trading_day(MONDAY)
    assert not calendar.is_session_open(at(MONDAY, 10, 0))
    reason = calendar.entry_refusal(at(MONDAY, 10, 0))
    assert reason is not None
    assert "2026-11-23 is an exchange holiday" in reason
    assert "extra_holidays" in reason
    assert calendar.next_trading_day(MONDAY) == date(2026, 11, 25)


def test_extra_sessions_open_weekends_and_holidays() -> None:
    calendar = MarketCalendar(CalendarConfig(extra_sessions=(SATURDAY, GURU_NANAK)))
    assert calendar.is_trading_day(SATURDAY)
    assert calendar.is_trading_day(GURU_NANAK)
    assert calendar.is_session_open(at(GURU_NANAK, 10, 0))
    assert calendar.entry_refusal(at(SATURDAY, 10, 0)) is None
    assert not calendar.is_trading_day(SUNDAY)
    assert calendar.next_trading_day(date(2026, 11, 21)) == SATURDAY


def test_a_day_cannot_be_both_closed_and_opened() -> None:
    config = CalendarConfig(extra_holidays=(MONDAY,), extra_sessions=(MONDAY,))
    with pytest.raises(ValueError, match="extra_sessions: 2026-11-23 is also in extra_holidays"):
        MarketCalendar(config)


def test_unknown_exchange_and_inverted_session_are_rejected() -> None:
    with pytest.raises(ValueError, match=r"calendar.exchange.*'XXXX'"):
        MarketCalendar(CalendarConfig(exchange="XXXX"))
    inverted = CalendarConfig(session_open=clock_time(15, 30), session_close=clock_time(9, 15))
    with pytest.raises(ValueError, match=r"calendar.session_open"):
        MarketCalendar(inverted)


# --- weekly expiry -------------------------------------------------------------------------


def test_weekly_expiry_is_the_next_tuesday(calendar: MarketCalendar) -> None:
    assert weekly_expiry(date(2026, 12, 2), 1, calendar) == date(2026, 12, 8)
    assert weekly_expiry(date(2026, 12, 8), 1, calendar) == date(2026, 12, 8)
    assert weekly_expiry(date(2026, 12, 9), 1, calendar) == date(2026, 12, 15)


def test_weekly_expiry_on_a_holiday_moves_to_the_day_before(calendar: MarketCalendar) -> None:
    assert weekly_expiry(date(2026, 11, 19), 1, calendar) == MONDAY
    # Trading on the holiday itself: that week's contract has expired; next week's is listed.
    assert weekly_expiry(GURU_NANAK, 1, calendar) == date(2026, 12, 1)


def test_weekly_expiry_rejects_bad_weekday(calendar: MarketCalendar) -> None:
    with pytest.raises(ValueError, match=r"expiry_weekday: .* got 7"):
        weekly_expiry(MONDAY, 7, calendar)


# --- clocks --------------------------------------------------------------------------------


def test_wall_clock_is_aware_ist_and_current() -> None:
    clock = WallClock()
    now = clock.now()
    assert now.tzinfo is IST
    assert abs((now - datetime.now(UTC)).total_seconds()) < 5
    assert isinstance(clock, Clock)


def test_sim_clock_starts_at_start_in_ist() -> None:
    start = datetime(2026, 11, 23, 3, 45, tzinfo=UTC)
    clock = SimClock(start, 10.0)
    assert isinstance(clock, Clock)
    assert clock.start == start
    assert clock.start.tzinfo is IST
    now = clock.now()
    assert now.tzinfo is IST
    assert timedelta(0) <= now - start < timedelta(seconds=5)


def test_sim_clock_runs_at_its_speed() -> None:
    speed = 60.0
    clock = SimClock(at(MONDAY, 9, 15), speed)
    w0 = time.monotonic()
    s0 = clock.now()
    w1 = time.monotonic()
    while time.monotonic() - w1 < 0.03:  # let measurable wall time pass (no sleep)
        pass
    w2 = time.monotonic()
    s1 = clock.now()
    w3 = time.monotonic()
    simulated = (s1 - s0).total_seconds()
    rounding = 2e-6  # now() is truncated to whole microseconds
    assert (w2 - w1) * speed - rounding <= simulated <= (w3 - w0) * speed + rounding
    ratio = simulated / (w2 - w1)
    assert speed * 0.8 < ratio < speed * 1.5


def test_sim_clock_seconds_to_wall() -> None:
    clock = SimClock(at(MONDAY, 9, 15), 4.0)
    assert clock.speed == 4.0
    assert clock.seconds_to_wall(60.0) == pytest.approx(15.0)
    assert SimClock(at(MONDAY, 9, 15), 0.5).seconds_to_wall(10.0) == pytest.approx(20.0)


@pytest.mark.parametrize("speed", [0.0, -1.0, math.nan, math.inf, True])
def test_sim_clock_rejects_bad_speed(speed: float) -> None:
    with pytest.raises(ValueError, match="speed: "):
        SimClock(at(MONDAY, 9, 15), speed)


def test_sim_clock_rejects_naive_start() -> None:
    with pytest.raises(ValueError, match="start: must be timezone-aware"):
        SimClock(datetime(2026, 11, 23, 9, 15), 1.0)
