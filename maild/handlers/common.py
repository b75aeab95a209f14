"""Pieces the process handlers share: reply addresses, language, acknowledgements, parties."""

from __future__ import annotations

import re
from typing import Any

from maild import config as cfgmod
from maild.engine.acknowledge import PROCESS_LABELS, acknowledge, language_for, reply_address
from maild.engine.operations import resolve_person
from maild.engine.workflow import Work

_EMAIL = re.compile(r"[A-Za-z0-9._%+\-]+@[A-Za-z0-9.\-]+\.[A-Za-z]{2,}")


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


__all__ = ["PROCESS_LABELS", "acknowledge", "language_for", "reply_address"]
