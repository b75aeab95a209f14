"""A bounce of one of a case's letters: its recipient marked, the owner told once, further
letters to it held until ``maild outbox retry``."""

from __future__ import annotations

import email
import email.policy
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest
from deciding import Deciding
from support import NOW, mail, open_store

from maild.engine.effects import SendLetter
from maild.store import ApplyEnv, Store
from maild.store.models import Case, Outbox, TimelineEntry


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    async with open_store("sqlite", tmp_path) as s:
        yield s


def postfix_bounce(original: str, rcpt: str, action: str = "failed",
                   status: str = "5.1.1") -> bytes:
    return f"""\
Return-Path: <>
From: MAILER-DAEMON@mx.example.test (Mail Delivery System)
To: service@example.test
Subject: Undelivered Mail Returned to Sender
Date: Tue,  1 Dec 2026 10:00:05 +0800
Auto-Submitted: auto-replied
Message-Id: <bounce-{action}-{rcpt}@mx.example.test>
MIME-Version: 1.0
Content-Type: multipart/report; report-type=delivery-status; boundary="B"

--B
Content-Type: text/plain; charset=us-ascii

I'm sorry to have to inform you that your message could not be delivered.

--B
Content-Type: message/delivery-status

Reporting-MTA: dns; mx.example.test

Final-Recipient: rfc822; {rcpt}
Action: {action}
Status: {status}
Diagnostic-Code: smtp; 550 {status} <{rcpt}>: Recipient address rejected: User unknown

--B
Content-Type: text/rfc822-headers

From: service@example.test
To: {rcpt}
Message-ID: {original}

--B--
""".encode()


async def test_bounce_marks_recipient_tells_owner_once_and_holds(store: Store,
                                                                 tmp_path: Path) -> None:
    d = Deciding(store, tmp_path)
    _, number = await d.feed(mail("王经理 <wang@huaxin.example.cn>", "产品询价"))
    assert number is not None
    case = await Case.get(number=number)
    ack = await Outbox.get(case=case)
    assert ack.rcpt == ["wang@huaxin.example.cn"]

    row, on = await d.feed(postfix_bounce(ack.message_id, "wang@huaxin.example.cn"))
    assert on == number and row.state == "processed"
    shown = await store.case(number)
    assert shown is not None
    [bounced] = shown["bounced"]
    assert bounced["address"] == "wang@huaxin.example.cn" and bounced["status"] == "5.1.1"
    assert "User unknown" in bounced["diagnostic"] and bounced["at"]
    notes = [t for t in shown["timeline"] if t["kind"] == "bounce"]
    assert [n["text"][:31] for n in notes] == ["退信：wang@huaxin.example.cn 5.1.1"]
    told = await Outbox.filter(case=case, letter="delivery_failed")
    assert len(told) == 1 and "wang@huaxin.example.cn" not in told[0].rcpt
    assert f"retry -c CONFIG {ack.id} --to" in _text(bytes(told[0].body))

    # the same address bouncing again (or a delay) tells nobody again
    await d.feed(postfix_bounce(ack.message_id, "wang@huaxin.example.cn", "delayed", "4.4.1"))
    await d.feed(postfix_bounce(ack.message_id, "wang@huaxin.example.cn"))
    assert await Outbox.filter(case=case, letter="delivery_failed").count() == 1
    texts = [t.text for t in await TimelineEntry.filter(case=case, kind="bounce")]
    assert len(texts) == 3 and texts[1].startswith("投递延迟：wang@huaxin.example.cn 4.4.1")

    # the next automatic letter to the customer is held, and `outbox retry` releases it
    case = await Case.get(number=number)
    env = d.intake.apply_env(NOW)
    assert isinstance(env, ApplyEnv)
    sample = d.site.letters.sample(ack.letter)
    mid = await store.enqueue(SendLetter(ack.letter, ("wang@huaxin.example.cn",), sample,
                                         "zh"), case, env)
    held = await Outbox.get(message_id=mid)
    assert held.state == "held"
    assert await TimelineEntry.filter(case=case, kind="held").count() == 1
    claimed = await store.claim(NOW, 25, timedelta(seconds=60))
    assert {r.message_id for r in claimed} == {ack.message_id, told[0].message_id}
    assert "held" in {r["state"] for r in await store.outbox()}
    await store.retry([held.id], NOW)
    assert (await Outbox.get(id=held.id)).state == "pending"


async def test_bounce_of_unknown_letter_is_only_recorded(store: Store, tmp_path: Path) -> None:
    d = Deciding(store, tmp_path)
    row, number = await d.feed(postfix_bounce("<nobody@example.test>", "x@huaxin.example.cn"))
    assert number is None and row.state == "processed"
    assert await Outbox.all().count() == 0


def _text(raw: bytes) -> str:
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    part = msg.get_body(("plain",))
    assert part is not None
    return str(part.get_content())
