"""The store on SQLite and on PostgreSQL: intake rows, one-transaction decisions, the outbox."""

from __future__ import annotations

import asyncio
import email
import email.policy
from datetime import timedelta
from pathlib import Path

import pytest
from deciding import Deciding
from support import NOW, mail
from tortoise.exceptions import ValidationError
from tortoise.transactions import in_transaction

from maild.adapters.letters import LetterError, Letters
from maild.adapters.sources.base import Fetched
from maild.classify.rules import Classification
from maild.engine.effects import Decision, OpenCase, SetTimer, UpdateCase
from maild.mail.parse import parse_mail
from maild.store import Store
from maild.store.models import Case, Message, Outbox, TimelineEntry, Timer


async def test_raw_bytes_kept_before_anything_and_rows_idempotent(store: Store) -> None:
    raw = mail("a@huaxin.example.cn", "询价", charset="gbk")
    rows = await store.record_fetched(
        "inbox", 7, store.keep_raw([Fetched(1, raw), Fetched(2, raw + b"x")]), NOW)
    assert [r.state for r in rows] == ["received", "received"]
    assert store.raw.get(rows[0].raw_path) == raw
    again = await store.record_fetched("inbox", 7, store.keep_raw([Fetched(1, raw)]), NOW)
    assert again[0].id == rows[0].id
    assert await Message.filter(direction="in").count() == 2


async def test_new_case_timeline_letter_in_one_transaction(store: Store, tmp_path: Path) -> None:
    d = Deciding(store, tmp_path)
    _, n1 = await d.feed(mail("王经理 <wang@huaxin.example.cn>", "产品询价"))
    _, n2 = await d.feed(mail("sales@hengda.example.cn", "报价单"))
    _, n3 = await d.feed(mail("wang@huaxin.example.cn", "另一个需求"))
    _, n4 = await d.feed(mail("li@corp.example.test", "[技术部] 协助测试"))
    assert (n1, n2, n3, n4) == ("2026-客-001", "2026-供-001", "2026-客-002", "2026-技-001")
    case = await Case.get(number=n1)
    assert case.process == "customer" and case.step == "requirements"
    kinds = [t.kind for t in await TimelineEntry.filter(case=case)]
    assert kinds == ["opened", "letter"]
    out = await Outbox.get(case=case)
    assert out.rcpt == ["wang@huaxin.example.cn"] and out.state == "pending"
    letter = email.message_from_bytes(out.body, policy=email.policy.default)
    assert letter["Subject"].startswith("[2026-客-001] ")
    assert letter["Auto-Submitted"] == "auto-replied"
    assert letter["Message-ID"] == out.message_id
    assert await Message.filter(direction="out", message_id=out.message_id,
                                case=case).exists()


async def test_reply_threads_by_our_message_id(store: Store, tmp_path: Path) -> None:
    d = Deciding(store, tmp_path)
    _, number = await d.feed(mail("wang@huaxin.example.cn", "产品询价"))
    ack = await Outbox.get(case__number=number)
    _, again = await d.feed(mail("wang@huaxin.example.cn", "Re: 回复", "补充需求",
                                 In_Reply_To=ack.message_id))
    assert again == number
    assert await Case.all().count() == 1
    kinds = [t.kind for t in await TimelineEntry.filter(case__number=number)]
    assert kinds == ["opened", "letter", "reply"]


async def test_broken_template_rolls_back_the_whole_decision(store: Store,
                                                             tmp_path: Path) -> None:
    bad = tmp_path / "tpl"
    bad.mkdir()
    (bad / "ack.zh.txt.j2").write_text("Subject: x\n\n{{ no_such_variable }}\n")
    (bad / "ack.zh.html.j2").write_text("<p>x</p>")
    d = Deciding(store, tmp_path, Letters(bad))
    with pytest.raises(LetterError, match="no_such_variable"):
        await d.feed(mail("wang@huaxin.example.cn", "询价"))
    assert await Case.all().count() == 0
    assert await Outbox.all().count() == 0
    assert await TimelineEntry.all().count() == 0
    # the counter rolled back too: the next good mail still gets number 001
    d2 = Deciding(store, tmp_path)
    _, number = await d2.feed(mail("wang@huaxin.example.cn", "询价"))
    assert number == "2026-客-001"


async def test_overlong_message_id_is_refused_by_the_store(store: Store, tmp_path: Path) -> None:
    d = Deciding(store, tmp_path)
    with pytest.raises(ValidationError):
        await d.feed(mail("wang@huaxin.example.cn", "询价", msgid="<" + "x" * 1200 + "@a>"))
    assert await Case.all().count() == 0


