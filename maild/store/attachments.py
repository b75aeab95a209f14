"""Attachments kept once: content-addressed files beside the raw store, linked to cases.

A file is written under ``<attachments>/ab/abcdef…`` (its SHA-256) the first time any case
receives it and never again; each case links a file at most once, under the output it
stands for (a quote, a signed confirmation, an invoice). Names are made safe for a file
system and a terminal; a file above ``limits.max_attachment_bytes`` is not kept, and the
case's timeline says so (the raw mail still holds it).
"""

from __future__ import annotations

import hashlib
import os
import re
import threading
import unicodedata
from collections.abc import Sequence
from pathlib import Path

from maild.engine.effects import KeepAttachments
from maild.mail.message import ParsedMail
from maild.store.models import Attachment, Case, TimelineEntry

MAX_NAME = 120
_UNSAFE = re.compile(r'[\\/:*?"<>|\x00-\x1f\x7f]+')


def safe_name(name: str) -> str:
    """A file name without directories, control characters or reserved characters."""
    name = unicodedata.normalize("NFC", name).replace("\\", "/").rsplit("/", 1)[-1]
    name = _UNSAFE.sub("_", name).strip(" .")
    name = re.sub(r"_+", "_", name)
    if not name:
        return "attachment.bin"
    if len(name) > MAX_NAME:
        stem, dot, ext = name.rpartition(".")
        ext = ext if dot and len(ext) <= 10 else ""
        name = (stem if dot else name)[: MAX_NAME - len(ext) - 1].rstrip() + (
            f".{ext}" if ext else "")
    return name


class ContentStore:
    """Bytes kept once by content (``ab/abcdef…<suffix>``), each file written atomically.

    Raw mail (``.eml``) and attachments both live in one of these.
    """

    def __init__(self, root: Path, suffix: str = "") -> None:
        self.root = root
        self.suffix = suffix

    def put(self, data: bytes) -> tuple[str, str]:
        """Keep ``data`` (atomically: a crash leaves the whole file or none)."""
        sha, rel, _ = self._write(data, durable=False)
        return sha, rel

    def put_durably(self, datas: Sequence[bytes]) -> list[tuple[str, str]]:
        """Keep each of ``datas`` so that a power cut after this returns cannot lose them:
        each file is flushed to the disk before it is renamed into place, and the folders
        holding the new names are flushed after. One folder flush per folder, not per file."""
        out, folders = [], set()
        for data in datas:
            sha, rel, created = self._write(data, durable=True)
            out.append((sha, rel))
            folders.update(created)
        for folder in sorted(folders, key=lambda p: len(p.parts), reverse=True):
            fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        return out

    def _write(self, data: bytes, *, durable: bool) -> tuple[str, str, list[Path]]:
        """Write the file unless it exists; the folders whose entries changed."""
        sha = hashlib.sha256(data).hexdigest()
        rel = f"{sha[:2]}/{sha}{self.suffix}"
        path = self.root / rel
        if path.exists():
            return sha, rel, []
        changed = [path.parent]
        if not path.parent.is_dir():
            path.parent.mkdir(parents=True, exist_ok=True)
            changed += [path.parent.parent]  # the new folder's own entry
        tmp = path.with_name(f"{sha}.tmp{os.getpid()}-{threading.get_ident()}")
        with open(tmp, "wb") as f:
            f.write(data)
            if durable:
                f.flush()
                os.fsync(f.fileno())
        os.replace(tmp, path)
        return sha, rel, changed if durable else []

    def get(self, rel: str) -> bytes:
        return (self.root / rel).read_bytes()

    def path(self, rel: str) -> Path:
        return self.root / rel


async def keep(files: ContentStore, effect: KeepAttachments, case: Case, mail: ParsedMail,
               limit: int, now: object) -> None:
    """Store and link the mail's attachments, inside the caller's transaction."""
    for a in mail.attachments:
        name = safe_name(a.filename)
        if limit <= 0 or a.size > limit:
            await TimelineEntry.create(
                case=case, at=now, kind="attachment_refused", actor=mail.from_.addr or "?",
                message_id=mail.message_id or None,
                text=f"{name} ({a.size} bytes) not kept: over the {limit}-byte limit")
            continue
        sha, rel = files.put(a.payload)
        if await Attachment.filter(case=case, sha256=sha).exists():
            continue  # the same file again: linked once
        await Attachment.create(case=case, message_id=mail.message_id or None, sha256=sha,
                                filename=name, content_type=a.content_type[:128],
                                size=a.size, output=effect.output[:64], path=rel, at=now)
        await TimelineEntry.create(
            case=case, at=now, kind="attachment", actor=mail.from_.addr or "?",
            message_id=mail.message_id or None,
            text=f"{name} ({_size(a.size)}) → {effect.output}")


def _size(n: int) -> str:
    for unit in ("B", "KB", "MB"):
        if n < 1024 or unit == "MB":
            return f"{n} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024  # type: ignore[assignment]
    return str(n)


async def case_attachments(case: Case) -> list[dict[str, object]]:
    return [{"filename": a.filename, "output": a.output, "size": a.size,
             "content_type": a.content_type, "sha256": a.sha256, "path": a.path,
             "at": a.at.isoformat(), "message_id": a.message_id}
            for a in await Attachment.filter(case=case).order_by("id")]

