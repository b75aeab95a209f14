"""Applying a decision to a case, purely: (case, decision, now) -> the case after it.

The store and the test simulator both call :func:`apply`; neither has rules of its own.
It folds the decision's effects in order into the case's new state and its timers, and
lists what the store must write besides: timeline notes, letters and kept attachments, in
the order the decision gave them. The rules that follow the case's status live here too:
a closed case cancels its timers, a waiting case pauses its deadlines with the working time
that was left, and a case that is open again resumes them.

What is not decided here is what needs the database: the next number of a yearly sequence
(given as ``number`` when the decision opens a case), the rate limit on automatic letters,
and the Message-IDs of letters.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Any

from maild.calendar.business import BusinessCalendar
from maild.engine.effects import (
    CLOSED,
    PAUSABLE,
    CancelTimers,
    CaseView,
    Decision,
    KeepAttachments,
    Note,
    OpenCase,
    SendLetter,
    SetTimer,
    UpdateCase,
)

#: timer states that are still to fire (a paused one resumes)
LIVE = ("pending", "paused")


@dataclass(frozen=True)
class TimerState:
    """A timer of a case; ``id`` is None for one this decision creates."""

    kind: str
    key: str
    due_at: datetime
    state: str = "pending"  # pending, paused, fired, cancelled
    data: Mapping[str, Any] = field(default_factory=dict)
    id: int | None = None


@dataclass(frozen=True)
class CaseState:
    """A case as the decision path sees it: its view, when it closed, its timers."""

    view: CaseView
    closed_at: datetime | None = None
    timers: tuple[TimerState, ...] = ()


Output = Note | SendLetter | KeepAttachments


@dataclass(frozen=True)
class Applied:
    """The result of :func:`apply`."""

    case: CaseState | None
    opened: bool
    #: notes, letters and attachments to keep, in the decision's order (then timer notes)
    outputs: tuple[Output, ...]
    #: the timers this decision created or changed (``id`` None: to be created)
    timers: tuple[TimerState, ...]


def case_year(now: datetime, tz: tzinfo) -> int:
    """The year a case opened at ``now`` is numbered in (the calendar's zone decides)."""
    return now.astimezone(tz).year


def sequence_key(opened: OpenCase, year: int) -> str:
    """The yearly sequence a new case draws its number from."""
    return f"{opened.process}:{opened.number_key}:{year}"


def case_number(fmt: str, opened: OpenCase, year: int, seq: int) -> str:
    """The case number from the numbering format (``{year}-{dept}-{seq:03d}``)."""
    return fmt.format(year=year, seq=seq, dept=opened.number_key)


def opening(decision: Decision) -> OpenCase | None:
    return next((e for e in decision.effects if isinstance(e, OpenCase)), None)


def apply(case: CaseState | None, decision: Decision, now: datetime,
          calendar: BusinessCalendar, *, number: str | None = None) -> Applied:
    """The case after ``decision`` at ``now``; ``number`` names a case the decision opens."""
    status_before = case.view.status if case is not None else None
    timers = _Timers(case.timers if case is not None else ())
    outputs: list[Output] = []
    opened = False
    for effect in decision.effects:
        if isinstance(effect, OpenCase):
            if number is None:
                raise ValueError("a decision that opens a case needs its number")
            case = CaseState(_opened_view(effect, number))
            opened = True
        elif isinstance(effect, UpdateCase) and case is not None:
            case = _update(case, effect)
        elif isinstance(effect, SendLetter):
            outputs.append(_numbered(effect, case))
        elif case is None:
            continue  # notes, timers and files belong to a case; without one nothing to do
        elif isinstance(effect, Note | KeepAttachments):
            outputs.append(effect)
        elif isinstance(effect, SetTimer):
            timers.set(effect)
        elif isinstance(effect, CancelTimers):
            timers.cancel(effect)
    if case is None:
        return Applied(None, False, tuple(outputs), ())
    case, notes = _follow_status(case, status_before, decision, timers, now, calendar)
    case = replace(case, timers=timers.all())
    return Applied(case, opened, (*outputs, *notes), timers.written())


def apply_timer(timers: Sequence[TimerState], effect: SetTimer | CancelTimers
                ) -> tuple[TimerState, ...]:
    """One timer effect on a case's timers (a re-armed timer, say): what to write."""
    t = _Timers(timers)
    if isinstance(effect, SetTimer):
        t.set(effect)
    else:
        t.cancel(effect)
    return t.written()


# -- the case -------------------------------------------------------------------------------

def _opened_view(e: OpenCase, number: str) -> CaseView:
    return CaseView(number, e.process, e.step, "open", e.subject, e.department, e.urgent,
                    e.language, tuple(e.parties), {})


def _update(case: CaseState, u: UpdateCase) -> CaseState:
    v = case.view
    changes: dict[str, Any] = {}
    if u.step:
        changes["step"] = u.step
    if u.status:
        changes["status"] = u.status
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
    closed_at = None if u.status in ("open", "waiting") else case.closed_at  # reopened
    return replace(case, view=replace(v, **changes), closed_at=closed_at)


def _numbered(letter: SendLetter, case: CaseState | None) -> SendLetter:
    """Every letter is told the case number ("" for mail that opened none)."""
    number = case.view.number if case is not None else ""
    return replace(letter, context={**letter.context, "number": number})


# -- timers ---------------------------------------------------------------------------------

class _Timers:
    """A case's timers while a decision is applied; remembers which ones changed."""

    def __init__(self, timers: Sequence[TimerState]) -> None:
        self._all = list(timers)
        self._changed: set[int] = set()  # indexes into _all

    def _put(self, i: int, t: TimerState) -> None:
        self._all[i] = t
        self._changed.add(i)

    def set(self, e: SetTimer) -> None:
        """One live timer per (kind, key): a new one replaces the one before."""
        for i, t in enumerate(self._all):
            if t.state in LIVE and t.kind == e.kind and t.key == e.key:
                self._put(i, replace(t, state="cancelled"))
        self._all.append(TimerState(e.kind, e.key, e.due_at, "pending", dict(e.data)))
        self._changed.add(len(self._all) - 1)

    def cancel(self, e: CancelTimers) -> None:
        # a keyed cancel retires that item (an action done, a supplier who answered) even
        # after its reminder fired, so the digest stops listing it
        states = (*LIVE, "fired") if e.key is not None else LIVE
        for i, t in enumerate(self._all):
            if (t.state in states and (not e.kinds or t.kind in e.kinds)
                    and (e.key is None or t.key == e.key)):
                self._put(i, replace(t, state="cancelled"))

    def live(self) -> list[tuple[int, TimerState]]:
        return [(i, t) for i, t in enumerate(self._all) if t.state in LIVE]

    def all(self) -> tuple[TimerState, ...]:
        return tuple(self._all)

    def written(self) -> tuple[TimerState, ...]:
        return tuple(self._all[i] for i in sorted(self._changed))


def _follow_status(case: CaseState, before: str | None, decision: Decision, timers: _Timers,
                   now: datetime, calendar: BusinessCalendar
                   ) -> tuple[CaseState, list[Note]]:
    """Cancel, pause or resume the case's timers as its new status says."""
    status = case.view.status
    notes: list[Note] = []
    if status in CLOSED:
        if before not in CLOSED:
            for i, t in timers.live():
                timers._put(i, replace(t, state="cancelled"))
            if case.closed_at is None:
                case = replace(case, closed_at=now.astimezone(UTC))
        return case, notes
    if status == "waiting":
        if before != "waiting" or any(isinstance(e, SetTimer) for e in decision.effects):
            for i, t in timers.live():
                if t.state == "pending" and t.kind in PAUSABLE:
                    left = pause_remaining(t.due_at, now, calendar)
                    timers._put(i, replace(t, state="paused",
                                           data={**t.data, "paused_at": now.isoformat(),
                                                 "remaining_s": left.total_seconds()}))
                    notes.append(Note("timer", timer_text(t, left, None), "maild"))
        return case, notes
    if before == "waiting":
        for i, t in timers.live():
            if t.state != "paused":
                continue
            data = dict(t.data)
            left = timedelta(seconds=float(data.pop("remaining_s", 0)))
            data.pop("paused_at", None)
            due = resume_due(left, now, calendar).astimezone(UTC)
            timers._put(i, replace(t, state="pending", data=data, due_at=due))
            notes.append(Note("timer", timer_text(t, left, moment_text(due, calendar)),
                              "maild"))
    return case, notes


_TIMER_KINDS = {"deadline": ("截止时间", "deadline"), "warning": ("到期预警", "early warning")}


def timer_text(t: TimerState, left: timedelta, resumed_due: str | None) -> str:
    """A paused (``resumed_due`` None) or resumed timer, for the timeline: in the language and
    with the step label its data carries (``Work.set_due``), the key for older timers."""
    zh = t.data.get("language") != "en"
    kind = _TIMER_KINDS.get(t.kind, (t.kind, t.kind))[0 if zh else 1]
    label = str(t.data.get("label") or t.data.get("step") or t.key)
    hours = f"{left.total_seconds() / 3600:.1f}"
    if resumed_due is None:
        return (f"等待对方回复，步骤「{label}」的{kind}暂停计时（剩余 {hours} 个工作小时）" if zh
                else f"{kind} of step \"{label}\" paused while waiting on the other party "
                f"({hours} working hours left)")
    if t.kind == "warning":
        return (f"对方已回复，步骤「{label}」的{kind}恢复计时，将于 {resumed_due} 提醒" if zh
                else f"{kind} of step \"{label}\" resumed; it comes at {resumed_due}")
    return (f"对方已回复，步骤「{label}」的{kind}恢复计时，新的截止时间 {resumed_due}" if zh
            else f"{kind} of step \"{label}\" resumed; due {resumed_due}")


def pause_remaining(due_at: datetime, now: datetime, calendar: BusinessCalendar) -> timedelta:
    """Working time left until ``due_at`` when a case starts waiting (never negative)."""
    return max(timedelta(0), calendar.working_between(now, due_at))


def resume_due(remaining: timedelta, now: datetime, calendar: BusinessCalendar) -> datetime:
    """The new due moment when a waiting case resumes with ``remaining`` working time."""
    return calendar.add_working(now, remaining)


def moment_text(dt: datetime, calendar: BusinessCalendar) -> str:
    return dt.astimezone(calendar.tz).strftime("%Y-%m-%d %H:%M")