async def test_claim_leases_rows_to_one_caller(store: Store, tmp_path: Path) -> None:
    d = Deciding(store, tmp_path)
    for i in range(6):
        await d.feed(mail(f"c{i}@huaxin.example.cn", f"询价 {i}"))
    a, b = await asyncio.gather(store.claim(NOW, 4, timedelta(minutes=5)),
                                store.claim(NOW, 4, timedelta(minutes=5)))
    ids_a, ids_b = {o.id for o in a}, {o.id for o in b}
    assert not ids_a & ids_b  # never the same letter to two senders
    rest = {o.id for o in await store.claim(NOW, 10, timedelta(minutes=5))}
    assert not rest & (ids_a | ids_b)
    assert len(ids_a | ids_b | rest) == 6
    # leased rows are not handed out again until the lease ends
    assert await store.claim(NOW, 10, timedelta(minutes=5)) == []
    assert len(await store.claim(NOW + timedelta(minutes=6), 10, timedelta(minutes=5))) == 6


async def test_transient_failure_backs_off_and_permanent_gives_up(store: Store,
                                                                  tmp_path: Path) -> None:
    d = Deciding(store, tmp_path)
    _, number = await d.feed(mail("wang@huaxin.example.cn", "询价"))
    [out] = await store.claim(NOW, 10, timedelta(minutes=5))
    assert not await store.failed(out, NOW, "451 try later", permanent=False, max_attempts=3)
    assert await store.claim(NOW + timedelta(seconds=10), 10, timedelta(minutes=5)) == []
    [out] = await store.claim(NOW + timedelta(seconds=31), 10, timedelta(minutes=5))
    assert out.attempts == 1
    assert await store.failed(out, NOW, "550 no such user", permanent=True, max_attempts=3)
    row = await Outbox.get(id=out.id)
    assert row.state == "failed" and "550" in (row.last_error or "")
    notes = await TimelineEntry.filter(case__number=number, kind="send_failed")
    assert len(notes) == 1


async def test_rate_limit_on_automatic_replies(store: Store, tmp_path: Path) -> None:
    d = Deciding(store, tmp_path)
    d.limit_replies(2)
    for i in range(3):
        await d.feed(mail("flood@huaxin.example.cn", f"询价 {i}"))
    assert await Outbox.filter(rcpt_key="flood@huaxin.example.cn").count() == 2
    assert await TimelineEntry.filter(kind="rate_limited").count() == 1
    # an hour later the sender is answered again
    await d.feed(mail("flood@huaxin.example.cn", "询价 4"), now=NOW + timedelta(hours=1, seconds=1))
    assert await Outbox.filter(rcpt_key="flood@huaxin.example.cn").count() == 3


async def test_rate_limit_counts_letters_of_the_same_uncommitted_group(store: Store,
                                                                       tmp_path: Path) -> None:
    # the intake decides 25 mails per transaction: a flood inside one group must be braked
    # by the letters queued earlier in that same, not yet committed, transaction
    d = Deciding(store, tmp_path)
    d.limit_replies(2)
    async with in_transaction(store.conn):
        for i in range(4):
            await d.feed(mail("flood@huaxin.example.cn", f"询价 {i}"))
    assert await Outbox.filter(rcpt_key="flood@huaxin.example.cn").count() == 2
    assert await TimelineEntry.filter(kind="rate_limited").count() == 2


async def test_checkpoint_resets_when_uidvalidity_changes(store: Store) -> None:
    assert await store.checkpoint("inbox", 5) == 0
    await store.advance("inbox", 5, 42)
    assert await store.checkpoint("inbox", 5) == 42
    await store.advance("inbox", 5, 7)  # never goes backwards
    assert await store.checkpoint("inbox", 5) == 42
    assert await store.checkpoint("inbox", 6) == 0


async def test_a_case_opened_with_two_timers_of_one_kind_keeps_the_last(
        store: Store, tmp_path: Path) -> None:
    # a new case is inserted with its updates folded in, and its timers are written without
    # looking for older ones: a second timer of the same kind and key must still replace
    # the first
    d = Deciding(store, tmp_path)
    raw = mail("buyer@huaxin.example.cn", "询价")
    [row] = await store.record_fetched("test", 1, store.keep_raw([Fetched(1, raw)]), NOW)
    m = parse_mail(raw)
    cls = Classification(process="customer")
    first, second = NOW + timedelta(hours=2), NOW + timedelta(hours=5)
    decision = Decision((
        OpenCase("customer", "confirm", "询价", None, "", False, "zh",
                 ("buyer@huaxin.example.cn",)),
        SetTimer("response", first, "k"),
        SetTimer("response", second, "k"),
        SetTimer("reminder", first, "other"),
        UpdateCase(step="confirm", status="waiting", owner=("wang@corp.example.test",),
                   data={"x": 1}),
    ), "test")
    number = await store.apply(row, m, cls, decision, d.intake.apply_env(NOW), "Processed")
    case = await Case.get(number=number)
    assert (case.status, case.owner, case.data) == ("waiting", ["wang@corp.example.test"],
                                                   {"x": 1})
    timers = await Timer.filter(case=case).order_by("id")
    pending = [(t.kind, t.key, t.due_at) for t in timers if t.state in ("pending", "paused")]
    assert sorted(pending) == sorted([("response", "k", second), ("reminder", "other", first)])
    assert [t.state for t in timers if t.kind == "response"][0] == "cancelled"
