"""A customer's answers to the 《客户需求确认函》 through the real intake (Maildir, SQLite,
the decision path, the outbox): feedback keeps the step and is on the timeline, an unclear
reply asks the account manager by letter, a clear one moves the case on."""

from __future__ import annotations

import email
import email.policy
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from flows import INQUIRY, SOLUTION
from sim import PROCESS_DIRECTORY
from support import NOW, mail, with_security

from maild.adapters.senders import MaildirSender
from maild.adapters.sources.maildir import MaildirSource, deliver
from maild.config import parse_config
from maild.runners.intake import Intake
from maild.runners.outbox import drain
from maild.site import Site
from maild.store import Store
from maild.store.models import Case, Outbox, TimelineEntry

CUSTOMER = "王经理 <wang@huaxin.example.cn>"
CONTACT = "ma@corp.example.test"


class Desk:
    def __init__(self, base: Path) -> None:
        self.base = base
        self.inbox = base / "mail"
        cfg = parse_config(with_security(PROCESS_DIRECTORY), "test.toml", str(base))
        self.store = Store(f"sqlite://{base}/maild.db", base / "raw", base)
        self.intake = Intake(Site.build(cfg), MaildirSource(self.inbox), self.store,
                             lambda: NOW)
        self.number = ""

    async def send(self, sender: str, body: str, subject: str = "", **kw: Any) -> Case:
        subject = subject or f"Re: [{self.number}] 定制工控主板询价"
        deliver(self.inbox, mail(sender, subject, body, **kw))
        await self.intake.poll()
        case = await Case.get()
        self.number = case.number
        return case

    async def letters(self, since: int) -> list[Outbox]:
        return list(await Outbox.filter(id__gt=since).order_by("id"))


@pytest.fixture
async def desk(tmp_path: Path) -> AsyncIterator[Desk]:
    d = Desk(tmp_path)
    await d.store.open()
    try:
        await d.send(CUSTOMER, INQUIRY, subject="定制工控主板询价")
        case = await d.send(CONTACT, SOLUTION)
        assert case.step == "solution"
        yield d
    finally:
        d.intake.close()
        await d.store.close()


async def last_id() -> int:
    last = await Outbox.all().order_by("-id").first()
    return last.id if last else 0


async def test_feedback_is_recorded_and_does_not_advance(desk: Desk) -> None:
    mark = await last_id()
    case = await desk.send(CUSTOMER, "OK, but we need changes\n\nAlice\n\n> 请确认方案")
    assert case.step == "solution" and case.status == "open"
    [entry] = await TimelineEntry.filter(case=case, kind="feedback")
    assert "but we need changes" in entry.text and "不作确认" in entry.text
    assert [(o.letter, o.rcpt) for o in await desk.letters(mark)] == [("reply_notice", [CONTACT])]
    case = await desk.send(CUSTOMER, "同意，但是交期需要提前。",
                           attachments=(("客户需求确认函-修改意见.docx", b"PK\x03\x04"),))
    assert case.step == "solution"
    assert await TimelineEntry.filter(case=case, kind="feedback").count() == 2
    assert not await TimelineEntry.filter(case=case, kind="confirmed").exists()


async def test_unsure_asks_the_account_manager(desk: Desk, tmp_path: Path) -> None:
    mark = await last_id()
    case = await desk.send(CUSTOMER, "收到\n\n发自我的iPhone\n\n-----原始邮件-----\n发件人: 马丽\n"
                                     "发送时间: 2026年12月1日\n主题: 请确认\n\n请确认")
    assert case.step == "solution"
    [entry] = await TimelineEntry.filter(case=case, kind="unsure")
    assert CONTACT in entry.text and "收到" in entry.text
    [letter] = await desk.letters(mark)  # the letter carries the reply: no reply_notice too
    assert (letter.letter, letter.rcpt) == ("confirm_unsure", [CONTACT])
    sent, failed = await drain(desk.store, MaildirSender(tmp_path / "sent"), lambda: NOW)
    assert sent >= 1 and failed == 0
    await letter.refresh_from_db()
    assert letter.state == "sent"
    msg = email.message_from_bytes(bytes(letter.body), policy=email.policy.default)
    assert desk.number in str(msg["Subject"]) and "请判断对方是否已确认" in str(msg["Subject"])
    text = msg.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    assert "只有「收到」，看不出是否同意" in text
    assert "本步骤没有可代对方确认的命令" in text  # customer.toml: #advance needs the yes
    assert "#revise" in text and "#advance" not in text  # only what would not be refused
    case = await desk.send(CUSTOMER, "Hi Wang Fang,\n\nConfirmed, thank you.\n\nAlice")
    assert case.step == "contract"


async def test_a_clear_confirmation_moves_on(desk: Desk) -> None:
    case = await desk.send(CUSTOMER, "马经理，您好：\n\n方案确认无误，请按此方案执行。\n\n"
                                     "谢谢！\n王建国\n华信集团 采购部\n电话：010-8888 6666")
    assert case.step == "contract"
    assert await TimelineEntry.filter(case=case, kind="confirmed").count() == 1
    assert not await TimelineEntry.filter(case=case, kind__in=("feedback", "unsure")).exists()
