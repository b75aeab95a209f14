"""Process handlers: what is specific to each process, behind one small interface.

``open(mail, cls, ctx)`` decides on a mail that starts a new case; ``reply(case, mail, cls,
ctx)`` on one that belongs to an existing case. Both are pure and return a Decision. Each
handler is the generic engine (``maild.engine.workflow``, ``maild.engine.operations``)
with the process's own hooks; ``load_definitions`` checks that the definitions and the
hooks fit together. ``decide`` dispatches a mail to its handler.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import lru_cache
from pathlib import Path

from maild.classify.formrequest import FORM
from maild.classify.rules import Classification
from maild.engine.bounce import bounce_decision
from maild.engine.definitions import ProcessDef, ProcessError, load_processes
from maild.engine.effects import CaseView, Context, Decision, Note, SendLetter
from maild.engine.operations import GENERIC
from maild.engine.workflow import Hooks
from maild.handlers import customer, internal, supplier
from maild.handlers.base import Handler
from maild.handlers.form import form_decision
from maild.mail.message import ParsedMail


def _registry(*modules: object) -> tuple[dict[str, Handler], dict[str, Hooks]]:
    out: dict[str, Handler] = {}
    hooks: dict[str, Hooks] = {}
    for m in modules:
        h: Handler = m.HANDLER  # type: ignore[attr-defined]
        if h.name in out:
            raise RuntimeError(f"process {h.name!r} registered twice")
        out[h.name] = h
        hooks[h.name] = m.HOOKS  # type: ignore[attr-defined]
    return out, hooks


HANDLERS, HOOKS = _registry(customer, supplier, internal)
_CHASES = {"supplier": supplier.CHASES}  # chases a handler sets itself, by process


def handler(process: str) -> Handler:
    try:
        return HANDLERS[process]
    except KeyError:
        raise KeyError(f"no handler for process {process!r}") from None


def check_hooks(processes: Mapping[str, ProcessDef]) -> list[str]:
    """Steps the handlers name that a definition lacks; commands nothing carries out."""
    out = []
    for name, proc in processes.items():
        hooks = HOOKS[name]
        named = {s for s, _ in hooks.ops if s != "*"} | set(hooks.steps)
        for step_id in sorted(named - set(proc.steps)):
            out.append(f"{proc.source}: handlers/{name}.py relies on a step {step_id!r}, "
                       "which is not defined (step ids are fixed; rename the title instead)")
        for what in _CHASES.get(name, ()):
            if what not in proc.chases:
                out.append(f"{proc.source}: chases.{what}: missing (handlers/{name}.py chases "
                           "for it; the label is what the party reads)")
        for event in hooks.letters:
            if event not in proc.letters:
                out.append(f"{proc.source}: letters.{event}: missing (handlers/{name}.py "
                           "sends this letter)")
        for step in proc.steps.values():
            for command in step.commands:
                if ((step.id, command) not in hooks.ops and ("*", command) not in hooks.ops
                        and command not in GENERIC):
                    out.append(f"{proc.source}: step {step.id!r}: #{command} means nothing "
                               f"in the {name} process")
    return out


def load_definitions(directory: Path | None) -> dict[str, ProcessDef]:
    """The process definitions, checked against the handlers; ProcessError when unfit."""
    if directory is None:
        return dict(_shipped())
    return _load(directory)


def _load(directory: Path | None) -> dict[str, ProcessDef]:
    processes = load_processes(directory)
    problems = check_hooks(processes)
    if problems:
        raise ProcessError("\n".join(problems))
    return processes


@lru_cache(maxsize=1)
def _shipped() -> Mapping[str, ProcessDef]:
    return _load(None)


def decide(mail: ParsedMail, cls: Classification, case: CaseView | None,
           ctx: Context) -> Decision:
    """The pure decision on one mail: its case's handler, or what to do without one.

    A bounce of one of a case's letters marks its failed recipients and tells the owner
    (``maild.engine.bounce``). Any other robot's mail runs nothing (no command, no intent):
    it is noted. So is a mail without a
    usable From address, which never opens a case either. Nothing automatic goes back to a
    sender who asked for none (``X-Auto-Response-Suppress``) or whose mail is spam.
    """
    if case is not None:
        if mail.dsn is not None and cls.robot:
            bounced = bounce_decision(case, mail.dsn, mail.from_.addr, ctx)
            if bounced is not None:
                return bounced
        if cls.robot:
            note = Note("robot", _t(ctx.language,
                                    f"自动发出的邮件（{cls.robot}），已记录，不作处理：{mail.subject}",
                                    f"{cls.robot}: {mail.subject}"),
                        mail.from_.addr or "(robot)")
            return Decision((note,), f"{cls.robot}: recorded on {case.number}, not answered")
        if not mail.from_.addr:
            note = Note("no_sender", _t(ctx.language,
                                        f"发件人地址无法识别，已记录，不作处理：{mail.subject}",
                                        f"no usable From address: {mail.subject}"),
                        "(unknown)")
            return Decision((note,), f"no sender: recorded on {case.number}, not acted on")
        return _quiet(handler(case.process).reply(case, mail, cls, ctx), mail, cls,
                      ctx.language)
    if cls.robot:
        return Decision((), f"{cls.robot}: recorded, not answered")
    if not mail.from_.addr:
        return Decision((), "no usable From address: left for triage")
    if cls.process is None or cls.process == "triage":
        return Decision((), "no process applies: left for triage")
    if cls.process == FORM:  # the blank request form: a letter, no case
        return _quiet(form_decision(mail, ctx), mail, cls, ctx.language)
    return _quiet(handler(cls.process).open(mail, cls, ctx), mail, cls, ctx.language)


def _t(language: str, zh: str, en: str) -> str:
    """A timeline note in the organisation's language."""
    return en if language == "en" else zh


def _quiet(decision: Decision, mail: ParsedMail, cls: Classification,
           language: str = "zh") -> Decision:
    """The decision without its automatic letters to the sender, when they are unwanted."""
    if not cls.quiet:
        return decision
    sender = {a for a in (mail.from_.addr, *(r.addr for r in mail.reply_to)) if a}
    dropped = [e for e in decision.effects if isinstance(e, SendLetter) and e.automatic
               and sender & set(e.to)]
    if not dropped:
        return decision
    kept = tuple(e for e in decision.effects if not any(e is d for d in dropped))
    letters = ", ".join(d.letter for d in dropped)
    to = ", ".join(sorted(sender))
    note = Note("suppressed", _t(language, f"对方不接收自动回复（{cls.quiet}），未向 {to} 发送"
                                           f" {len(dropped)} 封自动回复",
                                 f"{cls.quiet}: no {letters} to {to}"), "maild")
    return Decision((*kept, note), f"{decision.summary}; no automatic reply ({cls.quiet})")
