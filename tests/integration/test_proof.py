"""Proof of sender through the intake's decision path and the store: the command gate,
the once-an-hour notice, the timeline, reply tokens and the DMARC-fail rule."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest
from deciding import Deciding
from support import NOW, mail, open_store

from maild.store import Store
from maild.store.models import Message, Outbox, TimelineEntry

REQUEST = ("发起部门/人：技术部 李\n接收部门/人：市场部\n沟通目标：讲解\n"
           "核心内容：讲解新品参数\n需协助事项：安排讲师\n期望完成时间：2026-12-10\n"
           "紧急程度：一般\n")
HEAD = "wang@corp.example.test"  # 市场部's head: the receiving department's owner


@pytest.fixture(params=["sqlite", "postgres"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    """Both backends: the once-an-hour memory is a query on the outbox."""
    async with open_store(request.param, tmp_path) as s:
        yield s


async def _open(d: Deciding) -> str:
    _, number = await d.feed(mail("li@corp.example.test", "[跨部门] 讲解支持", REQUEST))
    assert number
    return number


async def _timeline(number: str, kind: str) -> list[str]:
    return [t.text for t in await TimelineEntry.filter(case__number=number, kind=kind)]


async def _letters(number: str, letter: str) -> list[str]:
    return list(await Outbox.filter(case__number=number, letter=letter)
                .order_by("id").values_list("rcpt_key", flat=True))


async def test_a_forged_command_is_refused_recorded_and_told_once_an_hour(
        store: Store, tmp_path: Path) -> None:
    d = Deciding(store, tmp_path)
    number = await _open(d)
    forged = mail(HEAD, f"Re: [{number}] 讲解支持", "#note 伪造的记录\n#close", auth=None)
    await d.feed(forged)
    assert not any("伪造的记录" in t for t in await _timeline(number, "note"))
    refused = await _timeline(number, "refused")
    assert refused == ["#note 伪造的记录: 发件人未经验证，命令未执行",
                       "#close: 发件人未经验证，命令未执行"]
    [why] = await _timeline(number, "unproven")
    assert "no Authentication-Results from a trusted server" in why
    assert await _letters(number, "command_unproven") == [HEAD]
    assert await _letters(number, "command_refused") == []  # nothing lists the case
    # a second forgery within the hour: recorded, not told again
    await d.feed(mail(HEAD, f"Re: [{number}] 讲解支持", "#close", auth=None),
                 NOW + timedelta(minutes=30))
    assert len(await _timeline(number, "refused")) == 3
    assert await _letters(number, "command_unproven") == [HEAD]
    assert await _timeline(number, "notice_skipped") == [
        f"「未验证的命令」通知 → {HEAD}：一小时内已通知过，不再重复"]
    # the memory is the store's: a daemon started afresh remembers it
    again = Deciding(store, tmp_path)
    await again.feed(mail(HEAD, f"Re: [{number}] 讲解支持", "#close", auth=None),
                     NOW + timedelta(minutes=50))
    assert await _letters(number, "command_unproven") == [HEAD]
    # an hour later the head is told again
    await again.feed(mail(HEAD, f"Re: [{number}] 讲解支持", "#close", auth=None),
                     NOW + timedelta(minutes=61))
    assert await _letters(number, "command_unproven") == [HEAD, HEAD]


async def test_a_proven_sender_runs_commands_and_the_proof_is_recorded(
        store: Store, tmp_path: Path) -> None:
    d = Deciding(store, tmp_path)
    number = await _open(d)
    await d.feed(mail(HEAD, f"Re: [{number}] 讲解支持", "#note 真实的记录"))
    assert "真实的记录" in await _timeline(number, "note")
    assert await _timeline(number, "proof") == [
        "发件人已验证：authentication-results: dmarc=pass (mx.example.test)"]
    assert await _letters(number, "command_unproven") == []


async def test_a_reply_token_proves_a_reply_without_authentication_results(
        store: Store, tmp_path: Path) -> None:
    d = Deciding(store, tmp_path)
    number = await _open(d)
    # the request notice went to the head and the initiator, one copy each
    copies = await Outbox.filter(case__number=number, letter="request_notice").order_by("id")
    assert sorted(c.rcpt_key for c in copies) == sorted([HEAD, "li@corp.example.test"])
    assert len({c.message_id for c in copies}) == 2
    to_head = next(c.message_id for c in copies if c.rcpt_key == HEAD)
    to_li = next(c.message_id for c in copies if c.rcpt_key != HEAD)
    # the initiator's copy answered in the head's name proves nothing
    await d.feed(mail(HEAD, "Re: 讲解支持", "#note 冒用", auth=None, In_Reply_To=to_li))
    assert not any("冒用" in t for t in await _timeline(number, "note"))
    assert any("reply-token: no token of ours" in t
               for t in await _timeline(number, "unproven"))
    await d.feed(mail(HEAD, "Re: 讲解支持", "#note 凭回复验证", auth=None,
                      In_Reply_To=to_head))
    assert "凭回复验证" in await _timeline(number, "note")
    assert "发件人已验证：reply-token" in await _timeline(number, "proof")


async def test_help_goes_to_the_proven_from_never_to_reply_to(store: Store,
                                                              tmp_path: Path) -> None:
    d = Deciding(store, tmp_path)
    number = await _open(d)
    await d.feed(mail(HEAD, f"Re: [{number}] 讲解支持", "#help",
                      Reply_To="thief@evil.example"))
    assert await _letters(number, "command_help") == [HEAD]
    # unproven: no help at all, the once-an-hour notice to the directory's address only
    await d.feed(mail(HEAD, f"Re: [{number}] 讲解支持", "#help", auth=None,
                      Reply_To="thief@evil.example"), NOW + timedelta(minutes=5))
    assert await _letters(number, "command_help") == [HEAD]
    assert await _letters(number, "command_unproven") == [HEAD]
    rcpt = [r for o in await Outbox.all() for r in o.rcpt]
    assert "thief@evil.example" not in rcpt


async def test_a_reply_to_a_letter_keeps_threading_with_one_id_per_copy(
        store: Store, tmp_path: Path) -> None:
    d = Deciding(store, tmp_path)
    number = await _open(d)
    out = await Message.filter(direction="out", case__number=number).count()
    assert out == await Outbox.filter(case__number=number).count()
    letters = await _timeline(number, "letter")
    assert letters == ["受理回执 → li@corp.example.test",
                       f"新需求 → {HEAD}, li@corp.example.test"]


async def test_no_acknowledgement_for_mail_failing_a_strict_dmarc(store: Store,
                                                                   tmp_path: Path) -> None:
    fail = "dmarc=fail (p=REJECT sp=REJECT dis=NONE)"
    d = Deciding(store, tmp_path)
    row, number = await d.feed(mail("buyer@huaxin.example.cn", "询价", auth=fail))
    assert number is not None  # the case is opened: a person reads it
    assert await _letters(number, "ack") == []
    assert "DMARC fails" in (row.rules or {}).get("quiet", "")


async def test_acknowledge_dmarc_fail_answers_all_the_same(store: Store,
                                                          tmp_path: Path) -> None:
    d = Deciding(store, tmp_path, security="acknowledge_dmarc_fail = true\n")
    _, number = await d.feed(mail("buyer@huaxin.example.cn", "询价",
                                  auth="dmarc=fail policy.dmarc=quarantine"))
    assert number is not None
    assert await _letters(number, "ack") == ["buyer@huaxin.example.cn"]
