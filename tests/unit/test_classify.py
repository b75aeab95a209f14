"""The classification rule table: robots, threading, tags and routing, by parameter tables."""

from __future__ import annotations

from pathlib import Path

import pytest
from support import mail, make_config

from maild.classify.directory import Directory
from maild.classify.rules import Classification, Known, classify, clean_subject, subject_tags
from maild.mail.parse import parse_mail

CFG = make_config(Path("."))
DIRECTORY = Directory(CFG.directory, CFG.routing.staff_domains, CFG.organisation.address)


NOTHING_KNOWN = Known()


def run(raw: bytes, known: Known = NOTHING_KNOWN, default: str = "customer") -> Classification:
    return classify(parse_mail(raw), DIRECTORY, known, default_process=default,
                    msgid_domain="example.test")


@pytest.mark.parametrize("subject, tags", [
    ("[客户] 询价", ("客户",)),
    ("【供应商】【紧急】交期确认", ("供应商", "紧急")),
    ("Re: [2026-技-005] 纪要 [确认]", ("2026-技-005", "确认")),
    ("无标签", ()),
    ("[ CUST ] mixed 【技术部】", ("CUST", "技术部")),
])
def test_subject_tags(subject: str, tags: tuple[str, ...]) -> None:
    assert subject_tags(subject) == tags


@pytest.mark.parametrize("subject, clean", [
    ("Re: [2026-客-001] 已受理：产品询价", "已受理：产品询价"),
    ("回复：答复: 【紧急】 交期", "交期"),
    ("RE: Fw: 报价", "报价"),
])
def test_clean_subject(subject: str, clean: str) -> None:
    assert clean_subject(subject) == clean


ROBOTS = [
    ("auto_submitted", dict(Auto_Submitted="auto-replied"), "auto-submitted"),
    ("precedence", dict(Precedence="bulk"), "precedence bulk"),
    ("precedence", dict(Precedence="junk"), "precedence junk"),
    ("mailing_list", dict(List_Id="<news.example.org>"), "mailing list"),
    ("null_sender", dict(Return_Path="<>"), "bounce (empty Return-Path)"),
    ("auto_reply", dict(X_Autoreply="yes"), "auto-reply"),
]


@pytest.mark.parametrize("rule, headers, reason", ROBOTS)
def test_robot_headers(rule: str, headers: dict[str, str], reason: str) -> None:
    cls = run(mail("x@huaxin.example.cn", "询价", **headers))
    assert cls.robot == reason
    assert [h.rule for h in cls.hits if h.outcome == "hit"][0] == rule
    assert cls.route.startswith("robot")
    assert all(h.outcome == "skipped" for h in cls.hits if h.stage == "route")


@pytest.mark.parametrize("sender, subject, reason", [
    ("MAILER-DAEMON@mx.example.org", "Undelivered Mail", "bounce (mailer-daemon)"),
    ("postmaster@example.org", "Delivery failure", "bounce (mailer-daemon)"),
    ("li@huaxin.example.cn", "自动回复: 产品询价", "auto-reply"),
    ("li@huaxin.example.cn", "Automatic reply: inquiry", "auto-reply"),
    ("service@example.test", "[2026-客-001] 已受理", "our own mail"),
])
def test_robot_senders_and_subjects(sender: str, subject: str, reason: str) -> None:
    assert run(mail(sender, subject)).robot == reason


def test_auto_submitted_no_is_a_person() -> None:
    assert run(mail("x@huaxin.example.cn", "询价", Auto_Submitted="no")).robot is None


@pytest.mark.parametrize("sender, subject, process, department, urgent", [
    ("a@huaxin.example.cn", "询价", "customer", None, False),  # known customer domain
    ("sales@hengda.example.cn", "报价", "supplier", None, False),  # known supplier
    ("x@unknown.example", "你好", "customer", None, False),  # default route
    ("x@unknown.example", "[供应商] 合作意向", "supplier", None, False),
    ("x@unknown.example", "【SUPP】 offer", "supplier", None, False),
    ("li@corp.example.test", "[跨部门][技术部] 支持", "internal", "技术部", False),
    ("li@corp.example.test", "[市] 推广 [紧急]", "internal", "市场部", True),
    ("li@corp.example.test", "协助测试", "internal", "技术部", False),  # sender's own dept
    ("a@huaxin.example.cn", "[URGENT] 样品", "customer", None, True),
])
def test_routing(sender: str, subject: str, process: str, department: str | None,
                 urgent: bool) -> None:
    cls = run(mail(sender, subject))
    assert (cls.process, cls.department, cls.urgent) == (process, department, urgent)
    assert cls.robot is None and cls.case_number is None


def test_default_triage_for_unknown_senders() -> None:
    cls = run(mail("x@unknown.example", "你好"), default="triage")
    assert cls.route == "triage"


