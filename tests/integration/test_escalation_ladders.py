"""Nothing falls through, end to end: real mails through the intake (a Maildir), the shipped
process definitions, the store (SQLite and PostgreSQL) and sweeps at a fixed clock.

A silent supplier is chased, then the buyer's head hears; an action item past its due date
is followed up, escalated and listed in the digest until done; the early warning goes out at
75 % of a step's working time; nothing a person reads carries an internal key."""

from __future__ import annotations

import email
import email.policy
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import pytest
from flows import INTENT, MINUTES
from sim import PROCESS_DIRECTORY
from support import mail, open_store, with_security
from timing import sh

from maild.adapters.sources.maildir import MaildirSource, deliver
from maild.config import parse_config
from maild.engine.definitions import CHASES
from maild.runners.intake import Intake
from maild.runners.sweeper import Sweeper
from maild.site import Site
from maild.store import Store
from maild.store.models import Case, Outbox, TimelineEntry

INITIATOR = "王芳 <wang@corp.example.test>"
BUYER = "吴采购 <wu@corp.example.test>"
FORM = """发起部门/人：市场部/王芳
接收部门/人：技术部/张伟
沟通目标：新品推广会技术讲解
核心内容：12 月 10 日推广会需要技术部讲解新品的宽温设计
需协助事项：派一名工程师讲解 30 分钟
期望完成时间：2026-12-10
紧急程度：一般
"""
MANAGERS = """
[[directory.managers]]
name = "刘经理"
address = "liu@corp.example.test"
departments = ["采购部", "市场部"]
"""


@dataclass
class Office:
    store: Store
    intake: Intake
    sweeper: Sweeper
    inbox: Path
    now: datetime

    async def send(self, at: str, sender: str, subject: str, body: str) -> None:
        self.now = sh(at)
        deliver(self.inbox, mail(sender, subject, body))
        await self.intake.poll()

    async def sweep(self, at: str) -> dict[str, int]:
        return (await self.sweeper.timers(sh(at))).by_kind

    async def letters(self, letter: str | None = None) -> list[tuple[str, tuple[str, ...],
                                                                     email.message.EmailMessage]]:
        q = Outbox.all().order_by("id")
        if letter:
            q = q.filter(letter=letter)
        return [(o.letter, tuple(o.rcpt), email.message_from_bytes(
            bytes(o.body), policy=email.policy.default))  # type: ignore[misc]
            for o in await q]

    async def timeline(self, number: str, *kinds: str) -> list[str]:
        return [t.text for t in await TimelineEntry.filter(
            case__number=number, kind__in=list(kinds)).order_by("id")]


def text_of(m: email.message.EmailMessage) -> str:
    part = m.get_body(("plain",))
    assert part is not None
    return f"{m['Subject']}\n{part.get_content()}"


@pytest.fixture(params=["sqlite", "postgres"])
async def office(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Office]:
    async with open_store(request.param, tmp_path) as store:
        cfg = parse_config(with_security(PROCESS_DIRECTORY + MANAGERS), "office.toml",
                           str(tmp_path))
        inbox = tmp_path / "mail"
        holder: list[Office] = []
        site = Site.build(cfg)
        intake = Intake(site, MaildirSource(inbox), store, lambda: holder[0].now)
        office = Office(store, intake, Sweeper(site, store), inbox, sh("2026-12-01 10:00"))
        holder.append(office)
        yield office


async def test_a_silent_supplier_escalates_to_the_buyers_head(office: Office) -> None:
    await office.send("2026-12-01 10:00", BUYER, "[供应商] 铝合金外壳采购", INTENT)
    case = await Case.get(process="supplier")
    assert (case.step, case.status, case.department) == ("intent", "waiting", None)
    # the reply date (2026-12-08) ends at 18:00; the supplier stays silent
    assert await office.sweep("2026-12-08 17:59") == {}
    assert await office.sweep("2026-12-08 18:00") == {"chase": 1}
    [(_, to, chaser)] = await office.letters("supplier_chase")
    assert to == ("sales@hengda.example.cn",)
    words = text_of(chaser)
    assert "贵司的「报价及资质文件」应于 2026-12-08 18:00 前回复" in words
    assert "quote" not in words
    # chase_escalate_after (2 working days) later the buyer's head hears: from the end of
    # Tuesday's working hours that is the start of Friday's
    assert await office.sweep("2026-12-11 08:59") == {}
    assert await office.sweep("2026-12-11 09:00") == {"chase": 1}
    [(_, to, up)] = await office.letters("escalation")
    assert to == ("zhou@corp.example.test",)  # 采购部's head: wu@ is in 采购部
    words = text_of(up)
    assert "供应商（sales@hengda.example.cn）的「报价及资质文件」" in words
    assert "责任部门：采购部" in words and "负责人：wu@corp.example.test" in words
    assert await office.timeline(case.number, "escalation") == [
        "第 1 级（供应商）：「报价及资质文件」自 2026-12-08 18:00 起未回复；"
        "已催办 sales@hengda.example.cn",
        "第 2 级（部门负责人）：「报价及资质文件」自 2026-12-08 18:00 起未回复；"
        "已上报 zhou@corp.example.test"]
    assert await office.sweep("2026-12-31 18:00") == {}  # each rung once

    # the manager covering 采购部 sees the case and the unanswered supplier
    ctx = await office.sweeper.digest_context(sh("2026-12-14 09:00"), ("采购部", "市场部"),
                                              "刘经理")
    assert ctx["kpi"]["open"] == 1 and ctx["kpi"]["delays"] == 1
    [row] = ctx["delays"]
    assert (row["step"], row["status"]) == ("报价及资质文件", "已上报部门负责人")
    letter = await office.sweeper.digest_letter(sh("2026-12-14 09:00"),
                                                office.sweeper.cfg.directory.managers[1])
    rendered = office.sweeper.site.letters.render("digest", "zh", dict(letter.context))
    assert not [w for w in CHASES if w in rendered.text or w in rendered.html]


