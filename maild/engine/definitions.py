"""Process definitions: the steps of each process as data, loaded and checked from TOML.

``config/processes/<process>.toml`` says, for every step: its title, the responsible role,
the expected outputs, the commands allowed and who may give them, the letters sent on
entering it, its deadline rule, whom it waits for and when it completes by itself. The
engine (``maild.engine.workflow``) applies a definition; nothing here decides anything.

The TOML is validated with pydantic (strict types, unknown keys refused); deadlines are
:class:`maild.calendar.durations.WorkingDuration`. A definition that cannot work is refused at
load with a message naming the file, the line and the key: a typo'd key, a value of the wrong
type, an unknown step, a step no path reaches, a command nobody may give, an unknown role,
condition or letter.
"""

from __future__ import annotations

import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainValidator,
    StringConstraints,
    ValidationError,
    field_validator,
)
from pydantic_core import ErrorDetails

from maild.calendar.durations import WorkingDuration
from maild.config import line_in
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
CHASES = ("quote", "order_confirmation", "delay_explanation")  # what a step's chase is for
#: process settings that are working durations ("2 working days"), checked at load
DURATION_SETTINGS = ("delay_chase_after",)
#: process-level events that send letters; each must name a letter
EVENT_LETTERS = ("refused", "help")


class ProcessError(Exception):
    """A process definition that cannot work, phrased for the admin who has to fix it."""


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
    after: WorkingDuration


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
    deadline: WorkingDuration | None = None
    urgent_deadline: WorkingDuration | None = None
    confirm_by: str = ""  # a role whose confirmation the step collects
    requires: str = ""  # condition for leaving the step with #advance
    advance_when: str = ""  # condition that moves the case on by itself
    waits_on: str = ""  # status "waiting" on entering: for the external party / initiator
    chase: Chase | None = None
    progress_days: int = 0  # progress report cadence while in this step (0: none)

    def label(self, language: str) -> str:
        return self.title_en if language == "en" else self.title

    def deadline_for(self, urgent: bool) -> WorkingDuration | None:
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
    #: what a chase is for (``quote`` …) -> (Chinese label, English label), from ``[chases]``
    chases: Mapping[str, tuple[str, str]] = field(default_factory=dict)

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

    def chase_label(self, what: str, language: str) -> str:
        """What a chased party owes, as people read it (``quote`` -> 报价); other text as is."""
        zh, en = self.chases.get(what, (what, what))
        return en if language == "en" else zh

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
#
# The TOML is validated by the pydantic models below (strict: a string where a string
# belongs; unknown keys refused), then turned into the dataclasses above and checked for
# consistency. Every problem names the file, the line and the key, like maild.toml's.

Loc = tuple[str | int, ...]  # a key path: ("steps", 1, "deadline")


def _names(value: object) -> object:
    """A single string where a list of names belongs is that one name."""
    return [value] if isinstance(value, str) else value


