"""Tests for maild.mail.parse and maild.mail.charset.

Every mail here is built in the test as hand-written bytes (so the exact wire form, including
raw 8-bit headers and wrong charset labels, is visible next to the assertion).  Chinese test
text includes 镕 and 喆, which exist in GBK/GB18030 but not in GB2312: a parser that reads a
``gb2312`` label with Python's own gb2312 codec fails these tests.
"""

from __future__ import annotations

import base64
import email.header
import quopri
import subprocess
import sys
import urllib.parse
from pathlib import Path

import mailparser
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support import find_corpus

from maild.mail.charset import decode_bytes, decode_words, install_aliases, recover_raw
from maild.mail.message import Address, ParsedMail
from maild.mail.parse import MAX_DEPTH, ParseError, html_to_text, parse_mail

CORPUS = find_corpus()


def mail(*headers: str | bytes, body: bytes = b"body\r\n") -> bytes:
    """Raw mail bytes from header lines (str lines must be ASCII) and a body."""
    lines = [h if isinstance(h, bytes) else h.encode("ascii") for h in headers]
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


def bword(text: str, label: str, codec: str | None = None) -> str:
    """An RFC 2047 B encoded-word; ``codec`` encodes when the label lies (gb2312 for GBK)."""
    data = text.encode(codec or label)
    return f"=?{label}?B?{base64.b64encode(data).decode()}?="


def qword(text: str, label: str, codec: str | None = None) -> str:
    data = quopri.encodestring(text.encode(codec or label), header=True).decode()
    return f"=?{label}?Q?{data}?="


def leaf(ctype: str, payload: bytes, *extra: str, cte: str = "8bit") -> bytes:
    """One MIME part (headers and encoded payload) for a multipart body."""
    if cte == "base64":
        payload = base64.encodebytes(payload)
    elif cte == "quoted-printable":
        payload = quopri.encodestring(payload)
    head = [f"Content-Type: {ctype}", f"Content-Transfer-Encoding: {cte}", *extra]
    return "\r\n".join(head).encode() + b"\r\n\r\n" + payload


def multipart(*parts: bytes, subtype: str = "mixed", boundary: str = "BOUNDARY") -> bytes:
    """A whole multipart mail around ``parts``."""
    body = b"".join(b"--" + boundary.encode() + b"\r\n" + p + b"\r\n" for p in parts)
    return mail(
        "From: a@example.com",
        "Subject: multipart",
        f'Content-Type: multipart/{subtype}; boundary="{boundary}"',
        body=body + b"--" + boundary.encode() + b"--\r\n",
    )


# --- charset.py ---------------------------------------------------------------------------


def test_install_aliases_makes_gb2312_labels_read_gbk_only_characters() -> None:
    install_aliases()
    install_aliases()  # idempotent
    gbk = "朱镕基陶喆".encode("gbk")
    for label in (
        "gb2312",
        "GB2312",
        "gbk",
        "cp936",
        "x-gbk",
        "x_gbk",
        "euc-cn",
        "euc_cn",
        "chinese",
        "csgb2312",
        "gb_2312-80",
    ):
        assert gbk.decode(label) == "朱镕基陶喆", label
    header = email.header.make_header(email.header.decode_header(bword("朱镕基", "gb2312", "gbk")))
    assert str(header) == "朱镕基"


