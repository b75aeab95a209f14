"""Every command in every step of every process: allowed roles, refused roles, outsiders.

The states come from real mails (``flows.py``). For each command a step allows, someone
holding each permitted role gives it and is not refused for who they are; someone in the
directory holding none of them is refused with a reply saying who may; a command the step
does not take is refused saying so; the external party's command is recorded and changes
nothing.
"""

from __future__ import annotations

import pytest
from flows import EXTERNAL, at_step
from sim import Sim

from maild.engine.effects import Decision, Note
from maild.engine.roles import CaseFacts, Roles
from maild.handlers import load_definitions
from maild.mail.commands import COMMANDS

PROCS = load_definitions(None)
POOL = ["zhang@corp.example.test", "li@corp.example.test", "wang@corp.example.test",
        "ma@corp.example.test", "qian@corp.example.test", "zhao@corp.example.test",
        "sun@corp.example.test", "zhou@corp.example.test", "wu@corp.example.test",
        "zheng@corp.example.test", "chen@corp.example.test"]
ROLE_WORDS = ("只能由", "不接受", "通讯录")


def body(process: str, command: str) -> str:
    args = {
        "advance": "#advance\n方案与纪要：按讨论执行。\n规格：HX-201\n数量：500 件\n"
                   "交货日期：2026-12-20\n验收标准：全检\n",
        "assign": "#assign 财务部" if process == "internal" else "#assign li@corp.example.test",
        "due": "#due 2026-12-20",
        "action": "#action 测试事项 | li@corp.example.test | 2026-12-20 | 无",
        "done": "#done 1",
        "delay": "#delay 2026-12-28 原材料短缺",
        "milestone": "#milestone 2026-12-15 样机交付",
        "revise": "#revise\n修订方案：一次交齐。",
        "note": "#note 已电话沟通",
    }
    return args.get(command, f"#{command}") + "\n"


def refusals(d: Decision) -> list[str]:
    return [e.text for e in d.effects if isinstance(e, Note) and e.kind == "refused"]


def roles_of(s: Sim, number: str) -> Roles:
    v = s.case(number)
    return Roles(s.directory, CaseFacts(v.department, v.owner, v.data))


def _cases() -> list[tuple[str, str, str]]:
    return [(p, step, cmd) for p, proc in PROCS.items() for step in proc.steps
            for cmd in COMMANDS]


@pytest.mark.parametrize("process, step, command", _cases())
def test_command_in_step(process: str, step: str, command: str) -> None:
    s, number = at_step(process, step)
    allowed = PROCS[process].step(step).commands
    roles = roles_of(s, number)
    if command not in allowed:
        sender = "chen@corp.example.test"
        d = s.reply(number, sender, body(process, command))
        [why] = refusals(d)
        assert "不接受" in why and f"#{command}" in why
        assert s.sent[-1].letter == "command_refused" and s.sent[-1].to == (sender,)
        return
    for role in allowed[command]:
        holder = next((p for p in POOL if roles.holds(p, role)), None)
        assert holder is not None, f"nobody holds {role} in {process}/{step}"
        s2, n2 = at_step(process, step)
        d = s2.reply(n2, holder, body(process, command))
        assert not [r for r in refusals(d) if any(w in r for w in ROLE_WORDS)], (role, holder)
    outsiders = [p for p in POOL if roles.in_directory(p)
                 and not any(roles.holds(p, r) for r in allowed[command])]
    if outsiders:
        s3, n3 = at_step(process, step)
        before = s3.case(n3)
        d = s3.reply(n3, outsiders[0], body(process, command))
        [why] = refusals(d)
        assert "只能由" in why
        after = s3.case(n3)
        assert (after.step, after.status) == (before.step, before.status)
        assert s3.sent[-1].letter == "command_refused"


@pytest.mark.parametrize("process", list(PROCS))
@pytest.mark.parametrize("command", list(COMMANDS))
def test_an_external_partys_command_is_recorded_and_changes_nothing(process: str,
                                                                    command: str) -> None:
    # a step where nobody waits on them: their reply as such changes nothing either
    step = {"internal": "confirm", "customer": "execution", "supplier": "evaluation"}[process]
    s, number = at_step(process, step)
    before = s.case(number)
    sent = len(s.sent)
    d = s.reply(number, EXTERNAL[process], f"#{command} 2026-12-20 x\n请尽快处理。")
    after = s.case(number)
    assert (after.step, after.status, after.owner) == (before.step, before.status, before.owner)
    assert not refusals(d)
    ignored = [e for e in d.effects if isinstance(e, Note) and e.kind == "ignored"]
    assert ignored and f"#{command}" in ignored[0].text
    assert "command_refused" not in s.names(sent)


@pytest.mark.parametrize("process", list(PROCS))
def test_commands_on_a_closed_case(process: str) -> None:
    s, number = at_step(process, list(PROCS[process].steps)[1])
    owner = s.case(number).owner[0]
    closer = next(p for p in POOL if roles_of(s, number).holds(
        p, PROCS[process].step(s.case(number).step).commands["close"][0]))
    s.reply(number, closer, "#close 需求取消")
    assert s.case(number).status == "closed"
    assert s.cases[number].closed_at is not None
    assert s.cases[number].pending_timers() == []
    d = s.reply(number, closer, "#advance")
    [why] = refusals(d)
    assert "已关闭" in why
    reopeners = PROCS[process].closed_commands["reopen"]
    outsider = next(p for p in POOL if not any(roles_of(s, number).holds(p, r)
                                               for r in reopeners))
    d = s.reply(number, outsider, "#reopen")
    assert "只能由" in refusals(d)[0]
    reopener = next(p for p in POOL if any(roles_of(s, number).holds(p, r) for r in reopeners))
    d = s.reply(number, reopener, "#reopen")
    assert not refusals(d)
    assert s.case(number).status in ("open", "waiting") and s.cases[number].closed_at is None
    assert owner in s.case(number).owner or s.case(number).owner
