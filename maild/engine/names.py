"""What letters call people: the directory's name for them, else the display name their
mail carried, else nothing (the template's role phrase, 「技术部负责人」, stays).

Display names come from the From, To and Cc headers of the mails on a case and are kept in
the case's data (``names``: address -> name). A display name is only a claim of the sender,
so one that is an address, holds one, or looks like markup is never used.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, MutableMapping
from typing import Any

from maild.classify.directory import Directory
from maild.mail.message import ParsedMail

MAX_NAME = 40  # characters of a display name kept
MAX_NAMES = 50  # addresses a case remembers names for
_NOT_A_NAME = re.compile(r"[@＠]|[<>\[\]{}\\/|]|https?:|www\.|^\W*$|[\x00-\x1f\x7f]",
                         re.IGNORECASE)


def clean_display(name: str, addr: str = "") -> str:
    """A display name fit to greet someone with, or "" (an address, markup, too long)."""
    name = " ".join((name or "").split()).strip("\"'“”‘’ ")
    if not name or len(name) > MAX_NAME or _NOT_A_NAME.search(name):
        return ""
    if addr and name.casefold() == addr.partition("@")[0].casefold():
        return ""  # the address's own local part says nothing more
    return name


def remember(data: MutableMapping[str, Any], mail: ParsedMail) -> None:
    """Keep the display names of the mail's From, To and Cc on the case's data."""
    known: dict[str, str] = dict(data.get("names") or {})
    for a in (mail.from_, *mail.to, *mail.cc):
        addr = (a.addr or "").lower()
        name = clean_display(a.name or "", addr)
        if addr and name and known.get(addr) != name:
            if addr not in known and len(known) >= MAX_NAMES:
                continue
            known[addr] = name
    if known:
        data["names"] = known


def name_for(directory: Directory, data: Mapping[str, Any], addr: str) -> str:
    """The directory's name for ``addr``, else the display name remembered on the case."""
    if not addr:
        return ""
    named = directory.name_of(addr)
    if named:
        return named
    return str((data.get("names") or {}).get(addr.lower(), ""))


def greeting_name(directory: Directory, data: Mapping[str, Any], to: Iterable[str]) -> str:
    """The name a letter greets its addressee by: only when it has exactly one."""
    addrs = list(dict.fromkeys(a.lower() for a in to if a))
    return name_for(directory, data, addrs[0]) if len(addrs) == 1 else ""
