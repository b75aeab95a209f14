"""A pure simulation of the store for engine tests: decide mails, apply decisions in memory.

``Sim`` keeps cases as ``CaseView`` values and applies each Decision the way ``Store.apply``
does (numbering, data merge, owner, due time, parties, timers), rendering every letter
strictly so a template that does not fit its context fails the test at once.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from support import NOW, mail

from maild.calendar import BusinessCalendar
from maild.classify import Known, classify, subject_tags
from maild.config import parse_config
from maild.directory import Directory
from maild.effects import (
    CancelTimers,
    CaseView,
    Context,
    Decision,
    Note,
    OpenCase,
    SendLetter,
    SetTimer,
    UpdateCase,
)
from maild.engine import decide
from maild.letters import Letters, Rendered
from maild.parse import parse_mail

PROCESS_DIRECTORY = """
[organisation]
name = "示例科技有限公司"
address = "service@example.test"

[routing]
staff_domains = ["corp.example.test"]

[[directory.departments]]
name = "技术部"
short = "技"
head = "zhang@corp.example.test"
members = ["li@corp.example.test"]

[[directory.departments]]
name = "市场部"
short = "市"
head = "wang@corp.example.test"
members = ["ma@corp.example.test"]

[[directory.departments]]
name = "财务部"
short = "财"
head = "qian@corp.example.test"

[[directory.departments]]
name = "法务部"
short = "法"
head = "zhao@corp.example.test"
members = ["sun@corp.example.test"]

[[directory.departments]]
name = "采购部"
short = "采"
head = "zhou@corp.example.test"
members = ["wu@corp.example.test"]

[[directory.departments]]
name = "质量部"
short = "质"
head = "zheng@corp.example.test"

[[directory.managers]]
name = "陈总"
address = "chen@corp.example.test"

[[directory.customers]]
name = "华信集团"
domains = ["huaxin.example.cn"]
contact = "ma@corp.example.test"

[[directory.customers]]
name = "Globex"
domains = ["globex.example.org"]
language = "en"

