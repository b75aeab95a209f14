"""The decision path without a database, for engine tests: decide mails, keep cases in memory.

``Sim`` decides through the same ``Site`` as the intake and applies each Decision with the
production ``maild.engine.apply.apply`` (numbering, data, owner, due time, parties, timers,
pausing); only the persistence is a dict. Every letter is rendered strictly, so a template
that does not fit its context fails the test at once.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from support import NOW, mail, with_security

from maild.adapters.letters import Rendered
from maild.classify.rules import Known, subject_tags
from maild.config import parse_config
from maild.engine.apply import (
    CaseState,
    TimerState,
    apply,
    case_number,
    case_year,
    opening,
    sequence_key,
)
from maild.engine.effects import CaseView, Context, Decision, Note, SendLetter
from maild.mail.parse import parse_mail
from maild.site import Site

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
class SimCase:
    state: CaseState
    timeline: list[Note] = field(default_factory=list)

    @property
    def view(self) -> CaseView:
        return self.state.view

    @property
    def closed_at(self) -> datetime | None:
        return self.state.closed_at

    @property
    def timers(self) -> tuple[TimerState, ...]:
        return self.state.timers

    def pending_timers(self, kind: str | None = None) -> list[TimerState]:
        return [t for t in self.timers if t.state == "pending" and kind in (None, t.kind)]

    def kinds(self) -> list[str]:
        return [n.kind for n in self.timeline]


class Sim:
    def __init__(self, extra_toml: str = "", now: datetime = NOW) -> None:
        self.cfg = parse_config(with_security(PROCESS_DIRECTORY + extra_toml), "sim.toml", ".")
        # a site secret of its own: the sim mints no Message-IDs, so no reply carries a token
        self.site = replace(Site.build(self.cfg), secret=b"sim-secret-" + b"0" * 21)
        self.directory = self.site.directory
        self.calendar = self.site.calendar
        self.letters = self.site.letters
        self.now = now
        self.cases: dict[str, SimCase] = {}
        self.sent: list[Sent] = []
        self.counters: dict[str, int] = {}
        self.msgids: dict[str, str] = {}  # message-id -> case number
        self.timer_ids = 0

    def ctx(self) -> Context:
        return self.site.context(self.now)

    def later(self, **delta: float) -> None:
        self.now = self.now + timedelta(**delta)

    def send(self, sender: str, subject: str, body: str = "", **kw: Any) -> Decision:
        raw = mail(sender, subject, body, **kw)
        m = parse_mail(raw)
        known = Known({k: v for k, v in self.msgids.items()},
                      frozenset(n for n in subject_tags(m.subject) if n in self.cases))
        cls = self.site.classify(m, known)
        view = self.cases[cls.case_number].view if cls.case_number else None
        d = self.site.decide(m, cls, view, self.now)
        self.apply(d, cls.case_number, m.message_id)
        self.last = d
        return d

    def reply(self, case: str, sender: str, body: str, subject: str = "", **kw: Any) -> Decision:
        subj = subject or f"Re: [{case}] {self.cases[case].view.subject}"
        return self.send(sender, subj, body, **kw)

    def apply(self, d: Decision, number: str | None, message_id: str) -> None:
        """``Store.apply`` without the database: the same pure apply, kept in memory."""
        case = self.cases.get(number) if number else None
        opened = opening(d)
        new_number = None
        if opened is not None:
            year = case_year(self.now, self.calendar.tz)
            key = sequence_key(opened, year)
            self.counters[key] = self.counters.get(key, 0) + 1
            fmt = getattr(self.cfg.numbering, opened.process)
            new_number = case_number(fmt, opened, year, self.counters[key])
        applied = apply(case.state if case else None, d, self.now, self.calendar,
                        number=new_number)
        if applied.case is None:
            for out in applied.outputs:
                if isinstance(out, SendLetter):
                    self._letter(out, None)
            return
        if applied.opened:
            case = self.cases[applied.case.view.number] = SimCase(applied.case)
        assert case is not None
        case.state = replace(applied.case, timers=tuple(self._ids(applied.case.timers)))
        for out in applied.outputs:
            if isinstance(out, Note):
                case.timeline.append(out)
            elif isinstance(out, SendLetter):
                self._letter(out, case)
        self.msgids[message_id] = case.view.number

    def _ids(self, timers: tuple[TimerState, ...]) -> list[TimerState]:
        """New timers get an id, as the store's insert gives them."""
        out = []
        for t in timers:
            if t.id is None:
                self.timer_ids += 1
                t = replace(t, id=self.timer_ids)
            out.append(t)
        return out

    def _letter(self, e: SendLetter, case: SimCase | None) -> None:
        number = case.view.number if case else ""
        rendered = self.letters.render(e.letter, e.language, dict(e.context))
        self.sent.append(Sent(e.letter, e.to, e.cc, e.language, dict(e.context), rendered,
                              number))
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

