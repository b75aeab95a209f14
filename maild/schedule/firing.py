"""Firing a due timer, decided purely: timer, case and ``now`` in; letters, timeline notes
and the timer's next state out, as data. Nothing here reads the clock or the database.

Kinds (the contract with the process definitions' ``SetTimer`` effects):

``deadline``  (key = step; data: step, owner [addresses], department)
    The escalation ladder. Level 0 -> 1: the owner is reminded (``deadline_reminder``);
    1 -> 2: the department head hears (``escalation``); 2 -> 3: the managers covering the
    department (``escalation``). Each rung fires once and is logged on the timeline (kind
    ``escalation``). The next rung is due a working-time interval after the previous one
    *fired* (``[escalation]`` in the config; shorter for urgent cases), so an owner always
    gets the full interval even when the daemon was down. Paused while the case waits on
    the other party. In a step that collects every participant's confirmation (the
    minutes), the owners reminded are those who have not confirmed yet.
``warning``  (key = step; data: step, owner, department, deadline)
    The early warning: the step's owner hears (``deadline_warning``) when the configured
    share of the step's working time has passed (``escalation.early_warning``). Once.
``chase``  (key = what; data: to [supplier addresses], what)
    The supplier is chased (``supplier_chase``); still no answer ``chase_escalate_after``
    later, the buyer's department head hears (``escalation``). Never paused: waiting on the
    supplier is exactly when it matters.
``action_reminder``  (key = action id; data: action, owner, due, support)
    The owner is reminded before the due date (``action_reminder``); when the item is still
    open the working day after it, the owner is told it is overdue; ``head_after`` later the
    owner's department head hears. Cancelled as soon as the item is done (``#done``).
``milestone``  (data: title, date, to [customer addresses]) -> ``milestone_notice``, with the
    milestone as an all-day calendar event (``invite.ics``, METHOD:PUBLISH).
``progress``  (data: cadence_days, to [owner]) -> ``progress_request``, then re-armed
    ``cadence_days`` calendar days after its previous schedule (moved to the next working
    moment when that falls on a day off), never in the past.

**Whose department.** Every ladder finds its rungs from the department answerable for the
case: the timer's ``department``, else (customer and supplier cases) the department of the
step's owner or of the case's contact — the account manager or the buyer —, else the case's
own department. **A rung that cannot be found** (no department, no head, no managers, no
address) is never silent: it is noted on the timeline, and the next rung's letter says what
was missing; when no later rung is left, the managers covering all departments are told
instead. Only when there are none either does the ladder end, with a timeline note.

Timeline notes are in the organisation's language (``FireContext.language``).

Closed or archived cases never fire: their timers are cancelled. A ``deadline`` whose step
the case has left is cancelled too (the process should have cancelled it).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime, time, timedelta
from typing import Any

from maild import config as cfgmod
from maild.calendar.business import BusinessCalendar
from maild.calendar.durations import WorkingDuration
from maild.classify.directory import Directory
from maild.engine.apply import moment_text, pause_remaining
from maild.engine.definitions import ProcessDef
from maild.engine.effects import (
    CLOSED,
    PAUSABLE,
    CaseView,
    LetterFile,
    Note,
    SendLetter,
    SetTimer,
)
from maild.engine.invites import ics_file, milestone_ics, milestone_uid
from maild.engine.names import greeting_name

LEVEL_NAMES = {"zh": {"owner": "负责人", "head": "部门负责人", "managers": "管理层",
                      "supplier": "供应商"},
               "en": {"owner": "owner", "head": "department head", "managers": "managers",
                      "supplier": "supplier"}}
_WEEKDAYS = {"zh": "一二三四五六日", "en": ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")}


@dataclass(frozen=True)
class EscalationPolicy:
    head_after: WorkingDuration = WorkingDuration(1, "d")
    head_after_urgent: WorkingDuration = WorkingDuration(2, "h")
    managers_after: WorkingDuration = WorkingDuration(1, "d")
    managers_after_urgent: WorkingDuration = WorkingDuration(2, "h")
    chase_escalate_after: WorkingDuration = WorkingDuration(2, "d")

    @classmethod
    def from_config(cls, e: cfgmod.Escalation) -> EscalationPolicy:
        p = WorkingDuration.parse
        return cls(p(e.head_after), p(e.head_after_urgent), p(e.managers_after),
                   p(e.managers_after_urgent), p(e.chase_escalate_after))

    def before(self, rung: str, urgent: bool) -> WorkingDuration:
        """The wait between the previous rung and ``rung``."""
        if rung == "head":
            return self.head_after_urgent if urgent else self.head_after
        return self.managers_after_urgent if urgent else self.managers_after


@dataclass(frozen=True)
class TimerView:
    id: int
    kind: str
    key: str
    due_at: datetime
    level: int
    data: Mapping[str, Any]


@dataclass(frozen=True)
class FireContext:
    now: datetime
    calendar: BusinessCalendar
    directory: Directory
    org_name: str
    language: str  # of letters to staff and timeline notes; external parties get the case's
    policy: EscalationPolicy = EscalationPolicy()
    step_labels: Mapping[tuple[str, str], str] = field(default_factory=dict)  # (process, step)
    processes: Mapping[str, ProcessDef] = field(default_factory=dict)  # for chase labels
    org_address: str = ""  # the organiser of milestone calendar events

    def t(self, zh: str, en: str) -> str:
        """A timeline note in the organisation's language."""
        return en if self.language == "en" else zh


