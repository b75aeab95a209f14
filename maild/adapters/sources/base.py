"""The MailSource port: the only thing the pipeline knows about a mailbox.

Every method is blocking; the pipeline calls them through ``asyncio.to_thread``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol


@dataclass(frozen=True)
class Fetched:
    """One message as it sits in the mailbox: its UID and its exact raw bytes (only the first
    ``cap`` bytes of a message larger than the ``cap`` given to ``fetch_after``)."""

    uid: int
    raw: bytes
    #: its size in the mailbox; -1: ``len(raw)``
    size: int = field(default=-1, compare=False)

    @property
    def full_size(self) -> int:
        return self.size if self.size >= 0 else len(self.raw)

    @property
    def truncated(self) -> bool:
        return len(self.raw) < self.full_size


class MailSourceError(Exception):
    """The mailbox could not be reached or refused an operation."""


class MailSource(Protocol):
    #: a stable key for this mailbox+folder, used for the UID checkpoint
    #: (e.g. ``imap://shared@127.0.0.1:1430/INBOX`` or ``maildir:///var/mail``)
    name: str

    def open(self) -> None:
        """Connect / lock; idempotent."""

    def close(self) -> None:
        """Disconnect; idempotent, never raises."""

    def uidvalidity(self) -> int:
        """UIDVALIDITY of the watched folder."""

    def fetch_after(self, last_uid: int, limit: int, max_bytes: int | None = None,
                    cap: int | None = None, first_alone: bool = True) -> list[Fetched]:
        """Messages with ``uid > last_uid`` in ascending UID order, at most ``limit``, and
        together at most ``max_bytes`` (sizes are looked up before any body is read). A
        first message larger than ``max_bytes`` comes alone, or not at all when not
        ``first_alone``. Of a message larger than ``cap`` only the first ``cap`` bytes.

        Never marks anything read (``BODY.PEEK[]``); returns exact raw bytes.
        """

    def move(self, uids: Sequence[int], folder: str) -> None:
        """Move the messages to ``folder`` (created when missing). Unknown UIDs are ignored."""

    def count(self, folder: str | None = None) -> int:
        """Number of messages in ``folder`` (default: the watched folder)."""

    def watch(self, idle_seconds: float) -> MailWatch:
        """A watch on the folder for new mail (``MailWatch``), independent of this source's
        own connection; an IMAP watch re-issues IDLE every ``idle_seconds``."""


def within(sizes: Sequence[tuple[int, int]], max_bytes: int | None,
           first_alone: bool = True) -> list[tuple[int, int]]:
    """The longest prefix of ``(uid, size)`` pairs whose sizes add up to at most
    ``max_bytes``; a larger first one alone when ``first_alone``."""
    if max_bytes is None:
        return list(sizes)
    out: list[tuple[int, int]] = []
    total = 0
    for uid, size in sizes:
        total += size
        if total > max_bytes:
            if not out and first_alone:
                out.append((uid, size))
            break
        out.append((uid, size))
    return out


class PushUnavailable(MailSourceError):
    """The mailbox cannot tell us about new mail (e.g. the IMAP server offers no IDLE): the
    daemon polls instead."""


class MailWatch(Protocol):
    """Tells when new mail may have arrived in the watched folder: IMAP IDLE on a connection
    of its own, or a look at a Maildir's ``new/``. Blocking, used by one thread."""

    def wait(self, timeout: float) -> bool:
        """Block at most about ``timeout`` seconds; True when new mail may have arrived
        (also right after a (re)connection: mail may have come meanwhile). Raises
        ``MailSourceError`` when the mailbox cannot be reached (the caller retries with
        backoff) and ``PushUnavailable`` when it cannot push at all."""

    def close(self) -> None:
        """Let go of the connection; idempotent, never raises. ``wait`` connects again."""
