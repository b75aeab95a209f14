"""Whose fault an error is, and the state of an outage.

Only the mail itself can earn a quarantine: it cannot be parsed, a template cannot render
it, its data breaks a limit or a constraint (``MESSAGE``). Everything around it — a full or
failing disk, a database that is gone, read-only or locked, a server timing out — is the
environment's fault (``ENVIRONMENT``): the intake stops, leaves the mail where it is (above
the checkpoint, its transaction rolled back) and the daemon retries with backoff. An error
that is neither clearly one nor the other is treated as the environment's (``certain`` is
False): losing or mis-filing good mail is worse than waiting. ``Intake`` holds back a mail
that keeps failing such an unexpected way while other mail is decided, and quarantines it
after ``SUSPECT_STRIKES`` polls (see ``Intake._suspect``).

``classify`` walks the exception's chain (``raise ... from``, or raised while handling),
since tortoise wraps the driver's error: the first link that says something decides.
"""

from __future__ import annotations

import errno
import sqlite3
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

import asyncpg  # type: ignore[import-untyped]
from tortoise import exceptions as orm

from maild.adapters.letters import LetterError
from maild.adapters.sources.base import MailSourceError
from maild.mail.parse import ParseError

Kind = Literal["message", "environment"]
MESSAGE: Kind = "message"
ENVIRONMENT: Kind = "environment"

#: polls in a row a mail may fail the same unexpected way, while other mail is decided,
#: before it is taken for the mail's own fault and quarantined
SUSPECT_STRIKES = 3
#: the first retry after a fault; each next one waits twice as long, up to the maximum
BACKOFF_FIRST = 1.0


@dataclass(frozen=True)
class Fault:
    """What went wrong, in a few words (``what``) and in full (``detail``)."""

    kind: Kind
    what: str
    detail: str
    certain: bool = True
    exc: BaseException | None = None

    def __str__(self) -> str:
        return f"{self.what}: {self.detail}" if self.detail else self.what

    @property
    def signature(self) -> str:
        """The same error again has the same signature."""
        return f"{type(self.exc).__name__}: {self.detail}" if self.exc else self.what


class IntakeFault(Exception):
    """The intake stopped for an environmental fault; its mail stays for the next poll."""

    def __init__(self, fault: Fault) -> None:
        super().__init__(str(fault))
        self.fault = fault


_DISK = {errno.ENOSPC: "disk full", errno.EDQUOT: "disk quota exceeded", errno.EIO: "I/O error",
         errno.EROFS: "read-only file system", errno.EACCES: "permission denied",
         errno.EPERM: "permission denied", errno.EMFILE: "too many open files",
         errno.ENFILE: "too many open files", errno.ENOMEM: "out of memory"}
_SQLITE = (("readonly", "database read-only"), ("disk i/o", "database I/O error"),
           ("locked", "database locked"), ("busy", "database locked"),
           ("unable to open", "database cannot be opened"), ("full", "database disk full"))


#: (exception types, whose fault, what it is), first match wins; OSError and sqlite3's
#: errors are told apart by errno and text in ``_one``
_TABLE: tuple[tuple[tuple[type[BaseException], ...], Kind, str], ...] = (
    ((asyncpg.DataError, asyncpg.IntegrityConstraintViolationError,
      asyncpg.ProgramLimitExceededError), MESSAGE, "data refused by the database"),
    ((asyncpg.ReadOnlySQLTransactionError,), ENVIRONMENT, "database read-only"),
    ((asyncpg.DiskFullError,), ENVIRONMENT, "database disk full"),
    ((asyncpg.PostgresConnectionError, asyncpg.InterfaceError,
      asyncpg.OperatorInterventionError), ENVIRONMENT, "database connection lost"),
    ((asyncpg.InsufficientResourcesError, asyncpg.InvalidTransactionStateError,
      asyncpg.TransactionRollbackError, asyncpg.PostgresSystemError,
      asyncpg.SyntaxOrAccessError, asyncpg.InternalClientError), ENVIRONMENT,
     "database error"),
    ((MailSourceError,), ENVIRONMENT, "mailbox unavailable"),
    ((MemoryError,), ENVIRONMENT, "out of memory"),
    ((ParseError,), MESSAGE, "cannot parse"),
    ((LetterError,), MESSAGE, "cannot render a letter"),
    ((ValueError, KeyError, RecursionError), MESSAGE, "bad data"),  # incl. UnicodeError
)


#: tortoise's errors that say something by themselves (its OperationalError does not)
_WRAPPERS: tuple[tuple[type[BaseException], Kind, str], ...] = (
    (orm.DBConnectionError, ENVIRONMENT, "database unavailable"),
    (orm.TransactionManagementError, ENVIRONMENT, "database unavailable"),
    (orm.IntegrityError, MESSAGE, "data refused by the database"),
)


