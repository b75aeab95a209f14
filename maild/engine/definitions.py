"""Process definitions: the steps of each process as data, loaded and checked from TOML.

``config/processes/<process>.toml`` says, for every step: its title, the responsible role,
the expected outputs, the commands allowed and who may give them, the letters sent on
entering it, its deadline rule, whom it waits for and when it completes by itself. The
engine (``maild.engine.workflow``) applies a definition; nothing here decides anything.

A definition that cannot work is refused at load with a message naming the file and the
key: an unknown step, a step no path reaches, a command nobody may give, an unknown role,
condition or letter.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from maild.calendar.business import BusinessCalendar
from maild.data import processes_dir
from maild.mail.commands import COMMANDS

DEFAULT_DIR = processes_dir()
PROCESS_NAMES = ("internal", "customer", "supplier")
ARCHIVE = "archive"  # ``next`` of the last step: finishing it archives the case

#: role -> (Chinese label, English label); ``dept:NAME`` is any member of department NAME
ROLES: dict[str, tuple[str, str]] = {
    "staff": ("通讯录中的员工", "staff in the directory"),
    "manager": ("管理层", "a manager"),
    "head": ("部门负责人", "a department head"),
    "initiator": ("发起人", "the initiator"),
    "initiator_head": ("发起部门负责人", "the initiating department's head"),
    "receiver_head": ("接收部门负责人", "the receiving department's head"),
    "receiver": ("接收部门成员", "the receiving department"),
    "participant": ("参与部门", "a participating department"),
    "action_owner": ("待办负责人", "the action item's owner"),
    "contact": ("对接人", "the case's contact"),
    "owner": ("当前步骤负责人", "the step's owner"),
    "legal": ("法务部", "the legal department"),
    "external": ("外部联系人", "the external party"),
}
#: roles that stand for people outside the organisation: for letters and confirmations only
EXTERNAL_ROLES = frozenset({"external"})

#: named conditions: ``when`` of a letter, ``requires`` and ``advance_when`` of a step
CONDITIONS: dict[str, str] = {
    "urgent": "the case is urgent",
    "not_urgent": "the case is not urgent",
    "staff_opened": "a member of staff opened the case",
    "party_opened": "the external party opened the case",
    "form_complete": "the request form has every required field",
    "confirmed": "everyone in the step's confirm_by has confirmed",
    "actions_recorded": "the case has action items",
    "all_actions_done": "every action item is done",
    "report_submitted": "the result report was submitted",
    "answered": "the external party answered in this step",
    "invoice_received": "the supplier's invoice arrived",
}
WAITS_ON = ("", "external", "initiator")
_DEADLINE = re.compile(r"^\s*(\d+)\s*(?:个)?\s*(working days?|working hours?|工作日|工作小时|"
                       r"个工作日|个工作小时)\s*$")
#: process-level events that send letters; each must name a letter
EVENT_LETTERS = ("refused", "help")


class ProcessError(Exception):
    """A process definition that cannot work, phrased for the admin who has to fix it."""


@dataclass(frozen=True)
class Deadline:
    amount: int
    unit: str  # "days" or "hours" of working time

    def due(self, calendar: BusinessCalendar, now: datetime) -> datetime:
        if self.unit == "days":
            return calendar.add_working_days(now, self.amount)
        return calendar.add_working(now, timedelta(hours=self.amount))

    def __str__(self) -> str:
        return f"{self.amount} working {'day' if self.unit == 'days' else 'hour'}" + \
            ("s" if self.amount != 1 else "")


@dataclass(frozen=True)
class LetterRule:
    """A letter sent on an event, to the people the roles stand for."""

    letter: str
    to: tuple[str, ...]
    cc: tuple[str, ...] = ()
    when: str = ""  # a condition; "" = always
    fallback: tuple[str, ...] = ()  # recipients when ``to`` resolves to nobody


@dataclass(frozen=True)
class Chase:
    what: str  # quote / order_confirmation / delay_explanation
    after: Deadline


@dataclass(frozen=True)
class Step:
    id: str
    title: str
    title_en: str
    owner: str  # a role
    outputs: tuple[str, ...]
    next: str  # a step id or ARCHIVE
    commands: Mapping[str, tuple[str, ...]]  # command -> roles allowed
    on_enter: tuple[LetterRule, ...] = ()
    deadline: Deadline | None = None
    urgent_deadline: Deadline | None = None
    confirm_by: str = ""  # a role whose confirmation the step collects
    requires: str = ""  # condition for leaving the step with #advance
    advance_when: str = ""  # condition that moves the case on by itself
    waits_on: str = ""  # status "waiting" on entering: for the external party / initiator
    chase: Chase | None = None
    progress_days: int = 0  # progress report cadence while in this step (0: none)

    def label(self, language: str) -> str:
        return self.title_en if language == "en" else self.title

    def deadline_for(self, urgent: bool) -> Deadline | None:
        return (self.urgent_deadline or self.deadline) if urgent else self.deadline


@dataclass(frozen=True)
class ProcessDef:
    name: str
    title: str
    title_en: str
    steps: Mapping[str, Step]  # in order; the first is where a case starts
    closed_commands: Mapping[str, tuple[str, ...]]
    letters: Mapping[str, str]  # event -> letter name (refused, help, …)
    on_close: tuple[LetterRule, ...] = ()
    on_archive: tuple[LetterRule, ...] = ()
    source: str = ""  # the file it came from
    extra: Mapping[str, Any] = field(default_factory=dict)  # process-specific settings

    @property
    def first(self) -> Step:
        return next(iter(self.steps.values()))

    def step(self, step_id: str) -> Step:
        try:
            return self.steps[step_id]
        except KeyError:
            raise ProcessError(f"process {self.name}: no step {step_id!r}") from None

    def label(self, language: str) -> str:
        return self.title_en if language == "en" else self.title

    def letter_names(self) -> set[str]:
        rules = [*self.on_close, *self.on_archive,
                 *(r for s in self.steps.values() for r in s.on_enter)]
        return {r.letter for r in rules} | set(self.letters.values())


def role_label(role: str, language: str) -> str:
    if role.startswith("dept:"):
        return role[5:]
    zh, en = ROLES.get(role, (role, role))
    return en if language == "en" else zh


# -- loading -------------------------------------------------------------------------------


class _Reader:
    """Typed access to one TOML table, with errors that name the file and key."""

    def __init__(self, source: str, data: Mapping[str, Any], where: str) -> None:
        self.source, self.data, self.where = source, data, where
        self.used: set[str] = set()

    def fail(self, key: str, msg: str) -> ProcessError:
        path = f"{self.where}.{key}" if self.where else key
        return ProcessError(f"{self.source}: {path}: {msg}")

    def get(self, key: str, kind: type | tuple[type, ...], default: Any = None) -> Any:
        self.used.add(key)
        if key not in self.data:
            if default is None:
                raise self.fail(key, "missing")
            return default
        value = self.data[key]
        if not isinstance(value, kind) or isinstance(value, bool) and kind is int:
            raise self.fail(key, f"must be {_kind_name(kind)}, not {type(value).__name__}")
        return value

    def strings(self, key: str, default: tuple[str, ...] | None = ()) -> tuple[str, ...]:
        value = self.get(key, (list, str), list(default) if default is not None else None)
        items = [value] if isinstance(value, str) else value
        if not all(isinstance(v, str) and v.strip() for v in items):
            raise self.fail(key, "must be a list of non-empty strings")
        return tuple(v.strip() for v in items)

    def done(self) -> None:
        extra = sorted(set(self.data) - self.used)
        if extra:
            raise self.fail(extra[0], "unknown key (typo?)")


def _kind_name(kind: type | tuple[type, ...]) -> str:
    kinds = kind if isinstance(kind, tuple) else (kind,)
    names = {str: "a string", int: "a whole number", list: "a list", dict: "a table"}
    return " or ".join(names.get(k, k.__name__) for k in kinds)


def parse_deadline(text: str) -> Deadline | None:
    """``"1 working day"``, ``"2 working hours"``, ``"3 个工作日"``; None when unlike that."""
    m = _DEADLINE.match(text)
    if not m or int(m.group(1)) < 1:
        return None
    unit = "hours" if "hour" in m.group(2) or "小时" in m.group(2) else "days"
    return Deadline(int(m.group(1)), unit)


def _deadline(r: _Reader, key: str) -> Deadline | None:
    text = r.get(key, str, "")
    if not text:
        return None
    rule = parse_deadline(text)
    if rule is None:
        raise r.fail(key, f"{text!r} is not a rule like \"1 working day\" or "
                     "\"2 working hours\"")
    return rule


def _letters(r: _Reader, key: str) -> tuple[LetterRule, ...]:
    items = r.get(key, list, [])
    out = []
    for i, item in enumerate(items):
        if not isinstance(item, dict):
            raise r.fail(f"{key}[{i}]", "must be a table with letter and to")
        lr = _Reader(r.source, item, f"{r.where + '.' if r.where else ''}{key}[{i}]")
        rule = LetterRule(lr.get("letter", str), lr.strings("to", None), lr.strings("cc"),
                          lr.get("when", str, ""), lr.strings("fallback"))
        lr.done()
        out.append(rule)
    return tuple(out)


def _commands(r: _Reader, key: str) -> dict[str, tuple[str, ...]]:
    table = r.get(key, dict, {})
    cr = _Reader(r.source, table, f"{r.where + '.' if r.where else ''}{key}")
    return {name: cr.strings(name) for name in table}


def _step(r: _Reader, defaults: Mapping[str, tuple[str, ...]]) -> dict[str, Any]:
    chase = None
    if "chase" in r.data:
        cr = _Reader(r.source, r.get("chase", dict), f"{r.where}.chase")
        after = _deadline(cr, "after")
        if after is None:
            raise cr.fail("after", "missing")
        chase = Chase(cr.get("what", str), after)
        cr.done()
    step = dict(
        id=r.get("id", str), title=r.get("title", str), title_en=r.get("title_en", str, ""),
        owner=r.get("owner", str), outputs=r.strings("outputs"), next=r.get("next", str, ""),
        commands={**defaults, **_commands(r, "commands")}, on_enter=_letters(r, "on_enter"),
        deadline=_deadline(r, "deadline"), urgent_deadline=_deadline(r, "urgent_deadline"),
        confirm_by=r.get("confirm_by", str, ""), requires=r.get("requires", str, ""),
        advance_when=r.get("advance_when", str, ""), waits_on=r.get("waits_on", str, ""),
        chase=chase, progress_days=r.get("progress_days", int, 0))
    r.done()
    return step


def parse_process(text: str, source: str) -> ProcessDef:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ProcessError(f"{source}: not valid TOML: {e}") from e
    r = _Reader(source, data, "")
    name = r.get("process", str)
    defaults = _commands(r, "commands")
    raw_steps = r.get("steps", list)
    if not raw_steps:
        raise r.fail("steps", "a process needs at least one step")
    steps: dict[str, Step] = {}
    parsed = []
    for i, item in enumerate(raw_steps):
        if not isinstance(item, dict):
            raise r.fail(f"steps[{i}]", "must be a table")
        parsed.append(_step(_Reader(source, item, f"steps[{i}]"), defaults))
    for i, s in enumerate(parsed):
        if s["id"] in steps:
            raise r.fail(f"steps[{i}].id", f"step {s['id']!r} is defined twice")
        if not s["next"]:
            s["next"] = parsed[i + 1]["id"] if i + 1 < len(parsed) else ARCHIVE
        s["title_en"] = s["title_en"] or s["title"]
        steps[s["id"]] = Step(**s)
    letters = r.get("letters", dict, {})
    proc = ProcessDef(
        name=name, title=r.get("title", str), title_en=r.get("title_en", str, "") or name,
        steps=steps, closed_commands=_commands(r, "closed_commands"),
        letters={str(k): str(v) for k, v in letters.items()},
        on_close=_letters(r, "on_close"), on_archive=_letters(r, "on_archive"),
        source=source, extra=r.get("settings", dict, {}))
    r.done()
    problems = check_process(proc)
    if problems:
        raise ProcessError("\n".join(f"{source}: {p}" for p in problems))
    return proc


# -- checking ------------------------------------------------------------------------------


def _role_ok(role: str) -> bool:
    return role in ROLES or role.startswith("dept:") and len(role) > 5


def _check_rules(where: str, rules: Iterable[LetterRule]) -> list[str]:
    out = []
    for rule in rules:
        for role in (*rule.to, *rule.cc, *rule.fallback):
            if not _role_ok(role):
                out.append(f"{where}: letter {rule.letter!r} goes to unknown role {role!r}")
        if rule.when and rule.when not in CONDITIONS:
            out.append(f"{where}: letter {rule.letter!r} has unknown condition {rule.when!r}")
    return out


def _check_commands(where: str, commands: Mapping[str, tuple[str, ...]]) -> list[str]:
    out = []
    for cmd, roles in commands.items():
        if cmd not in COMMANDS:
            out.append(f"{where}.commands.{cmd}: unknown command (known: "
                       f"{', '.join(COMMANDS)})")
        if not roles:
            out.append(f"{where}.commands.{cmd}: no role may give this command")
        for role in roles:
            if not _role_ok(role) or role in EXTERNAL_ROLES:
                out.append(f"{where}.commands.{cmd}: {role!r} is not a staff role "
                           f"(known: {', '.join(r for r in ROLES if r not in EXTERNAL_ROLES)}"
                           ", dept:NAME)")
    return out


def _check_step(s: Step, proc: ProcessDef) -> list[str]:
    where = f"step {s.id!r}"
    out = _check_commands(where, s.commands) + _check_rules(where, s.on_enter)
    if s.next != ARCHIVE and s.next not in proc.steps:
        out.append(f"{where}: next step {s.next!r} is not defined")
    if not _role_ok(s.owner):
        out.append(f"{where}: owner {s.owner!r} is not a known role")
    if s.confirm_by and not _role_ok(s.confirm_by):
        out.append(f"{where}: confirm_by {s.confirm_by!r} is not a known role")
    for key in ("requires", "advance_when"):
        cond = getattr(s, key)
        if cond and cond not in CONDITIONS:
            out.append(f"{where}: {key} {cond!r} is not a known condition "
                       f"(known: {', '.join(CONDITIONS)})")
    if "confirmed" in (s.requires, s.advance_when) and not s.confirm_by:
        out.append(f"{where}: uses the condition 'confirmed' but has no confirm_by")
    if "confirm" in s.commands and not s.confirm_by:
        out.append(f"{where}: allows #confirm but says nobody's confirmation it collects "
                   "(confirm_by)")
    if s.waits_on not in WAITS_ON:
        out.append(f"{where}: waits_on must be one of {', '.join(map(repr, WAITS_ON))}")
    if s.chase and s.chase.what not in ("quote", "order_confirmation", "delay_explanation"):
        out.append(f"{where}: chase.what must be quote, order_confirmation or "
                   "delay_explanation")
    if s.progress_days not in (0, 7, 14):
        out.append(f"{where}: progress_days must be 7 or 14 (or 0 for none)")
    return out


def check_process(proc: ProcessDef) -> list[str]:
    """Everything wrong with a definition; an empty list when it can run."""
    if proc.name not in PROCESS_NAMES:
        return [f"process: {proc.name!r} is not one of {', '.join(PROCESS_NAMES)}"]
    out: list[str] = []
    for s in proc.steps.values():
        out += _check_step(s, proc)
    out += _check_commands("closed_commands", proc.closed_commands)
    out += _check_rules("on_close", proc.on_close) + _check_rules("on_archive", proc.on_archive)
    for event in EVENT_LETTERS:
        if event not in proc.letters:
            out.append(f"letters.{event}: missing (the letter sent on this event)")
    seen, todo = set(), [proc.first.id]
    while todo:
        sid = todo.pop()
        if sid in seen or sid not in proc.steps:
            continue
        seen.add(sid)
        todo.append(proc.steps[sid].next)
    for sid in proc.steps:
        if sid not in seen:
            out.append(f"step {sid!r}: unreachable (no step's next leads to it)")
    if proc.steps and not any(s.next == ARCHIVE for s in proc.steps.values()
                              if s.id in seen):
        out.append("no step leads to the archive: a case could never finish")
    return out


def check_letters(processes: Mapping[str, ProcessDef], known: Iterable[str]) -> list[str]:
    """Letters the definitions name that have no template (``known``: e.g. ``ack.zh``)."""
    have = {n.rpartition(".")[0] for n in known}
    out = []
    for proc in processes.values():
        for letter in sorted(proc.letter_names() - have):
            out.append(f"{proc.source}: letter {letter!r} has no template "
                       f"({letter}.zh.txt.j2 and .html.j2)")
    return out


def load_processes(directory: Path | None = None) -> dict[str, ProcessDef]:
    """Every process's definition from ``directory`` (default: the shipped ones)."""
    folder = directory or DEFAULT_DIR
    out: dict[str, ProcessDef] = {}
    problems = []
    for name in PROCESS_NAMES:
        path = folder / f"{name}.toml"
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as e:
            problems.append(f"{path}: cannot read: {e.strerror or e}")
            continue
        try:
            proc = parse_process(text, str(path))
        except ProcessError as e:
            problems.append(str(e))
            continue
        if proc.name != name:
            problems.append(f"{path}: process: says {proc.name!r}, the file name says {name!r}")
            continue
        out[name] = proc
    if problems:
        raise ProcessError("\n".join(problems))
    return out


