"""The business calendar against the State Council holiday arrangements, plus properties."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import chinese_calendar
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from maild.calendar.business import BusinessCalendar, CalendarSettings, uncovered_years

SH = ZoneInfo("Asia/Shanghai")
CAL = BusinessCalendar(CalendarSettings())


def at(y: int, mo: int, d: int, h: int = 0, mi: int = 0) -> datetime:
    return datetime(y, mo, d, h, mi, tzinfo=SH)


# -- the official arrangements -------------------------------------------------------------

# (day, working?) from the State Council notices for 2025 and 2026; every row was checked
# against chinesecalendar 1.11 (see test_table_agrees_with_package).
ARRANGEMENTS: list[tuple[date, bool]] = [
    # 2025 New Year's Day
    (date(2025, 1, 1), False),
    (date(2025, 1, 2), True),
    # 2025 Spring Festival: off 1/28-2/4, make-up Sun 1/26 and Sat 2/8
    (date(2025, 1, 25), False),
    (date(2025, 1, 26), True),
    (date(2025, 1, 27), True),
    (date(2025, 1, 28), False),
    (date(2025, 1, 31), False),
    (date(2025, 2, 3), False),
    (date(2025, 2, 4), False),
    (date(2025, 2, 5), True),
    (date(2025, 2, 8), True),
    (date(2025, 2, 9), False),
    # 2025 Qingming 4/4-4/6; Labour Day 5/1-5/5 with make-up Sun 4/27
    (date(2025, 4, 4), False),
    (date(2025, 4, 27), True),
    (date(2025, 5, 1), False),
    (date(2025, 5, 2), False),
    (date(2025, 5, 5), False),
    (date(2025, 5, 6), True),
    # 2025 Dragon Boat 5/31-6/2
    (date(2025, 6, 2), False),
    # 2025 National Day + Mid-Autumn: off 10/1-10/8, make-up Sun 9/28 and Sat 10/11
    (date(2025, 9, 27), False),
    (date(2025, 9, 28), True),
    (date(2025, 9, 30), True),
    (date(2025, 10, 1), False),
    (date(2025, 10, 6), False),
    (date(2025, 10, 8), False),
    (date(2025, 10, 9), True),
    (date(2025, 10, 11), True),
    (date(2025, 10, 12), False),
    # 2026 New Year: off 1/1-1/3, make-up Sun 1/4
    (date(2026, 1, 1), False),
    (date(2026, 1, 2), False),
    (date(2026, 1, 4), True),
    # 2026 Spring Festival: off 2/15-2/23, make-up Sat 2/14 and Sat 2/28
    (date(2026, 2, 13), True),
    (date(2026, 2, 14), True),
    (date(2026, 2, 15), False),
    (date(2026, 2, 16), False),
    (date(2026, 2, 20), False),
    (date(2026, 2, 23), False),
    (date(2026, 2, 24), True),
    (date(2026, 2, 28), True),
    (date(2026, 3, 1), False),
    # 2026 Qingming 4/4-4/6; Labour Day 5/1-5/5 with make-up Sat 5/9; Dragon Boat 6/19
    (date(2026, 4, 6), False),
    (date(2026, 5, 4), False),
    (date(2026, 5, 5), False),
    (date(2026, 5, 9), True),
    (date(2026, 6, 19), False),
    # 2026 Mid-Autumn 9/25-9/27; National Day 10/1-10/7, make-up Sun 9/20 and Sat 10/10
    (date(2026, 9, 20), True),
    (date(2026, 9, 25), False),
    (date(2026, 10, 1), False),
    (date(2026, 10, 7), False),
    (date(2026, 10, 8), True),
    (date(2026, 10, 10), True),
    (date(2026, 10, 11), False),
]


@pytest.mark.parametrize(("day", "working"), ARRANGEMENTS, ids=str)
def test_official_arrangement(day: date, working: bool) -> None:
    assert CAL.is_working_day(day) is working


def test_table_agrees_with_package() -> None:
    assert [(d, chinese_calendar.is_workday(d)) for d, _ in ARRANGEMENTS] == ARRANGEMENTS


# -- working-time arithmetic ---------------------------------------------------------------

H = timedelta(hours=1)


@pytest.mark.parametrize(
    ("start", "duration", "expected"),
    [
        (at(2025, 3, 3, 17), 2 * H, at(2025, 3, 4, 10)),  # 17:00 + 2h = 10:00 next day
        (at(2025, 3, 7, 17), 2 * H, at(2025, 3, 10, 10)),  # Friday -> Monday
        (at(2025, 3, 3, 11, 30), H, at(2025, 3, 3, 14)),  # lunch break skipped
        (at(2025, 3, 3, 12, 15), H, at(2025, 3, 3, 14, 30)),  # starts during lunch
        (at(2025, 3, 3, 17), H, at(2025, 3, 3, 18)),  # ends exactly at a period end
        (at(2025, 3, 3, 11), H, at(2025, 3, 3, 12)),  # ... also before lunch
        (at(2025, 3, 3, 18), timedelta(0), at(2025, 3, 4, 9)),  # zero from after hours
        (at(2025, 3, 3, 10), timedelta(0), at(2025, 3, 3, 10)),
        (at(2025, 3, 8, 10), H, at(2025, 3, 10, 10)),  # Saturday counts from Monday
        (at(2025, 1, 27, 17), 2 * H, at(2025, 2, 5, 10)),  # over Spring Festival 2025
        (at(2025, 1, 24, 17), 2 * H, at(2025, 1, 26, 10)),  # into make-up Sunday 1/26
        (at(2025, 9, 30, 17), 2 * H, at(2025, 10, 9, 10)),  # over National Day 2025
        (at(2026, 9, 30, 17), 2 * H, at(2026, 10, 8, 10)),  # over National Day 2026
        (at(2025, 3, 3, 9), 15 * H, at(2025, 3, 4, 18)),  # two full 7.5h days end at 18:00
    ],
)
def test_add_working(start: datetime, duration: timedelta, expected: datetime) -> None:
    assert CAL.add_working(start, duration) == expected


@pytest.mark.parametrize(
    ("start", "n", "expected"),
    [
        # Friday 17:30 before the Qingming long weekend 2026 (Mon 4/6 off)
        (at(2026, 4, 3, 17, 30), 1, at(2026, 4, 7, 17, 30)),
        # Friday 17:30 before Spring Festival 2025 lands on the make-up Sunday
        (at(2025, 1, 24, 17, 30), 1, at(2025, 1, 26, 17, 30)),
        (at(2025, 1, 24, 17, 30), 3, at(2025, 2, 5, 17, 30)),
        # Friday 17:30 before National Day 2025 lands on the make-up Sunday 9/28
        (at(2025, 9, 26, 17, 30), 1, at(2025, 9, 28, 17, 30)),
        (at(2025, 9, 30, 17, 30), 1, at(2025, 10, 9, 17, 30)),
        # the make-up Saturday before Spring Festival 2026
        (at(2026, 2, 13, 17, 30), 1, at(2026, 2, 14, 17, 30)),
        (at(2026, 2, 14, 17, 30), 1, at(2026, 2, 24, 17, 30)),
        # outside working hours: counted from the next working moment
        (at(2025, 3, 3, 20), 1, at(2025, 3, 5, 9)),
        (at(2025, 3, 3, 12, 30), 1, at(2025, 3, 4, 13, 30)),
        (at(2025, 3, 8, 11), 1, at(2025, 3, 11, 9)),
        (at(2025, 3, 3, 20), 0, at(2025, 3, 4, 9)),
    ],
)
def test_add_working_days(start: datetime, n: int, expected: datetime) -> None:
    assert CAL.add_working_days(start, n) == expected


@pytest.mark.parametrize(
    ("due", "n", "expected"),
    [
        (date(2025, 3, 10), 2, date(2025, 3, 6)),  # Monday due -> Thursday reminder
        (date(2025, 3, 10), 1, date(2025, 3, 7)),
        (date(2025, 10, 9), 2, date(2025, 9, 29)),  # over National Day 2025
        (date(2025, 10, 13), 2, date(2025, 10, 10)),  # make-up Saturday 10/11 counts
        (date(2026, 10, 12), 2, date(2026, 10, 9)),  # make-up Saturday 10/10 counts
        (date(2026, 2, 25), 3, date(2026, 2, 13)),  # milestone notice 3 working days ahead
        (date(2025, 2, 9), 1, date(2025, 2, 8)),  # a Sunday due date, make-up Saturday
    ],
)
def test_working_days_before(due: date, n: int, expected: date) -> None:
    assert CAL.working_days_before(due, n) == expected


def test_milestone_notice_three_working_days_ahead_of_now() -> None:
    # asked on Thu 2025-09-25 at 10:00: Fri 9/26, make-up Sun 9/28, Mon 9/29
    assert CAL.add_working_days(at(2025, 9, 25, 10), 3) == at(2025, 9, 29, 10)


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        (at(2025, 3, 3, 8), at(2025, 3, 4, 8), timedelta(hours=7, minutes=30)),
        (at(2025, 3, 3, 11), at(2025, 3, 3, 14), timedelta(hours=1, minutes=30)),
        (at(2025, 3, 7, 17), at(2025, 3, 10, 10), 2 * H),
        (at(2025, 1, 27, 18), at(2025, 2, 5, 9), timedelta(0)),
        (at(2025, 3, 4, 10), at(2025, 3, 3, 17), -2 * H),
    ],
)
def test_working_between(a: datetime, b: datetime, expected: timedelta) -> None:
    assert CAL.working_between(a, b) == expected


@pytest.mark.parametrize(
    ("moment", "working"),
    [
        (at(2025, 3, 3, 9), True),
        (at(2025, 3, 3, 8, 59), False),
        (at(2025, 3, 3, 12), False),
        (at(2025, 3, 3, 13, 30), True),
        (at(2025, 3, 3, 18), False),
        (at(2025, 1, 26, 10), True),  # make-up Sunday
        (at(2025, 1, 29, 10), False),  # Spring Festival
    ],
)
def test_is_working_moment(moment: datetime, working: bool) -> None:
    assert CAL.is_working_moment(moment) is working


def test_next_working_moment() -> None:
    assert CAL.next_working_moment(at(2025, 3, 3, 10)) == at(2025, 3, 3, 10)
    assert CAL.next_working_moment(at(2025, 3, 3, 12)) == at(2025, 3, 3, 13, 30)
    assert CAL.next_working_moment(at(2025, 1, 27, 18)) == at(2025, 2, 5, 9)


def test_other_time_zones_are_converted() -> None:
    utc_nine = datetime(2025, 3, 3, 1, 0, tzinfo=UTC)  # 09:00 in Shanghai
    assert CAL.is_working_moment(utc_nine)
    result = CAL.add_working(datetime(2025, 3, 3, 9, 0, tzinfo=UTC), 2 * H)  # 17:00 local
    assert result == at(2025, 3, 4, 10)
    assert result.tzinfo == SH


# -- configuration -------------------------------------------------------------------------


def test_extra_days_override_package() -> None:
    cal = BusinessCalendar(
        CalendarSettings(
            extra_closed_days=frozenset({date(2025, 3, 5), date(2025, 9, 28)}),
            extra_working_days=frozenset({date(2025, 3, 8), date(2025, 10, 8)}),
        )
    )
    assert not cal.is_working_day(date(2025, 3, 5))  # plain Wednesday closed
    assert not cal.is_working_day(date(2025, 9, 28))  # package make-up day closed
    assert cal.is_working_day(date(2025, 3, 8))  # plain Saturday opened
    assert cal.is_working_day(date(2025, 10, 8))  # package holiday opened
    assert cal.add_working(at(2025, 3, 4, 17), 2 * H) == at(2025, 3, 6, 10)


def test_uncovered_year_is_reported_and_uses_computed_holidays() -> None:
    default = CalendarSettings()
    assert uncovered_years(default, [2027, 2025, 2026, 2027, 2003]) == [2003, 2027]
    assert uncovered_years(CalendarSettings(source="weekdays"), [2027]) == []
    assert not CAL.is_working_day(date(2027, 2, 8))  # 初三, computed (tests/unit/test_calendar_*)
    assert not CAL.is_working_day(date(2027, 2, 6))
    assert CAL.is_working_day(date(2027, 2, 11))  # no 调休 guessed: a plain Thursday


def test_uncovered_year_uses_config() -> None:
    cfg = CalendarSettings(
        extra_closed_days=frozenset({date(2027, 2, 8)}),
        extra_working_days=frozenset({date(2027, 2, 20)}),
    )
    cal = BusinessCalendar(cfg)
    assert not cal.is_working_day(date(2027, 2, 8))
    assert cal.is_working_day(date(2027, 2, 20))
    assert uncovered_years(cfg, [2027]) == [2027]  # config never silences the warning


def test_weekdays_source_ignores_package() -> None:
    cal = BusinessCalendar(CalendarSettings(source="weekdays"))
    assert cal.is_working_day(date(2025, 10, 1))
    assert not cal.is_working_day(date(2025, 9, 28))


def test_custom_periods_and_loader_friendly_inputs() -> None:
    cfg = CalendarSettings(
        periods=[(time(8), time(17))],  # type: ignore[arg-type]  # a loader may pass lists
        extra_closed_days={date(2025, 3, 4)},  # type: ignore[arg-type]
    )
    cal = BusinessCalendar(cfg)
    assert cfg.periods == ((time(8), time(17)),)
    assert cal.working_day_length == timedelta(hours=9)
    assert cal.add_working(at(2025, 3, 3, 16), 2 * H) == at(2025, 3, 5, 9)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"timezone": "Mars/Olympus"},
        {"periods": ()},
        {"periods": ((time(12), time(9)),)},
        {"periods": ((time(9), time(12)), (time(11), time(18)))},
        {"source": "holidays"},
        {"extra_closed_days": {date(2025, 3, 5)}, "extra_working_days": {date(2025, 3, 5)}},
    ],
)
def test_invalid_settings(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        CalendarSettings(**kwargs)  # type: ignore[arg-type]


def test_rejects_naive_and_bad_arguments() -> None:
    naive = datetime(2025, 3, 3, 10)
    for call in (
        lambda: CAL.is_working_moment(naive),
        lambda: CAL.next_working_moment(naive),
        lambda: CAL.add_working(naive, H),
        lambda: CAL.add_working_days(naive, 1),
        lambda: CAL.working_between(naive, at(2025, 3, 3)),
        lambda: CAL.add_working(at(2025, 3, 3), -H),
        lambda: CAL.add_working_days(at(2025, 3, 3), -1),
        lambda: CAL.working_days_before(date(2025, 3, 3), 0),
    ):
        with pytest.raises(ValueError):
            call()
    with pytest.raises(TypeError):
        CAL.is_working_day(at(2025, 3, 3, 10))


# -- properties ----------------------------------------------------------------------------

ZONES = [SH, UTC, ZoneInfo("America/New_York"), ZoneInfo("Europe/Berlin")]
moments = st.datetimes(
    min_value=datetime(2024, 12, 20),
    max_value=datetime(2027, 1, 10),
    timezones=st.sampled_from(ZONES),
)
minutes = st.integers(min_value=0, max_value=20_000).map(lambda m: timedelta(minutes=m))
PERIOD_ENDS = {end for _, end in CalendarSettings().periods}


def inside_or_period_end(result: datetime, duration: timedelta) -> bool:
    local = result.astimezone(SH)
    at_end = local.timetz().replace(tzinfo=None) in PERIOD_ENDS and CAL.is_working_day(local.date())
    return CAL.is_working_moment(result) or (duration > timedelta(0) and at_end)


@settings(deadline=None)
@given(moments, minutes)
def test_add_then_measure_round_trips(a: datetime, d: timedelta) -> None:
    result = CAL.add_working(a, d)
    assert result >= a
    assert CAL.working_between(a, result) == d
    assert inside_or_period_end(result, d)


@settings(deadline=None)
@given(moments)
def test_next_working_moment_is_working_and_free(a: datetime) -> None:
    result = CAL.next_working_moment(a)
    assert result >= a
    assert CAL.is_working_moment(result)
    assert CAL.working_between(a, result) == timedelta(0)
    assert CAL.add_working(a, timedelta(0)) == result


@settings(deadline=None)
@given(moments, moments, minutes, minutes)
def test_monotonic(a: datetime, b: datetime, d1: timedelta, d2: timedelta) -> None:
    a, b = sorted((a, b))
    d1, d2 = sorted((d1, d2))
    assert CAL.add_working(a, d1) <= CAL.add_working(a, d2)
    assert CAL.add_working(a, d1) <= CAL.add_working(b, d1)
    assert CAL.next_working_moment(a) <= CAL.next_working_moment(b)
    assert CAL.working_between(a, b) >= timedelta(0)


@settings(deadline=None)
@given(moments, moments, moments)
def test_working_between_is_additive(a: datetime, b: datetime, c: datetime) -> None:
    assert CAL.working_between(a, b) + CAL.working_between(b, c) == CAL.working_between(a, c)


@settings(deadline=None)
@given(moments, st.integers(min_value=0, max_value=30))
def test_add_working_days_is_n_full_days(a: datetime, n: int) -> None:
    result = CAL.add_working_days(a, n)
    assert CAL.is_working_moment(result)
    assert CAL.working_between(a, result) == n * CAL.working_day_length


@settings(deadline=None)
@given(st.dates(min_value=date(2025, 1, 1), max_value=date(2027, 1, 10)), st.integers(1, 30))
def test_working_days_before_counts_exactly(day: date, n: int) -> None:
    result = CAL.working_days_before(day, n)
    assert result < day
    assert CAL.is_working_day(result)
    span = (result + timedelta(days=i) for i in range((day - result).days))
    assert sum(CAL.is_working_day(d) for d in span) == n
