"""Where a reply's own text ends and the quoted mail begins, for the common mail clients.

Outlook (``-----Original Message-----``, a ``From:``/``发件人:`` header block, a line of
underscores), Foxmail and QQ Mail (``------------------ 原始邮件 ------------------``),
Gmail and Apple Mail (``On … wrote:``, ``… 于 … 写道：``, ``在 … 写道：``), ``>`` quoting and
the ``-- `` signature separator all end the reply's own part.
"""

from __future__ import annotations

import re

_SEPARATOR = re.compile(
    r"^\s*(-{2,}\s*(原始邮件|原始郵件|Original Message|Original|转发邮件信息|Forwarded message)"
    r"\s*-{2,}|_{10,}|--\s*)$", re.IGNORECASE)
_WROTE = ("wrote", "写道", "寫道")
_HEADER = re.compile(r"^\s*\**(From|发件人|寄件者|寄件人)\**\s*[:：]", re.IGNORECASE)
_HEADER_NEXT = re.compile(r"^\s*\**(Sent|Date|To|Subject|发送时间|时间|日期|收件人|主题|"
                          r"寄件日期|傳送時間)\**\s*[:：]", re.IGNORECASE)


def _wrote(line: str) -> bool:
    """``… wrote:`` / ``… 写道：`` at the end of a line (a string test: a pattern with blank
    runs before the end takes quadratic time on a long line of blanks)."""
    end = line.rstrip()
    if end.endswith((":", "：")):
        end = end[:-1].rstrip()
    return end.casefold().endswith(_WROTE)


def _quote_starts(lines: list[str], i: int) -> bool:
    line = lines[i].replace("\xa0", " ")
    s = line.strip()
    if s.startswith(">") or _SEPARATOR.match(line):
        return True
    if _wrote(s) and (s.startswith(("On ", "在")) or "<" in s or "于" in s):
        return True
    if s.startswith("On ") and any(_wrote(n) for n in lines[i + 1:i + 3]):
        return True  # Gmail wraps a long "On … wrote:" line
    if _HEADER.match(line):
        return any(_HEADER_NEXT.match(n) for n in lines[i + 1:i + 5])
    return False


def reply_top(text: str) -> str:
    """The reply's own part: every line above the first quote marker."""
    lines = text.replace("\r\n", "\n").split("\n")
    for i in range(len(lines)):
        if _quote_starts(lines, i):
            return "\n".join(lines[:i]).rstrip()
    return "\n".join(lines).rstrip()


def excerpt(text: str, limit: int = 500) -> str:
    """The start of a reply's own part, for the timeline."""
    out = reply_top(text).strip()
    return out if len(out) <= limit else out[: limit - 1] + "…"
