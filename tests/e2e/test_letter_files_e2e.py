"""Files and calendar invitations on the real stack: ``maild run --once`` against Dovecot and
the SMTP sink. A staff ``#advance`` with a file sends the customer the letter with that
file, byte for byte; the customer's file reaches the account manager; a file over the
letter cap is listed instead. ``#meeting`` sends an iCalendar REQUEST that calendar programs
read; a second ``#meeting`` updates it, ``#meeting cancel`` cancels it."""

from __future__ import annotations

from datetime import datetime
from email.message import EmailMessage
from pathlib import Path
from zoneinfo import ZoneInfo

import icalendar
import pytest
from servers import DovecotServer, SmtpSink
from support import mail
from test_processes_e2e import Site, body_of, reply

pytestmark = pytest.mark.slow
SH = ZoneInfo("Asia/Shanghai")
#: a "PDF" with every byte value, CR/LF pairs, a lone dot line and a "From " line
SOLUTION_PDF = b"%PDF-1.7\r\n" + bytes(range(256)) * 8 + b"\r\n.\r\nFrom me\n\x00"
CAP = 64 * 1024


@pytest.fixture
def site(tmp_path: Path, dovecot: DovecotServer, smtp_sink: SmtpSink) -> Site:
    s = Site(tmp_path, dovecot, smtp_sink)
    text = s.config.read_text(encoding="utf-8")
    s.config.write_text(text + f"\n[limits]\nmax_letter_attachment_bytes = {CAP}\n",
                        encoding="utf-8")
    return s


def _files(m: EmailMessage) -> dict[str, bytes]:
    return {str(a.get_filename()): a.get_content() for a in m.iter_attachments()}


def test_staff_files_travel_to_the_customer_and_back(site: Site) -> None:
    d = site
    d.deliver(mail("王经理 <wang@huaxin.example.cn>", "定制工控主板询价",
                   "您好：我司计划采购定制工控主板 200 套，要求宽温。\n华信集团 王经理\n"))
    assert d.cycle() == [("ack", ["wang@huaxin.example.cn"]),
                         ("new_case_notice", ["ma@corp.example.test"])]
    notice = d.letter("新案件", "ma@corp.example.test")

    d.deliver(reply(notice, "ma@corp.example.test",
                    "#advance\n方案要点：K7 宽温工控主板，详见附件技术方案。",
                    attachments=(("K7 技术方案（第1版）.pdf", SOLUTION_PDF),
                                 ("整机三维模型.step", b"\x01" * (CAP + 1)))))
    assert d.cycle() == [("customer_confirmation", ["ma@corp.example.test",
                                                    "wang@huaxin.example.cn"]),
                         ("command_receipt", ["ma@corp.example.test"])]  # carries nothing
    assert _files(d.letter("已执行", "ma@corp.example.test")) == {}
    letter = d.letter("客户需求确认函", "wang@huaxin.example.cn")
    assert letter.get_content_type() == "multipart/mixed"
    files = _files(letter)
    assert files.pop("K7 技术方案（第1版）.pdf") == SOLUTION_PDF  # byte for byte
    assert [n for n in files] == [f"客户需求确认函-{d.cases()[0]['number']}.docx"]  # generated
    text = body_of(letter)
    assert "K7 技术方案（第1版）.pdf" in text
    assert "整机三维模型.step" in text and "超过单封邮件 64.0 KB 的附件上限" in text
    assert "如需要，请回复本邮件" in text and "maild cases" not in text  # a customer's words

    d.deliver(reply(letter, "王经理 <wang@huaxin.example.cn>", "方案可以，修改意见见附件。",
                    attachments=(("修改意见.docx", b"PK\x03\x04 comments"),)))
    assert d.cycle() == [("reply_notice", ["ma@corp.example.test"])]
    told = _latest_to(d, "ma@corp.example.test")
    assert _files(told) == {"修改意见.docx": b"PK\x03\x04 comments"}


def _latest_to(d: Site, addr: str) -> EmailMessage:
    import email
    import email.policy

    for received in reversed(d.sink.messages):
        if addr in received.rcpt_tos:
            return email.message_from_bytes(received.raw, policy=email.policy.default)  # type: ignore[return-value]
    raise AssertionError(f"no letter to {addr}")