def test_install_aliases_overrides_labels_already_cached() -> None:
    """In a fresh interpreter, look gb2312 up first (as ``email`` does), then install."""
    script = (
        "import codecs, email.header\n"
        "codecs.lookup('gb2312'); codecs.lookup('eucgb2312_cn')\n"
        "from maild.mail.charset import install_aliases\n"
        "install_aliases()\n"
        "assert b'\\xe9\\x46'.decode('gb2312') == '\\u9555', 'codec cache kept gb2312'\n"
        "word = email.header.decode_header('=?gb2312?B?6UY=?=')\n"
        "assert str(email.header.make_header(word)) == '\\u9555', 'email kept gb2312'\n"
    )
    root = Path(__file__).resolve().parents[2]
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=root, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize(
    ("data", "declared", "expected"),
    [
        ("朱镕基".encode("gbk"), "gb2312", "朱镕基"),
        ("陶喆".encode("gbk"), "GBK", "陶喆"),
        ("𠮷野家€".encode("gb18030"), "gb18030", "𠮷野家€"),
        ("繁體中文".encode("big5"), "big5", "繁體中文"),
        (b"\xf9\xd6", "big5", "碁"),  # cp950 (Windows Big5) extension, not in strict big5
        ("你好".encode(), None, "你好"),
        ("朱镕基".encode("gbk"), None, "朱镕基"),  # undeclared: utf-8 fails, gb18030 fits
        ("朱镕基".encode("gbk"), "utf-8", "朱镕基"),  # wrong label falls back
        ("朱镕基".encode("gbk"), "no-such-charset", "朱镕基"),
        ("naïve".encode(), "iso-8859-1", "naïve"),  # UTF-8 mislabelled as Latin-1
        ("café".encode("latin-1"), "iso-8859-1", "café"),
        (b"\xff\xfe\xfd", None, "ÿþý"),  # nothing fits at all: latin-1, never an exception
        ("朱镕基".encode("gbk") + b"\xff", "gb2312", "朱镕基\ufffd"),  # damaged tail
    ],
)
def test_decode_bytes(data: bytes, declared: str | None, expected: str) -> None:
    assert decode_bytes(data, declared) == expected


@given(st.binary(max_size=300), st.one_of(st.none(), st.text(max_size=20)))
@settings(max_examples=300, deadline=None)
def test_decode_bytes_never_raises(data: bytes, declared: str | None) -> None:
    text = decode_bytes(data, declared)
    text.encode("utf-8")  # no lone surrogates


def test_recover_raw_header_bytes() -> None:
    as_read = "镕喆".encode("gbk").decode("ascii", "surrogateescape")
    assert recover_raw(as_read) == "镕喆"
    assert recover_raw("你好".encode().decode("ascii", "surrogateescape")) == "你好"
    assert recover_raw("plain") == "plain"


def test_decode_words_joins_a_character_split_across_words() -> None:
    gbk = "陶喆".encode("gbk")
    split = " ".join(f"=?gbk?B?{base64.b64encode(c).decode()}?=" for c in (gbk[:3], gbk[3:]))
    assert decode_words(split) == "陶喆"


# --- headers ------------------------------------------------------------------------------

SUBJECTS = {
    "2047-B-gb2312-label-gbk-only-char": (bword("朱镕基来信", "gb2312", "gbk"), "朱镕基来信"),
    "2047-Q-gb2312-label": (qword("陶喆 报价", "GB2312", "gbk"), "陶喆 报价"),
    "2047-B-gbk": (bword("关于订单的确认", "gbk"), "关于订单的确认"),
    "2047-B-gb18030-four-byte": (bword("𠮷野家", "gb18030"), "𠮷野家"),
    "2047-B-big5": (bword("繁體中文測試", "big5"), "繁體中文測試"),
    "2047-B-utf-8": (bword("你好，世界", "utf-8"), "你好，世界"),
    "2047-Q-utf-8": (qword("交货 日期", "UTF-8"), "交货 日期"),
    "2047-x-gbk-label": (bword("镕", "x-gbk", "gbk"), "镕"),
    "2047-rfc2231-language": (bword("中文", "utf-8").replace("utf-8", "utf-8*zh-CN"), "中文"),
    "2047-split-utf8-char": (
        "=?utf-8?B?"
        + base64.b64encode("你好".encode()[:4]).decode()
        + "?=\r\n =?utf-8?B?"
        + base64.b64encode("你好".encode()[4:]).decode()
        + "?=",
        "你好",
    ),
    "2047-mixed-with-text-and-folding": (
        "Re: " + bword("报价", "gbk") + "\r\n\t" + bword("单", "utf-8") + " (urgent)",
        "Re: 报价单 (urgent)",
    ),
    "2047-broken-padding": ("=?utf-8?B?5L2g5aW9?=", "你好"),
}


