"""Timers on the real stack: ``maild run --once --now T`` against Dovecot and an SMTP sink,
moving the clock forward through December 2026 (no holidays; weekends are days off):

- a supplier who stays silent is chased, and ``escalation.chase_escalate_after`` later the
  buyer's department head hears;
- an action item of the minutes is reminded before its due date, chased when overdue, then
  escalated to its owner's head, and listed in the weekly digest as 已逾期 until ``#done``;
- a manager scoped to 采购部 sees the supplier cases of the buyers in 采购部 in the digest, a
  manager scoped to 技术部 does not;
- no letter or digest the sink received shows an internal key (step ids, chase keys, roles,
  conditions, letter names).
"""

from __future__ import annotations

import email
import email.policy
import re
from email.message import EmailMessage
from pathlib import Path

import pytest
import test_processes_e2e as processes
from servers import DovecotServer, SmtpSink
from support import mail
from test_processes_e2e import Site, body_of, reply

from maild.engine.definitions import CHASES, CONDITIONS, ROLES
from maild.handlers import load_definitions

pytestmark = pytest.mark.slow

WED = "2026-12-02T10:00:00+08:00"  # the cases start on a Wednesday morning

PROCS = load_definitions(None)
KEYS = sorted({sid for p in PROCS.values() for sid in p.steps} | set(CHASES) | set(ROLES)
              | set(CONDITIONS) | {n for p in PROCS.values() for n in p.letter_names()}
              | {"supplier_chase", "escalation", "action_reminder", "digest"},
              key=len, reverse=True)

#: two more managers, one scoped to 采购部 and one to 技术部 (陈总 covers every department)
SCOPED_MANAGERS = """
[[directory.managers]]
name = "采购总监"
address = "cai@corp.example.test"
departments = ["采购部"]

[[directory.managers]]
name = "技术总监"
address = "ji@corp.example.test"
departments = ["技术部"]
"""


class Clock(Site):
    """The processes' deployment, run at a moment of the test's choosing."""

    def __init__(self, base: Path, dovecot: DovecotServer, sink: SmtpSink,
                 extra: str = "") -> None:
        super().__init__(base, dovecot, sink)
        if extra:
            with self.config.open("a", encoding="utf-8") as f:
                f.write(extra)

    def at(self, now: str) -> list[tuple[str, list[str]]]:
        """``maild run --once --now now``: the letters sent, as ``Site.cycle`` reads them
        (it runs at its module's ``NOW``)."""
        saved, processes.NOW = processes.NOW, now
        try:
            return self.cycle()
        finally:
            processes.NOW = saved

    def messages(self) -> list[EmailMessage]:
        return [email.message_from_bytes(m.raw, policy=email.policy.default)  # type: ignore
                for m in self.sink.messages]

    def to(self, rcpt: str) -> list[EmailMessage]:
        """Every letter the sink received for ``rcpt``, oldest first."""
        return [email.message_from_bytes(m.raw, policy=email.policy.default)  # type: ignore
                for m in self.sink.messages if rcpt in m.rcpt_tos]

    def digest(self, manager: str, at: str) -> str:
        """The text of the digest ``manager`` got, made at ``at`` (2026-12-14 09:00)."""
        [m] = [m for m in self.to(manager) if "管理周报" in str(m["Subject"])
               and f"统计时间：{at}" in body_of(m)]
        return body_of(m)


def words(m: EmailMessage) -> str:
    """What a person reads: the subject, the text part and the HTML part's words."""
    parts = [str(m["Subject"])]
    for part in m.walk():
        if part.get_content_maintype() == "text" and not part.is_attachment():
            text = part.get_content()  # type: ignore[attr-defined]
            if part.get_content_subtype() == "html":
                text = re.sub(r"<style.*?</style>", " ", text, flags=re.S)
                text = re.sub(r"<[^>]+>", " ", text)
            parts.append(text)
    return "\n".join(parts)


