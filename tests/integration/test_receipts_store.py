"""Receipts through the store: written to the outbox for the proven sender, counted as a
notice (not an automatic reply) and folded into the summary once the hourly notice limit
is reached."""

from __future__ import annotations

from pathlib import Path

from deciding import Deciding
from support import mail

from maild.store import Store
from maild.store.models import LetterCount, Outbox, TimelineEntry

REQUEST = ("发起部门/人：技术部 李\n接收部门/人：市场部\n沟通目标：讲解\n"
           "核心内容：讲解新品参数\n需协助事项：安排讲师\n期望完成时间：2026-12-10\n"
           "紧急程度：一般\n")
HEAD = "wang@corp.example.test"  # 市场部's head: the receiving department's owner


async def _open(d: Deciding) -> str:
    _, number = await d.feed(mail("li@corp.example.test", "[跨部门] 讲解支持", REQUEST))
    assert number
    return number


async def test_a_receipt_is_written_for_the_sender_and_counted_as_a_notice(
        store: Store, tmp_path: Path) -> None:
    d = Deciding(store, tmp_path)
    number = await _open(d)
    await d.feed(mail(HEAD, f"Re: [{number}] 讲解支持", "#due 2026-12-10"))
    [row] = await Outbox.filter(case__number=number, letter="command_receipt")
    assert row.rcpt_key == HEAD and row.state == "pending"
    [counted] = await LetterCount.filter(letter="command_receipt")
    assert (counted.addr, counted.state, counted.automatic) == (HEAD, "sent", False)


async def test_a_receipt_over_the_notice_limit_is_folded_not_lost(
        store: Store, tmp_path: Path) -> None:
    d = Deciding(store, tmp_path, extra="[limits]\nnotices_per_staff_per_hour = 1\n")
    number = await _open(d)  # the head's one notice this hour: the request notice
    await d.feed(mail(HEAD, f"Re: [{number}] 讲解支持", "#due 2026-12-10"))
    assert await Outbox.filter(case__number=number, letter="command_receipt").count() == 0
    [folded] = await LetterCount.filter(letter="command_receipt")
    assert (folded.addr, folded.state) == (HEAD, "folded")
    texts = [t.text for t in await TimelineEntry.filter(case__number=number, kind="folded")]
    assert any(f"→ {HEAD} 已合并" in t for t in texts), texts
