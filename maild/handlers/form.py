"""The blank 《跨部门沟通需求申请表》 on request: ``#form`` / ``#申请表`` or a subject asking for
the form (``maild.classify.formrequest``), from staff. One automatic letter back to the
sender, ``request_form``, with the form as text and (``[documents] attach`` "form") as a
Word document; no case is opened and no number drawn. The fields are the ones maild reads
from a request (``maild.mail.forms.REQUEST_FORM``), so a filled-in copy opens a complete case.
"""

from __future__ import annotations

from collections.abc import Iterable

from maild.classify.formrequest import form_request
from maild.engine.effects import Context, Decision, SendLetter
from maild.mail.forms import REQUEST_FORM
from maild.mail.message import ParsedMail

LETTER = "request_form"
#: how to fill in each field (zh, en), after the seed's 填写说明
HINTS: dict[str, tuple[str, str]] = {
    "发起部门/人": ("部门全称及负责人，如 市场部/王经理",
                "your department and its head, e.g. 市场部/王经理"),
    "接收部门/人": ("需对接的部门及负责人，如 技术部/张经理",
                "the department asked, and its head, e.g. 技术部/张经理"),
    "沟通目标": ("希望通过本次沟通达成什么", "what the request should achieve"),
    "核心内容": ("需求的背景与具体内容", "background and what is needed"),
    "需协助事项": ("需要接收部门做的事", "what the receiving department should do"),
    "期望完成时间": ("如 2026-12-10", "a date, e.g. 2026-12-10"),
    "紧急程度": ("一般 / 紧急", "一般 (normal) or 紧急 (urgent)"),
}


def form_fields() -> list[dict[str, str]]:
    """The form's fields as the letter and the document show them."""
    return [{"name": f.name, "hint": HINTS.get(f.name, ("", ""))[0],
             "hint_en": HINTS.get(f.name, ("", ""))[1]}
            for f in REQUEST_FORM.fields if f.required]


def form_decision(mail: ParsedMail, ctx: Context) -> Decision:
    """The blank form back to the sender; nothing else (no case, no timer)."""
    asked = form_request(mail)
    language = (asked[1] if asked and asked[1] else "") or ctx.language
    addr = mail.from_.addr
    context = {"org_name": ctx.org_name, "org_address": ctx.org_address,
               "sender_name": mail.from_.name or addr, "audience": "staff",
               "language": language, "fields": form_fields()}
    letter = SendLetter(LETTER, (addr,), context, language, automatic=True)
    why = asked[0] if asked else "form request"
    return Decision((letter,), f"form sent to {addr} ({why}); no case opened")


def form_letter_missing(known: Iterable[str]) -> list[str]:
    """The form letter's templates, when the configured letters lack them (``known``: e.g.
    ``ack.zh``): a letters folder copied before ``#form`` existed."""
    have = {n.rpartition(".")[0] for n in known}
    if LETTER in have:
        return []
    return [f"letter {LETTER!r} has no template ({LETTER}.zh.txt.j2 and .html.j2, and the "
            f".en ones): copy them from maild's templates/email/ (it answers #form)"]

