"""Whose fault an error is: the mail's (quarantine it) or the environment's (stop, retry)."""

from __future__ import annotations

import errno
import sqlite3

import asyncpg
import pytest
from tortoise import exceptions as orm

from maild.adapters.letters import LetterError
from maild.adapters.sources.base import MailSourceError
from maild.mail.parse import ParseError
from maild.runners.faults import (
    ENVIRONMENT,
    MESSAGE,
    FaultState,
    IntakeFault,
    classify,
    environmental,
)


def wrapped(outer: type[BaseException], inner: BaseException, *, cause: bool = True
            ) -> BaseException:
    """``outer`` raised from (or while handling) ``inner``, as tortoise wraps drivers."""
    try:
        try:
            raise inner
        except BaseException as e:
            arg = e if issubclass(outer, orm.BaseORMException) else str(e)
            if cause:
                raise outer(arg) from e
            raise outer(arg)  # noqa: B904 - tortoise's SQLite client does this
    except BaseException as e:  # noqa: BLE001
        return e
    raise AssertionError


ENOSPC = OSError(errno.ENOSPC, "No space left on device", "/var/lib/maild/attachments/ab/x")

CASES: list[tuple[str, BaseException, str, str]] = [
    # the environment's
    ("disk full", ENOSPC, ENVIRONMENT, "disk full"),
    ("I/O error", OSError(errno.EIO, "Input/output error"), ENVIRONMENT, "I/O error"),
    ("read-only fs", OSError(errno.EROFS, "Read-only file system"), ENVIRONMENT,
     "read-only file system"),
    ("permission", PermissionError(errno.EACCES, "Permission denied"), ENVIRONMENT,
     "permission denied"),
    ("timeout", TimeoutError(), ENVIRONMENT, "timed out"),
    ("refused", ConnectionRefusedError(111, "Connection refused"), ENVIRONMENT,
     "connection failed"),
    ("sqlite read-only", wrapped(orm.OperationalError, sqlite3.OperationalError(
        "attempt to write a readonly database"), cause=False), ENVIRONMENT,
     "database read-only"),
    ("sqlite disk I/O", wrapped(orm.OperationalError, sqlite3.OperationalError(
        "disk I/O error"), cause=False), ENVIRONMENT, "database I/O error"),
    ("sqlite locked", sqlite3.OperationalError("database is locked"), ENVIRONMENT,
     "database locked"),
    ("sqlite cannot open", sqlite3.OperationalError("unable to open database file"),
     ENVIRONMENT, "database cannot be opened"),
    ("sqlite full", sqlite3.OperationalError("database or disk is full"), ENVIRONMENT,
     "database disk full"),
    ("db connection", orm.DBConnectionError("gone"), ENVIRONMENT, "database unavailable"),
    ("pg read-only", wrapped(orm.TransactionManagementError,
                             asyncpg.ReadOnlySQLTransactionError(
                                 "cannot execute INSERT in a read-only transaction")),
     ENVIRONMENT, "database read-only"),
    ("pg terminated", asyncpg.AdminShutdownError("terminating connection"), ENVIRONMENT,
     "database connection lost"),
    ("pg closed", asyncpg.ConnectionDoesNotExistError("connection was closed"), ENVIRONMENT,
     "database connection lost"),
    ("pg interface", asyncpg.InterfaceError("connection is closed"), ENVIRONMENT,
     "database connection lost"),
    ("pg read-only raw", asyncpg.ReadOnlySQLTransactionError("read-only transaction"),
     ENVIRONMENT, "database read-only"),
    ("pg disk full", asyncpg.DiskFullError("could not extend file"), ENVIRONMENT,
     "database disk full"),
    ("pg privilege", wrapped(orm.OperationalError, asyncpg.InsufficientPrivilegeError(
        "permission denied for table cases")), ENVIRONMENT, "database error"),
    ("mailbox", MailSourceError("IMAP timed out"), ENVIRONMENT, "mailbox unavailable"),
    # a savepoint's rollback on a dead connection, after a message fault
    ("rollback failed", wrapped(asyncpg.ConnectionDoesNotExistError,
                                orm.ValidationError("message_id: too long"), cause=False),
     ENVIRONMENT, "database connection lost"),
    # the mail's
    ("parse", ParseError("nested too deep"), MESSAGE, "cannot parse"),
    ("letter", LetterError("ack.zh: 'x' is undefined"), MESSAGE, "cannot render a letter"),
    ("validation", orm.ValidationError("message_id: Length of 1506 > 998"), MESSAGE,
     "invalid data"),
    ("integrity", orm.IntegrityError("UNIQUE constraint failed"), MESSAGE,
     "data refused by the database"),
    ("sqlite integrity", wrapped(orm.IntegrityError, sqlite3.IntegrityError(
        "NOT NULL constraint failed"), cause=False), MESSAGE, "data refused by the database"),
    ("pg data", wrapped(orm.OperationalError, asyncpg.CharacterNotInRepertoireError(
        "invalid byte sequence for encoding UTF8: 0x00")), MESSAGE,
     "data refused by the database"),
    ("pg too long", wrapped(orm.OperationalError, asyncpg.StringDataRightTruncationError(
        "value too long for type character varying(998)")), MESSAGE,
     "data refused by the database"),
    ("value", ValueError("bad date"), MESSAGE, "bad data"),
    ("unicode", UnicodeDecodeError("utf-8", b"\xff", 0, 1, "invalid start byte"), MESSAGE,
     "bad data"),
    ("key", KeyError("department"), MESSAGE, "bad data"),
]


@pytest.mark.parametrize(("name", "exc", "kind", "what"), CASES, ids=[c[0] for c in CASES])
def test_classify(name: str, exc: BaseException, kind: str, what: str) -> None:
    fault = classify(exc)
    assert (fault.kind, fault.what, fault.certain) == (kind, what, True)


def test_unknown_errors_are_the_environments_but_uncertain() -> None:
    for exc in (RuntimeError("boom"), AttributeError("x"), orm.OperationalError("?"),
                orm.DoesNotExist("gone meanwhile")):
        fault = classify(exc)
        assert (fault.kind, fault.certain) == (ENVIRONMENT, False), exc


def test_the_disk_full_fault_names_the_file() -> None:
    assert str(classify(ENOSPC)) == (
        "disk full: [Errno 28] No space left on device on /var/lib/maild/attachments/ab/x")


def test_outside_a_decision_everything_is_the_environments() -> None:
    assert environmental(ValueError("bad")).kind == ENVIRONMENT
    assert environmental(ENOSPC).certain
    inner = classify(ENOSPC)
    assert classify(IntakeFault(inner)) is inner


def test_backoff_doubles_up_to_the_maximum_and_reports_the_outage_once() -> None:
    state = FaultState(backoff_max=10)
    assert not state.active and state.cleared() is None
    fault = classify(ENOSPC)
    starts = [state.failed(fault) for _ in range(6)]
    assert starts == [True, False, False, False, False, False]
    assert state.attempts == 6 and state.delay() == 10
    assert [FaultState(10, fault, attempts=n).delay() for n in (1, 2, 3, 4, 5)] == [
        1, 2, 4, 8, 10]
    assert state.waiting() and state.as_dict()["attempts"] == 6
    took = state.cleared()
    assert took is not None and took[1] == 6
    assert not state.active and state.as_dict() == {"ok": True}
