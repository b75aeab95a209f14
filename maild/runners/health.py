"""Is the daemon healthy? What it saw last (``Watch``), the backlog in the database
(``Backlog``, ``read_backlog``) and the rules that judge them (``judge``).

Healthy means the mailbox and the database answered within ``[metrics] healthy_within``: a
poll went through (it reads the mailbox and writes the database) that recently, the
database answered that recently, and no intake outage is in hand (``Daemon.fault``).
Delivery trouble (the SMTP server refusing or away) leaves the daemon healthy: letters stay
queued and are retried; it shows as a warning, in ``maild_connection_up{peer="smtp"}`` and in
the age of the oldest pending letter. ``/healthz`` (``maild.runners.metrics``) and ``maild
status`` report the same facts.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

from tortoise.functions import Max, Min

from maild.adapters.sources.base import MailSourceError
from maild.config import Mailbox
from maild.runners import faults
from maild.runners.faults import Fault, FaultState
from maild.store.models import Message, Outbox, Timer

log = logging.getLogger("maild.health")

#: a database read for the metrics gives up after this many seconds
READ_TIMEOUT = 5.0
#: the backlog is read again at most this often (cycles may come much faster with IDLE)
REFRESH_SECONDS = 10.0

OK, STARTING, UNHEALTHY = "ok", "starting", "unhealthy"
UP, DOWN, UNKNOWN = "up", "down", "unknown"


# -- the database's facts ------------------------------------------------------------------------

@dataclass(frozen=True)
class Backlog:
    """What the database holds that a monitor cares about, read at ``read_at``."""

    read_at: datetime
    letters_pending: int  # waiting to be sent (due now or retried later)
    oldest_pending: datetime | None  # when the oldest pending letter was queued
    letters_given_up: int  # state "failed": given up, see `maild outbox list`
    quarantined: int  # inbound mail quarantined (`maild triage list --quarantined`)
    triage: int  # mail no process took, waiting for a person (`maild triage list`)
    timers_due: int  # pending timers due at read_at, not fired yet
    oldest_due_timer: datetime | None  # the due time of the oldest of them
    last_received: datetime | None  # the latest mail fetched from the mailbox
    last_sent: datetime | None  # the latest letter the SMTP server accepted

    def letter_age(self, now: datetime) -> float:
        """Seconds the oldest pending letter has waited (0 when none waits)."""
        return _age(self.oldest_pending, now)

    def timer_lag(self, now: datetime) -> float:
        """Seconds the oldest due, unfired timer is late (0 when none is)."""
        return _age(self.oldest_due_timer, now)

    def as_dict(self, now: datetime) -> dict[str, Any]:
        out: dict[str, Any] = {k: v.isoformat() if isinstance(v, datetime) else v
                               for k, v in asdict(self).items()}
        out["oldest_pending_age_seconds"] = round(self.letter_age(now), 1)
        out["timer_lag_seconds"] = round(self.timer_lag(now), 1)
        return out


def _age(at: datetime | None, now: datetime) -> float:
    return 0.0 if at is None else max(0.0, (now - at).total_seconds())


async def read_backlog(now: datetime, *, triage_folder: str, quarantine_folder: str
                       ) -> Backlog:
    """The backlog from the open store (a few counts over indexed columns, and the triage
    and quarantine rows)."""
    now = now.astimezone(UTC)  # SQLite compares the stored UTC text: never pass other zones
    pending = Outbox.filter(state="pending")
    letters = await pending.count()
    oldest = (await pending.annotate(m=Min("created_at")).values_list("m", flat=True))[0]
    given_up = await Outbox.filter(state="failed").count()
    quarantined = await Message.filter(direction="in", state="quarantined").count()
    # as `maild triage list` counts: decided, no case, routed to triage (by the intake, or
    # by `maild reprocess`, whose copy stays in the quarantine folder)
    routes = await Message.filter(
        direction="in", state="processed", case_id__isnull=True,
        route__in=(triage_folder, quarantine_folder)).values_list("rules", flat=True)
    triage = sum(1 for r in routes if isinstance(r, dict) and r.get("route") == "triage")
    due = Timer.filter(state="pending", due_at__lte=now)
    timers_due = await due.count()
    oldest_due = (await due.annotate(m=Min("due_at")).values_list("m", flat=True))[0]
    received = (await Message.filter(direction="in").annotate(m=Max("at"))
                .values_list("m", flat=True))[0]
    sent = (await Outbox.filter(state="sent").annotate(m=Max("sent_at"))
            .values_list("m", flat=True))[0]
    return Backlog(now, letters, _utc(oldest), given_up, quarantined, triage, timers_due,
                   _utc(oldest_due), _utc(received), _utc(sent))


def _utc(value: Any) -> datetime | None:
    """An aggregate's value as an aware UTC time (SQLite hands back text)."""
    if value is None:
        return None
    at = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    return (at if at.tzinfo else at.replace(tzinfo=UTC)).astimezone(UTC)


