"""Staff commands: the vocabulary (``#advance``, ``#推进`` …) and reading them from a mail.

Commands are read from the lines of a reply above the quoted part (``maild.mail.quoting``): a
line that starts with ``#`` or ``＃`` followed by a word. Argument-free commands also work as
subject tags (``Re: [2026-技-005] … [确认]``). Parsing is pure; whether a command is allowed
in a step and for whom is the process definitions' business (``maild.engine.definitions``).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date

from maild.mail.quoting import reply_top


@dataclass(frozen=True)
class CommandSpec:
    name: str
    aliases: tuple[str, ...]  # matched case-insensitively, without the '#'
    args: str  # none / text / date_text / action / departments / optional_text
    summary_zh: str
    summary_en: str
    usage: str

    @property
    def tag_ok(self) -> bool:
        """Commands that need no argument may be given as a subject tag."""
        return self.args in ("none", "optional_text")


SPECS: tuple[CommandSpec, ...] = (
    CommandSpec("advance", ("推进", "下一步", "next"), "optional_text",
                "完成本步骤，进入下一步", "finish this step and move on", "#advance"),
    CommandSpec("confirm", ("确认", "同意", "ok"), "none",
                "确认（参与名单、纪要、审核或验收）",
                "confirm (parties, minutes, review, acceptance)",
                "#confirm"),
    CommandSpec("assign", ("指派", "分派", "转交"), "text",
                "增加参与部门或指定负责人", "add departments or name the person in charge",
                "#assign 部门名称或邮箱"),
    CommandSpec("due", ("截止", "期限"), "date_text",
                "设定本步骤的截止日期", "set this step's due date", "#due 2026-12-10"),
    CommandSpec("action", ("待办", "行动"), "action",
                "登记待办事项", "record an action item",
                "#action 描述 | 负责人邮箱或部门 | 2026-12-10 | 所需支持"),
    CommandSpec("done", ("完成",), "optional_text",
                "标记待办事项完成", "mark an action item done", "#done 2"),
    CommandSpec("delay", ("延期", "延迟"), "date_text",
                "登记延期并要求《延期说明》", "record a delay and ask for an explanation",
                "#delay 2026-12-20 原材料短缺"),
    CommandSpec("milestone", ("节点", "里程碑"), "date_text",
                "登记重大节点（提前 3 个工作日通知客户）",
                "record a milestone (announced 3 working days ahead)",
                "#milestone 2026-12-15 样机交付"),
    CommandSpec("meeting", ("会议", "会议邀请"), "text",
                "发送会议邀请（日历），再发一次即改期；#meeting cancel 取消",
                "send a calendar invitation (again: reschedule; #meeting cancel: cancel)",
                "#meeting 2026-12-03 14:00 会议室A 1h"),
    CommandSpec("revise", ("修订", "修改"), "optional_text",
                "发送修订版确认函", "send a revised confirmation letter",
                "#revise 修订内容"),
    CommandSpec("note", ("备注", "记录"), "text",
                "在时间线上记一笔", "add a note to the timeline", "#note 文字"),
    CommandSpec("close", ("关闭", "结案"), "optional_text",
                "关闭案件", "close the case", "#close"),
    CommandSpec("reopen", ("重开", "重新打开"), "optional_text",
                "重新打开已关闭的案件", "reopen a closed case", "#reopen"),
    CommandSpec("help", ("帮助", "命令"), "none",
                "回复当前可用的命令", "reply with the commands valid now", "#help"),
    CommandSpec("form", ("申请表",), "none",
                "新邮件中：回复空白的《跨部门沟通需求申请表》（不建案件）",
                "in a new mail: reply with the blank request form (opens no case)", "#form"),
)


def _registry(specs: tuple[CommandSpec, ...]) -> tuple[dict[str, CommandSpec],
                                                          dict[str, CommandSpec]]:
    by_name: dict[str, CommandSpec] = {}
    by_word: dict[str, CommandSpec] = {}
    for s in specs:
        if s.name in by_name:
            raise RuntimeError(f"command {s.name!r} defined twice")
        by_name[s.name] = s
        for word in (s.name, *s.aliases):
            key = word.casefold()
            if key in by_word:
                raise RuntimeError(f"command word {word!r} used by {by_word[key].name!r} "
                                   f"and {s.name!r}")
            by_word[key] = s
    return by_name, by_word


COMMANDS, _BY_WORD = _registry(SPECS)
#: English subject tags, e.g. [ADVANCE], besides the command words themselves
_TAG_WORDS = {w: s for w, s in _BY_WORD.items() if s.tag_ok}

_LINE = re.compile(r"^\s*[#＃]([A-Za-zＡ-Ｚａ-ｚ]+|[\u3400-\u9fff]+)(.*)$")
MAX_COMMANDS = 50  # commands read from one mail; the rest are not looked at
MAX_LINE = 300  # characters of a command line kept for notes and refusals
MAX_ARG = 2000  # characters of a command's argument
_SEP = " \t\u3000:：,，"
_DATE = re.compile(r"^(\d{4})\s*[-/.年]\s*(\d{1,2})\s*[-/.月]\s*(\d{1,2})\s*日?")


@dataclass(frozen=True)
class Command:
    """One command as given: ``name`` is None for an unknown word."""

    name: str | None
    word: str  # as written, e.g. "推进"
    arg: str  # the rest of the line, stripped
    source: str  # "body" or "subject"
    line: str  # the whole line as written, for replies

    @property
    def spec(self) -> CommandSpec | None:
        return COMMANDS.get(self.name) if self.name else None


def parse_commands(text: str, subject: str = "", *,
                   inherited: Iterable[str] = ()) -> tuple[Command, ...]:
    """Every command in the reply's own part (above the quote), then the subject's tags.

    ``inherited``: subjects the reply's subject may simply repeat (the letter it answers,
    the case's own subject). A command tag one of them already carries is not the sender's:
    a ``Re:`` keeps it, so it counts only when the sender added it.
    """
    out: list[Command] = []
    for line in reply_top(text).splitlines():
        m = _LINE.match(line)
        if not m:
            continue
        word, rest = _split_word(unicodedata.normalize("NFKC", m.group(1)), m.group(2))
        if word is None:
            continue  # "#1 问题", "#hashtag…": not meant as a command
        spec = _BY_WORD.get(word.casefold())
        out.append(Command(spec.name if spec else None, word,
                           _cut(rest.strip(_SEP).strip(), MAX_ARG), "body",
                           _cut(line.strip(), MAX_LINE)))
        if len(out) >= MAX_COMMANDS:
            break
    given = {c.name for c in out}
    given |= inherited_commands(inherited)
    for tag in subject_command_tags(subject):
        if tag.name not in given:
            out.append(tag)
            given.add(tag.name)
    return tuple(out)


def _cut(value: str, limit: int) -> str:
    return value if len(value) <= limit else value[: limit - 1] + "…"


def _split_word(word: str, rest: str) -> tuple[str | None, str]:
    """The command word and its argument; Chinese needs no space ("#确认，没问题")."""
    if word.isascii():
        return (word, rest) if not rest or rest[0] in _SEP else (None, rest)
    if word.casefold() in _BY_WORD:
        return word, rest
    for n in range(len(word) - 1, 0, -1):
        if word[:n] in _BY_WORD:
            return word[:n], word[n:] + rest
    return word, rest  # an unknown Chinese word: reported as an unknown command


_OPEN, _CLOSE = "[【", "]】"  # after NFKC: ［ ﹇ are [, ︻ is 【 (and their closers)
_BRACKETED = re.compile(r"[\[【]([^\[\]【】]*)[\]】]")


def _tag_command(word: str, line: str) -> Command | None:
    word = word.strip().lstrip("#")
    spec = _TAG_WORDS.get(word.casefold()) if 0 < len(word) <= 16 else None
    return Command(spec.name, word, "", "subject", line) if spec is not None else None


def subject_command_tags(subject: str) -> tuple[Command, ...]:
    """Command tags of a subject: ``[确认]``, ``【推进】``, ``[CLOSE]``, also written with
    full-width brackets or letters (matched after NFKC). Only a tag that stands alone counts:
    one inside other brackets (``[关[关闭]闭]``) is text, not a command."""
    out: list[Command] = []
    text = unicodedata.normalize("NFKC", subject)
    depth, start = 0, -1
    for i, ch in enumerate(text):
        if ch in _OPEN:
            depth += 1
            start = i if depth == 1 else -1
        elif ch in _CLOSE:
            if depth == 1 and start >= 0:
                tag = _tag_command(text[start + 1:i], text[start:i + 1])
                if tag is not None:
                    out.append(tag)
            depth = max(depth - 1, 0)
            start = -1
    return tuple(out)


def inherited_commands(subjects: Iterable[str]) -> set[str]:
    """Every command a tag of these subjects names, at any depth and after stripping inner
    tags (``[关[关闭]闭]`` names close twice): what a reply to them repeats without meaning."""
    names: set[str] = set()
    for subject in subjects:
        text = unicodedata.normalize("NFKC", subject)
        while True:
            found = _BRACKETED.findall(text)
            if not found:
                break
            for word in found:
                tag = _tag_command(word, "")
                if tag is not None and tag.name is not None:
                    names.add(tag.name)
            text = _BRACKETED.sub("", text)
    return names


def strip_commands(text: str) -> str:
    """The reply's own part without command lines: the free text that came with them."""
    lines = [ln for ln in reply_top(text).splitlines() if not _LINE.match(ln)]
    return "\n".join(lines).strip()


def parse_date(text: str) -> tuple[date, str] | None:
    """A leading date (``2026-12-10``, ``2026/12/10``, ``2026年12月10日``) and the rest."""
    m = _DATE.match(text.strip())
    if not m:
        return None
    try:
        d = date(int(m.group(1)), int(m.group(2)), int(m.group(3)))
    except ValueError:
        return None
    return d, text.strip()[m.end():].strip()


@dataclass(frozen=True)
class ActionArg:
    text: str
    owner: str
    due: date
    support: str


def parse_action(arg: str) -> ActionArg | str:
    """``描述 | 负责人 | 2026-12-10 | 所需支持``; an error message when it does not fit."""
    parts = [p.strip() for p in re.split(r"[|｜]", arg)]
    if len(parts) < 3 or not parts[0] or not parts[1]:
        return "format"
    when = parse_date(parts[2])
    if when is None or when[1]:
        return "date"
    return ActionArg(parts[0], parts[1], when[0], " | ".join(parts[3:]).strip())
