"""tortoise's SQLite client with every statement run on the event loop's own thread.

tortoise talks to SQLite through aiosqlite, which hands each statement to a worker thread
and wakes the loop for its result: two thread switches per statement. A statement of the
intake takes tens of microseconds; the round trip cost several times that, and the intake
runs about a dozen statements per message. Here the same ``sqlite3`` calls run inline.

That blocks the loop while SQLite works (a commit's fsync: about a millisecond), which the
daemon can afford: mailbox and SMTP waits are in threads or between statements, never
inside one, and statements never interleave anyway (tortoise holds one lock per SQLite
connection). Use it as the tortoise engine ``maild.store.sqlite_inline``.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from typing import Any

from tortoise.backends.sqlite.client import SqliteClient


class _Cursor:
    """The part of aiosqlite's cursor that tortoise uses."""

    def __init__(self, cursor: sqlite3.Cursor) -> None:
        self._cursor = cursor

    async def fetchall(self) -> list[Any]:
        return self._cursor.fetchall()

    async def fetchone(self) -> Any:
        return self._cursor.fetchone()

    async def close(self) -> None:
        self._cursor.close()


class InlineConnection:
    """aiosqlite's ``Connection`` interface over a plain ``sqlite3`` connection."""

    def __init__(self, path: str) -> None:
        # the same arguments tortoise gives aiosqlite (autocommit; tortoise sends BEGIN)
        self._conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._conn.row_factory = sqlite3.Row

    @property
    def total_changes(self) -> int:
        return self._conn.total_changes

    async def execute(self, sql: str, parameters: Iterable[Any] | None = None) -> _Cursor:
        return _Cursor(self._conn.execute(sql, tuple(parameters or ())))

    async def execute_insert(self, sql: str,
                             parameters: Iterable[Any] | None = None) -> tuple[int | None]:
        return (self._conn.execute(sql, tuple(parameters or ())).lastrowid,)

    async def execute_fetchall(self, sql: str,
                               parameters: Iterable[Any] | None = None) -> list[Any]:
        return self._conn.execute(sql, tuple(parameters or ())).fetchall()

    async def executemany(self, sql: str, parameters: Iterable[Iterable[Any]]) -> _Cursor:
        return _Cursor(self._conn.executemany(sql, (tuple(p) for p in parameters)))

    async def executescript(self, sql: str) -> _Cursor:
        return _Cursor(self._conn.executescript(sql))

    async def commit(self) -> None:
        self._conn.commit()

    async def rollback(self) -> None:
        self._conn.rollback()

    async def close(self) -> None:
        self._conn.close()


class InlineSqliteClient(SqliteClient):
    async def create_connection(self, with_db: bool) -> None:
        if not self._connection:
            conn = InlineConnection(self.filename)
            for pragma, val in self.pragmas.items():
                conn._conn.execute(f"PRAGMA {pragma}={val}").close()
            self._connection = conn  # type: ignore[assignment]
            await self._post_connect()
            self.log.debug("Created inline connection to %s with %s", self.filename,
                           " ".join(f"{k}={v}" for k, v in self.pragmas.items()))


client_class = InlineSqliteClient
