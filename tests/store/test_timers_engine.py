"""Timers set by the process engine itself: real mails through the intake (a Maildir), the
shipped process definitions, then sweeps at a fixed clock — and the digest that sees them."""

from __future__ import annotations

import email
import email.policy
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import pytest
from sim import PROCESS_DIRECTORY
from support import mail, open_store, with_security
from timing import sh

from maild.adapters.sources.maildir import MaildirSource, deliver
from maild.config import parse_config
from maild.runners.intake import Intake
from maild.runners.sweeper import Sweeper
from maild.site import Site
from maild.store import Store
from maild.store.models import Outbox, Timer

INITIATOR = "王芳 <wang@corp.example.test>"
HEAD = "zhang@corp.example.test"  # 技术部: the receiving head owns the confirm step
FORM = """发起部门/人：市场部/王芳
接收部门/人：技术部/张伟
沟通目标：新品推广会技术讲解
核心内容：12 月 10 日推广会需要技术部讲解新品的宽温设计
需协助事项：派一名工程师讲解 30 分钟
期望完成时间：2026-12-10
紧急程度：一般
"""


@dataclass
class Office:
    store: Store
    intake: Intake
    sweeper: Sweeper
    inbox: Path
    now: datetime

    async def send(self, at: datetime, sender: str, subject: str, body: str) -> None:
        self.now = at
        deliver(self.inbox, mail(sender, subject, body))
        await self.intake.poll()

    async def letters(self) -> list[tuple[str, tuple[str, ...], str]]:
        out = []
        for o in await Outbox.all().order_by("id"):
            m = email.message_from_bytes(bytes(o.body), policy=email.policy.default)
            out.append((o.letter, tuple(o.rcpt), str(m["Subject"])))
        return out


@pytest.fixture(params=["sqlite", "postgres"])
async def office(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Office]:
    async with open_store(request.param, tmp_path) as store:
        cfg = parse_config(with_security(PROCESS_DIRECTORY), "office.toml", str(tmp_path))
        inbox = tmp_path / "mail"
        holder: list[Office] = []
        site = Site.build(cfg)
        intake = Intake(site, MaildirSource(inbox), store, lambda: holder[0].now)
        office = Office(store, intake, Sweeper(site, store), inbox,
                        sh("2026-12-04 17:30"))
        holder.append(office)
        yield office


async def test_the_engines_deadline_fires_and_climbs_then_stops(office: Office) -> None:
    # Friday 17:30: a complete request form goes straight to "confirm" (1 working day)
    await office.send(sh("2026-12-04 17:30"), INITIATOR, "[跨部门][技术部] 新品推广技术支持",
                      FORM)
    [t] = await Timer.filter(kind="deadline", state="pending")
    number = (await t.case).number  # type: ignore[attr-defined]
    assert (t.key, t.due_at) == ("confirm", sh("2026-12-07 17:30"))
    assert t.data["owner"] == [HEAD]
    before = len(await office.letters())

    # the early warning (75 % of the working day) comes first: the ladder starts at 17:30
    assert (await office.sweeper.timers(sh("2026-12-07 17:29"))).by_kind == {"warning": 1}
    before += 1
    assert (await office.sweeper.timers(sh("2026-12-07 17:30"))).fired == 1
    [(letter, to, subject)] = (await office.letters())[before:]
    assert (letter, to) == ("deadline_reminder", (HEAD,))
    assert subject == f"[{number}] 到期提醒：新品推广技术支持（沟通对象确认）"
    [t] = await Timer.filter(kind="deadline", case__number=number)
    # the head owns the step, so the managers are next, one working day later
    assert (t.level, t.due_at) == (1, sh("2026-12-08 17:30"))

    # the head confirms the next morning: the step moves on, its deadline with it
    await office.send(sh("2026-12-08 09:10"), HEAD, f"Re: [{number}] 新品推广技术支持",
                      "#确认\n")
    [t] = await Timer.filter(kind="deadline", key="confirm", case__number=number)
    assert t.state == "cancelled"
    await office.sweeper.timers(sh("2026-12-08 17:30"))
    assert ("escalation", ("chen@corp.example.test",)) not in [
        (lt, to) for lt, to, _ in await office.letters()]


async def test_the_digest_sees_the_engines_overdue_step(office: Office) -> None:
    await office.send(sh("2026-12-04 17:30"), INITIATOR, "[跨部门][技术部] 新品推广技术支持",
                      FORM)
    await office.sweeper.timers(sh("2026-12-07 17:30"))
    ctx = await office.sweeper.digest_context(sh("2026-12-08 09:00"), (), "陈总")
    assert ctx["kpi"]["overdue"] == 1
    [row] = ctx["overdue"]
    assert (row["step"], row["status"], row["department"]) == ("沟通对象确认", "已提醒负责人",
                                                               "技术部")
