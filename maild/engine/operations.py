"""What staff commands do, and how a reply on an existing case is taken in.

A command is checked against the process definition (allowed in this step? does the sender
hold one of the roles?) and then carried out by an operation: the handler's own for this
step or command (``Hooks.ops``), else the generic one here. The sender gets one letter for
the mail (``maild.engine.receipts``): a receipt saying what each command did, with any that
were refused and why, or only the refusals and what is possible now. External parties
never execute commands: what they write is recorded and read by the handler for their own
intents (a confirmation, a quote, a delay).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime, time

from maild.classify.rules import Classification
from maild.engine import receipts
from maild.engine.confirming import take_reply
from maild.engine.definitions import role_label
from maild.engine.effects import CaseView, Context, Decision, Note
from maild.engine.workflow import Hooks, Op, Work
from maild.mail.commands import (
    Command,
    inherited_commands,
    parse_action,
    parse_commands,
    parse_date,
    subject_command_tags,
)
from maild.mail.message import ParsedMail
from maild.mail.quoting import excerpt


def reply(hooks: Hooks, case: CaseView, mail: ParsedMail, cls: Classification,
          ctx: Context) -> Decision:
    """A mail on an existing case: record it, then commands (staff) or intents (others)."""
    work = Work(ctx.processes[case.process], hooks, mail, cls, ctx, case)
    staff = work.is_staff
    work.note("staff_reply" if staff else "reply", excerpt(mail.text) or mail.subject)
    if staff:
        _staff(work)
    else:
        _external(work)
    settled = work.step, work.status
    work.auto_advance()
    return receipts.answer(work, settled, valid_now(work))  # one letter: receipt, refusals


def _staff(work: Work) -> None:
    # A subject tag the answered letter (or the case's subject) already carried is the
    # Re: repeating it, not the sender giving it: a planted or old tag never runs again.
    inherited = (work.subject, *work.cls.replied_subjects)
    commands = parse_commands(work.mail.text, work.mail.subject, inherited=inherited)
    repeated = inherited_commands(inherited)
    planted = [t.line for t in subject_command_tags(work.mail.subject) if t.name in repeated]
    if planted:
        work.note("ignored", work.t(
            f"主题标签 {' '.join(planted)} 沿用自所回复的邮件，不作为命令执行",
            f"subject tag {' '.join(planted)} repeats the answered mail's: not run"))
    if work.is_open and not any(c.source == "body" for c in commands):
        work.hooks.staff_text(work)
    if commands and not gate(work, commands):
        return
    if commands and not work.roles.in_directory(work.actor):
        for c in commands:
            work.refuse(c, work.t("您的地址不在通讯录中，不能操作案件",
                                  "your address is not in the directory"))
        return
    for c in commands:
        run(work, c)


def gate(work: Work, commands: Sequence[Command]) -> bool:
    """Record how the sender of ``commands`` is proven; an unproven sender's commands are
    refused (recorded, not run) and the person the mail claims to be from is told, at the
    address the directory gives (the store sends that notice once an hour at most)."""
    if work.proven:
        work.note("proof", work.t(f"发件人已验证：{work.cls.proof}",
                                  f"sender proven: {work.cls.proof}"))
        return True
    why = "; ".join(work.cls.unproven) or "-"
    for c in commands:
        work.refuse(c, work.t("发件人未经验证，命令未执行", "the sender is not proven: not run"))
    work.note("unproven", work.t(f"发件人未经验证（{why}）", f"sender not proven ({why})"))
    claimed = work.cls.sender.addr if work.cls.sender.role == "staff" else work.actor
    notify_unproven(work, claimed, [c.line for c in commands])
    return False


def notify_unproven(work: Work, claimed: str, lines: list[str]) -> None:
    """The once-an-hour notice to ``claimed`` (a directory address) that commands sent in
    their name were not run. It names the case and the commands, nothing of the case."""
    if not claimed:
        return
    work.send(UNPROVEN_LETTER, (claimed,), automatic=True, context={
        "org_name": work.ctx.org_name, "number": work.number, "commands": lines,
        "reasons": list(work.cls.unproven), "claimed": claimed})


#: the letter telling a member of staff that commands in their name were not run
UNPROVEN_LETTER = "command_unproven"


def _external(work: Work) -> None:
    addr = work.actor
    if addr and work.proc.name != "internal":
        work.add_party(addr)
        external = work.data.setdefault("external", [])
        if addr not in external:
            external.append(addr)
    commands = parse_commands(work.mail.text)
    if commands:
        work.note("ignored", work.t("外部联系人的命令只作记录，不执行：",
                                    "an external party's commands are recorded, not run: ")
                  + " ".join(c.line for c in commands))
    asked = False  # the account manager got the confirm_unsure letter with the reply
    if work.is_open:
        step = work.step_def
        if step.confirm_by == "external":
            asked = take_reply(work, addr)
        if step.waits_on == "external":
            work.answered()
        work.hooks.external(work)
    notice = work.proc.letters.get("reply_notice")
    contact = work.roles.addresses("contact")
    if notice and contact and not asked:
        work.send(notice, contact, message=excerpt(work.mail.text, 1500))


def valid_now(work: Work) -> list[dict[str, str]]:
    """The commands the sender may give on the case now."""
    return work.commands_for(work.actor, work.ctx.language)


def run(work: Work, command: Command) -> None:
    """Check one command against the definition, then carry it out (or refuse it)."""
    if command.name is None:
        work.refuse(command, work.t(f"未知命令 #{command.word}（回复 #help 查看可用命令）",
                                    f"unknown command #{command.word} (reply #help)"))
        return
    allowed = work.step_def.commands if work.is_open else work.proc.closed_commands
    if command.name not in allowed:
        title = work.step_def.label(work.ctx.language)
        work.refuse(command, work.t(
            f"案件已{'归档' if work.status == 'archived' else '关闭'}，此命令不再可用"
            if not work.is_open else f"当前步骤「{title}」不接受 #{command.name}",
            "the case is closed" if not work.is_open
            else f"the step {title!r} does not take #{command.name}"))
        return
    roles = allowed[command.name]
    if not any(work.roles.holds(work.actor, r) for r in roles):
        who = "、".join(role_label(r, work.ctx.language) for r in roles)
        work.refuse(command, work.t(f"#{command.name} 只能由{who}发出",
                                    f"only {who} may give #{command.name}"))
        return
    if command.source == "subject" and _seen_tag(work, command):
        work.note("ignored", work.t(f"主题标签 {command.line} 已执行过，不再重复",
                                    f"subject tag {command.line} already done"))
        return
    reason = _guard(work, command)
    mark, before = len(work.effects), receipts.State.of(work)
    if reason is None:
        op = (work.hooks.ops.get((work.step, command.name))
              or work.hooks.ops.get(("*", command.name)) or GENERIC.get(command.name))
        reason = op(work, command) if op else work.t("此命令在本流程中没有定义",
                                                      "not defined for this process")
    if reason is not None:
        del work.effects[mark:]  # a refused command leaves no trace but the refusal
        work.remarks.clear()
        work.refuse(command, reason)
        return
    if command.name not in ("note", "help"):
        work.effects.insert(mark, Note("command", command.line, work.actor))
    receipts.record(work, command, before)


def _seen_tag(work: Work, command: Command) -> bool:
    """A subject tag stays in every later ``Re:``: it counts once per step and sender."""
    key = f"{command.name}@{work.step}@{work.actor}"
    seen = work.data.setdefault("subject_tags", [])
    if key in seen:
        return True
    seen.append(key)
    return False


def _guard(work: Work, command: Command) -> str | None:
    step = work.step_def
    if command.name == "advance" and work.is_open and step.requires \
            and not work.condition(step.requires):
        return work.unmet(step.requires)
    return None


# -- the generic operations -----------------------------------------------------------------


def _advance(work: Work, command: Command) -> str | None:
    work.advance()
    return None


def _confirm(work: Work, command: Command) -> str | None:
    reason = work.confirm(work.actor)
    if reason is None:
        receipts.confirmed(work)  # e.g. legal approved: the contact may go on
    return reason


def end_of_day(work: Work, day: date) -> datetime:
    """A due date as a moment: the end of that day's working hours."""
    cal = work.ctx.calendar
    last = max(end for _, end in cal.settings.periods)
    return datetime.combine(day, last, tzinfo=cal.tz)


