"""The process engine: a process definition applied to one case for one mail, purely.

``Work`` is the case as it changes while a mail is decided: the step, status, owner, due
time and data, plus the effects gathered on the way (timeline notes, timers, letters).
``Work.decision()`` turns it into a ``Decision``. What is generic lives here: entering and
leaving steps (owner, deadline, chase and progress timers, letters on entering), automatic
advancing, confirmations, closing and archiving. What is specific to a process comes in
through ``Hooks`` from ``maild/handlers/<process>.py``. Nothing here reads a clock
(``ctx.now``), a file or the network.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from maild.classify.rules import Classification, case_subject
from maild.engine.acknowledge import acknowledge, language_for
from maild.engine.carry import carried
from maild.engine.definitions import ARCHIVE, LetterRule, ProcessDef, Step, role_label
from maild.engine.effects import (
    CancelTimers,
    CaseView,
    Context,
    Decision,
    Effect,
    KeepAttachments,
    Note,
    OpenCase,
    SendLetter,
    SetTimer,
    UpdateCase,
)
from maild.engine.letter_context import case_context
from maild.engine.names import remember as remember_names
from maild.engine.roles import CaseFacts, Roles
from maild.mail.commands import COMMANDS, Command, parse_commands, strip_commands
from maild.mail.message import ParsedMail
from maild.mail.quoting import excerpt

log = logging.getLogger("maild.decision")

#: characters of a mail's own words a case keeps (solution, minutes, report, schedule …):
#: about 24 KB of Chinese, which a letter carries twice (text and HTML) in base64
MAX_TEXT = 8000

#: an operation behind a command: None when done, else why it was refused
Op = Callable[["Work", Command], "str | None"]


def _nothing(work: Work) -> None:
    return None


def _nothing_on_enter(work: Work, step: Step) -> None:
    return None


@dataclass(frozen=True)
class Hooks:
    """What a process handler adds to the generic engine."""

    #: fill a new case's facts (department, data, parties…); a Decision to open nothing
    open: Callable[[Work], Decision | None]
    #: an external party's mail on an open case (confirmations, answers, delays)
    external: Callable[[Work], None] = _nothing
    #: a staff mail without commands on an open case (form fields, progress reports)
    staff_text: Callable[[Work], None] = _nothing
    on_enter: Callable[[Work, Step], None] = _nothing_on_enter
    #: (step id or "*", command) -> operation, overriding the generic one
    ops: Mapping[tuple[str, str], Op] = field(default_factory=dict)
    #: step ids the handler's own code refers to (checked against the definitions)
    steps: tuple[str, ...] = ()
    #: events of the definition's [letters] table the handler sends letters for
    letters: tuple[str, ...] = ()


@dataclass
class Pending:
    """A letter to queue once the mail is fully decided (its context sees the final state)."""

    letter: str
    to: tuple[str, ...]
    cc: tuple[str, ...]
    language: str
    automatic: bool = False
    context: Mapping[str, Any] | None = None  # None: the case context
    extra: Mapping[str, Any] = field(default_factory=dict)
    step: str = ""  # the step whose letter it is (default: the current one)
    external: bool = False  # to the external party (no commands shown)


class Work:
    """One case being changed by one mail."""

    def __init__(self, proc: ProcessDef, hooks: Hooks, mail: ParsedMail,
                 cls: Classification, ctx: Context, case: CaseView | None) -> None:
        self.proc, self.hooks, self.mail, self.cls, self.ctx = proc, hooks, mail, cls, ctx
        self.actor = mail.from_.addr
        self.reply_to = (mail.reply_to[0].addr if mail.reply_to and mail.reply_to[0].addr
                         else mail.from_.addr)
        self.text = strip_commands(mail.text)  # the mail's own words, without commands
        if len(self.text) > MAX_TEXT:
            self.text = self.text[: MAX_TEXT - 1] + "…"
        self.effects: list[Effect] = []
        self.letters: list[Pending] = []
        self.rule_letters: list[tuple[tuple[LetterRule, ...], str]] = []
        self.refusals: list[dict[str, str]] = []
        self.receipts: list[dict[str, str]] = []  # commands that ran, for the receipt
        self.remarks: list[str] = []  # what an operation adds to its command's receipt line
        self.events: list[str] = []
        self.opened: OpenCase | None = None
        self.ack = True
        self.number_key = ""
        self.attachment_output = ""  # what the mail's attachments stand for (an output)
        self.due_changed = False
        if case is None:
            self.number, self.step, self.status = "", "", "open"
            self.subject = case_subject(mail.subject)
            self.department: str | None = cls.department
            self.urgent, self.language = cls.urgent, ctx.language
            self.data: dict[str, Any] = {}
            self.parties: list[str] = []
            self.owner: tuple[str, ...] = ()
            self.due: datetime | None = None
        else:
            self.number, self.step, self.status = case.number, case.step, case.status
            self.subject, self.department = case.subject, case.department
            self.urgent, self.language = case.urgent, case.language
            self.data = copy.deepcopy(dict(case.data))
            self.parties = list(case.parties)
            self.owner, self.due = tuple(case.owner), case.due_at
        self.parties_before = tuple(self.parties)
        self.step_before = self.step  # the step the mail arrived in
        remember_names(self.data, mail)  # display names letters may greet people by

    # -- facts -----------------------------------------------------------------------------

    @property
    def roles(self) -> Roles:
        return Roles(self.ctx.directory, CaseFacts(self.department, self.owner, self.data))

    @property
    def step_def(self) -> Step:
        return self.proc.step(self.step)

    @property
    def is_open(self) -> bool:
        return self.status in ("open", "waiting")

    @property
    def proven(self) -> bool:
        """The From address is proven (``Classification.proof``): commands may run."""
        return self.cls.proof is not None

    @property
    def is_staff(self) -> bool:
        return self.cls.sender.role == "staff" or self.roles.is_manager(self.actor)

    def t(self, zh: str, en: str) -> str:
        """A message for staff, in the organisation's language."""
        return en if self.ctx.language == "en" else zh

    # -- effects ---------------------------------------------------------------------------

    def note(self, kind: str, text: str, actor: str | None = None) -> None:
        self.effects.append(Note(kind, text, actor or self.actor or "maild"))

    def event(self, text: str) -> None:
        self.events.append(text)

    def timer(self, kind: str, due: datetime, key: str = "",
              data: Mapping[str, Any] | None = None) -> None:
        self.effects.append(SetTimer(kind, due, key, dict(data or {})))

    def cancel(self, *kinds: str, key: str | None = None) -> None:
        self.effects.append(CancelTimers(tuple(kinds), key))

    def send(self, letter: str, to: Iterable[str], *, cc: Iterable[str] = (),
             language: str | None = None, automatic: bool = False,
             context: Mapping[str, Any] | None = None, step: str = "", **extra: Any) -> None:
        own = self.ctx.org_address.lower()
        to_ = tuple(dict.fromkeys(a for a in to if a and a.lower() != own))
        cc_ = tuple(a for a in dict.fromkeys(cc) if a and a.lower() != own and a not in to_)
        external = set(self.data.get("external", ()))
        if to_:
            self.letters.append(Pending(letter, to_, cc_, language or self.ctx.language,
                                        automatic, context, extra, step or self.step,
                                        any(a in external for a in to_)))

    def commands_for(self, addr: str, language: str) -> list[dict[str, str]]:
        """The commands ``addr`` may give on the case now, for help, refusals and letters."""
        allowed = self.step_def.commands if self.is_open else self.proc.closed_commands
        out = []
        for name, roles in allowed.items():
            if any(self.roles.holds(addr, r) for r in roles):
                spec = COMMANDS[name]
                out.append({"usage": spec.usage,
                            "summary": spec.summary_en if language == "en" else spec.summary_zh})
        return out

    def refuse(self, command: Command, reason: str) -> None:
        self.refusals.append({"command": command.line, "reason": reason})
        self.note("refused", f"{command.line}: {reason}")
        log.info("%s command refused on %s: %s: %s", self.mail.message_id, self.number,
                 command.line, reason)

    def add_party(self, addr: str) -> None:
        if addr and addr not in self.parties:
            self.parties.append(addr)

    def set_due(self, due: datetime | None) -> None:
        """The current step's deadline: a ``deadline`` timer and ``Case.due_at``."""
        self.cancel("deadline", "warning")
        if due is not None:
            step = self.step_def
            data = {"step": step.id, "owner": list(self.owner),
                    "department": self.roles.owner_department(self.owner),
                    # the timeline's words when the timer pauses (maild.engine.apply)
                    "label": step.label(self.ctx.language), "language": self.ctx.language}
            self.timer("deadline", due, step.id, data)
            share, cal, now = self.ctx.early_warning, self.ctx.calendar, self.ctx.now
            span = cal.working_between(now, due) if 0 < share < 1 else timedelta(0)
            if span > timedelta(0):  # the owner hears before the deadline is missed
                self.timer("warning", cal.add_working(now, span * share), step.id,
                           {**data, "deadline": due.isoformat()})
        self.due, self.due_changed = due, True

    # -- steps -----------------------------------------------------------------------------

    def enter(self, step_id: str, *, letters: bool = True) -> None:
        old = self.step_def if self.step else None
        if old is not None:
            self._leave(old)
        new = self.proc.step(step_id)
        self.step = step_id
        self.owner = self.roles.addresses(new.owner)
        self.status = "waiting" if new.waits_on else "open"
        if old is not None:  # the first step goes without saying: "opened"
            self.note("step", f"{old.label(self.ctx.language)} → {new.label(self.ctx.language)}")
            self.event(f"step {new.id}")
        self._arm(new)
        if letters:
            self.rule_letters.append((new.on_enter, new.id))
        self.hooks.on_enter(self, new)

    def _arm(self, step: Step) -> None:
        """The step's timers, counted from now."""
        now, cal = self.ctx.now, self.ctx.calendar
        rule = step.deadline_for(self.urgent)
        if rule is not None:
            self.set_due(rule.after(cal, now))
        elif self.due is not None:
            self.set_due(None)
        if step.chase is not None and step.waits_on == "external":
            self.timer("chase", step.chase.after.after(cal, now), step.chase.what,
                       {"to": list(self.roles.addresses("external")), "what": step.chase.what})
        if step.progress_days:
            self.timer("progress", now + timedelta(days=step.progress_days), "",
                       {"cadence_days": step.progress_days, "to": list(self.owner)})

    def _leave(self, step: Step) -> None:
        if self.due is not None:
            self.set_due(None)
        if step.chase is not None:
            self.cancel("chase", key=step.chase.what)
        if step.progress_days:
            self.cancel("progress")

    def advance(self) -> None:
        nxt = self.step_def.next
        if nxt == ARCHIVE:
            self.finish("archived")
        else:
            self.enter(nxt)

    def finish(self, status: str) -> None:
        """Close (``closed``) or archive (``archived``) the case: every timer stops."""
        self.cancel()
        self.status = status
        self.due, self.due_changed = None, True
        self.note(status, self.t("案件已归档" if status == "archived" else "案件已关闭",
                                 "case archived" if status == "archived" else "case closed"))
        self.event(status)
        rules = self.proc.on_archive if status == "archived" else self.proc.on_close
        self.rule_letters.append((rules, self.step))

    def reopen(self) -> None:
        step = self.step_def
        self.status = "waiting" if step.waits_on else "open"
        self.owner = self.roles.addresses(step.owner)
        self.note("reopened", step.label(self.ctx.language))
        self.event("reopened")
        self._arm(step)

    def answered(self) -> None:
        """The party we waited for answered: the case is open again, the chase stops."""
        step = self.step_def
        self.data.setdefault("answered", {})[step.id] = True
        if self.status == "waiting":
            self.status = "open"
        if step.chase is not None:
            self.cancel("chase", key=step.chase.what)

    def auto_advance(self) -> None:
        for _ in range(len(self.proc.steps) + 1):
            step = self.step_def if self.is_open else None
            if step is None or not step.advance_when or not self.condition(step.advance_when):
                return
            self.advance()

    # -- confirmations and conditions -----------------------------------------------------

    def confirm(self, addr: str, key: str | None = None) -> str | None:
        """Record a confirmation in the current step; why not, when it cannot be."""
        step = self.step_def
        done = self.data.setdefault("confirmations", {}).setdefault(step.id, {})
        if step.confirm_by == "participant" and key is None:
            key = self.roles.participant_key(addr, skip=done)
            if key is None:
                return self.t("您不属于本案的参与部门", "you are not in a participating department")
        key = key or step.confirm_by
        if key in done:
            return self.t(f"{self.label(key)} 已经确认过了", f"{self.label(key)} already confirmed")
        done[key] = addr
        self.note("confirmed", f"{self.label(key)}: {addr}")
        self.event(f"confirmed by {addr}")
        return None

    def label(self, key: str) -> str:
        """A confirmation key as people read it: a department, an address or a role."""
        if key in self.data.get("participants", ()) or "@" in key:
            return key
        return role_label(key, self.ctx.language)

    def confirmed(self, step: Step | None = None) -> bool:
        step = step or self.step_def
        done = self.data.get("confirmations", {}).get(step.id, {})
        if step.confirm_by == "participant":
            parts = self.data.get("participants", [])
            return bool(parts) and all(p in done for p in parts)
        return bool(done)

    def pending(self) -> list[str]:
        """Who still has to confirm in the current step."""
        if not self.step or not self.is_open:
            return []
        step = self.step_def
        if not step.confirm_by or self.confirmed(step):
            return []
        if step.confirm_by == "participant":
            done = self.data.get("confirmations", {}).get(step.id, {})
            return [p for p in self.data.get("participants", []) if p not in done]
        return [role_label(step.confirm_by, self.ctx.language)]

    def condition(self, name: str) -> bool:
        d = self.data
        actions = d.get("actions", [])
        checks: dict[str, Callable[[], bool]] = {
            "urgent": lambda: self.urgent,
            "not_urgent": lambda: not self.urgent,
            "staff_opened": lambda: d.get("opened_by") == "staff",
            "party_opened": lambda: d.get("opened_by") == "party",
            "form_complete": lambda: bool(d.get("form")) and not d.get("missing"),
            "confirmed": lambda: self.confirmed(),
            "actions_recorded": lambda: bool(actions),
            "all_actions_done": lambda: all(a.get("done") for a in actions),
            "report_submitted": lambda: bool(d.get("report")),
            "answered": lambda: bool(d.get("answered", {}).get(self.step)),
            "invoice_received": lambda: bool(d.get("invoice")),
        }
        return checks[name]()

    def unmet(self, name: str) -> str:
        """Why a condition does not hold, for a refusal."""
        open_actions = [f"#{a['id']} {a['text']}" for a in self.data.get("actions", [])
                        if not a.get("done")]
        zh, en = {
            "confirmed": (f"尚待确认：{'、'.join(self.pending())}",
                          f"still to confirm: {', '.join(self.pending())}"),
            "all_actions_done": (f"还有未完成的待办：{'；'.join(open_actions)}",
                                 f"open action items: {'; '.join(open_actions)}"),
            "report_submitted": ("接收部门尚未提交结果报告", "no result report yet"),
            "answered": ("对方尚未答复", "the other party has not answered yet"),
            "invoice_received": ("尚未收到供应商的发票", "no invoice from the supplier yet"),
            "form_complete": (f"申请表缺少：{'、'.join(self.data.get('missing', []))}",
                              f"the form misses: {', '.join(self.data.get('missing', []))}"),
            "actions_recorded": ("还没有登记待办事项", "no action items yet"),
        }.get(name, (f"条件未满足：{name}", f"condition not met: {name}"))
        return self.t(zh, en)

    # -- the result ------------------------------------------------------------------------

    def decision(self, summary: str = "") -> Decision:
        for rules, step_id in self.rule_letters:
            self._rule_letters(rules, step_id)
        self.data["pending"] = self.pending()
        self.data["owner"] = list(self.owner)
        effects: list[Effect] = [self.opened] if self.opened else []
        effects += self.effects
        if self.mail.attachments and (self.opened or self.number):
            effects.append(KeepAttachments(self._attachment_label()))
        added = tuple(p for p in self.parties if p not in self.parties_before)
        if self.opened is not None:
            added = tuple(p for p in added if p not in self.opened.parties)
        effects.append(UpdateCase(step=self.step, status=self.status, add_parties=added,
                                  data=self.data, owner=self.owner, urgent=self.urgent,
                                  due_at=self.due, set_due=self.due_changed))
        for p in self.letters:
            context = p.context
            if context is None:
                context = case_context(self, self.proc.step(p.step or self.step), p.language,
                                       p.extra, p.to[0], p.external, to=p.to)
            effects.append(SendLetter(p.letter, p.to, context, p.language, p.cc, p.automatic,
                                      *carried(self, p)))
        text = summary or "; ".join(self.events) or "recorded"
        if self.refusals:
            text += f"; {len(self.refusals)} command(s) refused"
        return Decision(tuple(effects), text)

    def _attachment_label(self) -> str:
        if self.attachment_output:
            return self.attachment_output
        step = self.proc.step(self.step_before) if self.step_before else self.proc.first
        if self.is_staff and step.outputs:
            return step.outputs[0]
        return self.t("附件", "attachment")

    def letter_only(self, letter: str, summary: str, **extra: Any) -> Decision:
        """Open nothing: one automatic letter to the sender (e.g. what is missing)."""
        self.step = self.step or self.proc.first.id
        step = self.proc.step(self.step)
        lang = self.ctx.language
        context = case_context(self, step, lang, extra, self.reply_to)
        return Decision((SendLetter(letter, (self.reply_to,), context, lang),), summary)

    def _rule_letters(self, rules: Iterable[LetterRule], step_id: str) -> None:
        roles = self.roles
        for rule in rules:
            if rule.when and not self.condition(rule.when):
                continue
            to = [a for r in rule.to for a in roles.addresses(r)]
            if not to:
                to = [a for r in rule.fallback for a in roles.addresses(r)]
            cc = [a for r in rule.cc for a in roles.addresses(r)]
            if not to:
                log.info("%s %s: letter %s has nobody to go to (%s)", self.mail.message_id,
                         self.number or "new case", rule.letter, "/".join(rule.to))
                continue
            external = "external" in rule.to
            self.send(rule.letter, to, cc=cc, step=step_id,
                      language=self.language if external else self.ctx.language)


