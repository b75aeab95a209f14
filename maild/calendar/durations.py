"""Working durations: the one type for "how long, in working time" everywhere in maild.

Step deadlines and chases in the process definitions (``"1 working day"``), the escalation
ladder and the digest's at-risk window in ``maild.toml`` (``"1d"``, ``"2h"``) and process
settings all use :class:`WorkingDuration`. Accepted spellings, amount first (a positive whole
or decimal number, ASCII digits), surrounding blanks ignored::

    1d  0.5d  2h  1.5 h                     d = working days, h = working hours
    1 working day   3 working days          English, singular or plural, any case
    2 working hours
    1工作日  3 个工作日  2 个工作小时          Chinese, 个 optional

Zero, negative amounts, units of calendar time ("1 day") and anything else are refused with
``ValueError``. A whole number of days keeps the clock time (``add_working_days``: "within
n working days"); hours and fractional days count working time (``add_working``), a day being
the calendar's working-day length.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from maild.calendar.business import BusinessCalendar

__all__ = ["WorkingDuration"]

_SPELLING = re.compile(
    r"\s*(?P<n>[0-9]+(?:\.[0-9]+)?)\s*"
    r"(?:(?P<short>[dh])|working\s+(?P<en>days?|hours?)|个?\s*工作(?P<zh>日|小时))\s*",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class WorkingDuration:
    """A positive amount of working days (``"d"``) or working hours (``"h"``)."""

    amount: float
    unit: Literal["d", "h"]

    def __post_init__(self) -> None:
        if self.unit not in ("d", "h"):
            raise ValueError(f"unit must be 'd' or 'h', not {self.unit!r}")
        if not self.amount > 0:
            raise ValueError(f"a working duration must be positive, not {self.amount}")

    @classmethod
    def parse(cls, text: str) -> WorkingDuration:
        """``"1d"``, ``"2h"``, ``"1 working day"``, ``"3 个工作日"``…; ValueError otherwise."""
        m = _SPELLING.fullmatch(text)
        amount = float(m.group("n")) if m else 0.0
        if not m or amount <= 0:
            raise ValueError(f"{text!r} is not a rule like \"1 working day\", "
                             "\"2 working hours\", \"3 个工作日\", \"1d\" or \"2h\"")
        unit = (m.group("short") or m.group("en") or m.group("zh")).lower()
        return cls(amount, "h" if unit.startswith(("h", "小")) else "d")

    def after(self, calendar: BusinessCalendar, start: datetime) -> datetime:
        """The moment this much working time after ``start`` (see ``maild.calendar.business``)."""
        if self.unit == "d" and self.amount == int(self.amount):
            return calendar.add_working_days(start, int(self.amount))
        hours = self.amount if self.unit == "h" else (
            self.amount * calendar.working_day_length.total_seconds() / 3600)
        return calendar.add_working(start, timedelta(hours=hours))

    @property
    def short(self) -> str:
        """The compact spelling, as in ``maild.toml``: ``1d``, ``0.5h``."""
        return f"{_number(self.amount)}{self.unit}"

    def __str__(self) -> str:
        word = "day" if self.unit == "d" else "hour"
        return f"{_number(self.amount)} working {word}{'' if self.amount == 1 else 's'}"


def _number(x: float) -> str:
    return str(int(x)) if x == int(x) else repr(x)
