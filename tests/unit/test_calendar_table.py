"""The statutory-holiday table maild ships is what the ``holidays`` package computes from the
lunar calendar, and the daemon reads it without importing ``holidays`` (17 MB of modules)."""

from __future__ import annotations

import subprocess
import sys
from datetime import date
from pathlib import Path

import holidays

from maild.calendar.sources import computed_holidays

ROOT = Path(__file__).resolve().parents[2]


def test_the_shipped_table_is_what_the_script_writes() -> None:
    p = subprocess.run([sys.executable, str(ROOT / "scripts" / "gen-statutory-holidays"),
                        "--check"], capture_output=True, text=True)
    assert p.returncode == 0, p.stdout + p.stderr


def test_every_year_of_the_table_matches_holidays_china() -> None:
    for year in range(2027, 2101):
        expected = {d: str(n) for d, n in holidays.China(years=year, language="zh_CN").items()
                    if d.year == year}
        assert dict(computed_holidays(year)) == expected, year


def test_spring_festival_2027_and_the_end_of_the_tables() -> None:
    days = computed_holidays(2027)
    assert [d for d in days if d.month == 2] == [date(2027, 2, d) for d in range(5, 11)]
    assert days[date(2027, 2, 8)] == "春节"
    assert computed_holidays(2101) == {}


def test_the_calendar_does_not_import_holidays() -> None:
    code = ("import sys\nfrom datetime import date\n"
            "from maild.calendar.sources import computed_holidays\n"
            "assert computed_holidays(2030)\n"
            "print(sorted(m for m in sys.modules if m.split('.')[0] == 'holidays'))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == "[]"
