"""Hostile mail through parse → classify → decide → apply → letters: it never raises and
always ends in a known outcome (a ParseError for the quarantine, else a Decision whose
letters can be rendered and written on valid header lines).

Mails are built from bytes, not with the ``email`` package (which would refuse most of
them): header values with control characters, nested and full-width tags, huge strings,
random charsets and transfer encodings, random bytes as bodies.
"""

from __future__ import annotations

import base64
from datetime import UTC, datetime
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sim import Sim
from support import make_config

from maild.adapters.letters import compose
from maild.classify.rules import Classification, Known, subject_tags
from maild.engine.apply import apply
from maild.engine.effects import (
    CancelTimers,
    CaseView,
    Decision,
    KeepAttachments,
    Note,
    OpenCase,
    SendLetter,
    SetTimer,
    UpdateCase,
)
from maild.mail.message import ParsedMail
from maild.mail.parse import ParseError, parse_mail
from maild.site import Site

NOW = datetime(2026, 12, 1, 2, 0, tzinfo=UTC)
SITE = Site.build(make_config(Path(".")))
EFFECTS = (OpenCase, UpdateCase, Note, SendLetter, SetTimer, CancelTimers, KeepAttachments)

# existing cases a hostile mail may thread into (built once, on the simulator's directory)
_SIM = Sim()
_SIM.send("王经理 <wang@huaxin.example.cn>", "询价", "1. 主板 200 套\n")
_SIM.send("王芳 <wang@corp.example.test>", "[跨部门][技术部] 申请",
          "发起部门/人：市场部/王芳\n接收部门/人：技术部\n沟通目标：x\n核心内容：y\n"
          "需协助事项：z\n期望完成时间：2026-12-10\n紧急程度：一般\n")
CASES = {n: c.view for n, c in _SIM.cases.items()}
THREAD_ID = "<thread@example.test>"

# -- strategies ------------------------------------------------------------------------------

CONTROL = st.sampled_from(["\x00", "\x07", "\x1b[31m", "\r", "\n", "\t", "\x7f", "\x85",
                           "\u202e", "\u2028", "\ufeff"])
TAGGY = st.sampled_from(["[关闭]", "[关[关闭]闭]", "【推进】", "［ＣＬＯＳＥ］", "[CL[CLOSE]OSE]",
                         "[客户]", "[INT]", "[紧急]", "[技术部]", "[2026-客-001]", "]", "[",
                         "Re: ", "自动回复：", "=?utf-8?b?5Lit5paH?=", "=?gbk?q?=D6=D0?=",
                         "=?bogus?b?@@@?=", "询价", "Quote"])
PIECE = st.one_of(st.text(max_size=30), CONTROL, TAGGY)


@st.composite
def header_text(draw: st.DrawFn) -> str:
    """A header value: pieces, sometimes repeated into a huge string."""
    value = "".join(draw(st.lists(PIECE, max_size=8)))
    if value and draw(st.integers(0, 9)) == 0:
        value *= draw(st.sampled_from([100, 5_000, 60_000]))
    return value


ADDRESS = st.one_of(
    st.sampled_from(["wang@huaxin.example.cn", "王经理 <wang@huaxin.example.cn>",
                     "li@corp.example.test", "zhang@corp.example.test", "sales@hengda.example.cn",
                     "someone@unknown.example", "service@example.test", "MAILER-DAEMON@x.test",
                     "<>", "", "not an address", "a@b@c", '"\x1b[2J" <x@y.example>',
                     "=?utf-8?b?5Lit5paH?= <z@huaxin.example.cn>",
                     "x" * 300 + "@huaxin.example.cn"]),
    header_text())
MSGID = st.one_of(st.sampled_from([THREAD_ID, "<a@b>", "", "<bad id@x>", "no-brackets@x",
                                   "<" + "x" * 985 + "@a>", "<" + "y" * 1200 + ">",
                                   "<ctl\x01@x>"]),
                  header_text())
CHARSET = st.sampled_from(["utf-8", "gb2312", "gbk", "big5", "iso-8859-1", "us-ascii",
                           "utf-7", "bogus", "unicode_escape", ""])
ENCODING = st.sampled_from(["", "8bit", "7bit", "base64", "quoted-printable", "x-uuencode",
                            "garbage"])
BODY_TEXT = st.one_of(
    st.text(max_size=200),
    st.sampled_from(["#close\n#advance\n收到。", "[关闭]", "1. 需求\n2. 交付 2026-12-20\n",
                     "接收部门：技术部\n核心内容：x\n", "wrote" + " " * 5000 + "x",
                     "#note " + "z" * 50_000, "a:" + " " * 5000 + "b",
                     "1. " + "y" * 200_000]))
SIGNALS = st.dictionaries(
    st.sampled_from(["Auto-Submitted", "X-Auto-Response-Suppress", "X-Spam-Flag",
                     "X-Spam-Status", "Precedence", "List-Id", "Return-Path", "X-Autoreply",
                     "X-Maild-Case", "Reply-To", "Cc", "Date"]),
    st.one_of(st.sampled_from(["auto-replied", "All", "OOF, AutoReply", "YES", "Yes, score=9",
                               "bulk", "<list.example>", "<>", "no", "2026-客-001"]),
              header_text()),
    max_size=4)


def _header(name: str, value: str, charset: str) -> bytes:
    """Raw header bytes: UTF-8, the charset (8-bit) or surrogate-escaped, folded or not."""
    try:
        data = value.encode(charset or "utf-8")
    except (LookupError, UnicodeError):
        data = value.encode("utf-8", "surrogatepass")
    return name.encode("ascii") + b": " + data.replace(b"\n", b"\r\n ") + b"\r\n"