[[directory.suppliers]]
name = "恒达材料"
addresses = ["sales@hengda.example.cn"]
"""

NUMBERING = {"internal": "{year}-{dept}-{seq:03d}", "customer": "{year}-客-{seq:03d}",
             "supplier": "{year}-供-{seq:03d}"}


@dataclass
class Sent:
    letter: str
    to: tuple[str, ...]
    cc: tuple[str, ...]
    language: str
    context: dict[str, Any]
    rendered: Rendered
    case: str


@dataclass
class Timer:
    kind: str
    key: str
    due_at: datetime
    data: dict[str, Any]
    state: str = "pending"


@dataclass
class SimCase:
    view: CaseView
    timeline: list[Note] = field(default_factory=list)
    timers: list[Timer] = field(default_factory=list)
    closed_at: datetime | None = None

    def pending_timers(self, kind: str | None = None) -> list[Timer]:
        return [t for t in self.timers if t.state == "pending" and kind in (None, t.kind)]

    def kinds(self) -> list[str]:
        return [n.kind for n in self.timeline]


class Sim:
    def __init__(self, extra_toml: str = "", now: datetime = NOW) -> None:
        self.cfg = parse_config(PROCESS_DIRECTORY + extra_toml, "sim.toml", ".")
        self.directory = Directory(self.cfg.directory, self.cfg.routing.staff_domains,
                                   self.cfg.organisation.address)
        self.calendar = BusinessCalendar(self.cfg.calendar.settings())
        self.letters = Letters()
        self.now = now
        self.cases: dict[str, SimCase] = {}
        self.sent: list[Sent] = []
        self.counters: dict[str, int] = {}
        self.msgids: dict[str, str] = {}  # message-id -> case number

    def ctx(self) -> Context:
        org = self.cfg.organisation
        return Context(self.now, org.name, org.address, org.language, self.directory,
                       self.calendar)

    def later(self, **delta: float) -> None:
        self.now = self.now + timedelta(**delta)

    def send(self, sender: str, subject: str, body: str = "", **kw: Any) -> Decision:
        raw = mail(sender, subject, body, **kw)
        m = parse_mail(raw)
        known = Known({k: v for k, v in self.msgids.items()},
                      frozenset(n for n in subject_tags(m.subject) if n in self.cases))
        cls = classify(m, self.directory, known, msgid_domain="example.test")
        view = self.cases[cls.case_number].view if cls.case_number else None
        d = decide(m, cls, view, self.ctx())
        self.apply(d, cls.case_number, m.message_id)
        self.last = d
        return d

    def reply(self, case: str, sender: str, body: str, subject: str = "", **kw: Any) -> Decision:
        subj = subject or f"Re: [{case}] {self.cases[case].view.subject}"
        return self.send(sender, subj, body, **kw)

    def apply(self, d: Decision, number: str | None, message_id: str) -> None:
        case = self.cases.get(number) if number else None
        for e in d.effects:
            if isinstance(e, OpenCase):
                case = self._open(e)
            elif isinstance(e, UpdateCase) and case is not None:
                case.view = _update(case, e, self.now)
            elif isinstance(e, Note) and case is not None:
                case.timeline.append(e)
            elif isinstance(e, SendLetter):
                self._letter(e, case)
            elif isinstance(e, SetTimer | CancelTimers) and case is not None:
                _timer(case, e)
        if case is not None:
            self.msgids[message_id] = case.view.number
            if case.view.status in ("closed", "archived"):
                for t in case.pending_timers():
                    t.state = "cancelled"

    def _open(self, e: OpenCase) -> SimCase:
        year = self.now.astimezone(self.calendar.tz).year
        key = f"{e.process}:{e.number_key}:{year}"
        self.counters[key] = self.counters.get(key, 0) + 1
        number = NUMBERING[e.process].format(year=year, seq=self.counters[key], dept=e.number_key)
        view = CaseView(number, e.process, e.step, "open", e.subject, e.department, e.urgent,
                        e.language, tuple(e.parties), {})
        self.cases[number] = SimCase(view)
        return self.cases[number]

    def _letter(self, e: SendLetter, case: SimCase | None) -> None:
        number = case.view.number if case else ""
        context = {**e.context, "number": number}
        rendered = self.letters.render(e.letter, e.language, context)
        self.sent.append(Sent(e.letter, e.to, e.cc, e.language, dict(context), rendered, number))
        if case is not None:
            case.timeline.append(Note("letter", f"{e.letter} → {', '.join((*e.to, *e.cc))}",
                                      "maild"))

    # -- reading -----------------------------------------------------------------------------

    def case(self, number: str) -> CaseView:
        return self.cases[number].view

    def only_case(self) -> str:
        [number] = self.cases
        return number

    def letters_since(self, n: int) -> list[Sent]:
        return self.sent[n:]

    def names(self, since: int = 0) -> list[str]:
        return [s.letter for s in self.sent[since:]]


def _timer(case: SimCase, e: SetTimer | CancelTimers) -> None:
    kinds = (e.kind,) if isinstance(e, SetTimer) else e.kinds
    key = e.key if isinstance(e, SetTimer) else e.key
    for t in case.pending_timers():
        if (not kinds or t.kind in kinds) and key in (None, t.key):
            t.state = "cancelled"
    if isinstance(e, SetTimer):
        case.timers.append(Timer(e.kind, e.key, e.due_at, dict(e.data)))


def _update(case: SimCase, u: UpdateCase, now: datetime) -> CaseView:
    v = case.view
    changes: dict[str, Any] = {}
    if u.step:
        changes["step"] = u.step
    if u.status:
        changes["status"] = u.status
        if u.status in ("closed", "archived") and case.closed_at is None:
            case.closed_at = now
        elif u.status in ("open", "waiting"):
            case.closed_at = None
    if u.add_parties:
        changes["parties"] = tuple(dict.fromkeys((*v.parties, *u.add_parties)))
    if u.data:
        changes["data"] = {**v.data, **u.data}
    if u.owner is not None:
        changes["owner"] = tuple(u.owner)
    if u.set_due:
        changes["due_at"] = u.due_at
    if u.urgent is not None:
        changes["urgent"] = u.urgent
    return replace(v, **changes)
