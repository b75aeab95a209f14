"""Subject tags that cannot be planted: a customer's subject, an old letter's subject or a
vacation responder never runs a command on a case; a member of staff who adds a tag does.

Each row opens a customer case the way the attack did and has staff (or their responder)
answer it; the case must stay where it was, with no command noted and no letter a command
would have sent.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest
from flows import INQUIRY
from sim import Sim
from support import mail

from maild.classify.rules import Known, case_subject, clean_subject, subject_tags
from maild.engine.effects import Decision, Note
from maild.mail.commands import parse_commands, subject_command_tags
from maild.mail.parse import parse_mail

CUSTOMER = "王经理 <wang@huaxin.example.cn>"
CONTACT = "ma@corp.example.test"  # 华信集团's account manager
CASUAL = "收到，我先和客户电话沟通一下。"
LETTER_ID = "<letter-1@example.test>"


def commands_run(d: Decision) -> list[str]:
    return [e.text for e in d.effects if isinstance(e, Note) and e.kind == "command"]


def answer_letter(s: Sim, number: str, sender: str, body: str, subject: str,
                  letter_subject: str, **headers: Any) -> Decision:
    """A reply to one of our letters (In-Reply-To), the store knowing that letter's subject."""
    m = parse_mail(mail(sender, subject, body, In_Reply_To=LETTER_ID, **headers))
    known = Known({**s.msgids, LETTER_ID: number},
                  frozenset(n for n in subject_tags(m.subject) if n in s.cases),
                  {LETTER_ID: letter_subject})
    cls = s.site.classify(m, known)
    assert cls.case_number == number
    d = s.site.decide(m, cls, s.case(number), s.now)
    s.apply(d, cls.case_number, m.message_id)
    s.last = d
    return d


def open_case(subject: str) -> tuple[Sim, str]:
    s = Sim()
    s.send(CUSTOMER, subject, INQUIRY)
    return s, s.only_case()


def plain_reply(s: Sim, n: str) -> Decision:
    return s.reply(n, CONTACT, CASUAL)


def notice_reply(s: Sim, n: str) -> Decision:
    """The manager answers the new-case notice: its subject as the letter carried it."""
    notice = next(x for x in s.sent if x.letter == "new_case_notice")
    subject = f"[{n}] {notice.rendered.subject}"
    return answer_letter(s, n, CONTACT, CASUAL, f"Re: {subject}", subject)


def responder_with_headers(s: Sim, n: str) -> Decision:
    """A vacation responder that says so, answering with commands in subject and body."""
    return s.reply(n, CONTACT, "#close\n#advance\n我正在休假，12 月 8 日返回。",
                   subject=f"自动回复: Re: [{n}] {s.case(n).subject} [关闭] [推进]",
                   Auto_Submitted="auto-replied", X_Autoreply="yes")


def responder_without_headers(s: Sim, n: str) -> Decision:
    """A responder that does not say so, answering a letter whose subject carried [关闭]."""
    subject = f"[{n}] 新案件待跟进：询价 [关闭]"
    return answer_letter(s, n, CONTACT, "I am out of the office until Monday.",
                         f"Re: {subject}", subject)


def answer_customer_mail(s: Sim, n: str) -> Decision:
    """The manager, in copy, answers the customer's own mail: "Re: 询价 [关闭]"."""
    return answer_letter(s, n, CONTACT, CASUAL, "Re: 询价 [关闭]", "询价 [关闭]")


def legacy_subject(s: Sim, n: str) -> Decision:
    """A case stored before the fix with the planted tag in its subject; its letters carry it."""
    case = s.cases[n]
    case.state = replace(case.state, view=replace(case.view, subject="询价 [关闭]"))
    return s.reply(n, CONTACT, CASUAL)  # "Re: [n] 询价 [关闭]"


ATTACKS = [
    ("nested ascii", "Quote [CL[CLOSE]OSE]", plain_reply),
    ("nested chinese", "询价 [关[关闭]闭]", plain_reply),
    ("nested twice", "询价 [关[关[关闭]闭]闭]", plain_reply),
    ("full-width brackets", "询价 ［关闭］", plain_reply),
    ("lenticular brackets", "询价 【关【关闭】闭】", plain_reply),
    ("full-width letters", "Quote [ＣＬＯＳＥ]", plain_reply),
    ("full-width both", "Quote ［ＣＬ［ＣＬＯＳＥ］ＯＳＥ］", plain_reply),
    ("stray bracket first", "Quote ]CL[CLOSE]OSE[", plain_reply),
    ("tag-only subject", "[关闭]", plain_reply),
    ("tag-only nested", "[关[关闭]闭]", plain_reply),
    ("planted advance, casual reply", "询价 [推[推进]进]", plain_reply),
    ("planted advance, notice answered", "询价 [推[推进]进]", notice_reply),
    ("planted close, notice answered", "Quote [CL[CLOSE]OSE]", notice_reply),
    ("vacation responder (robot)", "询价 [关[关闭]闭]", responder_with_headers),
    ("vacation responder (no headers)", "询价", responder_without_headers),
    ("tag already in our letter", "询价", legacy_subject),
    ("staff answer the customer's mail", "询价 [关闭]", answer_customer_mail),
]


