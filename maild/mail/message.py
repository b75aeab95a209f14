"""The parsed mail value: what every decision sees of an inbound message."""

from __future__ import annotations

from dataclasses import dataclass, field

from maild.mail.dsn import Dsn


@dataclass(frozen=True)
class Address:
    name: str
    addr: str  # lower-cased ``local@domain``; may be "" when the header was unusable

    @property
    def domain(self) -> str:
        return self.addr.rpartition("@")[2]


@dataclass(frozen=True)
class Attachment:
    filename: str  # decoded (RFC 2231 / RFC 2047), never empty: a fallback name is made up
    content_type: str
    size: int
    payload: bytes = field(repr=False)


@dataclass(frozen=True)
class ParsedMail:
    message_id: str  # with angle brackets, e.g. "<abc@host>"; "" when missing
    from_: Address
    to: tuple[Address, ...]
    cc: tuple[Address, ...]
    reply_to: tuple[Address, ...]
    subject: str  # decoded, whitespace-normalised, no control characters, 1000 at most
    date: str  # the Date header as given ("" when missing)
    text: str  # the plain-text body (derived from HTML when only HTML exists)
    html: str
    attachments: tuple[Attachment, ...]
    in_reply_to: tuple[str, ...]  # message ids with angle brackets
    references: tuple[str, ...]
    # lower-cased header name -> value for the headers robots are recognised by:
    # auto-submitted, precedence, list-id, list-unsubscribe, return-path, x-auto-response-suppress,
    # x-autoreply, x-autorespond, x-maild-case, x-spam-flag, x-spam-status, content-type
    # (top-level); each value one line of at most 1000 characters
    signals: dict[str, str] = field(default_factory=dict, hash=False, compare=False)
    defects: tuple[str, ...] = ()  # human-readable parser defects (kept for `explain`)
    #: a bounce: the recipients that failed and the returned letter's Message-ID
    dsn: Dsn | None = field(default=None, hash=False, compare=False)
