"""The health rules (``maild.runners.health.judge``): what makes ``/healthz`` answer 200,
503 "starting" or 503 "unhealthy", and the state of each connection."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime

import pytest

from maild.adapters.sources.base import MailSourceError
from maild.runners import faults
from maild.runners.faults import FaultState
from maild.runners.health import (
    DOWN,
    OK,
    STARTING,
    UNHEALTHY,
    UNKNOWN,
    UP,
    Facts,
    Watch,
    judge,
    on_database,
    on_mailbox,
)
from maild.runners.health import facts as facts_of

T = 1_000_000.0  # "now", unix time
WITHIN = 300.0
SINCE = datetime(2026, 12, 1, 2, 0, tzinfo=UTC)


def at(**kw: object) -> Facts:
    base: dict[str, object] = {"now": T, "started": T - 3600, "within": WITHIN}
    return Facts(**{**base, **kw})  # type: ignore[arg-type]


@pytest.mark.parametrize(("case", "status", "mailbox", "database", "smtp"), [
    (at(last_poll=T - 10, last_db=T - 5), OK, UP, UP, UNKNOWN),
    (at(last_poll=T - 10, last_db=T - 5, last_send=T - 20), OK, UP, UP, UP),
    # just started, nothing answered yet: 503 "starting", not a failure yet
    (at(started=T - 20), STARTING, UNKNOWN, UNKNOWN, UNKNOWN),
    # never polled long after the start
    (at(started=T - WITHIN - 1), UNHEALTHY, UNKNOWN, UNKNOWN, UNKNOWN),
    # the last poll is older than healthy_within (a hung loop, a stuck poll)
    (at(last_poll=T - WITHIN - 1, last_db=T - 1), UNHEALTHY, UP, UP, UNKNOWN),
    (at(last_poll=T - WITHIN, last_db=T - WITHIN), OK, UP, UP, UNKNOWN),  # the limit itself
    # the database stopped answering, though the last poll is recent
    (at(last_poll=T - 10, last_db=T - WITHIN - 5), UNHEALTHY, UP, UP, UNKNOWN),
    # an outage of the mailbox: unhealthy at once, however recent the last poll
    (at(last_poll=T - 2, last_db=T - 1, fault="mailbox unavailable: refused",
        fault_on_mailbox=True, fault_since=SINCE, fault_attempts=3),
     UNHEALTHY, DOWN, UP, UNKNOWN),
    # an outage of the database: the mailbox is not known to be down
    (at(last_poll=T - 2, last_db=T - 2, fault="database connection lost: gone",
        fault_on_database=True, fault_since=SINCE, fault_attempts=1),
     UNHEALTHY, UNKNOWN, DOWN, UNKNOWN),
    # a failed read of the backlog is a warning and marks the database down
    (at(last_poll=T - 2, last_db=T - 2, db_error="no answer within 5 s"), OK, UP, DOWN,
     UNKNOWN),
    # delivery failing: still healthy (letters stay queued), smtp down
    (at(last_poll=T - 2, last_db=T - 2, last_send=T - 900, delivery_failing_since=SINCE),
     OK, UP, UP, DOWN),
    # an outage during the start: unhealthy, not merely starting
    (at(started=T - 5, fault="connection failed: refused", fault_on_database=True,
        fault_attempts=2), UNHEALTHY, UNKNOWN, DOWN, UNKNOWN),
    # a disk full: neither peer is known to be down
    (at(last_poll=T - 2, last_db=T - 2, fault="disk full: [Errno 28]"), UNHEALTHY, UNKNOWN,
     UP, UNKNOWN),
])
def test_rules(case: Facts, status: str, mailbox: str, database: str, smtp: str) -> None:
    v = judge(case)
    assert (v.status, v.mailbox, v.database, v.smtp) == (status, mailbox, database, smtp)
    assert v.healthy == (status == OK)
    assert bool(v.reasons) == (status != OK)


def test_reasons_and_warnings_say_what_and_since_when() -> None:
    v = judge(at(last_poll=T - 2, last_db=T - 2, fault="mailbox unavailable: refused",
                 fault_on_mailbox=True, fault_since=SINCE, fault_attempts=3))
    assert v.reasons == ("intake failing since 2026-12-01T02:00:00+00:00 (3 attempt(s)): "
                         "mailbox unavailable: refused",)
    v = judge(at(last_poll=T - 900, last_db=T - 2))
    assert v.reasons == ("no poll has gone through for 15 min (healthy_within 5 min)",)
    v = judge(at(last_poll=T - 2, last_db=T - 2, delivery_failing_since=SINCE,
                 db_error="database locked"))
    assert v.warnings == ("reading the backlog failed: database locked",
                          "delivery failing since 2026-12-01T02:00:00+00:00: letters stay "
                          "queued and are retried")


def test_a_fault_is_the_mailbox_s_when_the_source_raised_it() -> None:
    try:
        try:
            raise ConnectionRefusedError(111, "Connection refused")
        except OSError as e:
            raise MailSourceError("cannot connect to IMAP server 127.0.0.1:1") from e
    except MailSourceError as e:
        mailbox = faults.environmental(e)
    assert on_mailbox(mailbox)
    assert not on_mailbox(faults.environmental(ConnectionRefusedError(111, "refused")))
    assert not on_mailbox(None)
    assert not on_database(mailbox)


def test_a_fault_is_the_database_s_when_its_driver_raised_it_or_it_never_opened() -> None:
    try:
        raise sqlite3.OperationalError("attempt to write a readonly database")
    except sqlite3.Error as e:
        readonly = faults.environmental(e)
    assert on_database(readonly)
    refused = faults.environmental(ConnectionRefusedError(111, "Connection refused"))
    assert refused.what == "connection failed"
    assert not on_database(refused)  # after the start: anyone's
    assert on_database(refused, opened=False)  # before it: only the database is tried
    disk = faults.environmental(OSError(28, "No space left on device"))
    assert not on_database(disk) and not on_database(None)


def test_facts_follow_the_daemon_s_state_through_an_outage() -> None:
    watch, state = Watch(), FaultState(60.0)
    assert judge(facts_of(watch, state, WITHIN, None)).status == STARTING
    watch.polled()
    assert judge(facts_of(watch, state, WITHIN, None)).status == OK
    try:
        raise MailSourceError("IMAP login refused")
    except MailSourceError as e:
        state.failed(faults.environmental(e))
    v = judge(facts_of(watch, state, WITHIN, None))
    assert (v.status, v.mailbox) == (UNHEALTHY, DOWN)
    state.cleared()
    watch.polled()
    v = judge(facts_of(watch, state, WITHIN, None))
    assert (v.status, v.mailbox) == (OK, UP)
    # much later, with no poll since: stale
    polled = watch.last_poll or 0.0
    assert judge(facts_of(watch, state, WITHIN, None, now=polled + WITHIN + 1)
                 ).status == UNHEALTHY


def test_drained_records_a_send_only_when_a_letter_went_out() -> None:
    watch = Watch()
    watch.drained(0)
    assert watch.last_db is not None and watch.last_send is None
    watch.drained(2)
    assert watch.last_send == watch.last_db