# -- what becomes of the timer ------------------------------------------------------------

@dataclass(frozen=True)
class Fired:
    """Done: state ``fired`` at this level."""

    level: int
    data: Mapping[str, Any]


@dataclass(frozen=True)
class Escalate:
    """Stays pending, due again at ``due_at`` for the next rung."""

    level: int
    due_at: datetime
    data: Mapping[str, Any]


@dataclass(frozen=True)
class Rearm:
    """Fired, and a fresh timer of the same kind and key takes its place."""

    level: int
    data: Mapping[str, Any]
    timer: SetTimer


@dataclass(frozen=True)
class Cancel:
    reason: str


@dataclass(frozen=True)
class Pause:
    """The case waits on the other party; ``remaining`` working time is kept for later."""

    remaining: timedelta


Outcome = Fired | Escalate | Rearm | Cancel | Pause


@dataclass(frozen=True)
class Firing:
    outcome: Outcome
    letters: tuple[SendLetter, ...] = ()
    notes: tuple[Note, ...] = ()
    summary: str = ""


# -- helpers --------------------------------------------------------------------------------

def addresses(value: Any) -> tuple[str, ...]:
    """Mail addresses out of a string ("a@x, b@y") or a list; names without ``@`` dropped."""
    items: Sequence[Any]
    if isinstance(value, str):
        items = re.split(r"[,;，；\s]+", value)
    elif isinstance(value, list | tuple):
        items = value
    else:
        return ()
    out = [str(a).strip().lower() for a in items if "@" in str(a)]
    return tuple(dict.fromkeys(out))


def managers_for(directory: Directory, department: str | None) -> tuple[str, ...]:
    """Managers covering ``department`` (those with no departments cover all)."""
    return tuple(dict.fromkeys(
        m.address.lower() for m in directory.config.managers
        if not m.departments or (department and department in m.departments)))


def departments_of(directory: Directory, addr: str) -> list[str]:
    """The departments ``addr`` heads or belongs to, in the directory's order."""
    a = addr.lower()
    return [d.name for d in directory.config.departments
            if a == d.head.lower() or a in (m.lower() for m in d.members)]


def owner_department(directory: Directory, case: CaseView,
                     owners: Sequence[str] = ()) -> str:
    """The department answerable for ``case``: that of the step's owners or, for customer
    and supplier cases, of the contact (account manager, buyer) — the case's own department
    when the person is in several —, else the case's department; "" when none is known."""
    people = [*owners, str(case.data.get("contact") or "")]
    for a in people:
        depts = departments_of(directory, a) if a else []
        if case.department and case.department in depts:
            return case.department
        if depts:
            return depts[0]
    return case.department or ""


