"""Firing a due timer, decided purely: timer, case and ``now`` in; letters, timeline notes
and the timer's next state out, as data. Nothing here reads the clock or the database.

Kinds (the contract with the process definitions' ``SetTimer`` effects):

``deadline``  (key = step; data: step, owner [addresses], department)
    The escalation ladder. Level 0 -> 1: the owner is reminded (``deadline_reminder``);
    1 -> 2: the department head hears (``escalation``); 2 -> 3: the managers covering the
    department (``escalation``). Each rung fires once and is logged on the timeline (kind
    ``escalation``). The next rung is due a working-time interval after the previous one
    *fired* (``[escalation]`` in the config; shorter for urgent cases), so an owner always
    gets the full interval even when the daemon was down. A rung without recipients (no head
    configured, no managers) is skipped. Paused while the case waits on the other party.
``chase``  (key = what; data: to [supplier addresses], what)
    The supplier is chased (``supplier_chase``); still no answer ``chase_escalate_after``
    later, the buyer's department head hears (``escalation``). Never paused: waiting on the
    supplier is exactly when it matters.
``action_reminder``  (key = action id; data: action, owner, due, support) -> ``action_reminder``.
``milestone``  (data: title, date, to [customer addresses]) -> ``milestone_notice``.
``progress``  (data: cadence_days, to [owner]) -> ``progress_request``, then re-armed
    ``cadence_days`` calendar days after its previous schedule (moved to the next working
    moment when that falls on a day off), never in the past.

Closed or archived cases never fire: their timers are cancelled. A ``deadline`` whose step
the case has left is cancelled too (the process should have cancelled it).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from maild import config as cfgmod
from maild.calendar.business import BusinessCalendar
from maild.calendar.durations import WorkingDuration
from maild.classify.directory import Directory
from maild.engine.apply import moment_text, pause_remaining
from maild.engine.effects import CLOSED, PAUSABLE, CaseView, Note, SendLetter, SetTimer

LEVEL_NAMES = {"owner": "owner", "head": "department head", "managers": "managers",
               "supplier": "supplier"}
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
    language: str  # of letters to staff; external parties get the case's language
    policy: EscalationPolicy = EscalationPolicy()
    step_labels: Mapping[tuple[str, str], str] = field(default_factory=dict)  # (process, step)


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


# -- firing ---------------------------------------------------------------------------------

def fire(timer: TimerView, case: CaseView, ctx: FireContext) -> Firing:
    """What happens when ``timer`` of ``case`` is due at ``ctx.now``."""
    if case.status in CLOSED:
        return Firing(Cancel(f"case {case.status}"), summary=f"cancelled: case {case.status}")
    if case.status == "waiting" and timer.kind in PAUSABLE:
        left = pause_remaining(timer.due_at, ctx.now, ctx.calendar)
        return Firing(Pause(left), summary="paused: case waits on the other party")
    if timer.kind == "deadline":
        step = str(timer.data.get("step") or timer.key)
        if step and step != case.step:
            return Firing(Cancel(f"step {step} is over"), summary=f"cancelled: step {step} over")
        return _ladder(timer, case, ctx)
    if timer.kind == "chase":
        return _ladder(timer, case, ctx)
    if timer.kind == "action_reminder":
        return _action(timer, case, ctx)
    if timer.kind == "milestone":
        return _milestone(timer, case, ctx)
    if timer.kind == "progress":
        return _progress(timer, case, ctx)
    note = Note("timer", f"timer kind {timer.kind!r} has no handler; cancelled", "maild")
    return Firing(Cancel(f"unknown kind {timer.kind!r}"), notes=(note,),
                  summary=f"unknown timer kind {timer.kind!r}")


@dataclass(frozen=True)
class _Rung:
    name: str  # owner / head / managers / supplier
    to: tuple[str, ...]
    letter: str
    language: str
    skipped: str = "nobody configured"  # why, when ``to`` is empty


def _rungs(timer: TimerView, case: CaseView, ctx: FireContext) -> list[_Rung]:
    department = str(timer.data.get("department") or case.department or "")
    dept = ctx.directory.department_by_name(department)
    head = (dept.head.lower(),) if dept and dept.head else ()
    if timer.kind == "chase":
        return [_Rung("supplier", addresses(timer.data.get("to")), "supplier_chase",
                      case.language),
                _Rung("head", head, "escalation", ctx.language)]
    owners = addresses(timer.data.get("owner"))
    # a head who owns the step was reminded as its owner: the managers come next
    others = tuple(h for h in head if h not in owners)
    return [_Rung("owner", owners, "deadline_reminder", ctx.language),
            _Rung("head", others, "escalation", ctx.language,
                  "the owner is the department head" if head and not others
                  else "nobody configured"),
            _Rung("managers", managers_for(ctx.directory, department), "escalation",
                  ctx.language)]


def _ladder(timer: TimerView, case: CaseView, ctx: FireContext) -> Firing:
    rungs = _rungs(timer, case, ctx)
    deadline = str(timer.data.get("deadline") or timer.due_at.isoformat())
    history = list(timer.data.get("ladder") or [])
    notes: list[Note] = []
    index = timer.level
    while index < len(rungs) and not rungs[index].to:
        notes.append(Note("escalation", f"level {index + 1} ({LEVEL_NAMES[rungs[index].name]})"
                          f" skipped: {rungs[index].skipped}", "maild"))
        index += 1
    if index >= len(rungs):
        data = {**timer.data, "deadline": deadline, "ladder": history}
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
    data = {**timer.data, "deadline": deadline, "ladder": history}
    letter = SendLetter(rung.letter, rung.to, _ladder_context(
        timer, case, ctx, rung, deadline, history, next_due, rungs, nxt), rung.language,
        automatic=False)
    what = (f"step {timer.data.get('step') or timer.key} overdue since "
            f"{moment_text(datetime.fromisoformat(deadline), ctx.calendar)}"
            if timer.kind == "deadline" else
            f"{timer.data.get('what') or timer.key} unanswered since "
            f"{moment_text(datetime.fromisoformat(deadline), ctx.calendar)}")
    verb = "reminded" if rung.name in ("owner", "supplier") else "escalated to"
    notes.append(Note("escalation", f"level {index + 1} ({LEVEL_NAMES[rung.name]}): {what}; "
                      f"{verb} {', '.join(rung.to)}", "maild"))
    outcome: Outcome = (Escalate(index + 1, next_due, data) if next_due is not None
                        else Fired(index + 1, data))
    return Firing(outcome, (letter,), tuple(notes),
                  f"{timer.kind} level {index + 1} -> {', '.join(rung.to)}")


def _ladder_context(timer: TimerView, case: CaseView, ctx: FireContext, rung: _Rung,
                    deadline: str, history: list[dict[str, Any]], next_due: datetime | None,
                    rungs: list[_Rung], nxt: int | None) -> dict[str, Any]:
    cal = ctx.calendar
    earlier = history[:-1]
    return {
        "org_name": ctx.org_name,
        "subject": case.subject,
        "kind": timer.kind,
        "step": str(timer.data.get("step") or timer.key),
        "step_label": _step_label(timer, case, ctx),
        "what": str(timer.data.get("what") or ""),
        "deadline": moment_text(datetime.fromisoformat(deadline), cal),
        "overdue_hours": round(max(timedelta(0), cal.working_between(
            datetime.fromisoformat(deadline), ctx.now)).total_seconds() / 3600, 1),
        "urgent": case.urgent,
        "level": len(history),
        "audience": rung.name,
        "department": str(timer.data.get("department") or case.department or ""),
        "owner": ", ".join(addresses(timer.data.get("owner"))),
        "suppliers": ", ".join(addresses(timer.data.get("to"))) if timer.kind == "chase" else "",
        "notified": [{"to": ", ".join(h["to"]), "at": moment_text(
            datetime.fromisoformat(h["at"]), cal)} for h in earlier],
        "next_at": moment_text(next_due, cal) if next_due else "",
        "next_audience": rungs[nxt].name if nxt is not None else "",
    }


def _step_label(timer: TimerView, case: CaseView, ctx: FireContext) -> str:
    step = str(timer.data.get("step") or timer.key)
    return str(timer.data.get("step_label") or ctx.step_labels.get((case.process, step), step))


def _action(timer: TimerView, case: CaseView, ctx: FireContext) -> Firing:
    owner = timer.data.get("owner")
    to = addresses(owner)
    data = dict(timer.data)
    action = str(data.get("action") or timer.key)
    if not to:
        note = Note("reminder", f"action {action!r}: owner {owner!r} has no mail address; "
                    "no reminder sent", "maild")
        return Firing(Fired(1, data), notes=(note,), summary="action owner has no address")
    context = {"org_name": ctx.org_name, "subject": case.subject, "action": action,
               "owner": ", ".join(to), "due": date_text(str(data.get("due") or ""),
                                                         ctx.language),
               "support": str(data.get("support") or "")}
    letter = SendLetter("action_reminder", to, context, ctx.language, automatic=False)
    note = Note("reminder", f"action {action!r} due {data.get('due')}: reminded "
                f"{', '.join(to)}", "maild")
    return Firing(Fired(1, data), (letter,), (note,), f"action reminder -> {', '.join(to)}")


def _milestone(timer: TimerView, case: CaseView, ctx: FireContext) -> Firing:
    data = dict(timer.data)
    to = addresses(data.get("to"))
    title = str(data.get("title") or timer.key)
    if not to:
        note = Note("milestone", f"milestone {title!r}: no recipients; no notice sent", "maild")
        return Firing(Fired(1, data), notes=(note,), summary="milestone without recipients")
    day = str(data.get("date") or "")
    context = {"org_name": ctx.org_name, "subject": case.subject, "title": title,
               "date": date_text(day, case.language)}
    letter = SendLetter("milestone_notice", to, context, case.language, automatic=False)
    note = Note("milestone", f"milestone {title!r} on {day}: notice sent to "
                f"{', '.join(to)}", "maild")
    return Firing(Fired(1, data), (letter,), (note,), f"milestone notice -> {', '.join(to)}")


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
    who = ", ".join(to) or "nobody (no address)"
    note = Note("progress", f"progress report requested from {who}; next "
                f"{moment_text(again.due_at, ctx.calendar)}", "maild")
    return Firing(Rearm(1, data, again), letters, (note,), f"progress request -> {who}")