@st.composite
def hostile_mail(draw: st.DrawFn) -> bytes:
    charset = draw(CHARSET)
    head = b""
    if draw(st.integers(0, 5)):
        head += _header("From", draw(ADDRESS), charset)
    head += _header("To", draw(st.one_of(st.just("service@example.test"), ADDRESS)), charset)
    if draw(st.integers(0, 5)):
        head += _header("Subject", draw(header_text()), charset)
    head += _header("Message-ID", draw(MSGID), "utf-8")
    if draw(st.booleans()):
        head += _header("In-Reply-To", draw(MSGID), "utf-8")
    if draw(st.booleans()):
        refs = draw(st.lists(MSGID, max_size=5))
        head += _header("References", " ".join(refs), "utf-8")
    for name, value in draw(SIGNALS).items():
        head += _header(name, value, charset)
    encoding = draw(ENCODING)
    if draw(st.booleans()):
        body = draw(st.binary(max_size=500))
    else:
        text = draw(BODY_TEXT)
        try:
            body = text.encode(charset or "utf-8")
        except (LookupError, UnicodeError):
            body = text.encode("utf-8", "surrogatepass")
    if encoding == "base64" and draw(st.booleans()):
        body = base64.encodebytes(body)
    ctype = draw(st.sampled_from(["text/plain", "text/html", "multipart/mixed",
                                  "application/octet-stream", ""]))
    if ctype:
        head += f"Content-Type: {ctype}; charset={charset}\r\n".encode()
    if encoding:
        head += f"Content-Transfer-Encoding: {encoding}\r\n".encode()
    return head + b"\r\n" + body


# -- the property ------------------------------------------------------------------------------


def _known(mail: ParsedMail, thread: str | None) -> Known:
    refs = (*mail.in_reply_to, *mail.references)
    by_id = {THREAD_ID: thread} if thread and THREAD_ID in refs else {}
    subjects = {THREAD_ID: "[2026-客-001] 新案件待跟进：询价 [关闭]"} if by_id else {}
    return Known(by_id, frozenset(t for t in subject_tags(mail.subject) if t in CASES),
                 subjects)


def _decide(mail: ParsedMail, thread: str | None) -> tuple[Classification, Decision,
                                                           CaseView | None, Site]:
    known = _known(mail, thread)
    site = _SIM.site if known.case_by_message_id or known.case_numbers else SITE
    cls = site.classify(mail, known)
    case = CASES[cls.case_number] if cls.case_number else None
    return cls, site.decide(mail, cls, case, NOW), case, site


def _check_letters(d: Decision, case: CaseView | None, site: Site, mail: ParsedMail) -> None:
    applied = apply(_SIM.cases[case.number].state if case else None, d, NOW, site.calendar,
                    number="2026-客-099")
    for out in applied.outputs:
        if not isinstance(out, SendLetter):
            continue
        rendered = site.letters.render(out.letter, out.language,
                                       {**out.context, "number": "2026-客-099"})
        raw = compose(rendered, message_id="<m@example.test>", from_addr="service@example.test",
                      from_name="示例科技有限公司", to=out.to, cc=out.cc,
                      case_number="2026-客-099", in_reply_to=mail.message_id or None,
                      references=[*mail.references[-8:], mail.message_id]
                      if mail.message_id else [], now=NOW)
        assert len(raw) < 100_000, (out.letter, len(raw))
        assert max(map(len, raw.split(b"\r\n"))) <= 998
        again = parse_mail(raw)
        assert again.subject.startswith("[2026-客-099]")


@settings(max_examples=150, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(raw=hostile_mail(), thread=st.sampled_from([None, *CASES]))
def test_hostile_mail_ends_in_a_known_outcome(raw: bytes, thread: str | None) -> None:
    try:
        mail = parse_mail(raw)
    except ParseError:
        return  # quarantined
    assert isinstance(mail, ParsedMail)
    assert len(mail.subject) <= 1000 and len(mail.from_.name) <= 200
    assert not any(ch < " " for ch in mail.subject + mail.from_.name)
    cls, d, case, site = _decide(mail, thread)
    assert isinstance(d, Decision) and isinstance(d.summary, str)
    assert all(isinstance(e, EFFECTS) for e in d.effects)
    if not mail.from_.addr:
        assert not any(isinstance(e, OpenCase | SendLetter) for e in d.effects)
    if cls.robot or not mail.from_.addr:
        assert not any(isinstance(e, Note) and e.kind == "command" for e in d.effects)
    for e in d.effects:
        if isinstance(e, OpenCase):
            assert len(e.subject) <= 500 and "[" not in e.subject and "【" not in e.subject
    _check_letters(d, case, site, mail)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(subject=header_text(), body=BODY_TEXT)
def test_a_customer_reply_never_runs_a_command(subject: str, body: str) -> None:
    """Whatever a customer writes on their case, no command is carried out."""
    s = Sim()
    s.send("王经理 <wang@huaxin.example.cn>", "询价", "1. 主板 200 套\n")
    n = s.only_case()
    raw_subject = " ".join(subject.splitlines())[:2000]  # the builder refuses line breaks
    d = s.reply(n, "wang@huaxin.example.cn", body.replace("\x00", ""),
                subject=f"Re: [{n}] {raw_subject}")
    assert not any(isinstance(e, Note) and e.kind == "command" for e in d.effects)
    assert s.case(n).status in ("open", "waiting") and s.case(n).step == "requirements"
