"""Where a year's holidays come from: the packaged arrangement, or the lunar calendar.

``chinesecalendar`` carries the State Council's arrangement of each year it covers, make-up
working days (调休) included. For a later year it has nothing, and the arrangement is not
announced before about November of the year before. For such a year the *statutory* days off
are still certain, because the law fixes them (全国年节及纪念日放假办法, 2024 revision):

    元旦 1 day, 春节 4 days (除夕 and the first three days of the lunar year), 清明 1,
    劳动节 2 (1-2 May), 端午 1, 中秋 1, 国庆节 3 (1-3 October);
    a statutory day that falls on a Saturday or Sunday is made up on the next working day.

``holidays.China`` computes exactly these from the lunar calendar (with the make-up days,
labelled 「补假」), so that is what an uncovered year uses. What it cannot know, and what we
do not guess, is the yearly 调休: the weekend days worked so that Spring Festival runs about
8 days and National Day 7-8 days, and the extra weekdays off they pay for. Those are announced
each year and must be configured (``extra_working_days`` / ``extra_closed_days``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import date, timedelta
from functools import lru_cache
from importlib.metadata import PackageNotFoundError, version
from types import MappingProxyType
from typing import Any, Literal

import chinese_calendar

from maild.data import statutory_holidays

__all__ = [
    "Basis",
    "computed_holidays",
    "package_covers",
    "package_days",
    "source_version",
    "table_source",
]

# Where a year's holidays come from: the packaged arrangement, computed statutory days, or
# none at all (plain Mon-Fri: source="weekdays", or a year the lunar tables do not reach).
Basis = Literal["package", "computed", "weekdays"]


@lru_cache(maxsize=256)
def package_covers(year: int) -> bool:
    """True when ``chinesecalendar`` has the State Council's arrangement for ``year``."""
    try:
        chinese_calendar.is_workday(date(year, 1, 1))
    except NotImplementedError:
        return False
    return True


@lru_cache(maxsize=64)
def computed_holidays(year: int) -> Mapping[date, str]:
    """The statutory days off of ``year`` computed from the lunar calendar, with their
    Chinese names (「春节」, 「春节（补假）」 for a make-up day off); empty when the table does
    not reach the year (the lunar tables stop after 2100).

    Read from ``maild/data/calendar/statutory-holidays.json``, which
    ``scripts/gen-statutory-holidays`` writes with ``holidays.China`` (a test checks it is
    what the installed ``holidays`` computes): importing ``holidays`` in the daemon would
    load all of its ~300 country modules, about 17 MB, to answer for one country."""
    days = _table()["years"].get(str(year), {})
    return MappingProxyType({date.fromisoformat(d): str(name) for d, name in sorted(days.items())})


@lru_cache(maxsize=1)
def _table() -> dict[str, Any]:
    table: dict[str, Any] = json.loads(statutory_holidays().read_text(encoding="utf-8"))
    return table


def table_source() -> str:
    """What the statutory table was computed with, e.g. ``holidays 0.109 (holidays.China)``."""
    return str(_table().get("source", "holidays"))


def package_days(year: int) -> tuple[dict[date, str], dict[date, str]]:
    """A covered year's days off (weekends inside a holiday included) and its make-up
    working days, each with the festival's Chinese name, from ``chinesecalendar``."""
    off: dict[date, str] = {}
    working: dict[date, str] = {}
    day, end = date(year, 1, 1), date(year, 12, 31)
    while day <= end:
        is_holiday, name = chinese_calendar.get_holiday_detail(day)
        if name:
            zh = _package_name(name)
            if is_holiday:
                off[day] = zh
            elif day.weekday() >= 5:
                working[day] = f"{zh}调休上班"
        day += timedelta(days=1)
    return off, working


def _package_name(english: str) -> str:
    try:
        return str(chinese_calendar.Holiday(english).chinese)
    except ValueError:  # a name a newer package added that this code does not know
        return english


def source_version(package: str) -> str:
    """``chinesecalendar 1.11.0``: the package and version a fact comes from."""
    try:
        return f"{package} {version(package)}"
    except PackageNotFoundError:
        return package