def test_internal_department_from_the_form_line() -> None:
    body = "发起部门/人：技术部/李\n接收部门/人：市场部/王经理\n沟通目标：推广\n"
    cls = run(mail("li@corp.example.test", "新品推广", body))
    assert cls.department == "市场部"


def test_threading_by_in_reply_to_beats_subject_and_tags() -> None:
    known = Known({"<ack1@example.test>": "2026-客-001"}, frozenset({"2026-客-002"}))
    cls = run(mail("a@huaxin.example.cn", "Re: [2026-客-002] [供应商] x",
                   In_Reply_To="<ack1@example.test>"), known)
    assert cls.case_number == "2026-客-001"
    assert cls.route == "case 2026-客-001"
    assert [h.outcome for h in cls.hits if h.stage == "thread"] == ["hit", "skipped"]


def test_threading_by_references_and_by_subject_number() -> None:
    known = Known({"<old@example.test>": "2026-技-003"}, frozenset({"2026-客-002"}))
    by_refs = run(mail("a@x.example", "Re: x", References="<a@b> <old@example.test>"), known)
    assert by_refs.case_number == "2026-技-003"
    by_subject = run(mail("a@x.example", "Re: 【2026-客-002】 补充"), known)
    assert by_subject.case_number == "2026-客-002"
    unknown_number = run(mail("a@x.example", "Re: [2026-客-999] 补充"), known)
    assert unknown_number.case_number is None


def test_a_robot_reply_still_threads_to_its_case() -> None:
    known = Known({"<ack1@example.test>": "2026-客-001"}, frozenset())
    cls = run(mail("li@huaxin.example.cn", "自动回复：已受理", In_Reply_To="<ack1@example.test>"),
              known)
    assert cls.robot == "auto-reply" and cls.case_number == "2026-客-001"


def test_every_rule_is_recorded_once() -> None:
    cls = run(mail("a@huaxin.example.cn", "询价"))
    names = [h.rule for h in cls.hits]
    assert len(names) == len(set(names)) == 20


@pytest.mark.parametrize("headers, quiet", [
    (dict(X_Auto_Response_Suppress="All"), "X-Auto-Response-Suppress: All"),
    (dict(X_Auto_Response_Suppress="OOF, AutoReply"), "X-Auto-Response-Suppress: OOF, AutoReply"),
    (dict(X_Auto_Response_Suppress="DR, RN, NRN"), None),
    (dict(X_Spam_Flag="YES"), "marked as spam (X-Spam-Flag: YES)"),
    (dict(X_Spam_Status="Yes, score=9.1"), "marked as spam (X-Spam-Status: Yes)"),
    (dict(X_Spam_Status="No, score=0.1", X_Spam_Flag="NO"), None),
])
def test_senders_who_want_no_automatic_reply(headers: dict[str, str], quiet: str | None) -> None:
    cls = run(mail("a@huaxin.example.cn", "询价", **headers))
    assert cls.quiet == quiet
    assert cls.process == "customer" and cls.robot is None  # routed all the same


def test_spam_is_acknowledged_when_configured() -> None:
    m = parse_mail(mail("a@huaxin.example.cn", "询价", X_Spam_Flag="YES"))
    cls = classify(m, DIRECTORY, NOTHING_KNOWN, acknowledge_spam=True)
    assert cls.quiet is None
    assert [h.outcome for h in cls.hits if h.rule == "spam_flag"] == ["hit"]


@pytest.mark.parametrize("sender", ["", "not an address", "a@b@c",
                                    "x" * 300 + "@huaxin.example.cn"])
def test_mail_without_a_usable_sender_goes_to_triage(sender: str) -> None:
    raw = mail("placeholder@x.test", "询价").replace(b"From: placeholder@x.test",
                                                    f"From: {sender}".encode())
    cls = run(raw)
    assert cls.route == "triage"
    assert [h.rule for h in cls.hits if h.outcome == "hit"] == ["no_sender"]


def test_the_answered_message_s_subject_is_kept_for_inherited_tags() -> None:
    known = Known({"<n1@example.test>": "2026-客-001"}, frozenset(),
                  {"<n1@example.test>": "[2026-客-001] 新案件待跟进：询价 [关闭]",
                   "<old@example.test>": "older"})
    cls = run(mail("ma@corp.example.test", "Re: x", In_Reply_To="<n1@example.test>",
                   References="<old@example.test> <n1@example.test>"), known)
    assert cls.replied_subjects == ("[2026-客-001] 新案件待跟进：询价 [关闭]",)
    by_refs = run(mail("ma@corp.example.test", "Re: x",
                       References="<n1@example.test> <old@example.test>"), known)
    assert by_refs.replied_subjects == ("older",)  # without In-Reply-To: the last reference
