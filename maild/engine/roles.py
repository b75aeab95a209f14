"""Who holds a process role on a case, and whom a role stands for when a letter goes out.

Roles are the vocabulary of ``maild.engine.definitions.ROLES`` (plus ``dept:NAME``),
resolved against the directory and the case's own facts (initiator, receiving department,
participants, contact, external parties, action items). Pure lookups, no I/O.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from maild import config as cfgmod
from maild.classify.directory import Directory


@dataclass(frozen=True)
class CaseFacts:
    """What roles depend on: the receiving department, the step owner and the case data."""

    department: str | None
    owner: Sequence[str]
    data: Mapping[str, Any]


def _dedupe(addrs: Iterable[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(a.lower() for a in addrs if a))


class Roles:
    def __init__(self, directory: Directory, facts: CaseFacts) -> None:
        self.directory = directory
        self.facts = facts
        self.data = facts.data

    # -- the directory ---------------------------------------------------------------------

    def departments_of(self, addr: str) -> list[cfgmod.Department]:
        a = addr.lower()
        return [d for d in self.directory.config.departments
                if a == d.head.lower() or a in (m.lower() for m in d.members)]

    def department(self, name: str | None) -> cfgmod.Department | None:
        return self.directory.department_by_name(name) if name else None

    def head_of(self, name: str | None) -> tuple[str, ...]:
        d = self.department(name)
        return (d.head.lower(),) if d else ()

    def is_manager(self, addr: str) -> bool:
        return any(m.address.lower() == addr.lower() for m in self.directory.config.managers)

    def in_directory(self, addr: str) -> bool:
        """Staff listed in a department, or a manager: the people who may give commands."""
        return bool(self.departments_of(addr)) or self.is_manager(addr)

    def managers(self) -> tuple[str, ...]:
        dept = self.facts.department
        return _dedupe(m.address for m in self.directory.config.managers
                       if not m.departments or dept in m.departments)

    # -- holding a role --------------------------------------------------------------------

    def holds(self, addr: str, role: str) -> bool:
        a = addr.lower()
        if not a:
            return False
        if role == "staff":
            return self.in_directory(a)
        if role == "manager":
            return self.is_manager(a)
        if role == "head":
            return any(d.head.lower() == a for d in self.directory.config.departments)
        if role in ("receiver", "legal") or role.startswith("dept:"):
            name = {"receiver": self.facts.department,
                    "legal": self.directory.config.legal_department}.get(role, role[5:])
            return any(d.name == name for d in self.departments_of(a))
        if role == "participant":
            return self.participant_key(a) is not None
        if role == "action_owner":
            return any(x["owner"] == a and not x.get("done")
                       for x in self.data.get("actions", ()))
        return a in self.addresses(role)

    def participant_key(self, addr: str, skip: Iterable[str] = ()) -> str | None:
        """The participant entry (department name or address) ``addr`` speaks for."""
        a = addr.lower()
        mine = {d.name for d in self.departments_of(a)} | {a}
        skipped = set(skip)
        keys = [p for p in self.data.get("participants", ()) if p in mine]
        return next((k for k in keys if k not in skipped), keys[0] if keys else None)

    # -- whom a role stands for --------------------------------------------------------------

    def addresses(self, role: str) -> tuple[str, ...]:
        if role.startswith("dept:"):
            return self.head_of(role[5:])
        find = {
            "initiator": lambda: _dedupe([self.data.get("initiator", "")]),
            "initiator_head": lambda: self.head_of(self.data.get("initiator_department")),
            "receiver_head": lambda: self.head_of(self.facts.department),
            "receiver": self._receivers,
            "participant": self._participants,
            "action_owner": lambda: _dedupe(x["owner"] for x in self.data.get("actions", ())
                                            if not x.get("done")),
            "contact": lambda: _dedupe([self.data.get("contact", "")]),
            "owner": lambda: _dedupe(self.facts.owner),
            "legal": lambda: self.head_of(self.directory.config.legal_department),
            "external": lambda: _dedupe(self.data.get("external", ())),
            "manager": self.managers,
            "head": lambda: _dedupe(x.head for x in self.directory.config.departments),
        }.get(role)
        return find() if find else ()  # "staff": everyone, never a letter's recipients

    def _receivers(self) -> tuple[str, ...]:
        dept = self.department(self.facts.department)
        return _dedupe([dept.head, *dept.members]) if dept else ()

    def _participants(self) -> tuple[str, ...]:
        out: list[str] = []
        for p in self.data.get("participants", ()):
            out += [p] if "@" in p else list(self.head_of(p))
        return _dedupe(out)

    def owner_department(self, owners: Sequence[str]) -> str | None:
        """The department answerable for an overdue step: the first owner's."""
        for a in owners:
            depts = self.departments_of(a)
            if self.facts.department and any(x.name == self.facts.department for x in depts):
                return self.facts.department
            if depts:
                return depts[0].name
        return None