async def test_overdue_action_items_are_chased_escalated_and_listed_until_done(
        office: Office) -> None:
    subject = "[跨部门][技术部] 新品推广技术支持"
    await office.send("2026-12-01 10:00", INITIATOR, subject, FORM)
    case = await Case.get(process="internal")
    n, head = case.number, "zhang@corp.example.test"
    re_ = f"Re: [{n}] 新品推广技术支持"
    await office.send("2026-12-01 10:30", head, re_, "#确认\n")
    await office.send("2026-12-01 11:00", INITIATOR, re_, MINUTES)  # action: li@, 12-09
    await office.send("2026-12-01 11:30", head, re_, "#确认\n")
    await office.send("2026-12-01 11:40", INITIATOR, re_, "#确认\n")
    await case.refresh_from_db()
    assert case.step == "track", await office.timeline(n, "refused")

    await office.sweep("2026-12-04 18:00")
    assert await office.letters("action_reminder") == []
    assert await office.sweep("2026-12-07 09:00") == {"action_reminder": 1}  # 2 days before
    assert await office.sweep("2026-12-09 18:00") == {}
    assert await office.sweep("2026-12-10 09:00") == {"action_reminder": 1}  # overdue
    assert await office.sweep("2026-12-11 09:00") == {"action_reminder": 1}  # li's head
    reminders = await office.letters("action_reminder")
    assert [to for _, to, _ in reminders] == [("li@corp.example.test",)] * 2 + [(head,)]
    assert f"[{n}] 待办已逾期：准备宽温设计讲解材料" in text_of(reminders[1][2])
    assert "负责人 li@corp.example.test 仍未完成" in text_of(reminders[2][2])
    assert (await office.timeline(n, "reminder", "escalation"))[-1] == (
        "待办「准备宽温设计讲解材料」已于 2026-12-09 到期仍未完成（负责人 li@corp.example.test）："
        f"已上报 {head}")

    # still listed, as overdue, in next Monday's digest; gone once done
    ctx = await office.sweeper.digest_context(sh("2026-12-14 09:00"), (), "陈总")
    [item] = ctx["actions"]
    assert (item["title"], item["overdue"]) == ("准备宽温设计讲解材料", True)
    scoped = await office.sweeper.digest_context(sh("2026-12-14 09:00"), ("采购部",), "")
    assert scoped["actions"] == []  # an internal case of 技术部 is not 采购部's
    await office.send("2026-12-14 10:00", "li@corp.example.test", re_, "#done 1\n")
    ctx = await office.sweeper.digest_context(sh("2026-12-14 10:05"), (), "陈总")
    assert ctx["actions"] == []


async def test_the_early_warning_goes_out_at_three_quarters_of_the_step(office: Office) -> None:
    # Monday 10:00: the confirm step gets one working day (7.5 h), due Tuesday 10:00
    await office.send("2026-12-07 10:00", INITIATOR, "[跨部门][技术部] 新品推广技术支持", FORM)
    number = (await Case.get(process="internal")).number
    assert await office.sweep("2026-12-07 17:07") == {}
    assert await office.sweep("2026-12-07 17:08") == {"warning": 1}  # 5.625 working hours
    [(_, to, warning)] = await office.letters("deadline_warning")
    assert to == ("zhang@corp.example.test",)
    words = text_of(warning)
    assert f"[{number}] 即将到期：新品推广技术支持（沟通对象确认）" in words
    assert "应于 2026-12-08 10:00 前完成，距截止还有约 1.9 个工作小时" in words
    assert await office.sweep("2026-12-08 09:59") == {}
    assert await office.sweep("2026-12-08 10:00") == {"deadline": 1}  # then the ladder
    assert await office.timeline(number, "reminder") == [
        "步骤「沟通对象确认」将于 2026-12-08 10:00 到期：已预先提醒 zhang@corp.example.test"]
