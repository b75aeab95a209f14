"""The internal cross-department request (跨部门协作沟通), numbered year-department-sequence.

What is specific here: the request form (missing fields are asked for once per reply and the
case waits for them), the participant list that ``#assign`` grows (each department's head
told), the minutes that come with ``#advance`` in the meeting step, and the result report
that the receiver submits with ``#advance`` while tracking, for the initiator to accept,
and the meeting's calendar invitation (``#meeting``, ``maild.engine.invites``).
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from functools import partial
from typing import Any

from maild.engine.definitions import Step
from maild.engine.effects import Decision, SendLetter
from maild.engine.invites import (
    CANCEL_WORDS,
    MEETING_LETTER,
    ics_file,
    meeting_ics,
    meeting_uid,
    parse_meeting,
)
from maild.engine.operations import GENERIC, reply
from maild.engine.workflow import Hooks, Work, open_case
from maild.handlers import common
from maild.handlers.base import Handler
from maild.mail.commands import Command
from maild.mail.forms import REQUEST_FORM, department_of, is_urgent, merge, parse_form

FIRST_STEP = "request"


def _open(work: Work) -> Decision | None:
    ctx, cls, mail = work.ctx, work.cls, work.mail
    dept = ctx.directory.department_by_name(cls.department)
    if dept is None:
        # Without a receiving department there is no number to give: say so, open nothing.
        lang = common.language_for(mail, cls, ctx)
        ask = common.acknowledge(mail, cls, ctx, "internal", lang, {
            "departments": [d.name for d in ctx.directory.config.departments]})
        return Decision((SendLetter("need_department", ask.to, ask.context, lang),),
                        "internal request without a department: asked the sender which one")
    form = parse_form(mail.text, REQUEST_FORM)
    sender = cls.sender
    own = sender.department
    if own is None and "发起部门/人" in form.values:
        own = ctx.directory.department(department_of(form.values["发起部门/人"]))
    work.department, work.number_key = dept.name, dept.short
    work.urgent = cls.urgent or is_urgent(form.values.get("紧急程度", ""))
    work.language = common.language_for(mail, cls, ctx)
    initiator = work.actor.lower()
    work.data.update(common.facts(work), initiator=initiator,
                     initiator_department=own.name if own else "",
                     form=dict(form.values), missing=list(form.missing),
                     participants=list(dict.fromkeys([own.name if own else initiator,
                                                      dept.name])),
                     actions=[])
    work.parties = [work.reply_to]
    work.ack = form.complete  # an incomplete form gets one letter: what to add
    return None


def _on_enter(work: Work, step: Step) -> None:
    if step.id == work.proc.first.id and work.data.get("missing"):
        work.status = "waiting"
        _ask_for_missing(work)


def _ask_for_missing(work: Work) -> None:
    work.send(work.proc.letters["more_info"], work.roles.addresses("initiator"),
              automatic=True)
    work.event("asked for " + "、".join(work.data["missing"]))


def _staff_text(work: Work) -> None:
    """The initiator completes the form by replying with the missing fields."""
    if work.step != work.proc.first.id or not work.data.get("missing"):
        return
    if not (work.roles.holds(work.actor, "initiator")
            or work.roles.holds(work.actor, "initiator_head")):
        return
    form = merge(work.data.get("form", {}), parse_form(work.mail.text, REQUEST_FORM),
                 REQUEST_FORM)
    if dict(form.values) == work.data.get("form"):
        return  # nothing new: a plain reply
    work.data["form"], work.data["missing"] = dict(form.values), list(form.missing)
    work.urgent = work.urgent or is_urgent(form.values.get("紧急程度", ""))
    if form.missing:
        _ask_for_missing(work)
    else:
        work.status = "open"
        work.note("form_complete", "、".join(form.values))


def _assign(work: Work, command: Command) -> str | None:
    names = [n for n in re.split(r"[\s,，、;；]+", command.arg) if n]
    if not names:
        return work.t("请写明要加入的部门，如 #assign 财务部 法务部",
                      "name the departments, e.g. #assign Finance")
    found = {n: work.ctx.directory.department(n) for n in names}
    unknown = [n for n, d in found.items() if d is None]
    if unknown:
        return work.t(f"通讯录中没有部门：{'、'.join(unknown)}",
                      f"no such department: {', '.join(unknown)}")
    participants = work.data.setdefault("participants", [])
    added = [d.name for d in found.values() if d is not None and d.name not in participants]
    if not added:
        return work.t("这些部门已在参与名单中", "these departments already take part")
    participants.extend(added)
    for name in added:
        work.send(work.proc.letters["participant_added"], work.roles.head_of(name),
                  cc=work.roles.addresses("initiator"), added=[name])
    work.note("participants", "+ " + "、".join(added))
    work.event("participants + " + ", ".join(added))
    return None


def _minutes(work: Work, command: Command) -> str | None:
    """``#advance`` after the meeting: the mail's text is the minutes for confirmation."""
    if not work.text and not work.mail.attachments:
        return work.t("请在 #advance 下方写上会议纪要（讨论要点、分歧点、共识）",
                      "write the minutes below #advance")
    work.data["minutes"] = work.text
    common.output(work, "跨部门沟通纪要", work.text)
    work.advance()
    return None


def _report(work: Work, command: Command) -> str | None:
    """``#advance`` while tracking: the receiver's result report, for acceptance."""
    if not work.text and not work.mail.attachments:
        return work.t("请在 #advance 下方写上结果报告", "write the result report below #advance")
    work.data["report"] = {"by": work.actor, "at": work.ctx.now.isoformat(), "text": work.text}
    common.output(work, "结果报告", work.text)
    work.send(work.proc.letters["result_report"], work.roles.addresses("initiator"),
              cc=work.roles.addresses("receiver_head"))
    work.event("result report")
    return None