def _one(e: BaseException) -> tuple[Kind, str] | None:
    """What one link of the chain says, or None to look further down the chain."""
    if isinstance(e, orm.ValidationError):
        return MESSAGE, "invalid data"
    if isinstance(e, orm.BaseORMException):
        return None  # a wrapper (see _WRAPPERS): the driver's error below says more
    if isinstance(e, OSError):
        if isinstance(e, TimeoutError):
            return ENVIRONMENT, "timed out"
        if isinstance(e, ConnectionError):
            return ENVIRONMENT, "connection failed"
        return ENVIRONMENT, _DISK.get(e.errno or 0, "I/O error")
    if isinstance(e, sqlite3.Error):
        if isinstance(e, (sqlite3.IntegrityError, sqlite3.DataError)):
            return MESSAGE, "data refused by the database"
        text = str(e).lower()
        return ENVIRONMENT, next((what for key, what in _SQLITE if key in text),
                                 "database error")
    for types, kind, what in _TABLE:
        if isinstance(e, types):
            return kind, what
    return None


def _chain(e: BaseException) -> list[BaseException]:
    out: list[BaseException] = []
    cur: BaseException | None = e
    while cur is not None and cur not in out:
        out.append(cur)
        cur = cur.__cause__ or (None if cur.__suppress_context__ else cur.__context__)
    return out


def classify(e: BaseException) -> Fault:
    """Whose fault ``e`` is (raised while deciding one mail)."""
    chain = _chain(e)
    for link in chain:  # the first fault: what went wrong later (a rollback) follows from it
        if isinstance(link, IntakeFault):
            return link.fault
    for link in chain:
        said = _one(link)
        if said is not None:
            return Fault(said[0], said[1], _detail(link), True, e)
    for link in chain:  # tortoise's own error, with no driver's error below it
        for types, kind, what in _WRAPPERS:
            if isinstance(link, types):
                return Fault(kind, what, _detail(link), True, e)
    return Fault(ENVIRONMENT, "unexpected error", _detail(e), False, e)


def environmental(e: BaseException) -> Fault:
    """``e`` raised outside any one mail's decision (fetching, recording, committing,
    moving, connecting): nothing to quarantine, so it is the environment's whatever it is."""
    f = classify(e)
    if f.kind == ENVIRONMENT:
        return f
    return Fault(ENVIRONMENT, f.what, f.detail, False, e)


def _detail(e: BaseException) -> str:
    if isinstance(e, OSError) and e.strerror:
        where = f" on {e.filename}" if e.filename is not None else ""
        return f"[Errno {e.errno}] {e.strerror}{where}" if e.errno else f"{e.strerror}{where}"
    try:
        text = str(e).strip()
    except Exception:  # noqa: BLE001 - a driver's error with a broken __str__
        text = repr(e.args)
    return f"{type(e).__name__}: {text}" if text else type(e).__name__


@dataclass
class FaultState:
    """The outage in hand, if any: what (``fault``), since when, how many failed attempts,
    when to try next. The daemon keeps one for its intake (``Daemon.fault``); a health check
    reads it."""

    backoff_max: float = 60.0
    fault: Fault | None = None
    since: datetime | None = None  # wall clock, for people
    started: float = 0.0  # monotonic
    attempts: int = 0
    retry_at: float = 0.0  # monotonic

    @property
    def active(self) -> bool:
        return self.fault is not None

    def waiting(self, now: float | None = None) -> bool:
        """In an outage and not yet time for the next attempt."""
        return self.active and (time.monotonic() if now is None else now) < self.retry_at

    def failed(self, fault: Fault) -> bool:
        """One more failed attempt; True when it starts an outage. Sets ``retry_at``."""
        now = time.monotonic()
        new = self.fault is None
        if new:
            self.since, self.started, self.attempts = datetime.now(UTC), now, 0
        self.fault = fault
        self.attempts += 1
        self.retry_at = now + self.delay()
        return new

    def delay(self) -> float:
        """Seconds until the next attempt: 1, 2, 4 … up to ``backoff_max``."""
        if self.attempts <= 0:
            return 0.0
        return min(self.backoff_max, BACKOFF_FIRST * 2 ** min(self.attempts - 1, 30))

    def cleared(self) -> tuple[float, int] | None:
        """The outage is over: (its seconds, failed attempts), or None if there was none."""
        if self.fault is None:
            return None
        took = (time.monotonic() - self.started, self.attempts)
        self.fault, self.since, self.attempts, self.retry_at = None, None, 0, 0.0
        return took

    def as_dict(self) -> dict[str, object]:
        """For a health endpoint."""
        if self.fault is None:
            return {"ok": True}
        return {"ok": False, "fault": str(self.fault), "since": self.since.isoformat()
                if self.since else None, "attempts": self.attempts,
                "retry_in": max(0.0, self.retry_at - time.monotonic())}


class FaultExit(SystemExit):
    """Ends ``maild run --once`` (or a start it cannot make) with the fault as the message;
    ``maild.cli.main`` prints it and exits 69 (EX_UNAVAILABLE), for a supervisor or a
    script to see."""
