"""Test helpers for working time: decisions applied through the store, sweeps at a fixed clock.

Cases and timers are seeded the way the pipeline writes them (``Store.apply`` with a
``Decision`` of ``OpenCase``/``UpdateCase``/``SetTimer``), so these tests do not depend on
the process definitions.
"""

from __future__ import annotations

import email
import email.policy
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from support import mail, make_config

from maild.adapters.sources.base import Fetched
from maild.classify.rules import Classification
from maild.engine.effects import Decision, Effect, OpenCase
from maild.mail.parse import parse_mail
from maild.runners.sweeper import Sweeper
from maild.site import Site
from maild.store import Store
from maild.store.models import Case, Outbox, TimelineEntry, Timer
from maild.store.timers import SweepCounts

SH = ZoneInfo("Asia/Shanghai")

MANAGERS_TOML = """
[[directory.departments]]
name = "采购部"
short = "采"
head = "zhou@corp.example.test"

[[directory.managers]]
name = "陈总"
address = "chen@corp.example.test"

[[directory.managers]]
name = "刘经理"
address = "liu@corp.example.test"
departments = ["市场部"]
"""


def body(m: email.message.EmailMessage, kind: str = "plain") -> str:
    """The text of a letter's plain (or html) part."""
    part = m.get_body((kind,))
    assert part is not None, f"no {kind} part"
    return str(part.get_content())


def sh(text: str) -> datetime:
    """``2026-02-13 17:30`` in Shanghai."""
    return datetime.fromisoformat(text).replace(tzinfo=SH)


class Desk:
    """One store, one config, and the sweeper the daemon would use."""

    def __init__(self, store: Store, base: Path, extra: str = "") -> None:
        self.store = store
        self.base = base
        self.cfg = make_config(base, MANAGERS_TOML + extra)
        self.sweeper = Sweeper(Site.build(self.cfg), store)
        self.calendar = self.sweeper.calendar
        self.uid = 0

    async def decide(self, number: str | None, effects: Sequence[Effect], now: datetime,
                     sender: str = "wang@corp.example.test") -> str | None:
        """Apply a decision to a case (or a new one) the way the intake does."""
        self.uid += 1
        raw = mail(sender, f"[{number}] 更新" if number else "新需求")
        [row] = await self.store.record_fetched(
            "test", 1, self.store.keep_raw([Fetched(self.uid, raw)]), now)
        cls = Classification(case_number=number)
        env = self.sweeper.apply_env(now.astimezone(UTC))  # the daemon's clock is in UTC
        return await self.store.apply(row, parse_mail(raw), cls, Decision(tuple(effects), "t"),
                                      env, "Processed")

    async def open(self, now: datetime, *effects: Effect, process: str = "internal",
                   step: str = "confirm", department: str | None = "技术部",
                   urgent: bool = False, subject: str = "新品推广会技术讲解支持",
                   parties: tuple[str, ...] = ("wang@corp.example.test",)) -> str:
        dept = self.sweeper.site.directory.department_by_name(department)
        key = dept.short if process == "internal" and dept else ""
        opened = OpenCase(process, step, subject, department, key, urgent, "zh", parties)
        number = await self.decide(None, (opened, *effects), now)
        assert number
        return number

    async def sweep(self, now: datetime) -> SweepCounts:
        return await self.sweeper.timers(now)

    async def letters(self) -> list[tuple[str, tuple[str, ...]]]:
        """Every queued letter as (letter, recipients), in order. A letter goes out as one
        copy per recipient (each with its own reply token): consecutive copies of the same
        letter, written at the same moment with the same To and Cc, are one letter."""
        out: list[tuple[str, tuple[str, ...]]] = []
        last: tuple[object, ...] | None = None
        for o in await Outbox.all().order_by("id"):
            head = email.message_from_bytes(bytes(o.body), policy=email.policy.default)  # type: ignore[misc]
            key = (o.letter, o.created_at, str(head["To"]), str(head["Cc"]))
            if key == last:
                out[-1] = (o.letter, (*out[-1][1], *o.rcpt))
            else:
                out.append((o.letter, tuple(o.rcpt)))
            last = key
        return out

    async def mails(self, letter: str) -> list[email.message.EmailMessage]:
        return [email.message_from_bytes(bytes(o.body), policy=email.policy.default)  # type: ignore[misc]
                for o in await Outbox.filter(letter=letter).order_by("id")]

    async def timeline(self, number: str, kind: str | None = None) -> list[str]:
        q = TimelineEntry.filter(case__number=number).order_by("id")
        if kind:
            q = q.filter(kind=kind)
        return [t.text for t in await q]

    async def timers(self, number: str) -> list[Timer]:
        return list(await Timer.filter(case__number=number).order_by("id"))

    async def case(self, number: str) -> Case:
        return await Case.get(number=number)