FORM = """张经理好，申请如下：

发起部门/人：市场部/王芳
接收部门/人：技术部/张伟
沟通目标：新品推广会技术讲解
核心内容：12 月 10 日推广会讲解宽温设计
需协助事项：派一名工程师讲解 30 分钟
期望完成时间：2026-12-10
紧急程度：一般
"""


def _calendar(m: EmailMessage) -> tuple[str, icalendar.Event, icalendar.Calendar]:
    """The invitation as Outlook reads it: the text/calendar part of the alternative."""
    [alternative] = [p for p in m.iter_parts() if p.get_content_type() == "multipart/alternative"]
    [part] = [p for p in alternative.iter_parts() if p.get_content_type() == "text/calendar"]
    cal = icalendar.Calendar.from_ical(part.get_content())
    assert _files(m)["invite.ics"].decode("utf-8") == part.get_content()  # the same event
    [ev] = cal.walk("VEVENT")
    return str(part.get_param("method")), ev, cal


def test_meeting_invitation_update_and_cancellation(site: Site) -> None:
    d = site
    d.deliver(mail("王芳 <wang@corp.example.test>", "[跨部门][技术部] 新品推广技术支持", FORM))
    assert [n for n, _ in d.cycle()] == ["ack", "request_notice"]
    number = str(d.cases()[0]["number"])
    notice = d.letter("待确认", "zhang@corp.example.test")
    d.deliver(reply(notice, "张伟 <zhang@corp.example.test>", "#确认"))
    assert [n for n, _ in d.cycle()] == ["meeting_notice", "command_receipt"]
    meeting = d.letter("沟通会议安排", "wang@corp.example.test")

    d.deliver(reply(meeting, "王芳 <wang@corp.example.test>",
                    "#meeting 2026-12-03 14:00 会议室A"))
    [(letter, rcpt), receipt] = d.cycle()
    assert receipt == ("command_receipt", ["wang@corp.example.test"])
    assert letter == "meeting_invite"
    assert rcpt == ["wang@corp.example.test", "zhang@corp.example.test"]
    invite = d.letter("会议邀请", "zhang@corp.example.test")
    method, ev, cal = _calendar(invite)
    assert method == "REQUEST" and cal["METHOD"] == "REQUEST"
    assert ev.decoded("DTSTART") == datetime(2026, 12, 3, 14, 0, tzinfo=SH)
    assert ev["DTSTART"].params["TZID"] == "Asia/Shanghai"
    assert [tz["TZID"] for tz in cal.walk("VTIMEZONE")] == ["Asia/Shanghai"]
    assert sorted(str(a) for a in ev["ATTENDEE"]) == ["mailto:wang@corp.example.test",
                                                      "mailto:zhang@corp.example.test"]
    assert str(ev["ORGANIZER"]) == "mailto:service@example.test"
    assert ev["SEQUENCE"] == 0 and str(ev["LOCATION"]) == "会议室A"
    uid = str(ev["UID"])
    assert "invite.ics" in _files(invite)
    assert "2026-12-03 14:00–15:00" in body_of(invite)

    d.deliver(reply(invite, "王芳 <wang@corp.example.test>",
                    "#meeting 2026-12-04 09:30 会议室B 90分钟"))
    assert [n for n, _ in d.cycle()] == ["meeting_invite", "command_receipt"]
    moved = d.letter("会议改期", "zhang@corp.example.test")
    method, ev, _ = _calendar(moved)
    assert (method, str(ev["UID"]), ev["SEQUENCE"]) == ("REQUEST", uid, 1)
    assert ev.decoded("DTEND") == datetime(2026, 12, 4, 11, 0, tzinfo=SH)

    d.deliver(reply(moved, "王芳 <wang@corp.example.test>", "#meeting cancel"))
    assert [n for n, _ in d.cycle()] == ["meeting_invite", "command_receipt"]
    cancelled = d.letter("会议取消", "zhang@corp.example.test")
    method, ev, cal = _calendar(cancelled)
    assert method == "CANCEL" and cal["METHOD"] == "CANCEL"
    assert (str(ev["UID"]), ev["SEQUENCE"], ev["STATUS"]) == (uid, 2, "CANCELLED")
    kinds = [e["kind"] for e in d.case(number)["timeline"]]  # type: ignore[union-attr]
    assert kinds.count("meeting") == 3
