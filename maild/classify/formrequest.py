"""A request for the blank 《跨部门沟通需求申请表》: ``#form`` / ``#申请表``, or a subject that
asks for the form and nothing else.

Recognised conservatively, for a new mail from staff only (the ``form_request`` rule of the
route stage in :mod:`maild.classify.rules`):

- a command line ``#form`` or ``#申请表`` in the mail's own text (not a subject tag: people
  tag their *filled-in* request 【申请表】);
- a subject that is only a request for the form: 「申请表」, 「请发申请表模板」, 「麻烦发一份空白的
  《跨部门沟通需求申请表》」, "request form", "Please send the request form template". A subject
  that says more (「关于申请表的问题」, 「申请表填写问题」, "question about the request form") is a
  request of its own and opens a case as before.

A mail whose text already carries a filled-in field of the form (``沟通目标：…``) is a request,
never a request for the blank form.
"""

from __future__ import annotations

import re

from maild.mail.commands import parse_commands
from maild.mail.forms import REQUEST_FORM, parse_form
from maild.mail.message import ParsedMail

FORM = "form"  # Classification.process of a form request: answered without a case

_ZH = re.compile(
    r"^(?:请|麻烦|烦请|劳烦|求)?(?:您|你)?(?:帮忙|帮我)?"
    r"(?:发送|发|提供|给|索取|索要|要|需要)?(?:我|一下)?(?:一份|一个|一下|份|个|下)?"
    r"(?:空白的?)?《?(?:跨部门(?:沟通)?(?:需求)?)?申请表》?的?"
    r"(?:模板|模版|表格|空表|样表|格式)?(?:谢谢|多谢)?$")
_EN = re.compile(
    r"^(?:please\s+)?(?:(?:send|give|share|need|want)\s+(?:me\s+|us\s+)?)?(?:the\s+|a\s+)?"
    r"(?:blank\s+)?(?:internal\s+)?(?:request\s+form(?:\s+template)?|form\s+template)"
    r"(?:\s*please)?(?:\s*thanks?(?:\s+you)?)?$")
_NOISE = re.compile(r"[\s,，.。!！?？~～:：;；、\-—]+")
_TAGS = re.compile(r"\[[^\[\]]*\]|【[^【】]*】")  # [紧急], 【技术部】: not what is asked
_REPLY = re.compile(r"^\s*((re|fw|fwd|aw|sv|回复|答复|转发)\s*[:：]\s*)+", re.IGNORECASE)


def form_request(mail: ParsedMail) -> tuple[str, str] | None:
    """(what asked for the form, the language to answer in: "" = the organisation's), or
    None when the mail is no request for the blank form."""
    asked: tuple[str, str] | None = None
    command = next((c for c in parse_commands(mail.text) if c.name == FORM), None)
    if command is not None:
        asked = f"#{command.word}", "" if command.word.isascii() else "zh"
    else:
        subject = _TAGS.sub(" ", _REPLY.sub("", mail.subject))
        words = " ".join(_NOISE.sub(" ", subject).split()).casefold()
        if _ZH.fullmatch(words.replace(" ", "")):
            asked = f"subject {subject.strip()[:60]!r}", "zh"
        elif _EN.fullmatch(words):
            asked = f"subject {subject.strip()[:60]!r}", "en"
    if asked is None:
        return None
    filled = parse_form(mail.text, REQUEST_FORM).values
    if any(v.strip() for v in filled.values()):
        return None
    return asked
