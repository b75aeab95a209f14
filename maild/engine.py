"""The pure decision: given a parsed mail, its classification and its case, what to do."""

from __future__ import annotations

from maild.classify import Classification
from maild.effects import CaseView, Context, Decision, Note
from maild.handlers import handler
from maild.message import ParsedMail


def decide(mail: ParsedMail, cls: Classification, case: CaseView | None,
           ctx: Context) -> Decision:
    if case is not None:
        if cls.robot:
            note = Note("robot", f"{cls.robot}: {mail.subject}", mail.from_.addr or "(robot)")
            return Decision((note,), f"{cls.robot}: recorded on {case.number}, not answered")
        return handler(case.process).reply(case, mail, cls, ctx)
    if cls.robot:
        return Decision((), f"{cls.robot}: recorded, not answered")
    if cls.process is None or cls.process == "triage":
        return Decision((), "no process applies: left for triage")
    return handler(cls.process).open(mail, cls, ctx)