def leaks(m: EmailMessage) -> list[str]:
    """Internal keys a person would read in ``m``; a command (``#confirm``), an address or
    a file name is not a key."""
    text = words(m)
    return [k for k in KEYS if re.search(rf"(?<![#\w@./-]){re.escape(k)}(?![\w@-]|\.\w)", text)]


def assert_no_keys(d: Clock) -> None:
    found = {f"{m['Subject']} -> {m['To']}": leaks(m) for m in d.messages()}
    assert {k: v for k, v in found.items() if v} == {}


def test_silent_supplier_is_chased_then_the_buyers_head_hears(tmp_path: Path,
                                                               dovecot: DovecotServer,
                                                               smtp_sink: SmtpSink) -> None:
    d = Clock(tmp_path, dovecot, smtp_sink, SCOPED_MANAGERS)
    d.deliver(mail("吴采购 <wu@corp.example.test>", "[供应商] 铝合金外壳采购",
                   "供应商：sales@hengda.example.cn\n合作范围：铝合金外壳 500 件\n"
                   "资质要求：ISO 9001 认证\n交付标准：按图纸 HX-201，公差 ±0.05\n"
                   "回复期限：2026-12-08\n"))
    assert d.at(WED) == [("ack", ["wu@corp.example.test"]),
                         ("supplier_intent", ["sales@hengda.example.cn",
                                              "wu@corp.example.test"])]
    number = str(d.cases()[0]["number"])
    assert number == "2026-供-001" and d.state(number) == ("intent", "waiting")
    # the buyer's 回复期限 replaces the step's 3 working days: the end of that day
    assert d.db("select kind, key, state, due_at from timers where state = 'pending'") == [
        ("chase", "quote", "pending", "2026-12-08 10:00:00+00:00")]

    assert d.at("2026-12-07T09:59:00+08:00") == [  # Monday 09:00: the week's digests
        ("digest", ["chen@corp.example.test"]), ("digest", ["cai@corp.example.test"]),
        ("digest", ["ji@corp.example.test"])]
    assert d.at("2026-12-08T17:59:00+08:00") == []  # a minute early: no chase yet

    assert d.at("2026-12-08T18:00:00+08:00") == [("supplier_chase", ["sales@hengda.example.cn"])]
    [chase] = [m for m in d.to("sales@hengda.example.cn") if "催办" in str(m["Subject"])]
    assert chase["Subject"] == f"[{number}] 催办：报价及资质文件（铝合金外壳采购）"
    assert chase["To"] == "sales@hengda.example.cn"
    assert "贵司的「报价及资质文件」应于" in body_of(chase)
    assert "恒达材料，您好" in body_of(chase)  # greeted by its name in the directory
    # the head is due chase_escalate_after (2 working days: Wed, Thu) after the chase went
    # out at the close of Tuesday: Friday's first working moment
    assert d.db("select state, level, due_at from timers where state = 'pending'") == [
        ("pending", 1, "2026-12-11 01:00:00+00:00")]

    assert d.at("2026-12-10T18:00:00+08:00") == []  # Thursday's close: nobody yet
    assert d.at("2026-12-11T09:00:00+08:00") == [("escalation", ["zhou@corp.example.test"])]
    [up] = d.to("zhou@corp.example.test")
    assert up["Subject"] == f"[{number}] 逾期上报：铝合金外壳采购（供应商未回复）"
    assert up["To"] == "zhou@corp.example.test"
    text = body_of(up)
    assert "供应商（sales@hengda.example.cn）的「报价及资质文件」" in text
    assert "责任部门：采购部" in text and "负责人：wu@corp.example.test" in text
    assert "sales@hengda.example.cn（2026-12-08" in text  # who was chased, and when
    assert d.db("select state, level from timers where state <> 'cancelled'") == [("fired", 2)]
    notes = [e["text"] for e in d.case(number)["timeline"]  # type: ignore[union-attr]
             if e["kind"] == "escalation"]
    assert len(notes) == 2 and "已催办 sales@hengda.example.cn" in notes[0]
    assert "已上报 zhou@corp.example.test" in notes[1]
    assert all("quote" not in n for n in notes)

    # the next Monday's digests: 采购部's manager sees the buyer's case, 技术部's does not
    sent = d.at("2026-12-14T09:00:00+08:00")
    assert sent == [("digest", ["chen@corp.example.test"]), ("digest", ["cai@corp.example.test"]),
                    ("digest", ["ji@corp.example.test"])]
    cai, ji, chen = (d.digest(f"{who}@corp.example.test", "2026-12-14 09:00")
                     for who in ("cai", "ji", "chen"))
    for text in (cai, chen):
        assert "在办 1（等待对方 1）" in text, text
        assert "供应商延期 1" in text
        assert f"{number}  铝合金外壳采购｜报价及资质文件" in text
    assert "范围：采购部" in cai and "范围：全部部门" in chen
    text = ji
    assert "范围：技术部" in text and "在办 0" in text and "供应商延期 0" in text
    assert number not in text and "铝合金外壳" not in text
    assert_no_keys(d)


