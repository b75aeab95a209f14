"""Letters that carry files and calendar invitations: the MIME written (parsed back with the
``email`` package and ``icalendar``), the size cap, which letters carry which files, and the
``#meeting`` command from invitation to cancellation."""

from __future__ import annotations

import email
import email.policy
import hashlib
from datetime import UTC, date, datetime
from email.message import EmailMessage
from pathlib import Path
from zoneinfo import ZoneInfo

import icalendar
import pytest
from flows import at_step
from sim import Sim

from maild.adapters.attach import OutFile
from maild.adapters.letters import Rendered, compose
from maild.engine.effects import LetterFile, SendLetter
from maild.engine.invites import (
    MEETING_LETTER,
    meeting_ics,
    meeting_uid,
    milestone_ics,
    parse_meeting,
)
from maild.store.attachments import ContentStore
from maild.store.letter_files import letter_files

SH = ZoneInfo("Asia/Shanghai")
NOW = datetime(2026, 12, 1, 2, 0, tzinfo=UTC)
LETTER = Rendered("客户需求确认函", "王经理您好：\n方案见附件。\n",
                  "<html><body><p>方案见附件。</p></body></html>")
LONG_NAME = "客户需求确认函（第2版）-华信集团-定制工控主板200套-宽温-两路隔离RS485-" * 3 + ".pdf"
PDF = b"%PDF-1.4\n" + bytes(range(256)) * 40 + b"\r\n.\r\nFrom x\n"  # CR, LF, dots, binary


def _compose(files: list[OutFile], from_name: str = "示例科技有限公司") -> EmailMessage:
    raw = compose(LETTER, message_id="<m1@example.test>", from_addr="service@example.test",
                  from_name=from_name, to=["wang@huaxin.example.cn"], cc=["ma@corp.example.test"],
                  case_number="2026-客-001", in_reply_to="<x@huaxin.example.cn>",
                  references=["<x@huaxin.example.cn>"], now=NOW, files=files)
    assert all(len(line) <= 998 for line in raw.split(b"\r\n"))
    assert b"\n" not in raw.replace(b"\r\n", b"")  # CRLF only
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    assert isinstance(msg, EmailMessage)
    return msg


@pytest.mark.parametrize("from_name", ["示例科技有限公司", "示例\x01科技"])  # direct / fallback
def test_a_letter_with_files_is_mixed_and_carries_them_byte_for_byte(from_name: str) -> None:
    files = [OutFile(LONG_NAME, "application/pdf", PDF),
             OutFile("spec sheet.xlsx", "application/vnd.ms-excel", b"PK\x03\x04" * 10)]
    msg = _compose(files, from_name)
    assert msg.get_content_type() == "multipart/mixed"
    alternative, *attached = msg.iter_parts()
    assert alternative.get_content_type() == "multipart/alternative"
    assert [p.get_content_type() for p in alternative.iter_parts()] == ["text/plain",
                                                                       "text/html"]
    body = msg.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    assert body.replace("\r\n", "\n") == LETTER.text
    assert [(a.get_filename(), a.get_content_type(), a.get_content()) for a in attached] == [
        (LONG_NAME, "application/pdf", PDF),
        ("spec sheet.xlsx", "application/vnd.ms-excel", b"PK\x03\x04" * 10)]
    assert msg["In-Reply-To"] == "<x@huaxin.example.cn>"
    assert msg["X-Maild-Case"] == "2026-客-001"


def test_a_chinese_name_is_written_with_rfc2231_and_rfc2047() -> None:
    raw = compose(LETTER, message_id="<m1@example.test>", from_addr="service@example.test",
                  from_name="", to=["a@b.cn"], case_number=None, in_reply_to=None,
                  references=[], now=NOW, files=[OutFile("合同.pdf", "application/pdf", b"x")])
    assert b"filename*0*=utf-8''%E5%90%88%E5%90%8C.pdf" in raw
    assert b'name="=?utf-8?b?5ZCI5ZCMLnBkZg==?="' in raw


def test_a_letter_without_files_stays_alternative() -> None:
    msg = _compose([])
    assert msg.get_content_type() == "multipart/alternative"
    assert list(msg.iter_attachments()) == []


