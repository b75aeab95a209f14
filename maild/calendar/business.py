"""The business calendar: working days, working hours and working-time arithmetic.

Every function here is a pure function of the times it is given; nothing reads the clock.

Holiday data
    ``chinesecalendar`` is the default source. It carries the State Council arrangement of
    each year it covers *including the make-up workdays* (调休, e.g. Sun 2025-01-26 and Sat
    2025-02-08 around Spring Festival) as explicit data, and it raises for a year it does not
    cover, so we know when its data ends. ``source="weekdays"`` switches every holiday source
    off: plain Mon-Fri plus the configured days.

Years the package does not cover
    ``chinesecalendar`` 1.11 stops at 2026. For a later year the statutory days off are
    computed from the lunar calendar with ``holidays.China`` (see ``maild.calendar.sources``:
    元旦, 除夕 and 春节 1-3, 清明, 劳动节 1-2 May, 端午, 中秋, 国庆 1-3 October, and the
    legal 补假 weekday when one falls on a weekend). The yearly 调休 (weekends worked, the
    extra weekdays off they pay for) is not guessed: the admin configures it in
    ``extra_working_days`` / ``extra_closed_days`` once the State Council announces it.
    ``uncovered_years`` lists such years and ``uncovered_warning`` says so, for the daemon's
    start-up, ``config check`` and ``maild calendar show``. The configured days always win.

Working periods and conventions
    Working hours are the same on every working day, by default 09:00-12:00 and 13:30-18:00
    in Asia/Shanghai. A period is half-open: 09:00 is a working moment, 12:00 is not.
    Aware datetimes in any time zone are accepted and converted to the calendar's zone;
    naive ones are rejected with ``ValueError``. Results are in the calendar's zone.
    Durations are elapsed time (computed in UTC), which only matters for zones with DST.

    ``add_working(start, d)`` counts ``d`` of working time from ``start`` (or from the next
    working moment when ``start`` lies outside working hours). When the count is used up
    exactly at the end of a period, the result *is that period end* (17:00 + 1h = 18:00 the
    same day, not 09:00 the next working day): a deadline is "by the end of the day". So a
    result is a working moment, or a period end reached by a positive duration.
    ``add_working(start, 0)`` is ``next_working_moment(start)``.

    ``add_working_days(start, n)`` ("within n working days") first moves ``start`` forward
    to the next working moment (so a request at 20:00 or 12:30 counts from 09:00 the next
    working day or 13:30 the same day), then keeps that clock time and moves to the n-th
    working day after. The result is always a working moment, and exactly n working days'
    worth of working time lies between ``start`` and it.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import chinese_calendar

from maild.calendar.sources import Basis, computed_holidays, package_covers

__all__ = [
    "DEFAULT_PERIODS",
    "BusinessCalendar",
    "CalendarSettings",
    "CalendarSource",
    "uncovered_warning",
    "uncovered_years",
    "year_basis",
]

CalendarSource = Literal["chinesecalendar", "weekdays"]
Period = tuple[time, time]
Interval = tuple[datetime, datetime]  # one working period on one day, both ends in UTC

DEFAULT_PERIODS: tuple[Period, ...] = ((time(9, 0), time(12, 0)), (time(13, 30), time(18, 0)))
_SOURCES: tuple[str, ...] = ("chinesecalendar", "weekdays")
_ONE_DAY = timedelta(days=1)


@dataclass(frozen=True)
class CalendarSettings:
    """What the admin configures; validated on construction."""

    timezone: str = "Asia/Shanghai"
    periods: tuple[Period, ...] = DEFAULT_PERIODS
    extra_closed_days: frozenset[date] = field(default_factory=frozenset)
    extra_working_days: frozenset[date] = field(default_factory=frozenset)
    source: CalendarSource = "chinesecalendar"

    def __post_init__(self) -> None:
        # Accept any iterables from a config loader but store hashable, immutable values.
        object.__setattr__(self, "periods", tuple(tuple(p) for p in self.periods))
        object.__setattr__(self, "extra_closed_days", frozenset(self.extra_closed_days))
        object.__setattr__(self, "extra_working_days", frozenset(self.extra_working_days))
        _check_timezone(self.timezone)
        _check_periods(self.periods)
        _check_extra_days(self.extra_closed_days, self.extra_working_days)
        if self.source not in _SOURCES:
            raise ValueError(f"unknown calendar source {self.source!r}; expected one of {_SOURCES}")


def _check_timezone(name: str) -> None:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"unknown time zone {name!r}") from exc


def _check_periods(periods: tuple[Period, ...]) -> None:
    if not periods:
        raise ValueError("at least one working period is required")
    previous_end: time | None = None
    for start, end in periods:
        if not start < end:
            raise ValueError(f"working period {start}-{end} must start before it ends")
        if previous_end is not None and start < previous_end:
            raise ValueError(f"working periods must be in order and not overlap (at {start})")
        previous_end = end


def _check_extra_days(closed: frozenset[date], working: frozenset[date]) -> None:
    if any(isinstance(day, datetime) for day in closed | working):
        raise ValueError("extra closed/working days must be dates, not datetimes")
    both = sorted(closed & working)
    if both:
        raise ValueError(f"days both closed and working: {', '.join(map(str, both))}")


def year_basis(settings: CalendarSettings, year: int) -> Basis:
    """Where ``year``'s holidays come from under ``settings`` (before the configured days)."""
    if settings.source == "weekdays":
        return "weekdays"
    if package_covers(year):
        return "package"
    return "computed" if computed_holidays(year) else "weekdays"


