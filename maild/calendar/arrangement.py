"""A year's arrangement as the business calendar applies it, for an admin to check against
the State Council's notice (``maild calendar show YEAR``).

Lists the days that differ from plain Mon-Fri: the days off (holidays, including the weekend
days inside a holiday, and configured closures) and the working days that would otherwise
be off (调休 make-up weekends and configured ones), each with its name and where the fact
comes from. Whether a day is working is asked of the ``BusinessCalendar`` itself, so the
list is what deadlines use.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Literal

from maild.calendar.business import BusinessCalendar, uncovered_warning, year_basis
from maild.calendar.sources import (
    Basis,
    computed_holidays,
    package_days,
    source_version,
    table_source,
)

__all__ = ["ORIGINS", "DayEntry", "YearArrangement", "arrangement"]

Origin = Literal["package", "computed", "configured"]

ORIGINS: dict[str, str] = {
    "package": "package data",
    "computed": "computed from the lunar calendar",
    "configured": "configured",
}
_WEEKDAYS = "一二三四五六日"


@dataclass(frozen=True)
class DayEntry:
    day: date
    name: str  # the festival's Chinese name; "" for a configured day that is no festival
    origin: Origin

    @property
    def weekend(self) -> bool:
        return self.day.weekday() >= 5

    def as_dict(self) -> dict[str, object]:
        return {"date": self.day.isoformat(), "weekday": f"周{_WEEKDAYS[self.day.weekday()]}",
                "name": self.name, "weekend": self.weekend, "source": self.origin,
                "source_text": ORIGINS[self.origin]}


@dataclass(frozen=True)
class YearArrangement:
    year: int
    basis: Basis  # where the holidays come from, before the configured days
    basis_text: str  # e.g. "holidays and make-up days from package data (chinesecalendar …)"
    days_off: tuple[DayEntry, ...]
    working_days: tuple[DayEntry, ...]  # weekends worked, holidays opened by the config
    makeup_days_known: bool  # the 调休 make-up days are in the data (not only configured)
    warning: str | None

    def as_dict(self) -> dict[str, object]:
        return {"year": self.year, "basis": self.basis, "basis_text": self.basis_text,
                "makeup_days_known": self.makeup_days_known, "warning": self.warning,
                "days_off": [d.as_dict() for d in self.days_off],
                "working_days": [d.as_dict() for d in self.working_days]}


def arrangement(calendar: BusinessCalendar, year: int) -> YearArrangement:
    """``year`` as ``calendar`` applies it (``ValueError`` outside 1-9999)."""
    if not 1 <= year <= 9999:
        raise ValueError(f"{year} is not a year")
    settings = calendar.settings
    basis = year_basis(settings, year)
    if basis == "package":
        off, made_up = package_days(year)
        text = f"holidays and make-up days from package data ({source_version('chinesecalendar')})"
    elif basis == "computed":
        off, made_up = dict(computed_holidays(year)), {}
        text = ("statutory holidays computed from the lunar calendar "
                f"({table_source()}); make-up days not known")
    else:
        off, made_up = {}, {}
        text = ("no holidays: plain Mon-Fri (calendar.source = \"weekdays\")"
                if settings.source == "weekdays"
                else "no holidays: plain Mon-Fri (no holiday data reaches this year)")
    origin: Origin = "computed" if basis == "computed" else "package"
    configured = {d for d in settings.extra_closed_days | settings.extra_working_days
                  if d.year == year}
    candidates = sorted(set(off) | set(made_up) | configured)
    days_off: list[DayEntry] = []
    working: list[DayEntry] = []
    for day in candidates:
        entry = DayEntry(day, off.get(day) or made_up.get(day, ""),
                         "configured" if day in configured else origin)
        if not calendar.is_working_day(day):
            days_off.append(entry)
        elif entry.weekend or day in off or day in configured:  # unusual working days
            working.append(entry)
    warning = None
    if settings.source != "weekdays" and basis != "package":
        warning = uncovered_warning(settings, year)
    return YearArrangement(year, basis, text, tuple(days_off), tuple(working),
                           basis == "package", warning)