def _ics(method: str, sequence: int = 0) -> bytes:
    arg = parse_meeting("2026-12-03 14:00 会议室A", SH)
    assert not isinstance(arg, str)
    return meeting_ics(method=method, uid=meeting_uid("2026-技-001", 1, "example.test"),
                       sequence=sequence, start=arg.start, minutes=arg.minutes,
                       summary="[2026-技-001] 新品推广", location=arg.place, description="",
                       organizer="service@example.test", organizer_name="示例科技",
                       attendees=["wang@corp.example.test", "zhang@corp.example.test"], now=NOW)


@pytest.mark.parametrize("from_name", ["示例科技有限公司", "示例\x01科技"])
def test_an_invitation_is_a_calendar_part_and_an_ics_file(from_name: str) -> None:
    ics = _ics("REQUEST")
    msg = _compose([OutFile("invite.ics", "text/calendar", ics, "REQUEST")], from_name)
    alternative, attached = msg.iter_parts()
    text, html, calendar = alternative.iter_parts()
    assert calendar.get_content_type() == "text/calendar"
    assert calendar.get_param("method") == "REQUEST"
    assert calendar.get_content_charset() == "utf-8"
    assert attached.get_filename() == "invite.ics"
    assert attached.get_content() == ics
    cal = icalendar.Calendar.from_ical(calendar.get_content())
    assert cal["METHOD"] == "REQUEST"


def test_the_invitation_itself() -> None:
    cal = icalendar.Calendar.from_ical(_ics("REQUEST"))
    [tz] = cal.walk("VTIMEZONE")
    assert tz["TZID"] == "Asia/Shanghai"
    [ev] = cal.walk("VEVENT")
    assert ev.decoded("DTSTART") == datetime(2026, 12, 3, 14, 0, tzinfo=SH)
    assert ev["DTSTART"].params["TZID"] == "Asia/Shanghai"
    assert ev.decoded("DTEND") == datetime(2026, 12, 3, 15, 0, tzinfo=SH)
    assert str(ev["UID"]).endswith("@example.test") and ev["SEQUENCE"] == 0
    assert str(ev["ORGANIZER"]) == "mailto:service@example.test"
    attendees = ev["ATTENDEE"]
    assert [str(a) for a in attendees] == ["mailto:wang@corp.example.test",
                                           "mailto:zhang@corp.example.test"]
    assert all(a.params["RSVP"] == "TRUE" for a in attendees)
    assert str(ev["LOCATION"]) == "会议室A"
    cancel = icalendar.Calendar.from_ical(_ics("CANCEL", 2))
    assert cancel["METHOD"] == "CANCEL"
    [ev2] = cancel.walk("VEVENT")
    assert (ev2["UID"], ev2["SEQUENCE"], ev2["STATUS"]) == (ev["UID"], 2, "CANCELLED")


def test_a_milestone_is_an_all_day_event() -> None:
    cal = icalendar.Calendar.from_ical(milestone_ics(
        uid="m@example.test", day=date(2026, 12, 15), summary="样机交付", description="",
        organizer="service@example.test", organizer_name="示例科技", now=NOW))
    [ev] = cal.walk("VEVENT")
    assert cal["METHOD"] == "PUBLISH"
    assert ev.decoded("DTSTART") == date(2026, 12, 15)
    assert ev.decoded("DTEND") == date(2026, 12, 16)


@pytest.mark.parametrize(("arg", "expected"), [
    ("2026-12-03 14:00 会议室A", (datetime(2026, 12, 3, 14, 0, tzinfo=SH), 60, "会议室A")),
    ("2026年12月3日 9:30 三楼大会议室 1.5h", (datetime(2026, 12, 3, 9, 30, tzinfo=SH), 90,
                                          "三楼大会议室")),
    ("2026-12-03 14点 腾讯会议 123-456 45分钟",
     (datetime(2026, 12, 3, 14, 0, tzinfo=SH), 45, "腾讯会议 123-456")),
    ("2026-12-03 14:00 Room 2 2 hours", (datetime(2026, 12, 3, 14, 0, tzinfo=SH), 120,
                                         "Room 2")),
    ("明天下午", "date"), ("2026-12-03 会议室A", "time"), ("2026-12-03 25:00 A", "time"),
    ("2026-12-03 14:00", "place"), ("2026-12-03 14:00 A 30h", "duration"),
])
def test_meeting_arguments(arg: str, expected: object) -> None:
    got = parse_meeting(arg, SH)
    if isinstance(expected, str):
        assert got == expected
    else:
        assert not isinstance(got, str)
        assert (got.start, got.minutes, got.place) == expected


# -- the cap -------------------------------------------------------------------------------