@pytest.mark.parametrize(("header", "expected"), SUBJECTS.values(), ids=SUBJECTS.keys())
def test_subject_encoded_words(header: str, expected: str) -> None:
    assert parse_mail(mail("From: a@example.com", "Subject: " + header)).subject == expected


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("关于镕的报价".encode(), "关于镕的报价"),
        ("关于镕的报价".encode("gbk"), "关于镕的报价"),
        ("陶喆  的\t邮件".encode("gbk"), "陶喆 的 邮件"),  # whitespace normalised
    ],
    ids=["raw-utf8", "raw-gbk", "raw-gbk-whitespace"],
)
def test_subject_raw_8bit(raw: bytes, expected: str) -> None:
    assert parse_mail(mail("From: a@example.com", b"Subject: " + raw)).subject == expected


def test_address_headers() -> None:
    parsed = parse_mail(
        mail(
            "From: " + bword("朱镕基", "gb2312", "gbk") + " <Zhu.RJ@Example.COM>",
            b"To: " + '陶喆 <tao@example.com>, "王 五" <Wang5@Example.com>'.encode("gbk"),
            'Cc: "'
            + bword("李四", "gbk")
            + '" <LISI@example.com>,\r\n '
            + qword("张三", "utf-8")
            + " <zs@example.com>",
            "Reply-To: " + bword("採購部", "big5") + " <buy@example.tw>",
            "Subject: x",
        )
    )
    assert parsed.from_ == Address("朱镕基", "zhu.rj@example.com")
    assert parsed.from_.domain == "example.com"
    assert parsed.to == (Address("陶喆", "tao@example.com"), Address("王 五", "wang5@example.com"))
    assert parsed.cc == (Address("李四", "lisi@example.com"), Address("张三", "zs@example.com"))
    assert parsed.reply_to == (Address("採購部", "buy@example.tw"),)


def test_raw_utf8_from_name() -> None:
    parsed = parse_mail(mail("张三 <ZS@x.cn>".join(["From: ", ""]).encode(), "Subject: x"))
    assert parsed.from_ == Address("张三", "zs@x.cn")


@pytest.mark.parametrize(
    "from_line",
    ["From: undisclosed", "From: <>", "From: @@@", b"From: \xff\xfe\x80", "X-Other: no from"],
)
def test_unusable_from_is_empty_address(from_line: str | bytes) -> None:
    assert parse_mail(mail(from_line, "Subject: x")).from_ == Address("", "")


def test_bare_address_before_angle_address_is_the_display_name() -> None:
    parsed = parse_mail(
        mail(
            "From: alice@example.com <Bob@example.com>",
            "To: eve@example.com <frank@example.com>, carol@example.com",
        )
    )
    assert parsed.from_ == Address("alice@example.com", "bob@example.com")
    assert [a.addr for a in parsed.to] == ["frank@example.com", "carol@example.com"]


def test_message_ids() -> None:
    parsed = parse_mail(
        mail(
            "From: a@example.com",
            "Message-ID: abc.123@host.example",
            "In-Reply-To: <p1@host> (sent by a robot)",
            'References: <r1@host>\r\n <r2@host> garbage "<>" (comment)\r\n\t<r3@\r\n host>',
            "References: <r4@host>",
        )
    )
    assert parsed.message_id == "<abc.123@host.example>"
    assert parsed.in_reply_to == ("<p1@host>",)
    assert parsed.references == ("<r1@host>", "<r2@host>", "<r3@host>", "<r4@host>")


def test_missing_ids_and_date() -> None:
    parsed = parse_mail(mail("From: a@example.com", "Date: Thu, 26 Nov 2026\r\n 10:00:00 +0800"))
    assert (parsed.message_id, parsed.in_reply_to, parsed.references) == ("", (), ())
    assert parsed.date == "Thu, 26 Nov 2026 10:00:00 +0800"
    assert parse_mail(mail("From: a@example.com")).date == ""


def test_signals_are_lower_cased_top_level_headers() -> None:
    raw = multipart(leaf("text/plain; charset=utf-8", b"hi")).replace(
        b"Subject: multipart",
        b"Subject: multipart\r\nAuto-Submitted: auto-replied\r\nPRECEDENCE: bulk\r\n"
        b"List-Id: <news.example.com>\r\nX-Maild-Case: C-2026-0042\r\nX-Unrelated: 1",
    )
    signals = parse_mail(raw).signals
    assert signals == {
        "auto-submitted": "auto-replied",
        "precedence": "bulk",
        "list-id": "<news.example.com>",
        "x-maild-case": "C-2026-0042",
        "content-type": 'multipart/mixed; boundary="BOUNDARY"',
    }


