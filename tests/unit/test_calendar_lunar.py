"""Years the holiday package does not cover: statutory holidays computed from the lunar
calendar, no 调休 guessed, the configured days winning, and what `calendar show` lists."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from maild.calendar.arrangement import arrangement
from maild.calendar.business import (
    BusinessCalendar,
    CalendarSettings,
    uncovered_warning,
    uncovered_years,
    year_basis,
)
from maild.calendar.durations import WorkingDuration
from maild.calendar.sources import computed_holidays, package_covers

SH = ZoneInfo("Asia/Shanghai")
CAL = BusinessCalendar(CalendarSettings())


def at(y: int, m: int, d: int, h: int = 9, mi: int = 0) -> datetime:
    return datetime(y, m, d, h, mi, tzinfo=SH)


def test_the_package_ends_where_the_computed_years_begin() -> None:
    assert package_covers(2026) and not package_covers(2027)
    assert year_basis(CalendarSettings(), 2026) == "package"
    assert year_basis(CalendarSettings(), 2027) == "computed"
    assert year_basis(CalendarSettings(source="weekdays"), 2027) == "weekdays"
    assert year_basis(CalendarSettings(), 2101) == "weekdays"  # beyond the lunar tables


def test_spring_festival_2027_is_computed_from_the_lunar_calendar() -> None:
    # 2027-02-06 (Sat) is 正月初一; 除夕 is Fri 02-05, 初二/初三 Sun and Mon; 初一 and 初二
    # fall on the weekend, so the law's 补假 makes Tue 02-09 and Wed 02-10 days off too.
    days = computed_holidays(2027)
    assert days[date(2027, 2, 5)] == "农历除夕"
    assert days[date(2027, 2, 6)] == days[date(2027, 2, 8)] == "春节"
    assert days[date(2027, 2, 9)] == "春节（补假）"
    for d in (5, 8, 9, 10):
        assert not CAL.is_working_day(date(2027, 2, d)), d
    assert CAL.is_working_day(date(2027, 2, 4))
    assert CAL.is_working_day(date(2027, 2, 11))  # the yearly 调休 is not guessed
    assert not CAL.is_working_day(date(2027, 2, 13))  # and no weekend is made a working day


def test_the_other_statutory_days_of_2027() -> None:
    off = {date(2027, 1, 1), date(2027, 4, 5), date(2027, 5, 3), date(2027, 5, 4),
           date(2027, 6, 9), date(2027, 9, 15), date(2027, 10, 1), date(2027, 10, 4),
           date(2027, 10, 5)}
    for day in off:
        assert not CAL.is_working_day(day), day
    assert CAL.is_working_day(date(2027, 10, 6))
    assert CAL.is_working_day(date(2027, 4, 6))


def test_a_second_computed_year_moves_with_the_moon() -> None:
    # 2028: 除夕 Tue 01-25, 初一..初三 Wed-Fri 01-26..28; 元旦 on a Saturday -> Mon 01-03 off
    assert [d for d in (date(2028, 1, 24) + timedelta(n) for n in range(6))
            if not CAL.is_working_day(d)] == [date(2028, 1, 25), date(2028, 1, 26),
                                              date(2028, 1, 27), date(2028, 1, 28),
                                              date(2028, 1, 29)]
    assert not CAL.is_working_day(date(2028, 1, 3))


def test_working_time_skips_the_computed_spring_festival() -> None:
    assert CAL.add_working(at(2027, 2, 4, 17), timedelta(hours=2)) == at(2027, 2, 11, 10)
    assert CAL.add_working_days(at(2027, 2, 4, 10), 1) == at(2027, 2, 11, 10)
    assert WorkingDuration.parse("1 working day").after(CAL, at(2027, 2, 8, 15)) \
        == at(2027, 2, 12, 9)
    assert CAL.working_between(at(2027, 2, 5, 9), at(2027, 2, 11, 9)) == timedelta(0)
    assert CAL.next_working_moment(at(2027, 2, 8, 10)) == at(2027, 2, 11, 9)


def test_configured_days_win_over_computed_ones() -> None:
    settings = CalendarSettings(extra_working_days=frozenset({date(2027, 2, 10),
                                                              date(2027, 2, 20)}),
                                extra_closed_days=frozenset({date(2027, 2, 11)}))
    cal = BusinessCalendar(settings)
    assert cal.is_working_day(date(2027, 2, 10))  # a computed 补假 opened
    assert cal.is_working_day(date(2027, 2, 20))  # a make-up Saturday
    assert not cal.is_working_day(date(2027, 2, 11))
    assert cal.add_working(at(2027, 2, 4, 17), timedelta(hours=2)) == at(2027, 2, 10, 10)
    assert uncovered_years(settings, [2027]) == [2027]  # configuring never silences it
    assert "(2 working day(s) configured for 2027)" in uncovered_warning(settings, 2027)


def test_weekdays_source_has_no_holidays_in_any_year() -> None:
    cal = BusinessCalendar(CalendarSettings(source="weekdays"))
    assert cal.is_working_day(date(2027, 2, 8))
    year = arrangement(cal, 2027)
    assert year.basis == "weekdays" and year.warning is None
    assert year.days_off == () and year.working_days == ()


def test_arrangement_of_a_computed_year() -> None:
    settings = CalendarSettings(extra_working_days=frozenset({date(2027, 2, 20)}),
                                extra_closed_days=frozenset({date(2027, 2, 11)}))
    year = arrangement(BusinessCalendar(settings), 2027)
    assert year.basis == "computed" and not year.makeup_days_known
    assert year.warning and "调休" in year.warning and "extra_working_days" in year.warning
    off = {d.day: (d.name, d.origin) for d in year.days_off}
    assert off[date(2027, 2, 5)] == ("农历除夕", "computed")
    assert off[date(2027, 2, 8)] == ("春节", "computed")
    assert off[date(2027, 2, 11)] == ("", "configured")
    assert [(d.day, d.origin) for d in year.working_days] == [(date(2027, 2, 20), "configured")]
    assert all(not BusinessCalendar(settings).is_working_day(d.day) for d in year.days_off)


def test_arrangement_of_a_package_year_has_its_make_up_days() -> None:
    year = arrangement(CAL, 2026)
    assert year.basis == "package" and year.makeup_days_known and year.warning is None
    working = {d.day: d.name for d in year.working_days}
    assert working[date(2026, 2, 14)] == "春节调休上班"
    assert set(working) == {date(2026, 1, 4), date(2026, 2, 14), date(2026, 2, 28),
                            date(2026, 5, 9), date(2026, 9, 20), date(2026, 10, 10)}
    off = {d.day: d.name for d in year.days_off}
    assert off[date(2026, 2, 16)] == "春节" and off[date(2026, 10, 7)] == "国庆节"
    assert all(d.origin == "package" for d in year.days_off + year.working_days)


def test_beyond_the_lunar_tables_the_warning_says_mon_fri() -> None:
    year = arrangement(CAL, 2101)
    assert year.basis == "weekdays" and year.days_off == ()
    assert year.warning and "fall back to Mon-Fri" in year.warning
    assert CAL.is_working_day(date(2101, 1, 3))  # a Monday; 2101-01-01 is a Saturday