# -- what the daemon saw -------------------------------------------------------------------------

class Watch:
    """What the daemon saw last, as unix times: the daemon's hooks set it, the metrics
    server's thread reads it (plain attributes, each written whole)."""

    def __init__(self, enabled: bool = False) -> None:
        #: read the backlog: only when something reports it (``maild.runners.metrics.serve``)
        self.enabled = enabled
        self.started = time.time()
        self.opened_at: float | None = None  # the database was opened
        self.last_poll: float | None = None  # a poll went through: mailbox and database
        self.last_send: float | None = None  # the SMTP server accepted a letter
        self.last_db: float | None = None  # the database answered
        self.db_error: str | None = None  # the last read of the backlog failed: why
        self.backlog: Backlog | None = None
        self._read = 0.0  # monotonic time of the last backlog read

    def opened(self) -> None:
        """The database was opened and takes writes (the daemon's start)."""
        self.opened_at = self.last_db = time.time()

    def polled(self) -> None:
        self.last_poll = self.last_db = time.time()

    def drained(self, sent: int) -> None:
        """The outbox was drained (the database answered); ``sent`` letters went out."""
        self.last_db = time.time()
        if sent:
            self.last_send = self.last_db

    async def refresh(self, now: datetime, mailbox: Mailbox, force: bool = False) -> None:
        """Read the backlog again (at most every ``REFRESH_SECONDS`` unless ``force``),
        giving up after ``READ_TIMEOUT``. A failure is kept in ``db_error`` and logged
        when it starts and when it ends, never raised."""
        if not self.enabled or (not force and time.monotonic() - self._read < REFRESH_SECONDS):
            return
        self._read = time.monotonic()
        try:
            async with asyncio.timeout(READ_TIMEOUT):
                self.backlog = await read_backlog(
                    now, triage_folder=mailbox.triage_folder,
                    quarantine_folder=mailbox.quarantine_folder)
        except Exception as e:  # noqa: BLE001 - reported by /healthz and the metrics
            error = (f"no answer within {READ_TIMEOUT:.0f} s" if isinstance(e, TimeoutError)
                     else str(faults.environmental(e)))
            if self.db_error is None:
                log.warning("reading the backlog for the metrics failed: %s", error)
            self.db_error = error
            return
        if self.db_error is not None:
            log.info("reading the backlog for the metrics works again")
        self.db_error = None
        self.last_db = time.time()


# -- the rules -----------------------------------------------------------------------------------

@dataclass(frozen=True)
class Facts:
    """What the rules look at, taken at ``now`` (unix time)."""

    now: float
    started: float
    within: float  # [metrics] healthy_within, in seconds
    last_poll: float | None = None
    last_db: float | None = None
    db_error: str | None = None
    fault: str | None = None  # the intake outage in hand
    fault_on_mailbox: bool = False  # ... and it is the mailbox's
    fault_on_database: bool = False  # ... or the database's
    fault_since: datetime | None = None
    fault_attempts: int = 0
    delivery_failing_since: datetime | None = None
    last_send: float | None = None


@dataclass(frozen=True)
class Verdict:
    status: str  # "ok", "starting" (no poll yet, within healthy_within of the start), "unhealthy"
    reasons: tuple[str, ...]  # why it is not healthy
    warnings: tuple[str, ...]  # worth a look, not unhealthy
    mailbox: str  # up / down / unknown
    database: str
    smtp: str

    @property
    def healthy(self) -> bool:
        return self.status == OK