def people_of(directory: Directory, departments: Sequence[str]) -> tuple[str, ...]:
    """Heads and members of ``departments``: whose customer and supplier cases are theirs."""
    wanted = set(departments)
    return tuple(dict.fromkeys(
        a.lower() for d in directory.config.departments if d.name in wanted
        for a in (d.head, *d.members) if a))


def date_text(value: str | date, language: str) -> str:
    """``2026-12-10 周四`` / ``Thu 2026-12-10``; other text is returned as it is."""
    try:
        d = value if isinstance(value, date) else date.fromisoformat(str(value)[:10])
    except ValueError:
        return str(value)
    wd = _WEEKDAYS["zh" if language == "zh" else "en"][d.weekday()]
    return f"{d.isoformat()} 周{wd}" if language == "zh" else f"{wd} {d.isoformat()}"


def response_due(received: datetime, urgent: bool, calendar: BusinessCalendar, *,
                 days: int = 1, urgent_hours: float = 2) -> datetime:
    """The seed's response deadline: 1 working day, or 2 working hours when urgent."""
    if urgent:
        return calendar.add_working(received, timedelta(hours=urgent_hours))
    return calendar.add_working_days(received, days)


def notice_at(day: date, working_days: int, calendar: BusinessCalendar) -> datetime:
    """Start of the working day ``working_days`` before ``day``: when a reminder (2) or a
    milestone notice (3) goes out. ``day`` itself need not be a working day."""
    before = calendar.working_days_before(day, working_days)
    start = calendar.settings.periods[0][0]
    return datetime.combine(before, start, tzinfo=calendar.tz)


def chase_label(case: CaseView, what: str, language: str, ctx: FireContext) -> str:
    """What a chased supplier owes, as people read it (the process's ``[chases]``)."""
    proc = ctx.processes.get(case.process)
    return proc.chase_label(what, language) if proc is not None else what


# -- firing ---------------------------------------------------------------------------------

def fire(timer: TimerView, case: CaseView, ctx: FireContext) -> Firing:
    """What happens when ``timer`` of ``case`` is due at ``ctx.now``."""
    if case.status in CLOSED:
        return Firing(Cancel(f"case {case.status}"), summary=f"cancelled: case {case.status}")
    if case.status == "waiting" and timer.kind in PAUSABLE:
        left = pause_remaining(timer.due_at, ctx.now, ctx.calendar)
        return Firing(Pause(left), summary="paused: case waits on the other party")
    if timer.kind in ("deadline", "warning"):
        step = str(timer.data.get("step") or timer.key)
        if step and step != case.step:
            return Firing(Cancel(f"step {step} is over"), summary=f"cancelled: step {step} over")
        return _warning(timer, case, ctx) if timer.kind == "warning" else _ladder(
            timer, case, ctx)
    if timer.kind == "chase":
        return _ladder(timer, case, ctx)
    if timer.kind == "action_reminder":
        return _action(timer, case, ctx)
    if timer.kind == "milestone":
        return _milestone(timer, case, ctx)
    if timer.kind == "progress":
        return _progress(timer, case, ctx)
    note = Note("timer", ctx.t(f"未知的定时器类型「{timer.kind}」，已取消",
                               f"timer kind {timer.kind!r} has no handler; cancelled"), "maild")
    return Firing(Cancel(f"unknown kind {timer.kind!r}"), notes=(note,),
                  summary=f"unknown timer kind {timer.kind!r}")


@dataclass(frozen=True)
class _Rung:
    name: str  # owner / head / managers / supplier
    to: tuple[str, ...]
    letter: str
    language: str
    skipped: str = ""  # why ``to`` is empty
    missing: bool = True  # empty because something is not configured (reported), not by design
    reported: bool = False  # stands in for a missing rung: the managers of all departments


