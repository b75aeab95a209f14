"""The acknowledgement of a new case, and the language and address a party is answered in."""

from __future__ import annotations

import re

from maild.classify.rules import Classification, case_subject
from maild.engine.effects import Context, SendLetter
from maild.engine.names import clean_display
from maild.mail.message import ParsedMail

_CJK = re.compile(r"[\u3400-\u9fff\uf900-\ufaff]")
PROCESS_LABELS = {
    "zh": {"customer": "客户需求", "supplier": "供应商协同", "internal": "跨部门协作"},
    "en": {"customer": "customer request", "supplier": "supplier matter",
           "internal": "cross-department request"},
}


def reply_address(mail: ParsedMail) -> str:
    if mail.reply_to and mail.reply_to[0].addr:
        return mail.reply_to[0].addr
    return mail.from_.addr


def language_for(mail: ParsedMail, cls: Classification, ctx: Context) -> str:
    """The party's configured language, else English for mail without any Chinese."""
    party = cls.sender.party
    if party is not None and party.language:
        return party.language
    if not _CJK.search(mail.subject) and not _CJK.search(mail.text[:4000]):
        return "en"
    return ctx.language


def acknowledge(mail: ParsedMail, cls: Classification, ctx: Context, process: str,
                language: str, extra: dict[str, object] | None = None) -> SendLetter:
    """The acknowledgement letter for a new case; the store adds the case ``number``."""
    context = {
        "org_name": ctx.org_name,
        "sender_name": (ctx.directory.name_of(mail.from_.addr)
                        or clean_display(mail.from_.name or "", mail.from_.addr)
                        or mail.from_.addr),
        "subject": case_subject(mail.subject),
        "process_label": PROCESS_LABELS[language][process],
        "urgent": cls.urgent,
        "received_at": ctx.now.astimezone(ctx.calendar.tz).strftime("%Y-%m-%d %H:%M"),
        **(extra or {}),
    }
    return SendLetter("ack", (reply_address(mail),), context, language)
