"""Answers people can trust: a receipt for staff commands that ran, and notices to the
people a change affects.

A member of staff whose commands ran gets one ``command_receipt`` letter for the mail, at
the proven From address: each command with what it did ("已推进：评估与选定 → 订单与要求确认；
截止 12月3日 17:30"), the case's step, owner and deadline afterwards, and the commands of
the same mail that were refused (then no separate ``command_refused`` letter). Which
commands get one is ``[receipts]`` (``maild.config.Receipts``; #note and #help do not by
default). A receipt is a notice, not an automatic reply: it counts towards the hourly
notice limit of the recipient (``maild.store.limits``).

Changes that give someone else work go to that person in a ``change_notice``: ``#reopen``
tells the step's owners (their deadline), and a confirmation that lets someone else
continue (legal's ``#确认`` in the contract review) tells whoever may ``#advance`` the step
and the case's contact.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from typing import TYPE_CHECKING, Any

from maild.engine.definitions import role_label
from maild.engine.effects import Decision, SendLetter
from maild.mail.commands import Command

if TYPE_CHECKING:
    from maild.engine.workflow import Work

#: the receipt for commands that ran (with the refused ones of the same mail)
RECEIPT_LETTER = "command_receipt"
#: a change that affects the recipient (a reopened step they own, an approval to act on)
CHANGE_LETTER = "change_notice"

_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


@dataclass(frozen=True)
class State:
    """What a receipt compares: the case before a command ran."""

    step: str
    status: str
    due: datetime | None
    owner: tuple[str, ...]

    @classmethod
    def of(cls, work: Work) -> State:
        return cls(work.step, work.status, work.due, tuple(work.owner))


def moment(work: Work, when: datetime | None, language: str) -> str:
    """A deadline as people read it: 12月3日 17:30 / 3 Dec 17:30."""
    if when is None:
        return ""
    local = when.astimezone(work.ctx.calendar.tz)
    if language == "en":
        return f"{local.day} {_MONTHS[local.month - 1]} {local:%H:%M}"
    return f"{local.month}月{local.day}日 {local:%H:%M}"


def _title(work: Work, step: str) -> str:
    return work.proc.step(step).label(work.ctx.language) if step else ""


def _due_part(work: Work) -> str:
    due = moment(work, work.due, work.ctx.language)
    return work.t(f"；截止 {due}", f"; due {due}") if due else ""


def effect(work: Work, command: Command, before: State) -> str:
    """What ``command`` did, from the case before and after it, in the staff's language."""
    remarks = "；".join(work.remarks) if work.ctx.language != "en" else "; ".join(work.remarks)
    work.remarks.clear()
    if work.status in ("closed", "archived") and before.status != work.status:
        text = work.t("案件已归档" if work.status == "archived" else "案件已关闭",
                      "case archived" if work.status == "archived" else "case closed")
    elif before.status in ("closed", "archived") and work.is_open:
        text = work.t(f"已重开：{_title(work, work.step)}", f"reopened: {_title(work, work.step)}")
        text += _due_part(work)
    elif work.step != before.step:
        text = work.t(f"已推进：{_title(work, before.step)} → {_title(work, work.step)}",
                      f"advanced: {_title(work, before.step)} → {_title(work, work.step)}")
        text += _due_part(work)
    elif command.name == "confirm":
        text = work.t("已确认", "confirmed")
    elif work.due != before.due:
        due = moment(work, work.due, work.ctx.language)
        text = work.t(f"截止时间改为 {due}", f"deadline now {due}")
    elif command.name == "action" and work.data.get("actions"):
        item = work.data["actions"][-1]
        text = work.t(f"已登记待办 #{item['id']}：{item['text']}（负责 {item['owner']}，"
                      f"{item['due']} 前）",
                      f"action item #{item['id']} recorded: {item['text']} ({item['owner']}, "
                      f"by {item['due']})")
    elif command.name == "done":
        done = [a for a in work.data.get("actions", []) if a.get("done_by") == work.actor]
        last = done[-1] if done else None
        text = (work.t(f"待办 #{last['id']} 已完成", f"action item #{last['id']} done")
                if last else work.t("已完成", "done"))
    elif command.name == "milestone" and work.data.get("milestones"):
        ms = work.data["milestones"][-1]
        text = work.t(f"已登记节点 {ms['date']} {ms['title']}（提前 3 个工作日通知客户，抄送您）",
                      f"milestone {ms['date']} {ms['title']} recorded (the customer hears "
                      "3 working days ahead, with a copy to you)")
    elif work.owner != before.owner:
        owners = "、".join(work.owner) or "-"
        text = work.t(f"负责人改为 {owners}", f"now in the charge of {', '.join(work.owner)}")
    else:
        text = work.t("已执行", "done")
    if remarks:
        text += work.t(f"。{remarks}", f". {remarks}")
    return text


