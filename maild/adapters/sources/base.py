"""The MailSource port: the only thing the pipeline knows about a mailbox.

Every method is blocking; the pipeline calls them through ``asyncio.to_thread``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class Fetched:
    """One message as it sits in the mailbox: its UID and its exact raw bytes."""

    uid: int
    raw: bytes


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

    def fetch_after(self, last_uid: int, limit: int) -> list[Fetched]:
        """Messages with ``uid > last_uid`` in ascending UID order, at most ``limit``.

        Never marks anything read (``BODY.PEEK[]``); returns exact raw bytes.
        """

    def move(self, uids: Sequence[int], folder: str) -> None:
        """Move the messages to ``folder`` (created when missing). Unknown UIDs are ignored."""

    def count(self, folder: str | None = None) -> int:
        """Number of messages in ``folder`` (default: the watched folder)."""