def _owners(timer: TimerView, case: CaseView, ctx: FireContext) -> tuple[str, ...]:
    """The step's owners; in a step collecting every participant's confirmation, only
    those who have not confirmed yet (their department heads, or their addresses)."""
    owners = addresses(timer.data.get("owner"))
    proc = ctx.processes.get(case.process)
    step = proc.steps.get(case.step) if proc is not None else None
    pending, parts = case.data.get("pending"), case.data.get("participants")
    if (step is None or step.confirm_by != "participant" or not isinstance(pending, list)
            or not isinstance(parts, list)):
        return owners
    out: list[str] = []
    for p in (str(x) for x in pending if x in parts):
        if "@" in p:
            out.append(p.lower())
        else:
            dept = ctx.directory.department_by_name(p)
            if dept is not None:
                out.append(dept.head.lower())
    return tuple(dict.fromkeys(out)) or owners


def _department(timer: TimerView, case: CaseView, ctx: FireContext,
                owners: Sequence[str]) -> str:
    """The timer's department, unless the owners changed since it was set (parties that
    have not confirmed yet): then theirs."""
    if set(owners) != set(addresses(timer.data.get("owner"))) and owners:
        return owner_department(ctx.directory, replace(case, data={}), owners)
    return str(timer.data.get("department") or "") or owner_department(
        ctx.directory, case, owners)


def _no_head(ctx: FireContext, department: str, who: Sequence[str]) -> str:
    if not department:
        people = "、".join(who) if who else ctx.t("未指定负责人", "nobody")
        return ctx.t(f"找不到责任部门（{people} 不在通讯录的任何部门）",
                     f"no responsible department ({', '.join(who) or 'nobody'} is in no "
                     "department of the directory)") if who else ctx.t(
            f"找不到责任部门（{people}）", "no responsible department (no owner or contact)")
    return ctx.t(f"通讯录中没有部门「{department}」或其负责人",
                 f"the directory has no department {department!r} or no head for it")


def _rungs(timer: TimerView, case: CaseView, ctx: FireContext, owners: tuple[str, ...],
           department: str) -> list[_Rung]:
    dept = ctx.directory.department_by_name(department) if department else None
    head = (dept.head.lower(),) if dept and dept.head else ()
    no_head = _no_head(ctx, department, owners)
    if timer.kind == "chase":
        return [_Rung("supplier", addresses(timer.data.get("to")), "supplier_chase",
                      case.language, ctx.t("案件没有供应商的邮箱地址",
                                           "the case has no supplier address")),
                _Rung("head", head, "escalation", ctx.language, no_head)]
    # a head who owns the step was reminded as its owner: the managers come next
    others = tuple(h for h in head if h not in owners)
    return [_Rung("owner", owners, "deadline_reminder", ctx.language,
                  ctx.t("该步骤没有负责人的邮箱地址", "the step has no owner with an address")),
            _Rung("head", others, "escalation", ctx.language,
                  ctx.t("负责人即部门负责人", "the owner is the department head")
                  if head and not others else no_head, missing=not head),
            _Rung("managers", managers_for(ctx.directory, department or None), "escalation",
                  ctx.language, ctx.t("未配置覆盖该部门的管理层",
                                      "no managers configured for the department"))]


def _stand_ins(rungs: list[_Rung], ctx: FireContext) -> list[_Rung]:
    """A missing rung with no later rung to report it: the managers of all departments."""
    out = list(rungs)
    general = managers_for(ctx.directory, None)
    for i, r in enumerate(out):
        if not r.to and r.missing and not any(x.to for x in out[i + 1:]) and general:
            out[i] = replace(r, to=general, letter="escalation", language=ctx.language,
                             reported=True)
    return out


def _level(ctx: FireContext, index: int, name: str) -> str:
    names = LEVEL_NAMES["en" if ctx.language == "en" else "zh"]
    return ctx.t(f"第 {index + 1} 级（{names[name]}）", f"level {index + 1} ({names[name]})")


def _skip_note(ctx: FireContext, index: int, rung: _Rung) -> Note:
    verb = ctx.t("无法找到：", "not found: ") if rung.missing else ctx.t("跳过：", "skipped: ")
    return Note("escalation", f"{_level(ctx, index, rung.name)}{verb}{rung.skipped}", "maild")


