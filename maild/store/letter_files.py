"""The files a letter carries, read from the attachment store when the letter is composed.

A decision names files by their SHA-256 (``maild.engine.effects.LetterFile``): the bytes are
read here, once per letter, never copied into effects or case rows. Files that would take the
letter over ``limits.max_letter_attachment_bytes`` (and files no longer kept) are not
attached: the letter lists them by name and the case's timeline entry says so.
"""

from __future__ import annotations

from dataclasses import replace

from maild.adapters.attach import OutFile, human_size, note_files
from maild.adapters.letters import Rendered
from maild.engine.effects import LetterFile, SendLetter
from maild.store.attachments import ContentStore, safe_name
from maild.store.models import Attachment, Case


async def with_case_files(letter: SendLetter, case: Case | None) -> SendLetter:
    """``letter`` with every file kept on ``case`` added to its files (``case_files``)."""
    if not letter.case_files or case is None:
        return letter
    have = {f.sha256 for f in letter.files if f.sha256}
    extra = tuple(LetterFile(a.filename, a.content_type, a.size, sha256=a.sha256)
                  for a in await Attachment.filter(case=case).order_by("id")
                  if a.sha256 not in have)
    return replace(letter, files=letter.files + extra, case_files=False)


def letter_files(store: ContentStore, letter: SendLetter, rendered: Rendered, cap: int
                 ) -> tuple[Rendered, list[OutFile], str]:
    """The files to compose into ``letter``, the letter with its list of files, and a
    short remark for the timeline ("" when it carries none)."""
    if not letter.files:
        return rendered, [], ""
    en = letter.language == "en"
    out: list[OutFile] = []
    attached: list[tuple[str, int]] = []
    listed: list[tuple[str, int, str]] = []
    total, seen = 0, set()
    for f in letter.files:
        key = f.sha256 or f.name
        if key in seen:
            continue
        seen.add(key)
        name = safe_name(f.name)
        if f.method:  # an invitation: always carried, not listed
            out.append(OutFile(name, f.content_type, f.data, f.method))
            continue
        if total + f.size > cap:
            listed.append((name, f.size, f"over the {human_size(cap)} limit of a letter" if en
                           else f"超过单封邮件 {human_size(cap)} 的附件上限"))
            continue
        data = f.data
        if f.sha256:
            try:
                data = store.get(f"{f.sha256[:2]}/{f.sha256}{store.suffix}")
            except OSError:
                listed.append((name, f.size, "not kept" if en else "文件未保存"))
                continue
        total += len(data)
        out.append(OutFile(name, f.content_type, data))
        attached.append((name, len(data)))
    external = letter.context.get("audience") == "external"
    text, html = note_files(rendered.text, rendered.html, attached, listed, letter.language,
                            external)
    remark = ""
    if attached or listed:
        parts = []
        if attached:
            parts.append(("attached " if en else "附件 ") + ", ".join(n for n, _ in attached))
        if listed:
            parts.append(("not attached " if en else "未附上 ")
                         + ", ".join(f"{n} ({why})" for n, _, why in listed))
        remark = "; ".join(parts)
    return Rendered(rendered.subject, text, html), out, remark
