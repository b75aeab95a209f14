"""Decisions as data: what a handler wants done, persisted by the store in one transaction."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from maild.calendar.business import BusinessCalendar
from maild.classify.directory import Directory
from maild.engine.definitions import ProcessDef

#: the kinds of timer a decision may set (``maild.schedule.firing`` says what each does)
KINDS = ("deadline", "chase", "action_reminder", "milestone", "progress")
PAUSABLE = ("deadline",)  # kinds that stop while a case waits on the other party
CLOSED = ("closed", "archived")  # statuses of a finished case: its timers never fire


@dataclass(frozen=True)
class CaseView:
    """A read-only snapshot of a case, as handlers see it."""

    number: str
    process: str
    step: str
    status: str
    subject: str
    department: str | None
    urgent: bool
    language: str
    parties: tuple[str, ...]
    data: Mapping[str, Any] = field(default_factory=dict)
    owner: tuple[str, ...] = ()  # who answers for the current step
    due_at: datetime | None = None  # the current step's deadline


@dataclass(frozen=True)
class Context:
    """Everything a decision may depend on besides the mail and the case."""

    now: datetime
    org_name: str
    org_address: str
    language: str
    directory: Directory
    calendar: BusinessCalendar
    processes: Mapping[str, ProcessDef]


@dataclass(frozen=True)
class OpenCase:
    process: str
    step: str
    subject: str
    department: str | None  # department name
    number_key: str  # what the numbering format's {dept} is filled with ("" when unused)
    urgent: bool
    language: str
    parties: tuple[str, ...]


@dataclass(frozen=True)
class UpdateCase:
    step: str | None = None
    status: str | None = None
    add_parties: tuple[str, ...] = ()
    data: Mapping[str, Any] | None = None  # merged into the case's data
    owner: tuple[str, ...] | None = None  # who answers for the step now
    due_at: datetime | None = None  # the step's deadline, written when ``set_due``
    set_due: bool = False
    urgent: bool | None = None


@dataclass(frozen=True)
class Note:
    """A timeline entry; ``message_id`` defaults to the mail being decided on."""

    kind: str
    text: str
    actor: str


@dataclass(frozen=True)
class SendLetter:
    letter: str  # template name under templates/email/
    to: tuple[str, ...]
    context: Mapping[str, Any]
    language: str
    cc: tuple[str, ...] = ()
    automatic: bool = True  # an automatic reply: counts against the sender's rate limit


@dataclass(frozen=True)
class SetTimer:
    """Start (or restart) a timer on the case; one pending timer per (kind, key).

    ``kind`` names what happens when it fires (e.g. ``response``, ``reminder``,
    ``milestone``, ``progress``, ``chase``); ``key`` tells timers of one kind apart
    (an action item's id, a milestone's date); ``data`` travels to the code that fires it.
    """

    kind: str
    due_at: datetime
    key: str = ""
    data: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class CancelTimers:
    """Cancel the case's pending timers of these kinds (all kinds when empty)."""

    kinds: tuple[str, ...] = ()
    key: str | None = None  # only the timer with this key


@dataclass(frozen=True)
class KeepAttachments:
    """Store the mail's attachments once and link them to the case as this output."""

    output: str


Effect = OpenCase | UpdateCase | Note | SendLetter | SetTimer | CancelTimers | KeepAttachments


@dataclass(frozen=True)
class Decision:
    effects: tuple[Effect, ...]
    summary: str

    def letters(self) -> tuple[SendLetter, ...]:
        return tuple(e for e in self.effects if isinstance(e, SendLetter))