def _ladder(timer: TimerView, case: CaseView, ctx: FireContext) -> Firing:
    owners = (_owners(timer, case, ctx) if timer.kind == "deadline"
              else addresses(case.data.get("contact")))
    department = _department(timer, case, ctx, owners)
    rungs = _stand_ins(_rungs(timer, case, ctx, owners, department), ctx)
    deadline = str(timer.data.get("deadline") or timer.due_at.isoformat())
    history = list(timer.data.get("ladder") or [])
    missing = list(timer.data.get("missing") or [])
    notes: list[Note] = []
    index = timer.level
    names = LEVEL_NAMES["en" if ctx.language == "en" else "zh"]
    while index < len(rungs) and not rungs[index].to:
        notes.append(_skip_note(ctx, index, rungs[index]))
        if rungs[index].missing:
            missing.append({"rung": names[rungs[index].name], "why": rungs[index].skipped})
        index += 1
    if index >= len(rungs):
        data = {**timer.data, "deadline": deadline, "ladder": history, "missing": missing}
        notes.append(Note("escalation", ctx.t(
            "无人可通知：未配置管理层，请在 [[directory.managers]] 中添加",
            "nobody to notify: no managers configured ([[directory.managers]])"), "maild"))
        return Firing(Fired(len(rungs), data), notes=tuple(notes), summary="nobody to notify")
    rung = rungs[index]
    nxt = next((j for j in range(index + 1, len(rungs)) if rungs[j].to), None)
    next_due = None
    if nxt is not None:
        wait = (ctx.policy.chase_escalate_after if timer.kind == "chase"
                else ctx.policy.before(rungs[nxt].name, case.urgent))
        next_due = wait.after(ctx.calendar, ctx.now)
    history.append({"level": index + 1, "rung": rung.name, "at": ctx.now.isoformat(),
                    "to": list(rung.to)})
    if rung.reported:
        missing.append({"rung": names[rung.name], "why": rung.skipped})
    data = {**timer.data, "deadline": deadline, "ladder": history, "missing": missing}
    context = _ladder_context(timer, case, ctx, rung, deadline, history, next_due, rungs, nxt,
                              owners, department, missing)
    context["recipient_name"] = (greeting_name(ctx.directory, case.data, rung.to)
                                 or _party_name(ctx, rung))
    letter = SendLetter(rung.letter, rung.to, context, rung.language, automatic=False)
    since = moment_text(datetime.fromisoformat(deadline), ctx.calendar)
    label = (chase_label(case, str(timer.data.get("what") or timer.key), ctx.language, ctx)
             if timer.kind == "chase" else context["step_label"])
    what = (ctx.t(f"步骤「{label}」自 {since} 起逾期", f"step {label!r} overdue since {since}")
            if timer.kind == "deadline" else
            ctx.t(f"「{label}」自 {since} 起未回复", f"{label!r} unanswered since {since}"))
    to = ", ".join(rung.to)
    if rung.reported:
        notes.append(_skip_note(ctx, index, replace(rung, to=())))
        done = ctx.t(f"已报告管理层 {to}", f"reported to the managers {to}")
    elif rung.name == "supplier":
        done = ctx.t(f"已催办 {to}", f"chased {to}")
    elif rung.name == "owner":
        done = ctx.t(f"已提醒 {to}", f"reminded {to}")
    else:
        done = ctx.t(f"已上报 {to}", f"escalated to {to}")
    notes.append(Note("escalation", f"{_level(ctx, index, rung.name)}{ctx.t('：', ': ')}"
                      f"{what}{ctx.t('；', '; ')}{done}", "maild"))
    if nxt is None:  # nothing left to climb: what is missing further up is noted now
        notes += [_skip_note(ctx, j, rungs[j]) for j in range(index + 1, len(rungs))]
    outcome: Outcome = (Escalate(index + 1, next_due, data) if next_due is not None
                        else Fired(index + 1, data))
    return Firing(outcome, (letter,), tuple(notes),
                  f"{timer.kind} level {index + 1} -> {to}")


