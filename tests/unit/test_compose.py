"""The direct letter writer against the ``email`` package it replaced on the hot path."""

from __future__ import annotations

import email
import email.policy
from datetime import UTC, datetime
from typing import Any

import pytest

from maild.adapters.letters import Letters, Rendered, _compose_email, compose, letter_subject
from maild.mail.parse import parse_mail

NOW = datetime(2026, 12, 1, 2, 0, tzinfo=UTC)
BASE: dict[str, Any] = dict(message_id="<abc@example.test>", from_addr="service@example.test",
                            from_name="示例科技有限公司", to=["wang@huaxin.example.cn"], cc=[],
                            case_number="2026-客-001", in_reply_to="<a@huaxin.example.cn>",
                            references=["<x@y.example>", "<a@huaxin.example.cn>"], now=NOW)


def _templates() -> list[Rendered]:
    letters = Letters()
    return [letters.render(letter, lang, letters.sample(letter))
            for letter in ("ack", "need_department") for lang in ("zh", "en")]


ODD = [
    (Rendered("Re: a long English subject that certainly runs past the seventy-eight column "
              "limit of a header line", "plain ascii\n" * 3, "<p>x</p>"),
     dict(from_name='ACME, "Inc."', to=["a@x.test", "b@y.test"], cc=["c@z.test"],
          case_number=None, in_reply_to=None, references=[])),
    (Rendered("镕铭系列主板" * 20, "x" * 200 + "\n喆\n", "<p>" + "y" * 300 + "</p>"),
     dict(from_name="", case_number="2026-技-001",
          references=[f"<r{i}@example.test>" for i in range(9)])),
    (Rendered("询价  两个空格 and =?not a word?=", "正文", "<p>正文</p>"), {}),
]
CASES = [(r, {}) for r in _templates()] + ODD


def _view(raw: bytes) -> tuple[dict[str, str], str, str]:
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    headers = {k: str(msg[k]) for k in msg.keys() if k != "Content-Type"}
    return (headers, msg.get_body(("plain",)).get_content(),  # type: ignore[union-attr]
            msg.get_body(("html",)).get_content())  # type: ignore[union-attr]


@pytest.mark.parametrize(("rendered", "extra"), CASES)
def test_direct_letter_reads_like_the_email_package_one(rendered: Rendered,
                                                        extra: dict[str, Any]) -> None:
    kw = {**BASE, **extra}
    fast = compose(rendered, **kw)
    slow = _compose_email(rendered, letter_subject(rendered, kw["case_number"]), **kw)
    assert _view(fast) == _view(slow)
    ours, theirs = parse_mail(fast), parse_mail(slow)
    assert (ours.subject, ours.from_, ours.to, ours.cc, ours.text, ours.html, ours.in_reply_to,
            ours.references) == (theirs.subject, theirs.from_, theirs.to, theirs.cc,
                                 theirs.text, theirs.html, theirs.in_reply_to,
                                 theirs.references)
    assert ours.defects == ()
    lines = fast.split(b"\r\n")
    assert max(map(len, lines)) <= 78
    assert b"\n" not in b"".join(lines) and b"\r" not in b"".join(lines)
    if b"=_maild_" in fast:  # written directly (an encoded-word look-alike is not)
        assert fast.isascii()


def test_unusual_addresses_and_control_characters_take_the_email_package_path() -> None:
    rendered = _templates()[0]
    raw = compose(rendered, **{**BASE, "to": ["wang@例子.example"]})
    assert b'boundary="===============' in raw  # the email package's boundary
    with pytest.raises(ValueError):  # as before: a header may not carry a line break
        compose(Rendered("a\nBcc: x@evil.example", "t", "h"), **BASE)


LONG_ID = "<" + "x" * 960 + "@huaxin.example.cn>"
FIT_ID = "<" + "y" * 870 + "@huaxin.example.cn>"


@pytest.mark.parametrize("to", [["wang@huaxin.example.cn"], ["wang@例子.example"]])
def test_ids_that_cannot_be_written_back_are_left_out(to: list[str]) -> None:
    """Both writers: a 985-byte id (or one with blanks or controls) would make a header line
    SMTP refuses; it is dropped, a long one that fits is written on a line of its own."""
    bad = [LONG_ID, "<a b@x>", "<c\x01@x>", "<中@x>", "<>", "no-brackets@x"]
    raw = compose(_templates()[0], **{**BASE, "to": to, "in_reply_to": LONG_ID,
                                      "references": ["<r@x.example>", *bad, FIT_ID]})
    assert max(map(len, raw.split(b"\r\n"))) <= 998
    m = parse_mail(raw)
    assert m.in_reply_to == () and m.references == ("<r@x.example>", FIT_ID)
    raw = compose(_templates()[0], **{**BASE, "to": to, "in_reply_to": FIT_ID})
    assert parse_mail(raw).in_reply_to == (FIT_ID,)
    assert b"=?" not in raw.split(b"In-Reply-To:")[1].split(b"\r\n")[0]