def directory_warnings(processes: Mapping[str, ProcessDef], departments: Iterable[str],
                       legal_department: str, managers: int = 1) -> list[str]:
    """Roles that name departments the directory does not have: nobody would hold them."""
    names = set(departments)
    out = []
    for proc in processes.values():
        roles: set[str] = set()
        for s in proc.steps.values():
            roles.update(r for rs in s.commands.values() for r in rs)
            roles.update(r for rule in s.on_enter for r in (*rule.to, *rule.cc))
        for role in sorted(r for r in roles if r.startswith("dept:")):
            if role[5:] not in names:
                out.append(f"{proc.source}: role {role!r}: the directory has no department "
                           f"{role[5:]!r}, so nobody holds this role")
        if "legal" in roles and legal_department not in names:
            out.append(f"{proc.source}: role 'legal': the directory has no legal department "
                       f"{legal_department!r} (directory.legal_department)")
        intake = proc.extra.get("intake_department")
        if intake and intake not in names:
            out.append(f"{proc.source}: settings.intake_department: the directory has no "
                       f"department {intake!r}; new {proc.name} cases without a known contact "
                       "go to the managers")
        if proc.name != "internal" and not intake and not managers:
            out.append(f"{proc.source}: new {proc.name} cases from parties without a "
                       "contact notify nobody: set settings.intake_department or add "
                       "[[directory.managers]]")
    return out
