"""Pieces every process handler uses: reply addresses, language choice, ack letters."""

from __future__ import annotations

import re

from maild.classify import Classification, clean_subject
from maild.effects import CaseView, Context, Decision, Note, OpenCase, SendLetter, UpdateCase
from maild.message import ParsedMail

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


def excerpt(text: str, limit: int = 500) -> str:
    """The start of a reply above the quoted part, for the timeline."""
    lines = []
    for line in text.splitlines():
        s = line.strip()
        if s.startswith(">") or re.match(r"^(-{2,}|_{5,}|在.*写道[:：]?$|On .* wrote:$|"
                                         r"-+\s*(原始邮件|Original Message)\s*-+)", s):
            break
        lines.append(line.rstrip())
    out = "\n".join(lines).strip()
    return out if len(out) <= limit else out[: limit - 1] + "…"


def acknowledge(mail: ParsedMail, cls: Classification, ctx: Context, process: str,
                language: str, extra: dict[str, object] | None = None) -> SendLetter:
    """The acknowledgement letter for a new case; the store adds the case ``number``."""
    context = {
        "org_name": ctx.org_name,
        "sender_name": mail.from_.name or mail.from_.addr,
        "subject": clean_subject(mail.subject) or mail.subject,
        "process_label": PROCESS_LABELS[language][process],
        "urgent": cls.urgent,
        "received_at": ctx.now.strftime("%Y-%m-%d %H:%M"),
        **(extra or {}),
    }
    return SendLetter("ack", (reply_address(mail),), context, language)


def record_reply(case: CaseView, mail: ParsedMail,
                 cls: Classification) -> tuple[Note | UpdateCase, ...]:
    """A reply on an existing case: onto the timeline; a new external party joins the case."""
    kind = "staff_reply" if cls.sender.role == "staff" else "reply"
    effects: list[Note | UpdateCase] = [Note(kind, excerpt(mail.text) or mail.subject,
                                             mail.from_.addr)]
    if mail.from_.addr and mail.from_.addr not in case.parties and cls.sender.role != "staff":
        effects.append(UpdateCase(add_parties=(mail.from_.addr,)))
    return tuple(effects)


def open_and_acknowledge(process: str, step: str, mail: ParsedMail, cls: Classification,
                         ctx: Context, number_key: str = "") -> Decision:
    """Open a case at its first step, note the first mail and acknowledge it to the sender."""
    lang = language_for(mail, cls, ctx)
    return Decision((
        OpenCase(process, step, clean_subject(mail.subject) or mail.subject,
                 cls.department, number_key, cls.urgent, lang, (reply_address(mail),)),
        Note("opened", excerpt(mail.text) or mail.subject, mail.from_.addr),
        acknowledge(mail, cls, ctx, process, lang),
    ), f"new {process} case, acknowledged")


def reply_recorded(case: CaseView, mail: ParsedMail, cls: Classification,
                   ctx: Context) -> Decision:
    return Decision(record_reply(case, mail, cls), f"reply recorded on {case.number}")