# --- bodies -------------------------------------------------------------------------------

BODIES = {
    "gb2312-label-gbk-only-chars-base64": ("text/plain; charset=gb2312", "base64", "gbk"),
    "gbk-quoted-printable": ("text/plain; charset=GBK", "quoted-printable", "gbk"),
    "gb18030-8bit": ('text/plain; charset="gb18030"', "8bit", "gb18030"),
    "utf-8-base64": ("text/plain; charset=utf-8", "base64", "utf-8"),
    "undeclared-gbk": ("text/plain", "8bit", "gbk"),
    "undeclared-utf-8": ("text/plain", "8bit", "utf-8"),
    "declared-utf-8-but-gbk": ("text/plain; charset=utf-8", "base64", "gbk"),
    "declared-ascii-but-gbk": ("text/plain; charset=us-ascii", "8bit", "gbk"),
}
CHINESE = "王经理：\n朱镕基、陶喆的订单已发货。𠮷\n"


@pytest.mark.parametrize(("ctype", "cte", "codec"), BODIES.values(), ids=BODIES.keys())
def test_plain_body_charsets(ctype: str, cte: str, codec: str) -> None:
    text = CHINESE if codec != "gbk" else CHINESE.replace("𠮷", "")  # 𠮷 is not in GBK
    raw = multipart(leaf(ctype, text.replace("\n", "\r\n").encode(codec), cte=cte))
    assert parse_mail(raw).text == text


def test_big5_body_comes_out_traditional() -> None:
    text = "台北市採購部：請確認報價單。碁"
    raw = multipart(leaf("text/plain; charset=big5", text.encode("cp950"), cte="base64"))
    assert parse_mail(raw).text == text


def test_single_part_mail_without_content_type() -> None:
    raw = mail("From: a@example.com", body="朱镕基\r\n".encode("gbk"))
    parsed = parse_mail(raw)
    assert (parsed.text, parsed.html, parsed.attachments) == ("朱镕基\n", "", ())


def test_wrong_label_is_recorded_as_defect() -> None:
    raw = multipart(leaf("text/plain; charset=utf-8", "镕".encode("gbk")))
    parsed = parse_mail(raw)
    assert parsed.text == "镕"
    assert any("'utf-8' did not fit; read as gb18030" in d for d in parsed.defects)


def test_plain_preferred_over_html_and_parts_joined() -> None:
    alternative = (
        b'Content-Type: multipart/alternative; boundary="ALT"\r\n\r\n--ALT\r\n'
        + leaf("text/plain; charset=gbk", "纯文本镕".encode("gbk"))
        + b"\r\n--ALT\r\n"
        + leaf("text/html; charset=gbk", "<p>网页镕</p>".encode("gbk"))
        + b"\r\n--ALT--"
    )
    raw = multipart(alternative, leaf("text/plain; charset=utf-8", "第二段".encode()))
    parsed = parse_mail(raw)
    assert parsed.text == "纯文本镕\n第二段"
    assert parsed.html == "<p>网页镕</p>"


HTML = (
    "<html><head><title>标题</title><style>p {color: red}</style></head>\r\n<body>"
    "<p>您好，&nbsp;王经理：</p><p>请见<b>附件</b>&amp;报价，5 &lt; 6。<br>谢谢！</p>"
    "<script>alert('x')</script><!-- 注释 <p>不显示</p> -->"
    "<table><tr><td>单价</td><td>100</td></tr></table>\r\n<div>第二\r\n行</div></body></html>"
)
HTML_TEXT = "您好， 王经理：\n\n请见附件&报价，5 < 6。\n谢谢！\n\n单价  100\n\n第二 行"


def test_html_only_mail_gets_readable_text() -> None:
    parsed = parse_mail(multipart(leaf("text/html; charset=gb2312", HTML.encode("gbk"))))
    assert parsed.html == HTML.replace("\r\n", "\n")
    assert parsed.text == HTML_TEXT


