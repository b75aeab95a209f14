"""Who is who: staff, departments, known customers and suppliers, looked up by address."""

from __future__ import annotations

from dataclasses import dataclass

from maild import config as cfgmod


@dataclass(frozen=True)
class Person:
    addr: str
    role: str  # staff / customer / supplier / unknown
    department: cfgmod.Department | None = None  # staff only
    party: cfgmod.Party | None = None  # customers and suppliers


class Directory:
    """An index over the configured directory; pure lookups, no I/O."""

    def __init__(self, directory: cfgmod.Directory, staff_domains: tuple[str, ...],
                 own_address: str) -> None:
        self.config = directory
        self.own_address = own_address.lower()
        self.staff_domains = {d.lower() for d in staff_domains}
        self._dept_by_addr: dict[str, cfgmod.Department] = {}
        self._dept_by_tag: dict[str, cfgmod.Department] = {}
        for d in directory.departments:
            for a in (d.head, *d.members):
                self._dept_by_addr.setdefault(a.lower(), d)
            for tag in (d.name, d.short, *d.aliases):
                self._dept_by_tag[tag.casefold()] = d
        self._party: dict[str, tuple[str, cfgmod.Party]] = {}
        for role, parties in (("customer", directory.customers),
                              ("supplier", directory.suppliers)):
            for p in parties:
                for a in p.addresses:
                    self._party.setdefault(a.lower(), (role, p))
                for dom in p.domains:
                    self._party.setdefault("@" + dom.lower(), (role, p))

    def lookup(self, addr: str) -> Person:
        addr = addr.lower()
        dept = self._dept_by_addr.get(addr)
        if dept is not None:
            return Person(addr, "staff", department=dept)
        hit = self._party.get(addr) or self._party.get("@" + addr.rpartition("@")[2])
        if hit is not None:
            return Person(addr, hit[0], party=hit[1])
        if addr.rpartition("@")[2] in self.staff_domains:
            return Person(addr, "staff")
        return Person(addr, "unknown")

    def name_of(self, addr: str) -> str:
        """How letters greet ``addr``: ``[directory.names]``, else a manager's name; "" if
        the directory does not know it."""
        addr = addr.strip().lower()
        named = self.config.names.get(addr)
        if named:
            return named
        return next((m.name for m in self.config.managers
                     if m.name and m.address.lower() == addr), "")

    def department(self, tag: str) -> cfgmod.Department | None:
        return self._dept_by_tag.get(tag.strip().casefold())

    def department_by_name(self, name: str | None) -> cfgmod.Department | None:
        if not name:
            return None
        return next((d for d in self.config.departments if d.name == name), None)