def judge(f: Facts) -> Verdict:
    """The health rules (see the module's docstring)."""
    reasons: list[str] = []
    warnings: list[str] = []
    if f.fault is not None:
        since = f" since {f.fault_since.isoformat(timespec='seconds')}" if f.fault_since else ""
        reasons.append(f"intake failing{since} ({f.fault_attempts} attempt(s)): {f.fault}")
    starting = False
    if f.last_poll is None:
        if f.now - f.started <= f.within:
            starting = True
            reasons.append("starting: no poll has gone through yet")
        else:
            reasons.append(f"no poll has gone through since the start {_ago(f.now - f.started)}")
    elif f.now - f.last_poll > f.within:
        reasons.append(f"no poll has gone through for {_ago(f.now - f.last_poll)} "
                       f"(healthy_within {_ago(f.within)})")
    if f.last_db is not None and f.now - f.last_db > f.within:
        reasons.append(f"the database has not answered for {_ago(f.now - f.last_db)}")
    if f.db_error is not None:
        warnings.append(f"reading the backlog failed: {f.db_error}")
    if f.delivery_failing_since is not None:
        warnings.append("delivery failing since "
                        f"{f.delivery_failing_since.isoformat(timespec='seconds')}: "
                        "letters stay queued and are retried")
    status = OK if not reasons else STARTING if starting and len(reasons) == 1 else UNHEALTHY
    return Verdict(status, tuple(reasons), tuple(warnings), _mailbox(f), _database(f),
                   DOWN if f.delivery_failing_since is not None
                   else UP if f.last_send is not None else UNKNOWN)


def _mailbox(f: Facts) -> str:
    if f.fault is not None and f.fault_on_mailbox:
        return DOWN
    if f.last_poll is not None and f.fault is None:
        return UP
    return UNKNOWN  # not polled yet, or the outage is someone else's (database, disk)


def _database(f: Facts) -> str:
    if f.db_error is not None or (f.fault is not None and f.fault_on_database):
        return DOWN
    return UP if f.last_db is not None else UNKNOWN


def _ago(seconds: float) -> str:
    s = int(seconds)
    if s < 120:
        return f"{s} s"
    if s < 7200:
        return f"{s // 60} min"
    return f"{s // 3600} h {s % 3600 // 60} min"


def on_mailbox(fault: Fault | None) -> bool:
    """Is ``fault`` the mailbox's (the source raised it)?"""
    return any(isinstance(e, MailSourceError) for e in _chain(fault))


def on_database(fault: Fault | None, opened: bool = True) -> bool:
    """Is ``fault`` the database's: its driver or tortoise raised it, ``faults`` named it a
    database's, or the database was never opened (nothing else runs before that)?"""
    if fault is None or on_mailbox(fault):
        return False
    return (not opened or fault.what.startswith("database")
            or any(type(e).__module__.split(".")[0] in _DB_MODULES for e in _chain(fault)))


_DB_MODULES = {"asyncpg", "sqlite3", "tortoise"}


def _chain(fault: Fault | None) -> list[BaseException]:
    e = fault.exc if fault is not None else None
    seen: list[BaseException] = []
    while e is not None and e not in seen:
        seen.append(e)
        e = e.__cause__ or e.__context__
    return seen


def facts(watch: Watch, state: FaultState, within: float, delivery_since: datetime | None,
          now: float | None = None) -> Facts:
    """The facts of a running daemon (its ``Watch``, its intake's ``FaultState`` and its
    delivery outage's start), taken now."""
    fault = state.fault
    return Facts(now=time.time() if now is None else now, started=watch.started,
                 within=within, last_poll=watch.last_poll, last_db=watch.last_db,
                 db_error=watch.db_error, fault=str(fault) if fault is not None else None,
                 fault_on_mailbox=on_mailbox(fault),
                 fault_on_database=on_database(fault, watch.opened_at is not None),
                 fault_since=state.since,
                 fault_attempts=state.attempts, delivery_failing_since=delivery_since,
                 last_send=watch.last_send)


__all__ = ["Backlog", "Facts", "Verdict", "Watch", "facts", "judge", "on_database",
           "on_mailbox", "read_backlog"]