def uncovered_years(settings: CalendarSettings, years: Iterable[int]) -> list[int]:
    """The years among ``years`` the holiday package has no data for, sorted, no repeats.

    Those years run on computed statutory holidays plus the configured extra days. The
    configured days do not count as coverage: the daemon should keep warning until the
    package knows the year. With ``source="weekdays"`` nothing is reported: the admin asked
    for no holiday data at all.
    """
    if settings.source == "weekdays":
        return []
    return sorted({year for year in years if not package_covers(year)})


def uncovered_warning(settings: CalendarSettings, year: int) -> str:
    """What the admin must hear about an uncovered ``year``: one line, in ``config check``,
    the daemon's start-up log and ``maild calendar show``."""
    head = f"calendar: no official holiday data for {year} (chinesecalendar has none)"
    if year_basis(settings, year) == "computed":
        body = ("; its statutory holidays are computed from the lunar calendar, but the 调休 "
                "make-up working days (and the extra days off they pay for) are announced by "
                "the State Council each year and must be configured in "
                "calendar.extra_working_days / calendar.extra_closed_days")
    else:
        body = ("; working days fall back to Mon-Fri plus calendar.extra_closed_days/"
                "extra_working_days, so deadlines may land on holidays")
    made_up = sum(1 for d in settings.extra_working_days if d.year == year)
    return (f"{head}{body} ({made_up} working day(s) configured for {year}); "
            f"check with `maild calendar show {year}`")