def _party_name(ctx: FireContext, rung: _Rung) -> str:
    """A chased supplier greeted by its name in the directory (「恒达材料，您好」), as the
    other letters to it are, when no person's name is known."""
    if rung.name != "supplier" or not rung.to:
        return ""
    party = ctx.directory.lookup(rung.to[0]).party
    return party.name if party is not None else ""


def _ladder_context(timer: TimerView, case: CaseView, ctx: FireContext, rung: _Rung,
                    deadline: str, history: list[dict[str, Any]], next_due: datetime | None,
                    rungs: list[_Rung], nxt: int | None, owners: Sequence[str],
                    department: str, missing: list[dict[str, str]]) -> dict[str, Any]:
    cal = ctx.calendar
    earlier = history[:-1]
    what = str(timer.data.get("what") or "")
    if timer.kind == "chase":
        what = chase_label(case, what or timer.key, rung.language, ctx)
    return {
        "org_name": ctx.org_name,
        "subject": case.subject,
        "kind": timer.kind,
        "step": str(timer.data.get("step") or timer.key),
        "step_label": what if timer.kind == "chase" else _step_label(timer, case, ctx),
        "what": what,
        "deadline": moment_text(datetime.fromisoformat(deadline), cal),
        "overdue_hours": round(max(timedelta(0), cal.working_between(
            datetime.fromisoformat(deadline), ctx.now)).total_seconds() / 3600, 1),
        "urgent": case.urgent,
        "level": len(history),
        "audience": "managers" if rung.reported else rung.name,
        "department": department,
        "owner": ", ".join(owners),
        "suppliers": ", ".join(addresses(timer.data.get("to"))) if timer.kind == "chase" else "",
        "notified": [{"to": ", ".join(h["to"]), "at": moment_text(
            datetime.fromisoformat(h["at"]), cal)} for h in earlier],
        "missing": [f"{m['rung']}：{m['why']}" if ctx.language != "en"
                    else f"{m['rung']}: {m['why']}" for m in missing],
        "next_at": moment_text(next_due, cal) if next_due else "",
        "next_audience": rungs[nxt].name if nxt is not None else "",
    }


def _step_label(timer: TimerView, case: CaseView, ctx: FireContext) -> str:
    step = str(timer.data.get("step") or timer.key)
    return str(timer.data.get("step_label") or ctx.step_labels.get((case.process, step), step))


def _warning(timer: TimerView, case: CaseView, ctx: FireContext) -> Firing:
    """The early warning: the step's owner, before the deadline is missed."""
    data = dict(timer.data)
    owners = _owners(timer, case, ctx)
    label = _step_label(timer, case, ctx)
    try:
        deadline = datetime.fromisoformat(str(data.get("deadline")))
    except (TypeError, ValueError):
        deadline = case.due_at or timer.due_at
    due = moment_text(deadline, ctx.calendar)
    if not owners:
        note = Note("reminder", ctx.t(f"步骤「{label}」将于 {due} 到期：没有负责人的邮箱地址，"
                                      "未发出预警",
                                      f"step {label!r} is due {due}: no owner address, "
                                      "no early warning sent"), "maild")
        return Firing(Fired(1, data), notes=(note,), summary="warning: no owner address")
    left = max(timedelta(0), ctx.calendar.working_between(ctx.now, deadline))
    context = {"org_name": ctx.org_name, "subject": case.subject, "step_label": label,
               "deadline": due, "hours_left": round(left.total_seconds() / 3600, 1),
               "urgent": case.urgent, "owner": ", ".join(owners),
               "department": _department(timer, case, ctx, owners),
               "recipient_name": greeting_name(ctx.directory, case.data, owners)}
    letter = SendLetter("deadline_warning", owners, context, ctx.language, automatic=False)
    to = ", ".join(owners)
    note = Note("reminder", ctx.t(f"步骤「{label}」将于 {due} 到期：已预先提醒 {to}",
                                  f"step {label!r} is due {due}: early warning sent to {to}"),
                "maild")
    return Firing(Fired(1, data), (letter,), (note,), f"early warning -> {to}")