def test_overdue_action_item_is_chased_escalated_and_listed_until_done(
        tmp_path: Path, dovecot: DovecotServer, smtp_sink: SmtpSink) -> None:
    d = Clock(tmp_path, dovecot, smtp_sink)
    d.deliver(mail("王芳 <wang@corp.example.test>", "[跨部门][技术部] 新品推广技术支持",
                   "发起部门/人：市场部/王芳\n接收部门/人：技术部/张伟\n"
                   "沟通目标：新品推广会技术讲解\n核心内容：12 月 10 日推广会讲解宽温设计\n"
                   "需协助事项：派一名工程师讲解 30 分钟\n"
                   "期望完成时间：2026-12-10\n紧急程度：一般\n\n王芳\n"))
    assert d.at(WED) == [("ack", ["wang@corp.example.test"]),
                         ("request_notice", ["wang@corp.example.test",
                                             "zhang@corp.example.test"])]
    number = str(d.cases()[0]["number"])
    notice = d.letter("待确认", "zhang@corp.example.test")
    d.deliver(reply(notice, "张伟 <zhang@corp.example.test>", "#确认"))
    sent = d.at(WED)
    assert sent == [("meeting_notice", ["wang@corp.example.test", "zhang@corp.example.test"]),
                    ("command_receipt", ["zhang@corp.example.test"])]
    assert d.state(number) == ("meeting", "open")
    meeting = d.letter("沟通会议安排", "wang@corp.example.test")
    d.deliver(reply(meeting, "王芳 <wang@corp.example.test>",
                    "#advance\n#action 准备宽温设计讲解材料 | li@corp.example.test | 2026-12-09\n"
                    "会议纪要：\n1. 技术部李娜讲解宽温设计 30 分钟。"))
    sent = d.at(WED)
    assert sent == [("minutes_confirm", ["li@corp.example.test", "wang@corp.example.test",
                                         "zhang@corp.example.test"]),
                    ("command_receipt", ["wang@corp.example.test"])]
    minutes = d.letter("纪要", "zhang@corp.example.test")
    d.deliver(reply(minutes, "zhang@corp.example.test", "#确认"),
              reply(minutes, "wang@corp.example.test", "#确认"))
    sent = d.at(WED)
    assert sent == [("command_receipt", ["zhang@corp.example.test"]),
                    ("command_receipt", ["wang@corp.example.test"])]
    assert d.state(number) == ("track", "open")
    # the reminder: the start of the working day 2 working days before the due date
    assert d.db("select key, state, level, due_at from timers where kind = 'action_reminder'"
                ) == [("1", "pending", 0, "2026-12-07 01:00:00+00:00")]
    seen = len(d.sink.messages)

    def action_letters() -> list[EmailMessage]:
        return [m for m in d.messages()[seen:] if "待办" in str(m["Subject"])]

    sent = d.at("2026-12-07T09:00:00+08:00")  # Monday: the reminder, and the week's digest
    assert sent == [("action_reminder", ["li@corp.example.test"]),
                    ("digest", ["chen@corp.example.test"])]
    [remind] = action_letters()
    assert remind["To"] == "li@corp.example.test"
    assert remind["Subject"] == f"[{number}] 待办提醒：准备宽温设计讲解材料（2026-12-09 周三 到期）"
    digest = d.digest("chen@corp.example.test", "2026-12-07 09:00")
    assert f"  12-09 周三  准备宽温设计讲解材料（li@corp.example.test）  {number}\r\n" in digest
    assert "已逾期 0" in digest

    assert d.at("2026-12-09T18:00:00+08:00") == []  # the due day itself: not overdue yet
    assert d.at("2026-12-10T09:00:00+08:00") == [("action_reminder", ["li@corp.example.test"])]
    overdue = action_letters()[-1]
    assert overdue["To"] == "li@corp.example.test"
    assert overdue["Subject"] == (f"[{number}] 待办已逾期：准备宽温设计讲解材料"
                                  "（2026-12-09 周三 到期）")
    assert "#done" in body_of(overdue)

    # head_after (1 working day) later, the owner's department head (技术部: 张伟)
    assert d.at("2026-12-10T18:00:00+08:00") == []
    assert d.at("2026-12-11T09:00:00+08:00") == [("action_reminder", ["zhang@corp.example.test"])]
    up = action_letters()[-1]
    assert up["To"] == "zhang@corp.example.test"
    assert up["Subject"] == (f"[{number}] 待办逾期上报：准备宽温设计讲解材料"
                             "（2026-12-09 周三 到期）")
    assert "负责人 li@corp.example.test 仍未完成" in body_of(up)
    assert "负责人：li@corp.example.test（技术部）" in body_of(up)

    assert d.at("2026-12-14T09:00:00+08:00") == [("digest", ["chen@corp.example.test"])]
    digest = d.digest("chen@corp.example.test", "2026-12-14 09:00")
    assert f"  12-09 周三 已逾期  准备宽温设计讲解材料（li@corp.example.test）  {number}\r\n" \
        in digest, digest

    d.deliver(reply(remind, "li@corp.example.test", "#done 1\n材料已完成。"))
    assert d.at("2026-12-14T10:00:00+08:00") == [("command_receipt", ["li@corp.example.test"])]
    assert d.db("select state from timers where kind = 'action_reminder'") == [("cancelled",)]
    assert d.at("2026-12-21T09:00:00+08:00") == [("digest", ["chen@corp.example.test"])]
    digest = d.digest("chen@corp.example.test", "2026-12-21 09:00")
    assert "到期待办：\r\n    无\r\n" in digest and "准备宽温设计讲解材料" not in digest
    assert_no_keys(d)


def test_the_key_check_reads_subject_text_and_html_words() -> None:
    """``leaks`` finds a key wherever a person reads it, and not in markup, commands,
    addresses or file names."""
    m = EmailMessage()
    m["Subject"] = "[2026-供-001] 催办：报价及资质文件"
    m.set_content("贵司的「报价及资质文件」应于 2026-12-08 前回复。回复 #confirm 或 #done。\n"
                  "联系 order@hengda.example.cn，附件 quote.pdf。\n")
    m.add_alternative('<table style="border:0"><tr><td class="order">报价</td></tr></table>',
                      subtype="html")
    assert leaks(m) == []
    for where in ("subject", "text", "html"):
        m2 = EmailMessage()
        m2["Subject"] = "催办：「quote」" if where == "subject" else "催办"
        m2.set_content("Step: order_confirmation." if where == "text" else "您好")
        m2.add_alternative("<p>步骤：<b>fulfilment</b></p>" if where == "html" else "<p>您好</p>",
                           subtype="html")
        assert leaks(m2) == {"subject": ["quote"], "text": ["order_confirmation"],
                             "html": ["fulfilment"]}[where]