@pytest.mark.parametrize(("subject", "answer"), [a[1:] for a in ATTACKS],
                         ids=[a[0] for a in ATTACKS])
def test_a_planted_tag_runs_no_command(subject: str, answer: Any) -> None:
    s, n = open_case(subject)
    before = s.case(n)
    assert "[" not in before.subject and "【" not in before.subject
    assert not subject_command_tags(before.subject)
    since = len(s.sent)
    d = answer(s, n)
    after = s.case(n)
    assert commands_run(d) == []
    assert (after.status, after.step) == (before.status, before.step) == ("open", "requirements")
    assert "solution" not in after.data
    assert not {"case_closed", "customer_confirmation", "command_refused"} & set(s.names(since))


def test_a_robot_on_a_case_runs_nothing_and_is_only_noted() -> None:
    s, n = open_case("询价")
    since = len(s.sent)
    d = responder_with_headers(s, n)
    assert [e.kind for e in d.effects if isinstance(e, Note)] == ["robot"]
    assert s.names(since) == []


@pytest.mark.parametrize("subject", [
    "Re: [{n}] {subject} [关闭]", "Re: [{n}] {subject} 【关闭】", "Re: [{n}] {subject} [CLOSE]",
    "Re: [{n}] [ＣＬＯＳＥ] {subject}"])
def test_staff_who_add_a_tag_still_close_the_case(subject: str) -> None:
    s, n = open_case("询价 [关[关闭]闭]")
    s.reply(n, CONTACT, CASUAL, subject=subject.format(n=n, subject=s.case(n).subject))
    assert s.case(n).status == "closed"
    assert commands_run(s.last)


def test_staff_who_add_a_tag_to_a_letter_without_it_still_close_the_case() -> None:
    s, n = open_case("询价")
    subject = f"[{n}] 新案件待跟进：询价"
    answer_letter(s, n, CONTACT, CASUAL, f"Re: {subject} [关闭]", subject)
    assert s.case(n).status == "closed"


def test_an_inherited_tag_is_noted_as_ignored() -> None:
    s, n = open_case("询价")
    d = responder_without_headers(s, n)
    [note] = [e.text for e in d.effects if isinstance(e, Note) and e.kind == "ignored"]
    assert "[关闭]" in note


@pytest.mark.parametrize(("subject", "clean"), [
    ("Quote [CL[CLOSE]OSE]", "Quote"),
    ("询价 [关[关闭]闭]", "询价"),
    ("询价 ［关闭］ 二", "询价 二"),
    ("Quote ]CL[CLOSE]OSE[", "Quote CL OSE"),
    ("询价\x1b[31m 红色\x07", "询价 31m 红色"),  # no escape reaches a terminal
    ("Re: [2026-客-001] Re: 询价", "询价"),
])
def test_clean_subject_leaves_no_tag(subject: str, clean: str) -> None:
    assert clean_subject(subject) == clean


@pytest.mark.parametrize(("subject", "case"), [
    ("[关闭]", "关闭"),
    ("[关[关闭]闭]", "关 关闭 闭"),
    ("【紧急】", "紧急"),
    ("", ""),
    ("x" * 5000, "x" * 499 + "…"),
])
def test_a_case_subject_never_carries_a_tag(subject: str, case: str) -> None:
    assert case_subject(subject) == case
    assert not subject_command_tags(case_subject(subject))


@pytest.mark.parametrize(("subject", "inherited", "expected"), [
    ("Re: x [关闭]", [], ["close"]),
    ("Re: x [关闭]", ["x [关闭]"], []),
    ("Re: x [关闭]", ["x [CLOSE]"], []),  # the same command under another word
    ("Re: x [关闭]", ["x [关[关闭]闭]"], []),
    ("Re: x [关闭]", ["x [确认]"], ["close"]),
    ("Re: x [关[关闭]闭]", [], []),  # a tag inside brackets is text
    ("Re: x ［ＣＬＯＳＥ］", [], ["close"]),
])
def test_inherited_tags_are_not_commands(subject: str, inherited: list[str],
                                         expected: list[str]) -> None:
    cmds = parse_commands("好的\n", subject, inherited=inherited)
    assert [c.name for c in cmds] == expected
