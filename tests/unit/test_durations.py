"""Working durations: one type, every spelling the config, the process definitions and the
settings use; the ones it refuses; arithmetic on the business calendar."""

from __future__ import annotations

import ast
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from maild import config
from maild.calendar.business import BusinessCalendar, CalendarSettings
from maild.calendar.durations import WorkingDuration

CAL = BusinessCalendar(CalendarSettings())
SH = ZoneInfo("Asia/Shanghai")

ACCEPTED = [
    # maild.toml: [escalation], [digest] at_risk_within
    ("1d", 1, "d"),
    ("2h", 2, "h"),
    ("0.5d", 0.5, "d"),
    ("0.5h", 0.5, "h"),
    ("1.5 h", 1.5, "h"),
    (" 2d ", 2, "d"),
    ("4D", 4, "d"),
    # process definitions: deadline, urgent_deadline, chase.after, settings
    ("1 working day", 1, "d"),
    ("3 working days", 3, "d"),
    ("1 working hour", 1, "h"),
    ("2 working hours", 2, "h"),
    ("2working  days", 2, "d"),
    ("1 Working Day", 1, "d"),
    ("3 个工作日", 3, "d"),
    ("3个工作日", 3, "d"),
    ("1工作日", 1, "d"),
    ("2 个工作小时", 2, "h"),
    ("2工作小时", 2, "h"),
    ("1.5 working days", 1.5, "d"),
]

REJECTED = [
    "",
    " ",
    "soon",
    "1",
    "d",
    "working day",
    "0d",
    "0 working days",
    "0.0h",
    "-1d",
    "+1d",
    ".5d",
    "1.d",
    "1e2h",
    "1 day",  # calendar time, not working time
    "2 hours",
    "1 working",
    "1 working week",
    "1w",
    "1m",
    "1 d h",
    "1d2h",
    "3 个工作",
    "3 天",
    "１d",  # full-width digit
    "1,5d",
]


@pytest.mark.parametrize(("text", "amount", "unit"), ACCEPTED, ids=[a[0] for a in ACCEPTED])
def test_accepted_spellings(text: str, amount: float, unit: str) -> None:
    assert WorkingDuration.parse(text) == WorkingDuration(amount, unit)  # type: ignore[arg-type]


@pytest.mark.parametrize("text", REJECTED)
def test_rejected_spellings(text: str) -> None:
    with pytest.raises(ValueError, match="is not a rule like \"1 working day\""):
        WorkingDuration.parse(text)


@pytest.mark.parametrize(("amount", "unit"), [(0, "d"), (-1, "h"), (1, "w")])
def test_constructor_refuses_what_parse_refuses(amount: float, unit: str) -> None:
    with pytest.raises(ValueError):
        WorkingDuration(amount, unit)  # type: ignore[arg-type]


@pytest.mark.parametrize(("text", "spelled", "short"), [
    ("1d", "1 working day", "1d"),
    ("3 个工作日", "3 working days", "3d"),
    ("1 working hour", "1 working hour", "1h"),
    ("0.5h", "0.5 working hours", "0.5h"),
    ("2.25 working days", "2.25 working days", "2.25d"),
])
def test_str_and_short_spell_it_back(text: str, spelled: str, short: str) -> None:
    d = WorkingDuration.parse(text)
    assert (str(d), d.short) == (spelled, short)
    assert WorkingDuration.parse(str(d)) == WorkingDuration.parse(d.short) == d


def sh(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=SH)


@pytest.mark.parametrize(("text", "start", "end"), [
    ("1 working day", "2026-12-04 17:30", "2026-12-07 17:30"),  # Friday -> Monday
    ("1d", "2026-02-13 17:30", "2026-02-14 17:30"),  # the make-up Saturday
    ("2 working hours", "2026-12-04 17:30", "2026-12-07 10:30"),
    ("2 个工作小时", "2026-12-03 17:00", "2026-12-04 10:00"),
    ("0.5d", "2026-12-03 09:00", "2026-12-03 14:15"),  # 3.75 working hours
    ("2 working days", "2026-09-30 10:00", "2026-10-09 10:00"),  # over National Day
])
def test_after_counts_working_time(text: str, start: str, end: str) -> None:
    assert WorkingDuration.parse(text).after(CAL, sh(start)) == sh(end)


def test_maild_toml_takes_every_spelling_and_names_the_line_of_a_bad_one() -> None:
    cfg = config.parse_config('[escalation]\nhead_after = "1 working day"\n'
                              'managers_after = "4 个工作小时"\n[digest]\nat_risk_within = "2h"\n')
    assert cfg.escalation.head_after == "1 working day"
    with pytest.raises(config.ConfigError, match=r"maild.toml:3: escalation.managers_after: "
                       r".*'0d' is not a rule like"):
        config.parse_config('[escalation]\nhead_after = "1d"\nmanagers_after = "0d"\n')


def test_the_calendar_package_imports_nothing_else_from_maild() -> None:
    """Pure arithmetic: only its own modules, and the packaged data (the statutory table)."""
    package = Path(__file__).resolve().parents[2] / "maild" / "calendar"
    for path in package.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import) else
                     [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            for name in names:
                assert name in ("maild.calendar", "maild.data") or \
                    not name.startswith("maild") or \
                    name.startswith("maild.calendar."), f"{path.name} imports {name}"