def _meeting(work: Work, command: Command) -> str | None:
    """``#meeting 2026-12-03 14:00 会议室A [1h]``: invite the participants (again: move the
    meeting); ``#meeting cancel``: call it off."""
    if command.arg.strip().lower() in CANCEL_WORDS:
        if not _scheduled(work):
            return work.t("没有已安排的会议可以取消", "no meeting is scheduled")
        _cancel_meeting(work)
        return None
    arg = parse_meeting(command.arg, work.ctx.calendar.tz)
    if isinstance(arg, str):
        return work.t("格式应为：#meeting 2026-12-03 14:00 会议室A（可加时长，如 1.5h；"
                      "默认 1 小时），或 #meeting cancel",
                      "use: #meeting 2026-12-03 14:00 Room A (optionally a duration such as "
                      "1.5h; default 1 hour), or #meeting cancel")
    if arg.start <= work.ctx.now:
        return _past_moment(work, arg.start)
    meeting = work.data.get("meeting") or {}
    if _scheduled(work):
        meeting = {**meeting, "sequence": int(meeting.get("sequence", 0)) + 1}
        kind = "update"
    else:
        count = int(work.data.get("meetings", 0)) + 1
        work.data["meetings"] = count
        meeting = {"uid": meeting_uid(work.number, count, _domain(work)), "sequence": 0}
        kind = "request"
    meeting.update(start=arg.start.isoformat(), minutes=arg.minutes, place=arg.place,
                   status="scheduled", attendees=_attendees(work))
    work.data["meeting"] = meeting
    _invite(work, meeting, "REQUEST", kind)
    when = arg.start.strftime("%Y-%m-%d %H:%M")
    work.note("meeting", work.t(f"会议邀请（{'改期' if kind == 'update' else '新'}）：{when}，"
                                f"{arg.minutes} 分钟，{arg.place}",
                                f"meeting {'moved' if kind == 'update' else 'invitation'}: "
                                f"{when}, {arg.minutes} min, {arg.place}"))
    work.event(f"meeting {kind}")
    return None


def _close(work: Work, command: Command) -> str | None:
    """``#close``: as everywhere, and a meeting still ahead is called off."""
    if _scheduled(work) and datetime.fromisoformat(
            str(work.data["meeting"]["start"])) > work.ctx.now:
        _cancel_meeting(work)
    return GENERIC["close"](work, command)


def _scheduled(work: Work) -> bool:
    return (work.data.get("meeting") or {}).get("status") == "scheduled"


def _cancel_meeting(work: Work) -> None:
    meeting = dict(work.data["meeting"])
    meeting.update(sequence=int(meeting.get("sequence", 0)) + 1, status="cancelled")
    work.data["meeting"] = meeting
    _invite(work, meeting, "CANCEL", "cancel")
    work.note("meeting", work.t("会议已取消", "meeting cancelled"))
    work.event("meeting cancel")


def _attendees(work: Work) -> list[str]:
    own = work.ctx.org_address.lower()
    return [a for a in dict.fromkeys((*work.roles.addresses("participant"),
                                      *work.roles.addresses("initiator")))
            if a and a.lower() != own]


def _domain(work: Work) -> str:
    return work.ctx.org_address.rpartition("@")[2]


def _past_moment(work: Work, at: datetime) -> str:
    text = at.strftime("%Y-%m-%d %H:%M")
    return work.t(f"时间 {text} 已经过去", f"{text} is in the past")


def _invite(work: Work, meeting: dict[str, Any], method: str, kind: str) -> None:
    """The invitation letter (REQUEST or CANCEL) to every attendee, with the .ics."""
    start = datetime.fromisoformat(str(meeting["start"])).astimezone(work.ctx.calendar.tz)
    minutes = int(meeting["minutes"])
    attendees = [str(a) for a in meeting.get("attendees", ())] or _attendees(work)
    summary = f"[{work.number}] {work.subject}"
    ics = meeting_ics(method=method, uid=str(meeting["uid"]),
                      sequence=int(meeting["sequence"]), start=start, minutes=minutes,
                      summary=summary, location=str(meeting["place"]),
                      description=work.t(f"跨部门沟通 {work.number}：{work.subject}",
                                         f"cross-department request {work.number}: "
                                         f"{work.subject}"),
                      organizer=work.ctx.org_address, organizer_name=work.ctx.org_name,
                      attendees=attendees, now=work.ctx.now)
    end = start + timedelta(minutes=minutes)
    context = {"org_name": work.ctx.org_name, "number": work.number, "subject": work.subject,
               "kind": kind, "date": start.strftime("%Y-%m-%d"),
               "start": start.strftime("%H:%M"), "end": end.strftime("%H:%M"),
               "minutes": minutes, "place": str(meeting["place"]),
               "organizer": work.actor, "attendees": attendees}
    work.effects.append(SendLetter(MEETING_LETTER, tuple(attendees),
                                   context, work.ctx.language, automatic=False,
                                   files=(ics_file(ics, method),)))


def _accept(work: Work, command: Command) -> str | None:
    """``#confirm`` while tracking: the initiator accepts the result report."""
    if not work.condition("report_submitted"):
        return work.unmet("report_submitted")
    return work.confirm(work.actor)


HOOKS = Hooks(
    open=_open, staff_text=_staff_text, on_enter=_on_enter,
    letters=("more_info", "participant_added", "result_report"),
    ops={
        ("*", "assign"): _assign,
        ("*", "meeting"): _meeting,
        ("*", "close"): _close,
        ("meeting", "advance"): _minutes,
        ("track", "advance"): _report,
        ("track", "confirm"): _accept,
    })
HANDLER = Handler("internal", partial(open_case, HOOKS), partial(reply, HOOKS))
