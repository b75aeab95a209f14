"""The parsed mail value: what every decision sees of an inbound message."""

from __future__ import annotations

from dataclasses import dataclass, field

from maild.mail.auth import DkimResult
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
    #: raw Authentication-Results values, topmost first (at most 20, 4000 characters each)
    auth_results: tuple[str, ...] = ()
    #: the DKIM signatures maild checked (empty when not checked or none)
    dkim: tuple[DkimResult, ...] = ()
    #: how many From addresses the mail gives, over all its From fields (more than one:
    #: nobody can tell who sent it)
    from_count: int = 1
    sender: str = ""  # the Sender field's address ("" when absent)
    #: the envelope recipients the delivering server wrote (Delivered-To, X-Original-To,
    #: Envelope-To): the alias a mail was sent to when To does not show it (Bcc, lists)
    delivered_to: tuple[Address, ...] = ()
    #: every top-level header, lower-cased name -> its values in order (at most 100 names,
    #: 10 values each, one line of 1000 characters each): what routing rules may match
    headers: dict[str, tuple[str, ...]] = field(default_factory=dict, hash=False,
                                                compare=False)