def _action(timer: TimerView, case: CaseView, ctx: FireContext) -> Firing:
    """Reminder before the due date, then overdue (owner), then the owner's head."""
    owner = timer.data.get("owner")
    to = addresses(owner)
    data = dict(timer.data)
    action = str(data.get("action") or timer.key)
    item = next((a for a in case.data.get("actions", ()) if isinstance(a, Mapping)
                 and str(a.get("id")) == timer.key), None)
    if item is not None and item.get("done"):
        return Firing(Cancel("action done"), summary="cancelled: action item done")
    due_text = str(data.get("due") or "")
    try:
        due = date.fromisoformat(due_text[:10])
    except ValueError:
        due = None
    # overdue: the first working moment after the due day
    overdue_at = (ctx.calendar.next_working_moment(datetime.combine(
        due + timedelta(days=1), time(0), tzinfo=ctx.calendar.tz)) if due else None)
    level = timer.level
    if level == 0 and overdue_at is not None and ctx.now >= overdue_at:
        level = 1  # created late, or the daemon was down: say it is overdue
    if not to:
        note = Note("reminder", ctx.t(f"待办「{action}」：负责人 {owner} 没有邮箱地址，未发提醒",
                                      f"action {action!r}: owner {owner!r} has no mail address; "
                                      "no reminder sent"), "maild")
        return Firing(Fired(level + 1, data), notes=(note,),
                      summary="action owner has no address")
    base = {"org_name": ctx.org_name, "subject": case.subject, "action": action,
            "owner": ", ".join(to), "due": date_text(due_text, ctx.language),
            "support": str(data.get("support") or ""), "overdue": level > 0,
            "audience": "owner", "missing": [], "department": ""}
    who = ", ".join(to)
    if level == 0:
        letter = SendLetter("action_reminder", to, base, ctx.language, automatic=False)
        note = Note("reminder", ctx.t(f"待办「{action}」{due_text} 到期：已提醒 {who}",
                                      f"action {action!r} due {due_text}: reminded {who}"),
                    "maild")
        outcome: Outcome = (Escalate(1, overdue_at, data) if overdue_at is not None
                            else Fired(1, data))
        return Firing(outcome, (letter,), (note,), f"action reminder -> {who}")
    if level == 1:
        letter = SendLetter("action_reminder", to, base, ctx.language, automatic=False)
        note = Note("reminder", ctx.t(f"待办「{action}」已于 {due_text} 到期仍未完成：已提醒 {who}",
                                      f"action {action!r} overdue since {due_text}: "
                                      f"reminded {who}"), "maild")
        nxt = ctx.policy.before("head", case.urgent).after(ctx.calendar, ctx.now)
        return Firing(Escalate(2, nxt, data), (letter,), (note,), f"action overdue -> {who}")
    department = owner_department(ctx.directory, replace(case, data={}), to)
    dept = ctx.directory.department_by_name(department) if department else None
    heads = tuple(h for h in ((dept.head.lower(),) if dept and dept.head else ()) if h not in to)
    notes: list[Note] = []
    rung = _Rung("head", heads, "action_reminder", ctx.language,
                 ctx.t("负责人即部门负责人", "the owner is the department head")
                 if dept and not heads else _no_head(ctx, department, to))
    missing: list[str] = []
    if not heads:  # the managers covering the department (or all departments) instead
        rung = replace(rung, missing=dept is None)
        notes.append(_skip_note(ctx, 2, rung))
        heads = managers_for(ctx.directory, department or case.department)
        names = LEVEL_NAMES["en" if ctx.language == "en" else "zh"]
        if rung.missing:
            missing = [f"{names['head']}{ctx.t('：', ': ')}{rung.skipped}"]
    if not heads:
        notes.append(Note("escalation", ctx.t(
            f"待办「{action}」逾期：无人可上报（未配置管理层）",
            f"action {action!r} overdue: nobody to escalate to (no managers configured)"),
            "maild"))
        return Firing(Fired(3, data), notes=tuple(notes), summary="nobody to notify")
    context = {**base, "audience": "head" if heads == rung.to else "managers",
               "missing": missing, "department": department}
    letter = SendLetter("action_reminder", heads, context, ctx.language, automatic=False)
    up = ", ".join(heads)
    notes.append(Note("escalation", ctx.t(f"待办「{action}」已于 {due_text} 到期仍未完成（负责人 "
                                          f"{who}）：已上报 {up}",
                                          f"action {action!r} overdue since {due_text} (owner "
                                          f"{who}): escalated to {up}"), "maild"))
    return Firing(Fired(3, data), (letter,), tuple(notes), f"action overdue -> {up}")