def at_nine(work: Work, day: date) -> datetime:
    return datetime.combine(day, time(9, 0), tzinfo=work.ctx.calendar.tz)


def today(work: Work) -> date:
    return work.ctx.now.astimezone(work.ctx.calendar.tz).date()


def _bad_date(work: Work, text: str) -> str:
    return work.t(f"日期「{text}」无效，请写成 YYYY-MM-DD，如 2026-12-10",
                  f"{text!r} is not a date like 2026-12-10")


def _past(work: Work, day: date) -> str:
    return work.t(f"日期 {day} 已经过去", f"{day} is in the past")


def _due(work: Work, command: Command) -> str | None:
    parsed = parse_date(command.arg)
    if parsed is None:
        return _bad_date(work, command.arg)
    if parsed[0] < today(work):
        return _past(work, parsed[0])
    work.set_due(end_of_day(work, parsed[0]))
    work.event(f"due {parsed[0]}")
    return None


def resolve_person(work: Work, who: str) -> str | None:
    """An address, or a department's head, from what a command names."""
    who = who.strip().strip("<>")
    if "@" in who:
        return who.lower()
    dept = work.ctx.directory.department(who.split("/")[0].strip())
    return dept.head.lower() if dept else None


def _action(work: Work, command: Command) -> str | None:
    arg = parse_action(command.arg)
    if arg == "format":
        return work.t("格式应为：#action 描述 | 负责人邮箱或部门 | 2026-12-10 | 所需支持",
                      "use: #action text | owner address or department | 2026-12-10 | support")
    if isinstance(arg, str):
        return _bad_date(work, command.arg.split("|")[2].strip()
                         if command.arg.count("|") >= 2 else command.arg)
    owner = resolve_person(work, arg.owner)
    if owner is None:
        return work.t(f"负责人「{arg.owner}」不是邮箱地址，也不是通讯录中的部门",
                      f"owner {arg.owner!r} is neither an address nor a department")
    if arg.due < today(work):
        return _past(work, arg.due)
    actions = work.data.setdefault("actions", [])
    item = {"id": len(actions) + 1, "text": arg.text, "owner": owner,
            "due": arg.due.isoformat(), "support": arg.support, "done": False}
    actions.append(item)
    remind = at_nine(work, work.ctx.calendar.working_days_before(arg.due, 2))
    work.timer("action_reminder", remind, str(item["id"]),
               {"action": arg.text, "owner": owner, "due": arg.due.isoformat(),
                "support": arg.support})
    work.event(f"action #{item['id']}")
    return None