def record(work: Work, command: Command, before: State) -> None:
    """A command that ran: remembered for the receipt when ``[receipts]`` wants one."""
    if work.ctx.receipts.wants(command.name or ""):
        work.receipts.append({"command": command.line, "effect": effect(work, command, before)})
    else:
        work.remarks.clear()


def answer(work: Work, settled: tuple[str, str], commands: list[dict[str, str]]) -> Decision:
    """The decision, with the one letter a member of staff gets for the commands of their
    mail: the receipt (with any refusals) as its last letter, or the ``command_refused``
    letter when nothing ran that asks for a receipt. ``settled``: (step, status) before the
    case advanced on its own."""
    if not work.proven:  # case details go to a proven From address only
        return work.decision()
    if not work.receipts:
        if work.refusals:
            work.send(work.proc.letters["refused"], (work.actor,), automatic=True,
                      refusals=list(work.refusals), commands=commands)
        return work.decision()
    done = list(work.receipts)
    if (work.step, work.status) != settled and work.is_open:
        done.append({"command": "", "effect": work.t(
            f"随后自动推进：{_title(work, settled[0])} → {_title(work, work.step)}",
            f"then on by itself: {_title(work, settled[0])} → {_title(work, work.step)}")
            + _due_part(work)})
    lang = work.ctx.language
    context = {**_case(work, lang), "sender_name": work.mail.from_.name or work.actor,
               "done": done, "refusals": list(work.refusals), "commands": commands}
    decision = work.decision()
    receipt = SendLetter(RECEIPT_LETTER, (work.actor,), context, lang, automatic=False)
    return replace(decision, effects=(*decision.effects, receipt))  # after what it reports


def _case(work: Work, language: str) -> dict[str, Any]:
    step = work.proc.step(work.step)
    return {
        "org_name": work.ctx.org_name, "subject": work.subject,
        "process_label": work.proc.label(language),
        "party": work.data.get("customer") or work.data.get("supplier") or "",
        "status": work.status, "step_title": step.label(language),
        "step_owner": role_label(step.owner, language), "owners": list(work.owner),
        "due": moment(work, work.due, language)}


def tell(work: Work, to: tuple[str, ...] | list[str], headline: str, message: str) -> None:
    """A ``change_notice`` to each of ``to`` but the sender (who has the receipt)."""
    actor = (work.actor or "").lower()
    lang = work.ctx.language
    for addr in dict.fromkeys(a for a in to if a and a.lower() != actor):
        work.send(CHANGE_LETTER, (addr,), automatic=False, context={
            **_case(work, lang), "sender_name": work.mail.from_.name or work.actor,
            "headline": headline, "message": message,
            "commands": work.commands_for(addr, lang)})
    if any(a and a.lower() != actor for a in to):
        who = "、".join(a for a in dict.fromkeys(to) if a and a.lower() != actor)
        work.note("told", work.t(f"{headline}：已通知 {who}", f"{headline}: told {who}"))


def reopened(work: Work) -> None:
    """``#reopen``: the step's owners hear that the case is theirs again, and by when."""
    due = moment(work, work.due, work.ctx.language)
    title = _title(work, work.step)
    tell(work, work.owner, work.t("案件已重开", "Case reopened"), work.t(
        f"{work.mail.from_.name or work.actor} 重开了本案，「{title}」由您负责"
        + (f"，请在 {due} 前完成。" if due else "。"),
        f"{work.mail.from_.name or work.actor} reopened the case; {title!r} is yours"
        + (f", due {due}." if due else ".")))


def confirmed(work: Work) -> None:
    """A confirmation someone else acts on: in a step that waits for it (``requires =
    "confirmed"``) and does not move on by itself, whoever may ``#advance`` the step and the
    case's contact hear that it is there (legal's approval of the contract)."""
    step = work.step_def
    if step.advance_when or step.requires != "confirmed" or not work.confirmed(step):
        return
    roles = work.roles
    to = [a for r in step.commands.get("advance", ()) for a in roles.addresses(r)]
    to += list(roles.addresses("contact"))
    by = work.label(step.confirm_by) if step.confirm_by else work.actor
    who = work.mail.from_.name or work.actor
    tell(work, to, work.t(f"{by}已确认", f"{by} confirmed"), work.t(
        f"{by}（{who}）已在「{step.label('zh')}」确认，可以继续：回复 #advance 进入下一步。",
        f"{by} ({who}) confirmed at {step.label('en')!r}: reply #advance to go on."))
