"""Files in queued letters, through the store on SQLite and PostgreSQL: a mail's files in
the notice it causes (within the cap, the rest listed), legal's review with the case's
files, and a milestone notice with its calendar event."""

from __future__ import annotations

import email
import email.policy
from collections.abc import AsyncIterator
from datetime import date
from email.message import EmailMessage
from pathlib import Path

import icalendar
import pytest
from deciding import Deciding
from support import NOW, mail, open_store
from timing import Desk, sh

from maild.engine.effects import SendLetter, SetTimer
from maild.schedule.firing import notice_at
from maild.store import Store
from maild.store.models import Case, Outbox, TimelineEntry

DRAWING = bytes(range(256)) * 3  # 768 bytes, every byte value
BIG = b"\x00\xff" * 1000  # 2000 bytes: over the cap of 1500 once the drawing is in


@pytest.fixture(params=["sqlite", "postgres"])
async def desk(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Desk]:
    async with open_store(request.param, tmp_path) as s:
        yield Desk(s, tmp_path)


async def _mails(letter: str) -> list[EmailMessage]:
    return [email.message_from_bytes(bytes(o.body), policy=email.policy.default)  # type: ignore[misc]
            for o in await Outbox.filter(letter=letter).order_by("id")]


FORM = """发起部门/人：市场部/王芳
接收部门/人：技术部/张伟
沟通目标：新品推广会技术讲解
核心内容：讲解宽温设计，图纸见附件
需协助事项：派一名工程师讲解 30 分钟
期望完成时间：2026-12-10
紧急程度：一般
"""


async def test_a_mails_files_reach_the_notice_within_the_cap(store: Store,
                                                             tmp_path: Path) -> None:
    d = Deciding(store, tmp_path, extra="[limits]\nmax_letter_attachment_bytes = 1500\n")
    raw = mail("王芳 <wang@corp.example.test>", "[跨部门][技术部] 新品推广技术支持", FORM,
               attachments=(("主板图纸 V2.dwg", DRAWING), ("整机照片.zip", BIG)))
    _, number = await d.feed(raw)
    assert number
    [ack] = await _mails("ack")
    assert list(ack.iter_attachments()) == []  # no copy of their own files to the sender
    copies = await _mails("request_notice")  # to the receiving head, a copy to the sender
    assert len(copies) == 2
    notice = copies[0]
    assert [a.get_content() for a in copies[1].iter_attachments()] == [DRAWING]
    [drawing] = list(notice.iter_attachments())
    assert drawing.get_filename() == "主板图纸 V2.dwg"
    assert drawing.get_content() == DRAWING
    text = notice.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    assert "整机照片.zip (2.0 KB): 超过单封邮件 1.5 KB 的附件上限" in text
    entry = await TimelineEntry.get(case__number=number, kind="letter",
                                    text__startswith="新需求 → ")
    assert "附件 主板图纸 V2.dwg; 未附上 整机照片.zip" in entry.text

    # legal's review carries every file kept on the case (within the cap)
    case = await Case.get(number=number)
    env = d.intake.apply_env(NOW)
    context = d.site.letters.sample("legal_review")
    await store.enqueue(SendLetter("legal_review", ("zhao@corp.example.test",), context, "zh",
                                   automatic=False, case_files=True), case, env)
    [legal] = await _mails("legal_review")
    assert [(a.get_filename(), a.get_content()) for a in legal.iter_attachments()] == [
        ("主板图纸 V2.dwg", DRAWING)]


async def test_the_milestone_notice_carries_an_all_day_event(desk: Desk) -> None:
    at = notice_at(date(2026, 12, 15), 3, desk.calendar)
    number = await desk.open(sh("2026-12-01 10:00"), SetTimer("milestone", at,
                             key="2026-12-15:样机交付", data={
                                 "title": "样机交付", "date": "2026-12-15",
                                 "to": ["wang@huaxin.example.cn"]}),
                             process="customer", step="execution", department=None)
    assert (await desk.sweep(at)).fired == 1
    [m] = await desk.mails("milestone_notice")
    calendar = next(p for p in m.walk() if p.get_content_type() == "text/calendar")
    assert calendar.get_param("method") == "PUBLISH"
    [ics] = [a for a in m.iter_attachments() if a.get_filename() == "invite.ics"]
    cal = icalendar.Calendar.from_ical(ics.get_content())
    [ev] = cal.walk("VEVENT")
    assert cal["METHOD"] == "PUBLISH"
    assert ev.decoded("DTSTART") == date(2026, 12, 15)
    assert str(ev["SUMMARY"]) == f"[{number}] 样机交付"
    assert str(ev["ORGANIZER"]) == "mailto:service@example.test"
