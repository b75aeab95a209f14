"""Printing for the command line: JSON, and aligned tables of text that came from mail."""

from __future__ import annotations

import json
import re
import sys
from typing import Any

from wcwidth import wcswidth

# C0 controls, DEL and C1 controls: a hostile subject could carry escape sequences,
# backspaces or carriage returns that rewrite the terminal or break the columns
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f]")


def print_json(value: object) -> None:
    json.dump(value, sys.stdout, ensure_ascii=False, indent=2)
    sys.stdout.write("\n")


def clean(value: Any) -> str:
    """``value`` as one line of printable text: tabs and line breaks become spaces, other
    control characters are dropped."""
    s = "" if value is None else str(value)
    return _CONTROL.sub("", s.replace("\n", " ").replace("\t", " "))


def width(s: str) -> int:
    """Terminal columns ``s`` takes: two for a wide (CJK) character, none for a combining
    mark; a character wcwidth cannot measure counts as one."""
    n = wcswidth(s)
    return len(s) if n < 0 else n


def table(rows: list[dict[str, Any]], columns: tuple[str, ...], limit: int = 48) -> str:
    """``rows`` under the headings ``columns``, each cell cleaned and cut to ``limit``
    columns, padded so the columns line up in a terminal."""
    def cell(v: Any) -> str:
        s = clean(v)
        while width(s) > limit:
            s = s[:-2] + "…"
        return s

    cells = [[cell(r.get(c)) for c in columns] for r in rows]
    widths = [max([width(c)] + [width(row[i]) for row in cells])
              for i, c in enumerate(columns)]

    def line(values: list[str]) -> str:
        return "  ".join(v + " " * (w - width(v)) for v, w in zip(values, widths,
                                                                  strict=True)).rstrip()

    out = [line(list(columns)), line(["-" * w for w in widths])]
    out += [line(r) for r in cells]
    if not rows:
        out.append("(none)")
    return "\n".join(out)


__all__ = ["clean", "print_json", "table", "width"]
