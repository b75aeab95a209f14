"""Letters: Jinja2 templates rendered strictly, composed into threaded MIME messages."""

from __future__ import annotations

import tomllib
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from email.headerregistry import Address as HdrAddress
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime
from pathlib import Path
from typing import Any

import jinja2

DEFAULT_TEMPLATES = Path(__file__).resolve().parent.parent / "templates" / "email"


class LetterError(Exception):
    """A template is missing or broken."""


@dataclass(frozen=True)
class Rendered:
    subject: str
    text: str
    html: str


class Letters:
    def __init__(self, templates_dir: Path = DEFAULT_TEMPLATES) -> None:
        self.dir = templates_dir
        self.env = jinja2.Environment(
            loader=jinja2.FileSystemLoader(str(templates_dir)),
            undefined=jinja2.StrictUndefined,
            autoescape=jinja2.select_autoescape(enabled_extensions=("html.j2",),
                                                default_for_string=False),
            keep_trailing_newline=True,
        )

    def sample(self, letter: str) -> dict[str, Any]:
        """The example context of a letter (``<letter>.sample.toml``), for ``config check``.

        It holds every variable the code provides for that letter, so a template that uses
        anything else fails in ``maild config check``, not when the letter is due.
        """
        path = self.dir / f"{letter}.sample.toml"
        if not path.exists():
            path = DEFAULT_TEMPLATES / f"{letter}.sample.toml"
        try:
            return tomllib.loads(path.read_text(encoding="utf-8"))
        except (OSError, tomllib.TOMLDecodeError) as e:
            raise LetterError(f"letter {letter!r}: sample context {path}: {e}") from e

    def names(self) -> list[str]:
        """Every letter with a text template, e.g. ``ack.zh``."""
        return sorted(p.name[: -len(".txt.j2")] for p in self.dir.glob("*.txt.j2"))

    def render(self, letter: str, language: str, context: Mapping[str, Any]) -> Rendered:
        try:
            text = self.env.get_template(f"{letter}.{language}.txt.j2").render(context)
            html = self.env.get_template(f"{letter}.{language}.html.j2").render(context)
        except jinja2.TemplateNotFound as e:
            raise LetterError(f"letter {letter!r} has no template {e.name} in {self.dir}") from e
        except jinja2.TemplateError as e:
            raise LetterError(f"letter {letter}.{language}: {e}") from e
        head, sep, body = text.partition("\n\n")
        if not sep or not head.startswith("Subject:"):
            raise LetterError(f"{letter}.{language}.txt.j2 must start with 'Subject: ...' "
                              "and a blank line")
        return Rendered(head[len("Subject:"):].strip(), body, html)


def letter_subject(rendered: Rendered, case_number: str | None) -> str:
    """The subject as sent: it always carries the case number, so replies thread."""
    if case_number and case_number not in rendered.subject:
        return f"[{case_number}] {rendered.subject}"
    return rendered.subject


def new_message_id(domain: str) -> str:
    return f"<{uuid.uuid4().hex}@{domain}>"


def _addr(addr: str, name: str = "") -> HdrAddress:
    local, _, domain = addr.rpartition("@")
    return HdrAddress(display_name=name, username=local, domain=domain)


def compose(rendered: Rendered, *, message_id: str, from_addr: str, from_name: str,
            to: Sequence[str], cc: Sequence[str] = (), case_number: str | None,
            in_reply_to: str | None, references: Sequence[str], now: datetime) -> bytes:
    """A multipart/alternative letter that threads and tells robots not to answer."""
    msg = EmailMessage(policy=SMTP)
    msg["Subject"] = letter_subject(rendered, case_number)
    msg["From"] = _addr(from_addr, from_name)
    msg["To"] = [_addr(a) for a in to]
    if cc:
        msg["Cc"] = [_addr(a) for a in cc]
    msg["Date"] = format_datetime(now)
    msg["Message-ID"] = message_id
    if in_reply_to:
        msg["In-Reply-To"] = in_reply_to
    if references:
        msg["References"] = " ".join(references)
    msg["Auto-Submitted"] = "auto-replied"
    msg["X-Auto-Response-Suppress"] = "All"
    if case_number:
        msg["X-Maild-Case"] = case_number
    msg.set_content(rendered.text, charset="utf-8")
    msg.add_alternative(rendered.html, subtype="html", charset="utf-8")
    return msg.as_bytes()