def _milestone(timer: TimerView, case: CaseView, ctx: FireContext) -> Firing:
    data = dict(timer.data)
    to = addresses(data.get("to"))
    title = str(data.get("title") or timer.key)
    if not to:
        note = Note("milestone", ctx.t(f"里程碑「{title}」：没有收件人，未发通知",
                                       f"milestone {title!r}: no recipients; no notice sent"),
                    "maild")
        return Firing(Fired(1, data), notes=(note,), summary="milestone without recipients")
    day = str(data.get("date") or "")
    context = {"org_name": ctx.org_name, "subject": case.subject, "title": title,
               "date": date_text(day, case.language)}
    # the account manager gets a copy of what the customer was told
    contact = tuple(a for a in addresses(case.data.get("contact")) if a not in to)
    letter = SendLetter("milestone_notice", to, context, case.language, cc=contact,
                        automatic=False, files=milestone_event(case, title, day, ctx))
    who = ", ".join(to) + (ctx.t(f"（抄送 {', '.join(contact)}）", f" (copy to "
                                 f"{', '.join(contact)})") if contact else "")
    note = Note("milestone", ctx.t(f"里程碑「{title}」（{day}）：已通知 {who}",
                                   f"milestone {title!r} on {day}: notice sent to {who}"),
                "maild")
    return Firing(Fired(1, data), (letter,), (note,), f"milestone notice -> {who}")


def milestone_event(case: CaseView, title: str, day: str, ctx: FireContext
                    ) -> tuple[LetterFile, ...]:
    """The milestone as an all-day calendar event (``maild.engine.invites``)."""
    try:
        when = date.fromisoformat(day)
    except ValueError:
        return ()
    domain = ctx.org_address.rpartition("@")[2]
    ics = milestone_ics(uid=milestone_uid(case.number, day, title, domain), day=when,
                        summary=f"[{case.number}] {title}", description=case.subject,
                        organizer=ctx.org_address, organizer_name=ctx.org_name, now=ctx.now)
    return (ics_file(ics, "PUBLISH"),)


def _progress(timer: TimerView, case: CaseView, ctx: FireContext) -> Firing:
    data = dict(timer.data)
    to = addresses(data.get("to"))
    cadence = max(1, int(data.get("cadence_days") or 7))
    anchor = datetime.fromisoformat(str(data.get("anchor") or timer.due_at.isoformat()))
    nxt = anchor + timedelta(days=cadence)
    while nxt <= ctx.now:
        nxt += timedelta(days=cadence)
    new_data = {**data, "anchor": nxt.isoformat()}
    again = SetTimer("progress", ctx.calendar.next_working_moment(nxt), timer.key, new_data)
    letters: tuple[SendLetter, ...] = ()
    if to:
        context = {"org_name": ctx.org_name, "subject": case.subject, "cadence_days": cadence,
                   "next_at": moment_text(again.due_at, ctx.calendar)}
        letters = (SendLetter("progress_request", to, context, ctx.language, automatic=False),)
    who = ", ".join(to) or ctx.t("无人（没有邮箱地址）", "nobody (no address)")
    at = moment_text(again.due_at, ctx.calendar)
    note = Note("progress", ctx.t(f"已请 {who} 提交进度报告；下次 {at}",
                                  f"progress report requested from {who}; next {at}"), "maild")
    return Firing(Rearm(1, data, again), letters, (note,), f"progress request -> {who}")
