"""Delivery status notifications (bounces): which recipients of which letter failed.

RFC 3464 reports (``multipart/report; report-type=delivery-status``) are read from their
``message/delivery-status`` part, the original letter's Message-ID from the returned
``message/rfc822`` or ``text/rfc822-headers`` part. The common non-standard bounces
(qmail, Exchange, plain-text MTAs) are read best effort from their text. Pure: no I/O.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from email.message import Message
from email.parser import HeaderParser

__all__ = ["Dsn", "Recipient", "parse_dsn"]

MAX_RECIPIENTS = 20
MAX_DIAGNOSTIC = 300
_DAEMONS = ("mailer-daemon", "postmaster", "mail-daemon", "mailerdaemon")
_ADDR = re.compile(r"[A-Za-z0-9._%+'=-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}")
_STATUS = re.compile(r"\b([245])\.(\d{1,3})\.(\d{1,3})\b")
_SMTP_CODE = re.compile(r"\b([45]\d\d)\b")
_MSGID = re.compile(r"^message-id:[ \t]*(<[^<>\s]+>)", re.I | re.M)
# text bounces: "<addr>:" (qmail), "addr" on a line after "failed", Exchange's lines
_FAILED_INTRO = re.compile(
    r"(following (?:address(?:\(es\))?|recipients?)[^\n]*(?:failed|undeliverable|not be "
    r"delivered)|could not be delivered|delivery (?:has )?failed|undeliverable|"
    r"was not delivered|permanent(?:ly)? (?:error|fatal)|user unknown|无法投递|退信|未能送达)",
    re.I)
_WS = re.compile(r"\s+")


@dataclass(frozen=True)
class Recipient:
    addr: str  # lower-cased
    action: str  # failed / delayed / delivered / relayed / expanded
    status: str  # "5.1.1"; "" when not given
    diagnostic: str  # one line, at most MAX_DIAGNOSTIC characters


@dataclass(frozen=True)
class Dsn:
    original_id: str  # the returned letter's Message-ID with angle brackets; "" if unknown
    recipients: tuple[Recipient, ...]
    standard: bool  # an RFC 3464 report (else read from a text bounce)

    @property
    def failed(self) -> tuple[Recipient, ...]:
        return tuple(r for r in self.recipients if r.action == "failed")

    @property
    def delayed(self) -> tuple[Recipient, ...]:
        return tuple(r for r in self.recipients if r.action == "delayed")


def parse_dsn(message: Message, *, sender: str = "", return_path: str = "",
              text: str = "") -> Dsn | None:
    """The bounce ``message`` reports, or None. A text bounce is only looked for in mail from
    a mailer-daemon/postmaster or with an empty Return-Path."""
    if message.get_content_type() == "multipart/report":
        report = _standard(message)
        if report is not None:
            return report
    local = sender.lower().partition("@")[0]
    if local in _DAEMONS or return_path.strip() == "<>":
        return _text_bounce(message, text)
    return None


def _standard(message: Message) -> Dsn | None:
    status: Message | None = None
    original = ""
    for part in message.walk():
        ctype = part.get_content_type()
        if ctype in ("message/delivery-status", "message/global-delivery-status") \
                and status is None:
            status = part
        elif ctype in ("message/rfc822", "message/global") and not original:
            payload = part.get_payload()
            inner = payload[0] if isinstance(payload, list) and payload else None
            if isinstance(inner, Message):
                original = _first_id(inner.get("message-id", ""))
        elif ctype == "text/rfc822-headers" and not original:
            original = _id_in_headers(_part_text(part))
    if status is None:
        return None
    recipients = tuple(_recipients(status))
    if not recipients:
        return None
    return Dsn(original, recipients, True)


def _recipients(part: Message) -> list[Recipient]:
    payload = part.get_payload()
    if isinstance(payload, list):  # compat32: one Message per field group
        groups = [g for g in payload if isinstance(g, Message)]
    else:  # not split by the parser (e.g. base64): split the groups here
        raw = _part_text(part).replace("\r\n", "\n")
        groups = [HeaderParser().parsestr(block.strip() + "\n")
                  for block in re.split(r"\n[ \t]*\n", raw) if block.strip()]
    out = []
    for g in groups:
        rcpt = g.get("final-recipient") or g.get("original-recipient")
        if not rcpt:
            continue  # the per-message group
        addr = _address(str(rcpt))
        if not addr:
            continue
        action = _WS.sub(" ", str(g.get("action", ""))).strip().lower().split(" ")[0]
        code = str(g.get("status", "")).strip()
        m = _STATUS.search(code)
        status = m.group(0) if m else ""
        diag = _one_line(str(g.get("diagnostic-code", "")))
        diag = diag.partition(";")[2].strip() if diag.lower().startswith("smtp;") else diag
        if not action:
            action = "failed" if status.startswith("5") else "delayed"
        out.append(Recipient(addr, action, status, diag))
        if len(out) >= MAX_RECIPIENTS:
            break
    return out


def _text_bounce(message: Message, text: str) -> Dsn | None:
    """qmail / Exchange / plain text: the addresses named after a "failed" sentence, each
    with the SMTP status on its line or the lines right after it."""
    body = text or _all_text(message)
    intro = _FAILED_INTRO.search(body)
    if intro is None:
        return None
    rest = body[intro.start():].split("\n--- Below this line", 1)[0]
    rest = rest.split("\n-----Original Message", 1)[0]
    original = _id_in_headers(body[intro.end():]) or _original_from_parts(message)
    lines = rest.splitlines()
    seen: dict[str, Recipient] = {}
    for i, line in enumerate(lines):
        for addr in _ADDR.findall(line):
            addr = addr.lower()
            local = addr.partition("@")[0]
            if addr in seen or local in _DAEMONS or _in_header_line(line):
                continue
            near = " ".join(lines[i:i + 4])
            m = _STATUS.search(near)
            status = m.group(0) if m else ""
            if not status:
                code = _SMTP_CODE.search(near)
                status = f"{code.group(1)[0]}.0.0" if code else "5.0.0"
            diag = _one_line(" ".join(x.strip() for x in lines[i:i + 3]))
            seen[addr] = Recipient(addr, "delayed" if status.startswith("4") else "failed",
                                   status, diag)
        if len(seen) >= MAX_RECIPIENTS:
            break
    if not seen:
        return None
    return Dsn(original, tuple(seen.values()), False)


def _in_header_line(line: str) -> bool:
    """A header of the quoted original (From:, To:, Message-ID: ...) names no failure."""
    return bool(re.match(r"\s*(from|to|cc|reply-to|sender|return-path|message-id|"
                         r"references|in-reply-to|received):", line, re.I))


def _original_from_parts(message: Message) -> str:
    for part in message.walk():
        ctype = part.get_content_type()
        if ctype in ("message/rfc822", "message/global"):
            payload = part.get_payload()
            if isinstance(payload, list) and payload and isinstance(payload[0], Message):
                found = _first_id(payload[0].get("message-id", ""))
                if found:
                    return found
        elif ctype == "text/rfc822-headers":
            found = _id_in_headers(_part_text(part))
            if found:
                return found
    return ""


def _id_in_headers(text: str) -> str:
    m = _MSGID.search(text)
    return m.group(1) if m else ""


def _first_id(value: object) -> str:
    m = re.search(r"<[^<>\s]+>", str(value))
    return m.group(0) if m else ""


def _address(value: str) -> str:
    """``rfc822; user@host`` → ``user@host``."""
    value = value.partition(";")[2] if ";" in value else value
    m = _ADDR.search(value)
    return m.group(0).lower() if m else ""


def _part_text(part: Message) -> str:
    payload = part.get_payload(decode=True)
    if isinstance(payload, bytes):
        return payload.decode(part.get_content_charset() or "utf-8", "replace")
    raw = part.get_payload()
    return raw if isinstance(raw, str) else ""


def _all_text(message: Message) -> str:
    return "\n".join(_part_text(p) for p in message.walk()
                     if p.get_content_type() == "text/plain")


def _one_line(value: str) -> str:
    value = _WS.sub(" ", value).strip()
    return value if len(value) <= MAX_DIAGNOSTIC else value[:MAX_DIAGNOSTIC - 1] + "…"
