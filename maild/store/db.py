"""The database connection: tortoise over SQLite or PostgreSQL, and where raw mail lives."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any, Literal

from tortoise import Tortoise
from tortoise.backends.base.config_generator import expand_db_url

from maild.store import schema
from maild.store.attachments import ContentStore


def tortoise_url(url: str, base_dir: Path) -> str:
    """Resolve a relative ``sqlite://var/maild.db`` against the config's folder."""
    if url.startswith("sqlite://") and not url.startswith("sqlite://:memory:"):
        rest = url[len("sqlite://"):]
        path, _, query = rest.partition("?")
        p = Path(path) if path.startswith("/") else base_dir / path
        p.parent.mkdir(parents=True, exist_ok=True)
        return f"sqlite://{p}" + (f"?{query}" if query else "")
    if url.startswith("postgresql://"):
        return "postgres://" + url[len("postgresql://"):]
    return url


class Database:
    """Opens and closes the connection; the other parts of the store share it."""

    def __init__(self, url: str, raw_root: Path, base_dir: Path = Path(".")) -> None:
        self.url = tortoise_url(url, base_dir)
        # tortoise caches SQL per connection name: one name per backend (LIBRARY-NOTES 12)
        self.conn = "sqlite" if self.url.startswith("sqlite") else "postgres"
        self.raw = ContentStore(raw_root, ".eml")
        self.files = ContentStore(raw_root.parent / "attachments")

    async def open(self, migrate: bool | Literal["empty"] = True) -> None:
        """Connect and make sure the schema is current (``maild.store.schema``).

        - ``migrate=True`` (the default: init, demo, tests): apply pending migrations; an
          empty database gets every table, a maild 0.1.0 one is upgraded.
        - ``migrate="empty"`` (``maild run``): only an empty database is migrated (daemons
          starting at once on one all come up); a database with tables and pending
          migrations is refused: upgrading it is the administrator's ``maild db upgrade``.
        - ``migrate=False``: refuse any database with pending migrations.

        Refusals raise ``SchemaError`` (the message says to run ``maild db upgrade -c
        CONFIG``), as does a database migrated by a newer maild; the connection is closed
        then. An up-to-date database costs one query and takes no lock.
        """
        await self._connect()
        try:
            if migrate is False:
                (await schema.status(self.conn)).check()
            else:
                await schema.upgrade(self.conn, empty_only=migrate == "empty")
        except BaseException:
            await self.close()
            raise

    async def upgrade(self) -> list[str]:
        """``maild db upgrade``: connect, apply the pending migrations under the schema lock,
        close. Returns the names applied, in order ([] when up to date; a maild 0.1.0
        database's ``0001_initial`` is recorded, not run, and not listed). Raises
        ``SchemaError`` for a database it cannot upgrade (a newer maild's, or maild tables
        that are not 0.1.0's)."""
        await self._connect()
        try:
            return await schema.upgrade(self.conn)
        finally:
            await self.close()

    async def _connect(self) -> None:
        conn: str | dict[str, Any] = self.url
        if self.conn == "sqlite":  # statements on the loop's thread (see sqlite_inline)
            conn = {**expand_db_url(self.url), "engine": "maild.store.sqlite_inline"}
        await Tortoise.init(config={
            "connections": {self.conn: conn},
            "apps": schema.app_config(self.conn),
            "use_tz": True, "timezone": "UTC",
        })
        # connect now rather than at the first statement: tortoise's SQLite client keeps its
        # lock when connecting fails there, and every later statement would wait forever
        try:
            await Tortoise.get_connection(self.conn).create_connection(with_db=True)
        except BaseException:
            await self.close()
            raise

    async def close(self) -> None:
        await Tortoise.close_connections()

    async def probe(self) -> None:
        """Raise unless the database takes a write (the health probe): a statement that
        changes nothing, which a read-only file, server or transaction refuses all the same,
        as a lost connection or an unreachable server fails it."""
        await Tortoise.get_connection(self.conn).execute_query(
            "UPDATE checkpoints SET last_uid = last_uid WHERE 1 = 0")

    async def reconnect(self) -> None:
        """A new connection (SQLite) or pool (PostgreSQL) in place of the old one: a SQLite
        file opened while it could not be written stays read-only to its connection, and a
        pool may hold connections the server has ended. Raises when no new one can be made;
        a SQLite client then keeps its old connection (see ``_connect``)."""
        client: Any = Tortoise.get_connection(self.conn)
        if self.conn != "sqlite":
            await client.close()
            await client.create_connection(with_db=True)
            return
        old, client._connection = client._connection, None
        try:
            await client.create_connection(with_db=True)
        except BaseException:
            client._connection = old
            raise
        if old is not None:
            with contextlib.suppress(Exception):
                await old.close()
