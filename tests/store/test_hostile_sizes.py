"""A byte budget for hostile mail, as stored: huge subjects and body lines, long Message-IDs,
control characters, sender-less mail, senders who want no automatic reply, and tags planted
in letters a member of staff answers (the store knows the answered letter's subject)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from deciding import Deciding
from support import mail, open_store

from maild.mail.parse import parse_mail
from maild.store import Store
from maild.store.models import Case, Message, Outbox, TimelineEntry

CUSTOMER = "buyer@big.example.cn"
MANAGER = "wang@corp.example.test"  # the customer's account manager
ACCOUNT = """
[[directory.customers]]
name = "大客户"
domains = ["big.example.cn"]
contact = "wang@corp.example.test"
"""
HUGE_SUBJECT = "询价" * 2_500_000  # 5 million characters
HUGE_LINE = "需" * 10_000_000  # 10 million characters on one line


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    async with open_store("sqlite", tmp_path) as s:
        yield s


def raw(sender: str, subject: str, body: str, **headers: str) -> bytes:
    """A mail written byte by byte (the ``email`` package folds, refuses or re-encodes)."""
    head = "".join(f"{k.replace('_', '-')}: {v}\r\n" for k, v in headers.items())
    if "Message_ID" not in headers:
        head += f"Message-ID: <{abs(hash((subject[:50], body[:50])))}@huaxin.example.cn>\r\n"
    return (f"From: {sender}\r\nTo: service@example.test\r\nSubject: {subject}\r\n{head}"
            "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n"
            "Content-Transfer-Encoding: 8bit\r\n\r\n").encode() + body.encode() + b"\r\n"


async def assert_bounded(number: str) -> None:
    case = await Case.get(number=number)
    assert len(case.subject) <= 500
    assert "[" not in case.subject and not any(ch < " " for ch in case.subject)
    assert len(json.dumps(case.data, ensure_ascii=False).encode()) < 1_000_000
    assert len(json.dumps([case.parties, case.owner]).encode()) < 10_000
    for row in await Outbox.filter(case=case):
        assert len(row.body) < 100_000, (row.letter, len(row.body))
        assert max(map(len, row.body.split(b"\r\n"))) <= 998
        parse_mail(row.body)
    for entry in await TimelineEntry.filter(case=case):
        assert len(entry.text) < 20_000
    for m in await Message.filter(case=case):
        assert len(m.subject) <= 1000


@pytest.mark.parametrize("body", [
    HUGE_LINE, "您好：\n1. " + HUGE_LINE + "\n2. 交付 2027-01-15\n", "交付：" + HUGE_LINE])
async def test_a_huge_subject_and_body_line_stay_within_budget(store: Store, tmp_path: Path,
                                                               body: str) -> None:
    d = Deciding(store, tmp_path, extra=ACCOUNT)
    row, number = await d.feed(raw(CUSTOMER, HUGE_SUBJECT, body))
    assert number is not None
    await assert_bounded(number)
    letters = await Outbox.filter(case__number=number).values_list("letter", flat=True)
    assert sorted(letters) == ["ack", "new_case_notice"]
    saved = await Message.get(id=row.id)
    assert len(saved.subject) <= 1000


async def test_a_huge_staff_reply_stays_within_budget(store: Store, tmp_path: Path) -> None:
    d = Deciding(store, tmp_path, extra=ACCOUNT)
    _, number = await d.feed(mail(CUSTOMER, "询价", "1. 主板 200 套\n"))
    assert number is not None
    notice = await Message.get(direction="out", case__number=number,
                               subject__contains="新案件")
    await d.feed(raw(MANAGER, f"Re: {notice.subject}",
                     "#advance\n#note " + HUGE_LINE + "\n" + HUGE_LINE + "\n",
                     In_Reply_To=notice.message_id))
    case = await Case.get(number=number)
    assert case.step == "solution"
    await assert_bounded(number)
    # one letter, one copy per recipient (each copy has its own reply token)
    rcpt = await Outbox.filter(case=case, letter="customer_confirmation").values_list(
        "rcpt_key", flat=True)
    assert sorted(rcpt) == sorted({CUSTOMER, MANAGER})


async def test_a_long_message_id_never_makes_an_unwritable_letter(store: Store,
                                                                  tmp_path: Path) -> None:
    d = Deciding(store, tmp_path, extra=ACCOUNT)
    long_id = "<" + "x" * 960 + "@huaxin.example.cn>"  # 985 bytes
    _, number = await d.feed(raw(CUSTOMER, "询价", "你好", Message_ID=long_id,
                                 References="<a b@x> <ok@huaxin.example.cn> " + long_id))
    assert number is not None
    await assert_bounded(number)
    [ack] = await Outbox.filter(case__number=number, letter="ack")
    assert b"In-Reply-To" not in ack.body
    assert parse_mail(ack.body).references == ("<ab@x>", "<ok@huaxin.example.cn>")


async def test_control_characters_never_reach_a_case(store: Store, tmp_path: Path) -> None:
    d = Deciding(store, tmp_path, extra=ACCOUNT)
    subject = "询价\x1b[2J\x07 \u202e反转 \x00 [关[关闭]闭]"
    row, number = await d.feed(raw(CUSTOMER, subject, "你好"))
    assert number is not None
    case = await Case.get(number=number)
    assert case.subject == "询价 2J 反转"
    saved = await Message.get(id=row.id)
    assert not any(ch < " " or ch == "\u202e" for ch in saved.subject)


@pytest.mark.parametrize("sender", ["", "<>", "not an address", "a@b@c", "x" * 300 + "@a.cn"])
async def test_mail_without_a_usable_sender_opens_no_case(store: Store, tmp_path: Path,
                                                          sender: str) -> None:
    d = Deciding(store, tmp_path, extra=ACCOUNT)
    row, number = await d.feed(raw(sender, "询价", "你好"))
    assert number is None
    assert await Case.all().count() == 0 and await Outbox.all().count() == 0
    assert (await Message.get(id=row.id)).state == "processed"


@pytest.mark.parametrize(("headers", "acked"), [
    ({"X_Auto_Response_Suppress": "All"}, False),
    ({"X_Auto_Response_Suppress": "OOF, AutoReply"}, False),
    ({"X_Auto_Response_Suppress": "DR, RN"}, True),
    ({"X_Spam_Flag": "YES"}, False),
    ({"X_Spam_Status": "Yes, score=9.1 required=5.0"}, False),
    ({"X_Spam_Status": "No, score=0.1"}, True),
])
async def test_no_automatic_reply_to_who_wants_none(store: Store, tmp_path: Path,
                                                    headers: dict[str, str],
                                                    acked: bool) -> None:
    d = Deciding(store, tmp_path, extra=ACCOUNT)
    _, number = await d.feed(raw(CUSTOMER, "询价", "你好", **headers))
    assert number is not None  # recorded and routed all the same
    letters = await Outbox.filter(case__number=number).values_list("letter", flat=True)
    assert "new_case_notice" in letters
    assert ("ack" in letters) == acked
    if not acked:
        kinds = await TimelineEntry.filter(case__number=number).values_list("kind", flat=True)
        assert "suppressed" in kinds


async def test_the_answered_letter_s_tags_are_inherited(store: Store, tmp_path: Path) -> None:
    d = Deciding(store, tmp_path, extra=ACCOUNT)
    _, number = await d.feed(mail(CUSTOMER, "询价 [关[关闭]闭]", "1. 主板 200 套\n"))
    assert number is not None
    notice = await Message.get(direction="out", case__number=number,
                               subject__contains="新案件")
    assert "关闭" not in notice.subject.replace(number, "")
    # a letter written before the fix, its subject carrying the planted tag
    await Message.filter(id=notice.id).update(subject=notice.subject + " [关闭]")
    reply = mail(MANAGER, f"Re: {notice.subject} [关闭]", "收到，我先和客户电话沟通一下。",
                 In_Reply_To=notice.message_id)
    known = await store.known(parse_mail(reply), [number])
    assert known.subjects == {notice.message_id: notice.subject + " [关闭]"}
    await d.feed(reply)
    assert (await Case.get(number=number)).status == "open"
    # the same tag added by the manager to a letter without it closes the case
    ack = await Message.get(direction="out", case__number=number, subject__contains="已受理")
    await d.feed(mail(MANAGER, f"Re: {ack.subject} [关闭]", "好的", In_Reply_To=ack.message_id))
    assert (await Case.get(number=number)).status == "closed"
