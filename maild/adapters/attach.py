"""Files in letters: MIME parts for attachments and calendar invitations, and the size cap.

A letter with files is ``multipart/mixed``: first the ``multipart/alternative`` text and
HTML (and, for an invitation, the ``text/calendar; method=…`` part that Outlook, Foxmail and
QQ Mail read as the invitation, RFC 6047), then each file as an attachment. Non-ASCII file
names are written twice, as mail clients expect: RFC 2231 ``filename*`` (split into
continuations, so a long Chinese name never makes a header line too long) and an RFC 2047
``name`` on the Content-Type for older readers.

Files above ``limits.max_letter_attachment_bytes`` (counted per letter, in order) stay out;
the letter then lists them by name and says where they are (``maild cases show``).
"""

from __future__ import annotations

import base64
import re
import urllib.parse
from collections.abc import Sequence
from dataclasses import dataclass, field

_TOKEN = re.compile(r"[A-Za-z0-9!#$%&'*+.^_`|~-]+/[A-Za-z0-9!#$%&'*+.^_`|~-]+")
_QUOTABLE = re.compile(r"[\x20-\x7e]*")
_CHUNK = 60  # characters of a filename*N* continuation


@dataclass(frozen=True)
class OutFile:
    """A file as composed into a letter."""

    name: str
    content_type: str
    data: bytes = field(repr=False)
    method: str = ""  # REQUEST / CANCEL / PUBLISH: also the alternative's calendar part


def fit(files: Sequence[OutFile], cap: int) -> tuple[list[OutFile], list[OutFile]]:
    """The files that go with the letter and those listed by name: each file in order while
    the letter's total stays within ``cap`` bytes (calendar parts always go: they are small
    and the letter is about them)."""
    kept: list[OutFile] = []
    listed: list[OutFile] = []
    total = 0
    for f in files:
        if f.method or total + len(f.data) <= cap:
            kept.append(f)
            total += 0 if f.method else len(f.data)
        else:
            listed.append(f)
    return kept, listed


def human_size(n: int) -> str:
    if n < 1024:
        return f"{n} B"
    if n < 1024 * 1024:
        return f"{n / 1024:.1f} KB"
    return f"{n / 1024 / 1024:.1f} MB"


def note_files(text: str, html: str, attached: Sequence[tuple[str, int]],
               listed: Sequence[tuple[str, int, str]], language: str,
               external: bool = False) -> tuple[str, str]:
    """The letter with a short list of the files it carries and of those it does not
    (name, size, why), appended to the text and the HTML; ``external``: the reader is a
    customer or supplier, who is told to ask rather than to look in maild."""
    if not attached and not listed:
        return text, html
    en = language == "en"
    lines: list[str] = []
    if attached:
        lines.append("Attached:" if en else "附件：")
        lines += [f"  {name} ({human_size(size)})" for name, size in attached]
    if listed:
        if external:
            lines.append("Not attached (reply to this mail if you need them sent another way):"
                         if en else "以下文件未随信附上（如需要，请回复本邮件，我们另行发送）：")
        else:
            lines.append("Not attached (kept with the case: maild cases show / export):" if en
                         else "以下文件未随信附上（已保存在案件中：maild cases show / export）：")
        lines += [f"  {name} ({human_size(size)}): {why}" for name, size, why in listed]
    text = text.rstrip("\n") + "\n\n" + "\n".join(lines) + "\n"
    html_lines = "".join(f"<li>{_html(ln.strip())}</li>" for ln in lines if ln.startswith("  "))
    heads = [ln for ln in lines if not ln.startswith("  ")]
    html_extra = "<hr><p>" + "<br>".join(_html(h) for h in heads) + f"</p><ul>{html_lines}</ul>"
    at = html.lower().rfind("</body>")
    html = html[:at] + html_extra + html[at:] if at >= 0 else html + html_extra
    return text, html


def _encoded_words(text: str) -> str:
    """RFC 2047 B-encoded UTF-8 words, split between characters."""
    words, chunk = [], b""
    for ch in text:
        b = ch.encode("utf-8", "replace")
        if len(chunk) + len(b) > 36:
            words.append(chunk)
            chunk = b""
        chunk += b
    words.append(chunk)
    return " ".join(f"=?utf-8?b?{base64.b64encode(w).decode('ascii')}?=" for w in words if w)


def _html(s: str) -> str:
    return s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _b64(data: bytes) -> bytes:
    return b"".join(base64.b64encode(data[i : i + 57]) + b"\r\n"
                    for i in range(0, len(data), 57))


def _ctype(content_type: str) -> str:
    """A plain ``type/subtype``; anything else, and containers (which may not be base64
    encoded), become ``application/octet-stream``."""
    base = content_type.split(";", 1)[0].strip().lower()
    if not _TOKEN.fullmatch(base) or base.startswith(("multipart/", "message/")):
        return "application/octet-stream"
    return base


_CONTROL = re.compile(r"[\x00-\x1f\x7f]+")


def normalised(files: Sequence[OutFile]) -> list[OutFile]:
    """Files as written: names without control characters (never empty), plain types."""
    return [OutFile(_CONTROL.sub("_", f.name).strip() or "attachment.bin",
                    _ctype(f.content_type), f.data, f.method) for f in files]


def _name_params(name: str) -> tuple[str, str]:
    """``; name=…`` for Content-Type and ``; filename…`` for Content-Disposition."""
    if name.isascii() and _QUOTABLE.fullmatch(name) and len(name) <= 70:
        quoted = name.replace("\\", "\\\\").replace('"', '\\"')
        return f';\r\n name="{quoted}"', f';\r\n filename="{quoted}"'
    pct = urllib.parse.quote(name, safe="", errors="replace")
    chunks, i = [], 0
    while i < len(pct):
        j = min(i + _CHUNK, len(pct))
        while j < len(pct) and "%" in pct[j - 2 : j]:  # never split a %XX
            j -= 1
        chunks.append(pct[i:j])
        i = j
    disp = "".join(f";\r\n filename*{n}*={'utf-8' + chr(39) * 2 if n == 0 else ''}{c}"
                   for n, c in enumerate(chunks))
    return f';\r\n name="{_encoded_words(name)}"', disp


def file_part(f: OutFile) -> bytes:
    """One attachment: its headers and base64 body, CRLF lines."""
    name_ct, name_cd = _name_params(f.name)
    ctype = _ctype(f.content_type)
    if f.method:  # the .ics copy of an invitation, as calendar programs attach it
        ctype = "application/ics"
    head = (f"Content-Type: {ctype}{name_ct}\r\n"
            f"Content-Disposition: attachment{name_cd}\r\n"
            "Content-Transfer-Encoding: base64\r\n\r\n")
    return head.encode("ascii") + _b64(f.data)


def calendar_part(f: OutFile) -> bytes:
    """The invitation inside the alternative: ``text/calendar; method=…`` (RFC 6047)."""
    method = re.sub(r"[^A-Z-]", "", f.method.upper()) or "PUBLISH"
    head = (f'Content-Type: text/calendar; charset="utf-8"; method={method}\r\n'
            "Content-Transfer-Encoding: base64\r\n\r\n")
    return head.encode("ascii") + _b64(f.data)