def test_empty_plain_part_does_not_hide_html() -> None:
    raw = multipart(
        leaf("text/plain; charset=utf-8", b"\r\n"),
        leaf("text/html; charset=utf-8", "<p>只有网页</p>".encode()),
        subtype="alternative",
    )
    assert parse_mail(raw).text == "只有网页"


def test_html_charset_from_meta_when_mime_has_none() -> None:
    markup = '<meta http-equiv="Content-Type" content="text/html; charset=big5"><p>體</p>'
    parsed = parse_mail(multipart(leaf("text/html", markup.encode("big5"))))
    assert parsed.text == "體"


@pytest.mark.parametrize(
    ("markup", "expected"),
    [
        ("", ""),
        ("a<br/>b<BR>c", "a\nb\nc"),
        ("<SCRIPT type=x>hidden</SCRIPT>shown", "shown"),
        ("<style>unclosed", ""),  # an unclosed style hides the rest, like a browser
        ("x < y and y > z", "x < y and y > z"),  # not tags
        ("&#20013;&#x6587;&amp;&quot;", '中文&"'),
        ("<p>a</p>\n\n\n<p>b</p><p>&nbsp;</p><p>&nbsp;</p><p>c</p>", "a\n\nb\n\nc"),
        ("<div><div><span>客户</span><span>名称</span>：华东</div></div>", "客户名称：华东"),
        ("<ul><li>一</li><li>二</li></ul>", "* 一\n* 二"),
        ("<p>前言</p><ol><li>一</li></ol>", "前言\n\n1. 一"),
        ("<table><tr><td>单价</td><td>100</td></tr><tr><td>总计</td><td>5</td></tr></table>",
         "单价  100\n总计  5"),
        ("<pre>#确认\n  缩进</pre>", "#确认\n缩进"),  # lines are stripped, as before
        ("a\udc80b<p>c</p>", "a\ufffdb\n\nc"),  # a lone surrogate does not cut the text
        ("<?xml version='1.0'?><p>x</p>", "x"),
        ('<div style="display:none">预览</div><table><tr><td align="center">居中</td></tr></table>',
         "居中"),  # hidden preheaders dropped; centred cells not indented
    ],
)
def test_html_to_text(markup: str, expected: str) -> None:
    assert html_to_text(markup) == expected


# --- attachments --------------------------------------------------------------------------

PDF = b"%PDF-1.4\n" + bytes(range(256))


def quoted(text: str, codec: str) -> str:
    return urllib.parse.quote(text.encode(codec))


FILENAMES = {
    "rfc2231-gb18030": (f"filename*=gb18030''{quoted('报价单镕.pdf', 'gb18030')}", "报价单镕.pdf"),
    "rfc2231-gb2312-label": (f"filename*=gb2312''{quoted('镕.pdf', 'gbk')}", "镕.pdf"),
    "rfc2231-continuation-split-char": (
        "filename*0*=gb18030''%B1%A8%BC;\r\n filename*1*=%DB%B5%A5.pdf",
        "报价单.pdf",
    ),
    "rfc2231-utf8-language": (f"filename*=utf-8'zh'{quoted('合同.docx', 'utf-8')}", "合同.docx"),
    "rfc2047-quoted": (f'filename="{bword("报价单", "gb2312", "gbk")}.pdf"', "报价单.pdf"),
    "rfc2047-big5": (f'filename="{bword("報價單.pdf", "big5")}"', "報價單.pdf"),
    "path-stripped": ('filename="C:\\\\tmp\\\\x\\\\a.pdf"', "a.pdf"),
}


@pytest.mark.parametrize(("param", "expected"), FILENAMES.values(), ids=FILENAMES.keys())
def test_attachment_filename(param: str, expected: str) -> None:
    part = leaf("application/pdf", PDF, "Content-Disposition: attachment; " + param, cte="base64")
    (attachment,) = parse_mail(multipart(leaf("text/plain", b"hi"), part)).attachments
    assert attachment.filename == expected
    assert (attachment.content_type, attachment.payload, attachment.size) == (
        "application/pdf",
        PDF,
        len(PDF),
    )