def _done(work: Work, command: Command) -> str | None:
    actions = work.data.get("actions", [])
    mine = [a for a in actions if not a.get("done")
            and (a["owner"] == work.actor or work.roles.holds(work.actor, "initiator"))]
    wanted = command.arg.lstrip("#＃").split()[:1]
    if wanted:
        mine = [a for a in mine if str(a["id"]) == wanted[0]]
    elif len(mine) > 1:
        return work.t("您名下有多项未完成待办，请写明编号，如 #done 2",
                      "you have several open action items: name one, e.g. #done 2")
    if not mine:
        return work.t(f"没有您可以完成的待办 {('#' + wanted[0]) if wanted else ''}".strip(),
                      "no open action item of yours by that number")
    item = mine[0]
    item["done"], item["done_at"] = True, work.ctx.now.isoformat()
    item["done_by"] = work.actor
    work.cancel("action_reminder", key=str(item["id"]))
    work.note("action_done", f"#{item['id']} {item['text']}")
    work.event(f"action #{item['id']} done")
    return None


def _milestone(work: Work, command: Command) -> str | None:
    parsed = parse_date(command.arg)
    if parsed is None:
        return _bad_date(work, command.arg)
    day, title = parsed
    if not title:
        return work.t("请写明节点名称，如 #milestone 2026-12-15 样机交付",
                      "name the milestone, e.g. #milestone 2026-12-15 prototype")
    if day < today(work):
        return _past(work, day)
    work.data.setdefault("milestones", []).append({"date": day.isoformat(), "title": title})
    notice = at_nine(work, work.ctx.calendar.working_days_before(day, 3))
    work.timer("milestone", notice, f"{day.isoformat()}:{title}",
               {"title": title, "date": day.isoformat(),
                "to": list(work.roles.addresses("external"))})
    work.note("milestone", f"{day.isoformat()} {title}")
    work.event(f"milestone {day}")
    return None


def _note(work: Work, command: Command) -> str | None:
    if not command.arg:
        return work.t("#note 后面请写上要记录的内容", "#note needs some text")
    work.note("note", command.arg)
    return None


def _close(work: Work, command: Command) -> str | None:
    if command.arg:
        work.note("note", command.arg)
    work.finish("closed")
    return None


def _reopen(work: Work, command: Command) -> str | None:
    work.reopen()
    receipts.reopened(work)  # the step's owner hears of it, and of the deadline
    return None


def _help(work: Work, command: Command) -> str | None:
    # to the proven From address: never Reply-To, which a forger could point anywhere
    work.send(work.proc.letters["help"], (work.actor,), automatic=True,
              commands=valid_now(work))
    work.event("help")
    return None


GENERIC: dict[str, Op] = {
    "advance": _advance, "confirm": _confirm, "due": _due, "action": _action, "done": _done,
    "milestone": _milestone, "note": _note, "close": _close, "reopen": _reopen, "help": _help,
}