def open_case(hooks: Hooks, mail: ParsedMail, cls: Classification, ctx: Context) -> Decision:
    """A mail that starts a case: open it at the first step and acknowledge it."""
    proc = ctx.processes[cls.process or ""]
    work = Work(proc, hooks, mail, cls, ctx, None)
    early = hooks.open(work)
    if early is not None:
        return early
    work.opened = OpenCase(proc.name, proc.first.id, work.subject, work.department,
                           work.number_key, work.urgent, work.language, tuple(work.parties))
    work.parties_before = tuple(work.parties)
    work.note("opened", excerpt(mail.text) or mail.subject)
    if work.ack:
        ack = acknowledge(mail, replace(cls, urgent=work.urgent), ctx, proc.name,
                          language_for(mail, cls, ctx))
        work.letters.append(Pending(ack.letter, ack.to, (), ack.language, True, ack.context))
    work.enter(proc.first.id)
    work.auto_advance()
    if work.is_staff:  # commands need a case to act on: say so rather than drop them
        commands = parse_commands(mail.text)
        for command in commands:
            work.refuse(command, work.t("开案邮件中的命令不执行：请在回复系统邮件时再发",
                                        "commands in the mail that opens a case are not run: "
                                        "send them in a reply"))
        if work.refusals and work.proven:  # the list of commands: to a proven From only
            work.note("proof", work.t(f"发件人已验证：{cls.proof}", f"sender proven: {cls.proof}"))
            work.send(proc.letters["refused"], (work.actor,), automatic=True,
                      refusals=list(work.refusals),
                      commands=work.commands_for(work.actor, work.ctx.language))
        elif work.refusals:
            work.note("unproven", work.t(
                f"发件人未经验证（{'; '.join(cls.unproven) or '-'}）",
                f"sender not proven ({'; '.join(cls.unproven) or '-'})"))
    return work.decision(f"new {proc.name} case at {work.step}"
                         + (f" ({'; '.join(work.events[1:])})" if work.events[1:] else ""))
