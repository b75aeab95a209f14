"""Pieces the process handlers share: reply addresses, language, acknowledgements, parties."""

from __future__ import annotations

import re
from typing import Any

from maild import config as cfgmod
from maild.classify.rules import Classification, clean_subject
from maild.engine.effects import Context, SendLetter
from maild.engine.workflow import Work
from maild.mail.message import ParsedMail

_CJK = re.compile(r"[\u3400-\u9fff\uf900-\ufaff]")
_EMAIL = re.compile(r"[A-Za-z0-9._%+\-]+@[A-Za-z0-9.\-]+\.[A-Za-z]{2,}")
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
        "sender_name": mail.from_.name or mail.from_.addr,
        "subject": clean_subject(mail.subject) or mail.subject,
        "process_label": PROCESS_LABELS[language][process],
        "urgent": cls.urgent,
        "received_at": ctx.now.astimezone(ctx.calendar.tz).strftime("%Y-%m-%d %H:%M"),
        **(extra or {}),
    }
    return SendLetter("ack", (reply_address(mail),), context, language)


def addresses_in(text: str) -> list[str]:
    return list(dict.fromkeys(a.lower() for a in _EMAIL.findall(text)))


def party_named(parties: tuple[cfgmod.Party, ...], text: str) -> cfgmod.Party | None:
    return next((p for p in parties if p.name and p.name in text), None)


def outsiders(work: Work, addrs: list[str]) -> list[str]:
    """Addresses that are neither ours nor staff."""
    own = work.ctx.org_address.lower()
    return [a for a in addrs if a != own and work.ctx.directory.lookup(a).role != "staff"]


def contact_for(work: Work, party: cfgmod.Party | None) -> str:
    """The staff member in charge: the party's configured contact, else the intake head."""
    if party is not None and party.contact:
        return party.contact.lower()
    dept = work.ctx.directory.department_by_name(work.proc.extra.get("intake_department"))
    return dept.head.lower() if dept else ""


def output(work: Work, name: str, text: str = "") -> None:
    """Record a document the step produced, on the timeline and in the case data."""
    work.data.setdefault("outputs", []).append({
        "name": name, "step": work.step, "by": work.actor,
        "at": work.ctx.now.isoformat(), "text": text[:4000]})
    work.note("output", f"{name}" + (f": {text[:200]}" if text else ""))
    work.attachment_output = name


def assign_contact(work: Work, who: str) -> str | None:
    """``#assign`` on an external case: a new contact, told by letter."""
    from maild.engine.operations import resolve_person

    addr = resolve_person(work, who)
    if addr is None or not work.roles.in_directory(addr):
        return work.t(f"「{who}」不是通讯录中的员工或部门", f"{who!r} is not staff or a department")
    if addr == work.data.get("contact"):
        return work.t(f"{addr} 已经是对接人", f"{addr} is already the contact")
    work.data["contact"] = addr
    work.owner = work.roles.addresses(work.step_def.owner)
    if work.due is not None:
        work.set_due(work.due)  # the deadline now answers to the new owner
    work.note("assigned", addr)
    work.event(f"contact {addr}")
    work.send(work.proc.letters["assigned"], (addr,), added=[addr])
    return None


def facts(work: Work) -> dict[str, Any]:
    return {"opened_by": "staff" if work.is_staff else "party"}