@pytest.mark.parametrize("codec", ["utf-8", "gbk"])
def test_attachment_raw_8bit_filename(codec: str) -> None:
    part = (
        b'Content-Type: application/pdf; name="' + "报价镕.pdf".encode(codec) + b'"\r\n'
        b"Content-Transfer-Encoding: base64\r\n\r\n" + base64.encodebytes(PDF)
    )
    (attachment,) = parse_mail(multipart(part)).attachments
    assert (attachment.filename, attachment.payload) == ("报价镕.pdf", PDF)


def test_quoted_printable_attachment_and_inline_images() -> None:
    png = b"\x89PNG\r\n\x1a\n" + bytes(range(50))
    parsed = parse_mail(
        multipart(
            leaf("text/plain", "正文".encode()),
            leaf("text/csv; name=a.csv", "名称,数量\r\n".encode(), cte="quoted-printable"),
            leaf(
                "image/png",
                png,
                "Content-ID: <image001.png@01DA0000.12345670>",
                "Content-Disposition: inline",
                cte="base64",
            ),
            leaf("image/jpeg", b"\xff\xd8\xff", "Content-ID: <../../etc/passwd@x>", cte="base64"),
            leaf("image/gif", b"GIF89a", cte="base64"),
        )
    )
    assert parsed.text == "正文"
    assert [(a.filename, a.content_type, a.size) for a in parsed.attachments] == [
        ("a.csv", "text/csv", len("名称,数量\r\n".encode())),
        ("image001.png", "image/png", len(png)),
        ("image-3.jpg", "image/jpeg", 3),
        ("image-4.gif", "image/gif", 6),
    ]
    assert parsed.attachments[1].payload == png


def test_forwarded_message_is_one_attachment() -> None:
    inner = mail(
        "From: " + bword("内层", "gbk") + " <in@example.com>",
        "Subject: " + bword("内层邮件", "gb2312", "gbk"),
        "Content-Type: text/plain; charset=gbk",
        body="内层正文镕".encode("gbk"),
    )
    outer = multipart(
        leaf("text/plain; charset=utf-8", "请看转发".encode()),
        b"Content-Type: message/rfc822\r\nContent-Disposition: inline\r\n\r\n" + inner,
    )
    parsed = parse_mail(outer)
    assert parsed.text == "请看转发"
    (forwarded,) = parsed.attachments
    assert (forwarded.filename, forwarded.content_type) == ("forwarded.eml", "message/rfc822")
    assert forwarded.size == len(forwarded.payload)
    again = parse_mail(forwarded.payload)
    assert (again.subject, again.text) == ("内层邮件", "内层正文镕")


def test_clean_mail_has_no_defects_and_broken_one_reports_them() -> None:
    clean = multipart(leaf("text/plain; charset=utf-8", b"ok"))
    assert parse_mail(clean).defects == ()
    broken = clean.replace(b"--BOUNDARY--", b"")
    defects = parse_mail(broken).defects
    assert isinstance(defects, tuple) and 0 < len(defects) <= 20
    assert any("CloseBoundaryNotFoundDefect" in d for d in defects)
    assert all(isinstance(d, str) and d and len(d) <= 160 for d in defects)


def test_result_is_frozen_parsed_mail() -> None:
    parsed = parse_mail(mail("From: a@example.com", "Subject: s"))
    assert isinstance(parsed, ParsedMail)
    with pytest.raises(AttributeError):
        parsed.subject = "x"  # type: ignore[misc]


# --- what is not mail ---------------------------------------------------------------------


def nested(levels: int) -> bytes:
    head = b"".join(
        b'Content-Type: multipart/mixed; boundary="b%d"\r\n\r\n--b%d\r\n' % (i, i)
        for i in range(levels)
    )
    tail = b"".join(b"\r\n--b%d--" % i for i in reversed(range(levels)))
    return b"From: a@example.com\r\n" + head + b"Content-Type: text/plain\r\n\r\nhi" + tail


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"", "empty"),
        (b" \r\n\r\n\t", "empty"),
        (b"hello world, this is not a mail\r\n", "no mail header"),
        (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(600), "OLE2"),
        (nested(MAX_DEPTH + 5), "nested deeper"),
        (nested(1500), "nested too deeply"),
    ],
    ids=["empty", "blank", "prose", "outlook-msg", "deep", "recursion"],
)
def test_parse_error_reasons(raw: bytes, reason: str) -> None:
    with pytest.raises(ParseError, match=reason):
        parse_mail(raw)