def _duration(value: object) -> WorkingDuration | None:
    if not isinstance(value, str):
        raise ValueError(f"must be a string, not {type(value).__name__}")
    return WorkingDuration.parse(value) if value.strip() else None


Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1)]
Names = Annotated[list[Name], BeforeValidator(_names)]
Duration = Annotated[WorkingDuration | None, PlainValidator(_duration)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class _LetterRuleModel(_Model):
    letter: str
    to: Names
    cc: Names = []
    when: str = ""
    fallback: Names = []

    def build(self) -> LetterRule:
        return LetterRule(self.letter, tuple(self.to), tuple(self.cc), self.when,
                          tuple(self.fallback))


class _ChaseModel(_Model):
    what: str
    after: Duration

    @field_validator("after")
    @classmethod
    def _given(cls, v: WorkingDuration | None) -> WorkingDuration | None:
        if v is None:
            raise ValueError("missing")
        return v


class _ChaseLabelModel(_Model):
    title: str
    title_en: str = ""


class _StepModel(_Model):
    id: str
    title: str
    title_en: str = ""
    owner: str
    outputs: Names = []
    next: str = ""
    commands: dict[str, Names] = {}
    on_enter: list[_LetterRuleModel] = []
    deadline: Duration = None
    urgent_deadline: Duration = None
    confirm_by: str = ""
    requires: str = ""
    advance_when: str = ""
    waits_on: str = ""
    chase: _ChaseModel | None = None
    progress_days: int = 0


class _ProcessModel(_Model):
    process: str
    title: str
    title_en: str = ""
    letters: dict[str, str] = {}
    settings: dict[str, Any] = {}
    commands: dict[str, Names] = {}
    closed_commands: dict[str, Names] = {}
    chases: dict[str, _ChaseLabelModel] = {}
    on_close: list[_LetterRuleModel] = []
    on_archive: list[_LetterRuleModel] = []
    steps: list[_StepModel] = Field(min_length=1)


_TYPE_NAMES = {"string_type": "a string", "int_type": "a whole number", "list_type": "a list",
               "dict_type": "a table", "model_type": "a table", "bool_type": "true or false"}


def _message(err: ErrorDetails) -> str:
    kind = err["type"]
    if kind == "missing":
        return "missing"
    if kind == "extra_forbidden":
        return "unknown key (typo?)"
    if kind in _TYPE_NAMES:
        return f"must be {_TYPE_NAMES[kind]}, not {type(err['input']).__name__}"
    if kind == "string_too_short":
        return "must not be empty"
    if kind == "too_short" and err["loc"] == ("steps",):
        return "a process needs at least one step"
    return err["msg"].removeprefix("Value error, ")


def _key(loc: Loc) -> str:
    return "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in loc).lstrip(".")


def _line(text: str, loc: Loc) -> int | None:
    """The line of ``loc`` in ``text``, inside the right ``[[…]]`` entry (``steps[1]`` is
    the lines from the second ``[[steps]]`` header to the next one): ``config.line_in``."""
    return line_in(text, loc)


def _where(source: str, text: str, loc: Loc) -> str:
    line = _line(text, loc) if loc else None
    return f"{source}:{line}" if line else source


def _validate(text: str, source: str) -> _ProcessModel:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ProcessError(f"{source}: not valid TOML: {e}") from e
    try:
        return _ProcessModel.model_validate(data)
    except ValidationError as e:
        raise ProcessError("\n".join(
            f"{_where(source, text, tuple(err['loc']))}: {_key(tuple(err['loc']))}: "
            f"{_message(err)}" for err in e.errors())) from e


def _step(m: _StepModel, defaults: Mapping[str, list[str]], next_id: str) -> Step:
    return Step(
        id=m.id, title=m.title, title_en=m.title_en or m.title, owner=m.owner,
        outputs=tuple(m.outputs), next=m.next or next_id,
        commands={k: tuple(v) for k, v in {**defaults, **m.commands}.items()},
        on_enter=tuple(r.build() for r in m.on_enter), deadline=m.deadline,
        urgent_deadline=m.urgent_deadline, confirm_by=m.confirm_by, requires=m.requires,
        advance_when=m.advance_when, waits_on=m.waits_on,
        chase=Chase(m.chase.what, m.chase.after) if m.chase and m.chase.after else None,
        progress_days=m.progress_days)


def parse_process(text: str, source: str) -> ProcessDef:
    m = _validate(text, source)
    steps: dict[str, Step] = {}
    for i, sm in enumerate(m.steps):
        if sm.id in steps:
            where = _where(source, text, ("steps", i, "id"))
            raise ProcessError(f"{where}: steps[{i}].id: step {sm.id!r} is defined twice")
        next_id = m.steps[i + 1].id if i + 1 < len(m.steps) else ARCHIVE
        steps[sm.id] = _step(sm, m.commands, next_id)
    proc = ProcessDef(
        name=m.process, title=m.title, title_en=m.title_en or m.process, steps=steps,
        closed_commands={k: tuple(v) for k, v in m.closed_commands.items()},
        letters=dict(m.letters), on_close=tuple(r.build() for r in m.on_close),
        on_archive=tuple(r.build() for r in m.on_archive), source=source,
        extra=dict(m.settings),
        chases={k: (v.title, v.title_en or v.title) for k, v in m.chases.items()})
    problems = _problems(proc)
    if problems:
        raise ProcessError("\n".join(f"{_where(source, text, loc)}: {msg}"
                                     for loc, msg in problems))
    return proc


# -- checking ------------------------------------------------------------------------------

Problem = tuple[Loc, str]  # where in the TOML (for the line number), and what is wrong


def _role_ok(role: str) -> bool:
    return role in ROLES or role.startswith("dept:") and len(role) > 5


def _check_rules(where: str, loc: Loc, rules: Iterable[LetterRule]) -> list[Problem]:
    out = []
    for j, rule in enumerate(rules):
        for key in ("to", "cc", "fallback"):
            for role in getattr(rule, key):
                if not _role_ok(role):
                    out.append(((*loc, j, key),
                                f"{where}: letter {rule.letter!r} goes to unknown role {role!r}"))
        if rule.when and rule.when not in CONDITIONS:
            out.append(((*loc, j, "when"),
                        f"{where}: letter {rule.letter!r} has unknown condition {rule.when!r}"))
    return out


def _check_commands(where: str, loc: Loc,
                    commands: Mapping[str, tuple[str, ...]]) -> list[Problem]:
    out = []
    for cmd, roles in commands.items():
        at = f"{where}.{cmd}"
        if cmd not in COMMANDS:
            out.append(((*loc, cmd), f"{at}: unknown command (known: {', '.join(COMMANDS)})"))
        if not roles:
            out.append(((*loc, cmd), f"{at}: no role may give this command"))
        for role in roles:
            if not _role_ok(role) or role in EXTERNAL_ROLES:
                out.append(((*loc, cmd), f"{at}: {role!r} is not a staff role (known: "
                            f"{', '.join(r for r in ROLES if r not in EXTERNAL_ROLES)}"
                            ", dept:NAME)"))
    return out


def _check_step(s: Step, i: int, proc: ProcessDef) -> list[Problem]:
    where, at = f"step {s.id!r}", ("steps", i)
    out = _check_commands(f"{where}.commands", (*at, "commands"), s.commands)
    out += _check_rules(where, (*at, "on_enter"), s.on_enter)
    wrong: list[tuple[str, bool, str]] = [
        ("next", s.next != ARCHIVE and s.next not in proc.steps,
         f"next step {s.next!r} is not defined"),
        ("owner", not _role_ok(s.owner), f"owner {s.owner!r} is not a known role"),
        ("confirm_by", bool(s.confirm_by) and not _role_ok(s.confirm_by),
         f"confirm_by {s.confirm_by!r} is not a known role"),
        *((key, bool(getattr(s, key)) and getattr(s, key) not in CONDITIONS,
           f"{key} {getattr(s, key)!r} is not a known condition (known: "
           f"{', '.join(CONDITIONS)})") for key in ("requires", "advance_when")),
        ("requires" if s.requires == "confirmed" else "advance_when",
         "confirmed" in (s.requires, s.advance_when) and not s.confirm_by,
         "uses the condition 'confirmed' but has no confirm_by"),
        ("commands", "confirm" in s.commands and not s.confirm_by,
         "allows #confirm but says nobody's confirmation it collects (confirm_by)"),
        ("waits_on", s.waits_on not in WAITS_ON,
         f"waits_on must be one of {', '.join(map(repr, WAITS_ON))}"),
        ("chase", s.chase is not None and s.chase.what not in CHASES,
         "chase.what must be quote, order_confirmation or delay_explanation"),
        ("chase", s.chase is not None and s.chase.what in CHASES
         and s.chase.what not in proc.chases,
         f"chase.what {s.chase.what if s.chase else ''!r} has no label in [chases] "
         "(what the chased party reads)"),
        ("progress_days", s.progress_days not in (0, 7, 14),
         "progress_days must be 7 or 14 (or 0 for none)"),
    ]
    return out + [((*at, key), f"{where}: {msg}") for key, bad, msg in wrong if bad]


def _problems(proc: ProcessDef) -> list[Problem]:
    if proc.name not in PROCESS_NAMES:
        return [(("process",),
                 f"process: {proc.name!r} is not one of {', '.join(PROCESS_NAMES)}")]
    out: list[Problem] = []
    for i, s in enumerate(proc.steps.values()):
        out += _check_step(s, i, proc)
    out += _check_commands("closed_commands", ("closed_commands",), proc.closed_commands)
    out += _check_rules("on_close", ("on_close",), proc.on_close)
    out += _check_rules("on_archive", ("on_archive",), proc.on_archive)
    for event in EVENT_LETTERS:
        if event not in proc.letters:
            out.append((("letters",), f"letters.{event}: missing (the letter sent on this "
                        "event)"))
    for what in proc.chases:
        if what not in CHASES:
            out.append((("chases", what), f"chases.{what}: unknown (known: "
                        f"{', '.join(CHASES)})"))
    for key in DURATION_SETTINGS:
        if key in proc.extra:
            try:
                _duration(proc.extra[key])
            except ValueError as e:
                out.append((("settings", key), f"settings.{key}: {e}"))
    return out + _unreachable(proc)


def _unreachable(proc: ProcessDef) -> list[Problem]:
    out: list[Problem] = []
    seen, todo = set(), [proc.first.id]
    while todo:
        sid = todo.pop()
        if sid in seen or sid not in proc.steps:
            continue
        seen.add(sid)
        todo.append(proc.steps[sid].next)
    for i, sid in enumerate(proc.steps):
        if sid not in seen:
            out.append((("steps", i),
                        f"step {sid!r}: unreachable (no step's next leads to it)"))
    if proc.steps and not any(s.next == ARCHIVE for s in proc.steps.values()
                              if s.id in seen):
        out.append(((), "no step leads to the archive: a case could never finish"))
    return out


def check_process(proc: ProcessDef) -> list[str]:
    """Everything wrong with a definition; an empty list when it can run."""
    return [msg for _, msg in _problems(proc)]


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
            problems.append(f"{_where(str(path), text, ('process',))}: process: says "
                            f"{proc.name!r}, the file name says {name!r}")
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