def _kept(store: ContentStore, name: str, data: bytes) -> LetterFile:
    sha, _ = store.put(data)
    return LetterFile(name, "application/pdf", len(data), sha256=sha)


def test_files_over_the_cap_are_listed_by_name(tmp_path: Path) -> None:
    store = ContentStore(tmp_path)
    small, big = b"a" * 600, b"b" * 700
    gone = LetterFile("丢失.pdf", "application/pdf", 10, sha256=hashlib.sha256(b"?").hexdigest())
    letter = SendLetter("reply_notice", ("ma@corp.example.test",), {}, "zh",
                        files=(_kept(store, "报价单.pdf", small), _kept(store, "图纸.dwg", big),
                               gone, _kept(store, "报价单-副本.pdf", small)))
    rendered, files, remark = letter_files(store, letter, LETTER, 1000)
    assert [(f.name, f.data) for f in files] == [("报价单.pdf", small)]  # the copy: once
    assert "附件：\n  报价单.pdf (600 B)" in rendered.text
    assert "图纸.dwg (700 B): 超过单封邮件 1000 B 的附件上限" in rendered.text
    assert "丢失.pdf (10 B): 文件未保存" in rendered.text
    assert "已保存在案件中：maild cases show" in rendered.text  # staff are told where
    assert "图纸.dwg" in rendered.html and rendered.html.endswith("</body></html>")
    assert remark.startswith("附件 报价单.pdf; 未附上 图纸.dwg")
    en = SendLetter("reply_notice", ("a@b.cn",), {}, "en", files=letter.files[1:2])
    rendered, files, _ = letter_files(store, en, LETTER, 100)
    assert files == [] and "图纸.dwg (700 B): over the 100 B limit of a letter" in rendered.text


def test_a_letter_without_files_is_unchanged(tmp_path: Path) -> None:
    letter = SendLetter("reply_notice", ("ma@corp.example.test",), {}, "zh")
    assert letter_files(ContentStore(tmp_path), letter, LETTER, 0) == (LETTER, [], "")


# -- which letters carry which files -------------------------------------------------------


def _letters(s: Sim) -> dict[str, SendLetter]:
    return {e.letter: e for e in s.last.letters()}


def test_staff_files_go_to_the_customer_and_customer_files_to_staff() -> None:
    s, number = at_step("customer", "requirements")
    s.reply(number, "ma@corp.example.test", "#advance\n方案要点：见附件。",
            attachments=(("技术方案.pdf", b"%PDF solution"),))
    confirmation = _letters(s)["customer_confirmation"]
    assert confirmation.to == ("wang@huaxin.example.cn",)
    assert [(f.name, f.sha256) for f in confirmation.files] == [
        ("技术方案.pdf", hashlib.sha256(b"%PDF solution").hexdigest())]
    s.reply(number, "wang@huaxin.example.cn", "有几处修改意见，见附件。",
            attachments=(("修改意见.docx", b"PK docx"),))
    notice = _letters(s)["reply_notice"]
    assert notice.to == ("ma@corp.example.test",)
    assert [f.name for f in notice.files] == ["修改意见.docx"]


def test_automatic_letters_carry_nothing_and_legal_gets_the_case_files() -> None:
    s = Sim()
    s.send("王经理 <wang@huaxin.example.cn>", "询价", "请报价。",
           attachments=(("需求.xlsx", b"PK need"),))
    sent = _letters(s)
    assert sent["ack"].files == ()  # the acknowledgement to the customer
    assert [f.name for f in sent["new_case_notice"].files] == ["需求.xlsx"]
    s2, number = at_step("customer", "solution")
    s2.reply(number, "wang@huaxin.example.cn", "确认。签字版见附件。",
             attachments=(("确认函-签字版.pdf", b"%PDF signed"),))
    legal = _letters(s2)["legal_review"]
    assert legal.case_files and [f.name for f in legal.files] == ["确认函-签字版.pdf"]
    s2.reply(number, "ma@corp.example.test", "#help", attachments=(("x.pdf", b"x"),))
    assert all(not e.files for e in s2.last.letters())


# -- #meeting ----------------------------------------------------------------------------


def _invite(s: Sim) -> tuple[SendLetter, icalendar.Calendar]:
    [letter] = [e for e in s.last.letters() if e.letter == MEETING_LETTER]
    [ics] = letter.files
    assert ics.name == "invite.ics"
    cal = icalendar.Calendar.from_ical(ics.data)
    assert cal["METHOD"] == ics.method
    return letter, cal


