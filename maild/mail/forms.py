"""Forms in mail bodies: ``字段：值`` lines (full-width or ASCII colon), as people type them.

Only the reply's own part counts (the quoted mail below it may repeat field names from our
own letters). A value may go on over the following lines until a blank line or the next
field. Leading bullets and numbers (``1.``, ``（一）``, ``-``, ``•``) and stray spaces are
ignored; field names are matched by their aliases, spaces inside them don't matter.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from maild.mail.quoting import reply_top


@dataclass(frozen=True)
class Field:
    name: str  # the canonical name, as shown to people
    aliases: tuple[str, ...] = ()
    required: bool = True


@dataclass(frozen=True)
class FormSpec:
    name: str
    fields: tuple[Field, ...]

    def lookup(self) -> dict[str, Field]:
        out: dict[str, Field] = {}
        for f in self.fields:
            for alias in (f.name, *f.aliases):
                out[_key(alias)] = f
        return out


@dataclass(frozen=True)
class Form:
    values: Mapping[str, str]  # canonical name -> value, only fields with a value
    missing: tuple[str, ...]  # required fields without a value, in the form's order
    other: Mapping[str, str] = field(default_factory=dict)  # lines that looked like fields

    @property
    def complete(self) -> bool:
        return not self.missing


#: 《跨部门沟通需求申请表》, the seed's fields
REQUEST_FORM = FormSpec("跨部门沟通需求申请表", (
    Field("发起部门/人", ("发起部门", "发起人", "发起部门/发起人", "发起方")),
    Field("接收部门/人", ("接收部门", "接收人", "接收部门/接收人", "接收方")),
    Field("沟通目标", ("目标", "沟通目的")),
    Field("核心内容", ("主要内容", "内容")),
    Field("需协助事项", ("需要协助事项", "协助事项", "需协助内容")),
    Field("期望完成时间", ("期望完成日期", "完成时间", "期望时间")),
    Field("紧急程度", ("紧急度", "优先级")),
    Field("需求编号", (), required=False),
))

# matched against a stripped line: no leading or trailing blanks for the pattern to try
# (blank runs on both sides of an optional part cost quadratic time on long lines)
_LINE = re.compile(r"(?:[-•·*]|\d{1,2}[.、)]|[（(][一二三四五六七八九十\d]{1,3}[)）])?"
                   r"[\s\u3000]*【?([^:：\n]{1,20}?)】?[\s\u3000]*[:：](.*)")
MAX_VALUE = 2000  # characters of one field's value kept
MAX_OTHER = 50  # field-like lines kept besides the form's own fields
_URGENT = {"紧急", "加急", "特急", "非常紧急", "十万火急", "高", "urgent", "high", "是"}


def _key(name: str) -> str:
    return re.sub(r"[\s\u3000/／]", "", name).casefold()


def parse_form(text: str, spec: FormSpec) -> Form:
    """The fields of ``spec`` found in the reply's own part of ``text``."""
    names = spec.lookup()
    parts: dict[str, list[str]] = {}
    other: dict[str, str] = {}
    current: str | None = None
    for raw in reply_top(text).splitlines():
        line = raw.strip()
        if line.startswith(("#", "＃")):
            current = None  # a command line, never part of a field
            continue
        m = _LINE.match(line)
        f = names.get(_key(m.group(1))) if m else None
        if m and f is not None:
            current = f.name
            parts[current] = [_cut(m.group(2).strip())]
            continue
        if m and not line.startswith("http"):
            if len(other) < MAX_OTHER:
                other[m.group(1).strip()] = _cut(m.group(2).strip())
            current = None
            continue
        if current is not None and line:
            if sum(map(len, parts[current])) < MAX_VALUE:
                parts[current].append(_cut(line))
        else:
            current = None
    joined = ((k, _cut("\n".join(p).strip())) for k, p in parts.items())
    values = {k: v for k, v in joined if v}
    missing = tuple(f.name for f in spec.fields if f.required and f.name not in values)
    return Form(values, missing, other)


def _cut(value: str) -> str:
    return value if len(value) <= MAX_VALUE else value[: MAX_VALUE - 1] + "…"


def merge(old: Mapping[str, str], new: Form, spec: FormSpec) -> Form:
    """Fields given earlier completed by a later reply (later values win)."""
    values = {**old, **new.values}
    missing = tuple(f.name for f in spec.fields if f.required and f.name not in values)
    return Form(values, missing, new.other)


def is_urgent(value: str) -> bool:
    """紧急程度 as people write it: 紧急 / 高 / urgent mean urgent; 一般 / 普通 do not."""
    v = value.strip().casefold()
    return v in _URGENT or v.startswith(("紧急", "加急", "特急", "urgent"))


def department_of(value: str) -> str:
    """``市场部/王芳`` -> ``市场部``."""
    return re.split(r"[/／,，、\s]", value.strip(), maxsplit=1)[0]