class BusinessCalendar:
    """Working-day and working-time questions answered for one ``CalendarSettings``."""

    def __init__(self, settings: CalendarSettings) -> None:
        self.settings = settings  # no default: the zone and hours are the site's, always
        self.tz = ZoneInfo(self.settings.timezone)
        # Per-day memos: the timer sweep asks about the same few days over and over.
        self._working_day: dict[date, bool] = {}
        self._intervals: dict[date, tuple[Interval, ...]] = {}

    # -- days -------------------------------------------------------------------------------

    def is_working_day(self, day: date) -> bool:
        """True when ``day`` (a date in the calendar's zone) is a working day."""
        if isinstance(day, datetime):
            raise TypeError("is_working_day takes a date; use is_working_moment for datetimes")
        known = self._working_day.get(day)
        if known is None:
            known = self._working_day[day] = self._decide_working_day(day)
        return known

    def _decide_working_day(self, day: date) -> bool:
        if day in self.settings.extra_working_days:
            return True
        if day in self.settings.extra_closed_days:
            return False
        basis = year_basis(self.settings, day.year)
        if basis == "package":
            return bool(chinese_calendar.is_workday(day))
        if basis == "computed" and day in computed_holidays(day.year):
            return False
        return day.weekday() < 5

    def working_days_before(self, day: date, n: int) -> date:
        """The n-th working day strictly before ``day`` (n >= 1), e.g. reminder dates.

        ``day`` itself need not be a working day: 2 working days before Monday is Thursday.
        """
        if n < 1:
            raise ValueError(f"n must be at least 1, got {n}")
        current = day
        while n:
            current -= _ONE_DAY
            if self.is_working_day(current):
                n -= 1
        return current

    def _working_days_after(self, day: date, n: int) -> date:
        current = day
        while n:
            current += _ONE_DAY
            if self.is_working_day(current):
                n -= 1
        return current

    # -- moments ----------------------------------------------------------------------------

    @property
    def working_day_length(self) -> timedelta:
        """Nominal working time in one working day (wall clock; DST days may differ)."""
        return sum((_span(start, end) for start, end in self.settings.periods), timedelta(0))

    def is_working_moment(self, dt: datetime) -> bool:
        """True when ``dt`` falls inside a working period of a working day."""
        moment = _to_utc(dt)
        intervals = self._day_intervals(self._local_date(moment))
        return any(start <= moment < end for start, end in intervals)

    def next_working_moment(self, dt: datetime) -> datetime:
        """``dt`` itself when it is a working moment, else the start of the next period."""
        moment = _to_utc(dt)
        start, _ = next(self._intervals_from(moment))
        return self._local(max(start, moment))

    def add_working(self, start: datetime, duration: timedelta) -> datetime:
        """The moment ``duration`` of working time after ``start`` (see module docstring)."""
        if duration < timedelta(0):
            raise ValueError(f"duration must not be negative, got {duration}")
        moment = _to_utc(start)
        remaining = duration
        for period_start, period_end in self._intervals_from(moment):
            cursor = max(period_start, moment)
            if remaining <= period_end - cursor:
                return self._local(cursor + remaining)
            remaining -= period_end - cursor
        raise AssertionError("unreachable: the interval stream is endless")

    def add_working_days(self, start: datetime, n: int) -> datetime:
        """Same clock time, n working days after ``next_working_moment(start)`` (n >= 0)."""
        if n < 0:
            raise ValueError(f"n must not be negative, got {n}")
        anchor = self.next_working_moment(start)
        day = self._working_days_after(anchor.date(), n)
        return datetime.combine(day, anchor.timetz())

    def working_between(self, a: datetime, b: datetime) -> timedelta:
        """Working time from ``a`` to ``b``; negative when ``b`` is before ``a``."""
        first, last = _to_utc(a), _to_utc(b)
        if last < first:
            return -self.working_between(b, a)
        total = timedelta(0)
        for period_start, period_end in self._intervals_from(first):
            if period_start >= last:
                return total
            total += min(period_end, last) - max(period_start, first)
        raise AssertionError("unreachable: the interval stream is endless")

    # -- internals --------------------------------------------------------------------------

    def _local(self, moment: datetime) -> datetime:
        return moment.astimezone(self.tz)

    def _local_date(self, moment: datetime) -> date:
        return moment.astimezone(self.tz).date()

    def _day_intervals(self, day: date) -> tuple[Interval, ...]:
        known = self._intervals.get(day)
        if known is None:
            known = self._intervals[day] = self._build_intervals(day)
        return known

    def _build_intervals(self, day: date) -> tuple[Interval, ...]:
        if not self.is_working_day(day):
            return ()
        return tuple(
            (
                datetime.combine(day, start, tzinfo=self.tz).astimezone(UTC),
                datetime.combine(day, end, tzinfo=self.tz).astimezone(UTC),
            )
            for start, end in self.settings.periods
        )

    def _intervals_from(self, moment: datetime) -> Iterator[Interval]:
        """Working periods (UTC) ending after ``moment``, in order, without end.

        Terminates in practice because closed days are finite runs: holidays last days, and
        configured closed days are a finite set.
        """
        day = self._local_date(moment)
        while True:
            for interval in self._day_intervals(day):
                if interval[1] > moment:
                    yield interval
            day += _ONE_DAY


def _span(start: time, end: time) -> timedelta:
    anchor = date(2000, 1, 1)
    return datetime.combine(anchor, end) - datetime.combine(anchor, start)


def _to_utc(dt: datetime) -> datetime:
    if not isinstance(dt, datetime):
        raise TypeError(f"expected an aware datetime, got {type(dt).__name__}")
    if dt.tzinfo is None or dt.utcoffset() is None:
        raise ValueError(f"naive datetime {dt.isoformat()} given; pass an aware datetime")
    return dt.astimezone(UTC)