def test_meeting_invitation_update_and_cancellation() -> None:
    s, number = at_step("internal", "meeting")
    s.reply(number, "王芳 <wang@corp.example.test>", "#meeting 2026-12-03 14:00 会议室A")
    letter, cal = _invite(s)
    [ev] = cal.walk("VEVENT")
    assert cal["METHOD"] == "REQUEST" and ev["SEQUENCE"] == 0
    attendees = sorted(str(a).removeprefix("mailto:") for a in ev["ATTENDEE"])
    assert attendees == sorted(letter.to)
    assert {"wang@corp.example.test", "zhang@corp.example.test"} <= set(letter.to)
    assert letter.context["kind"] == "request"
    uid = ev["UID"]
    assert s.case(number).data["meeting"]["status"] == "scheduled"

    s.reply(number, "zhang@corp.example.test", "#会议 2026-12-04 10:00 会议室B 2h")
    letter, cal = _invite(s)
    [ev] = cal.walk("VEVENT")
    assert (ev["UID"], ev["SEQUENCE"], letter.context["kind"]) == (uid, 1, "update")
    assert ev.decoded("DTEND") == datetime(2026, 12, 4, 12, 0, tzinfo=SH)

    s.reply(number, "王芳 <wang@corp.example.test>", "#meeting cancel")
    letter, cal = _invite(s)
    [ev] = cal.walk("VEVENT")
    assert cal["METHOD"] == "CANCEL" and (ev["UID"], ev["SEQUENCE"]) == (uid, 2)
    assert letter.context["kind"] == "cancel"

    s.reply(number, "王芳 <wang@corp.example.test>", "#meeting cancel")  # nothing to cancel
    assert s.names()[-1] == "command_refused"
    s.reply(number, "王芳 <wang@corp.example.test>", "#meeting 2026-12-05 9:00 会议室A")
    _, cal = _invite(s)
    [ev] = cal.walk("VEVENT")
    assert ev["UID"] != uid and ev["SEQUENCE"] == 0  # a new meeting


def test_closing_the_case_cancels_a_meeting_ahead() -> None:
    s, number = at_step("internal", "meeting")
    s.reply(number, "王芳 <wang@corp.example.test>", "#meeting 2026-12-03 14:00 会议室A")
    s.reply(number, "王芳 <wang@corp.example.test>", "#close 需求取消")
    _, cal = _invite(s)
    assert cal["METHOD"] == "CANCEL"
    assert s.case(number).status == "closed"


@pytest.mark.parametrize(("body", "why"), [
    ("#meeting 2026-11-30 14:00 会议室A", "已经过去"),
    ("#meeting 下周三 会议室A", "格式应为"),
    ("#meeting 2026-12-03 14:00", "格式应为"),
])
def test_a_bad_meeting_is_refused_with_the_reason(body: str, why: str) -> None:
    s, number = at_step("internal", "meeting")
    s.reply(number, "王芳 <wang@corp.example.test>", body)
    assert s.names()[-1] == "command_refused"
    assert why in s.sent[-1].rendered.text
    assert "meeting" not in s.case(number).data


@pytest.mark.parametrize("from_name", ["示例", "示例\x01"])
@pytest.mark.parametrize(("name", "ctype", "written_name", "written_type"), [
    ('报价"单\\.pdf', "application/pdf", '报价"单\\.pdf', "application/pdf"),
    ('quote "v2".pdf', "APPLICATION/PDF", 'quote "v2".pdf', "application/pdf"),
    ("a\r\nBcc: x@evil.example", "text/plain", "a_Bcc: x@evil.example", "text/plain"),
    ("", "multipart/mixed", "attachment.bin", "application/octet-stream"),
    ("x.eml", "message/rfc822", "x.eml", "application/octet-stream"),
    ("y", 'application/pdf\r\nBcc: x@evil.example', "y", "application/octet-stream"),
])
def test_hostile_names_and_types_are_written_safely(from_name: str, name: str, ctype: str,
                                                    written_name: str,
                                                    written_type: str) -> None:
    msg = _compose([OutFile(name, ctype, b"data\x00")], from_name)
    [a] = msg.iter_attachments()
    assert (a.get_filename(), a.get_content_type()) == (written_name, written_type)
    assert a.get_payload(decode=True) == b"data\x00"
    assert msg["Bcc"] is None