def test_nesting_within_limit_parses() -> None:
    assert parse_mail(nested(MAX_DEPTH - 1)).text == "hi"


def test_unexpected_mail_parser_failure_becomes_parse_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def explode(_raw: bytes) -> None:
        raise KeyError("boom")

    monkeypatch.setattr(mailparser, "parse_from_bytes", explode)
    with pytest.raises(ParseError, match="mail-parser failed: KeyError: 'boom'"):
        parse_mail(mail("From: a@example.com"))


def corpus_files() -> list[Path]:
    return sorted(p for p in CORPUS.rglob("*") if p.is_file()) if CORPUS.is_dir() else []


@pytest.mark.parametrize("path", corpus_files(), ids=lambda p: p.name)
def test_corpus_parses_or_gives_a_reason(path: Path) -> None:
    try:
        parsed = parse_mail(path.read_bytes())
    except ParseError as err:
        assert str(err).strip()
    else:
        assert isinstance(parsed, ParsedMail)


KNOWN = CORPUS / "mail-parser"


def test_corpus_known_outcomes() -> None:
    parsed = parse_mail((KNOWN / "mail_test_12.eml").read_bytes())  # GB2312 headers
    assert parsed.subject == "代开各地增值税发票"
    assert parsed.from_ == Address("张先生", "baoguan@hotmail.com")
    with pytest.raises(ParseError, match="OLE2"):
        parse_mail((KNOWN / "mail_outlook_1.msg").read_bytes())
    with pytest.raises(ParseError, match="no mail header"):
        parse_mail((CORPUS / "README.md").read_bytes())


# --- properties ---------------------------------------------------------------------------


def outcome(raw: bytes) -> None:
    try:
        parsed = parse_mail(raw)
    except ParseError as err:
        assert str(err)
    else:
        assert isinstance(parsed, ParsedMail)
        for text in (parsed.subject, parsed.text, parsed.from_.name, *parsed.defects):
            text.encode("utf-8")  # no lone surrogates leak out


@given(st.binary(max_size=1500))
@settings(max_examples=250, deadline=None)
def test_arbitrary_bytes_only_raise_parse_error(raw: bytes) -> None:
    outcome(raw)


LABELS = st.sampled_from(
    [
        "gb2312",
        "utf-8",
        "big5",
        "undefined",
        "utf-16",
        "base64",
        "unicode-escape",
        "x-unknown",
        "",
        '"gbk"',
    ]
)
HEADER_NAMES = st.sampled_from(
    [
        "From",
        "To",
        "Cc",
        "Subject",
        "Message-ID",
        "References",
        "Content-Type",
        "Content-Disposition",
        "X-Maild-Case",
    ]
)


TOP_TYPES = st.sampled_from(['multipart/mixed; boundary="B"', "text/plain", "text/html"])
PART_HEADERS = st.sampled_from(
    [b"", b"Content-Transfer-Encoding: base64\r\n", b"Content-Type: message/rfc822\r\n"]
)


@st.composite
def mail_shaped(draw: st.DrawFn) -> bytes:
    """Header lines of known names with hostile values, then MIME parts with random bytes."""
    lines = [
        draw(HEADER_NAMES).encode() + b": " + draw(st.binary(max_size=60)).replace(b"\n", b" ")
        for _ in range(draw(st.integers(1, 6)))
    ]
    label = draw(LABELS).encode()
    lines.append(b"Content-Type: " + draw(TOP_TYPES).encode() + b"; charset=" + label)
    body = b""
    for payload in draw(st.lists(st.binary(max_size=120), max_size=4)):
        head = b"Content-Type: text/plain; charset=" + label + b"\r\n" + draw(PART_HEADERS)
        body += b"--B\r\n" + head + b"\r\n" + payload + b"\r\n"
    return b"\r\n".join(lines) + b"\r\n\r\n" + body + b"--B--\r\n"


@given(mail_shaped())
@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_mail_shaped_bytes_only_raise_parse_error(raw: bytes) -> None:
    outcome(raw)
