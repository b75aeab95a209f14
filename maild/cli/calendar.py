"""``maild calendar show YEAR``: a year's days off and make-up working days, each with where
it comes from (package data, computed from the lunar calendar, configured), to check against
the State Council's notice before the year starts."""

from __future__ import annotations

import argparse
import sys

from maild import config as cfgmod
from maild.calendar.arrangement import ORIGINS, DayEntry, YearArrangement, arrangement
from maild.calendar.business import BusinessCalendar, CalendarSettings
from maild.cli.output import print_json, table


def show(args: argparse.Namespace) -> int:
    settings = (cfgmod.load(args.config).calendar.settings() if args.config
                else CalendarSettings())
    try:
        year = arrangement(BusinessCalendar(settings), args.year)
    except ValueError as e:
        print(f"maild: {e}", file=sys.stderr)
        return 2
    if args.json:
        print_json(year.as_dict())
    else:
        print(render(year))
    return 0


def render(year: YearArrangement) -> str:
    out = [f"{year.year}: {year.basis_text}"]
    if year.warning:
        out.append(f"warning: {year.warning}")
    out += ["", f"Holidays and other days off ({len(year.days_off)}):",
            table(_rows(year.days_off), ("date", "day", "name", "source")), "",
            f"Working days that would otherwise be off ({len(year.working_days)}):",
            table(_rows(year.working_days), ("date", "day", "name", "source")), ""]
    if year.makeup_days_known:
        out.append("The 调休 make-up working days above are the package's data for the year.")
    elif year.basis == "computed":
        out.append(f"Make-up working days (调休) for {year.year} are not known yet: only the "
                   "statutory days off and their legal 补假 are computed. When the State "
                   "Council announces the year's arrangement, add its make-up working days to "
                   "calendar.extra_working_days and its extra days off to "
                   "calendar.extra_closed_days.")
    else:
        out.append("No holiday data is used for this year: only the configured days differ "
                   "from Mon-Fri.")
    return "\n".join(out)


def _rows(days: tuple[DayEntry, ...]) -> list[dict[str, object]]:
    return [{"date": d.day.isoformat(), "day": str(d.as_dict()["weekday"]),
             "name": d.name or "-", "source": ORIGINS[d.origin]} for d in days]
