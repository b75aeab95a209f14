"""The database schema: tortoise's own migrations (``maild.store.migrations``), under a lock.

``upgrade`` brings a database to the newest migration: an empty one gets every table, one
made by maild 0.1.0 (``generate_schemas`` plus the hand-written ``cases.owner`` ALTER, no
``tortoise_migrations`` table) is first recorded as being at ``0001_initial`` when its tables
have that migration's columns, and then the later migrations run. ``status`` only reads.

Opening a database that is up to date costs one query and takes no lock. Migrating takes a
lock so that several daemons or ``maild db upgrade`` runs starting at once do not race: a
PostgreSQL advisory lock held on one pooled connection for the whole upgrade (so the pool
needs two connections at least; tortoise's default is five), and on SQLite an exclusive
``flock`` on the file ``DATABASE.schema-lock`` beside the database.

A model change comes with its migration, written by tortoise's command line (no database
needed); ``tests/test_migrations.py`` fails while a model differs from the migrations::

    .venv/bin/tortoise -c maild.store.schema.TORTOISE_ORM makemigrations maild -n WHAT_CHANGED

Keep ``;`` out of the first line of a model's docstring (it becomes the table's comment, and
tortoise's SQLite editor splits its SQL at every ``;``), prefer ``Meta.indexes`` to
``db_index=True`` on an existing field, and know that on SQLite AlterField and RemoveField
rebuild the table without its indexes: compare with ``generate_schemas`` (the test does).
"""

from __future__ import annotations

import asyncio
import fcntl
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from importlib import import_module
from typing import Any

from tortoise.connection import connections
from tortoise.migrations.executor import MigrationExecutor, MigrationTarget
from tortoise.migrations.schema_generator.state import State
from tortoise.migrations.schema_generator.state_apps import StateApps

APP = "maild"
MODELS = "maild.store.models"
MIGRATIONS = "maild.store.migrations"
#: the schema maild 0.1.0 made with generate_schemas; a database without a migrations table
#: whose tables match it is recorded as being at this migration
INITIAL = "0001_initial"
#: the tables of maild 0.1.0 (none of them present and no migration recorded: a new database)
TABLES_0_1_0 = frozenset({"cases", "timeline", "messages", "outbox", "timers", "digests",
                          "attachments", "checkpoints", "counters"})
#: pg_advisory_lock key: any constant bigint of our own (b"maild-sc" as an integer)
PG_LOCK_KEY = int.from_bytes(b"maild-sc", "big", signed=True)
#: what an administrator runs to upgrade an existing database
UPGRADE_COMMAND = "maild db upgrade -c CONFIG"

#: for tortoise's own CLI, which needs no database to write a migration (see above)
TORTOISE_ORM: dict[str, Any] = {
    "connections": {"sqlite": "sqlite://:memory:"},
    "apps": {APP: {"models": [MODELS], "default_connection": "sqlite", "migrations": MIGRATIONS}},
    "use_tz": True, "timezone": "UTC",
}


class SchemaError(Exception):
    """The database's schema is not one this maild can use (or make) without an upgrade:
    migrations pending where only an empty database may be migrated, migrations of a newer
    maild, or maild tables that are neither migrated nor maild 0.1.0's."""


@dataclass(frozen=True)
class Status:
    pending: list[str]  # migrations on disk not applied yet, in order
    unknown: list[str]  # applied migrations this code does not have: a newer maild's

    @property
    def current(self) -> bool:
        return not self.pending and not self.unknown

    def check(self) -> None:
        """Raise ``SchemaError`` unless the database is up to date."""
        if self.unknown:
            raise SchemaError(f"the database was migrated by a newer maild "
                              f"({', '.join(self.unknown)}); install that version")
        if self.pending:
            raise SchemaError(f"the database schema is not up to date (pending: "
                              f"{', '.join(self.pending)}); run `{UPGRADE_COMMAND}`")


def app_config(conn: str) -> dict[str, Any]:
    """The ``apps`` entry of the tortoise config (``Tortoise.init``)."""
    return {APP: {"models": [MODELS], "default_connection": conn, "migrations": MIGRATIONS}}


def _executor(conn: str) -> MigrationExecutor:
    return MigrationExecutor(connections.get(conn), app_config(conn))


async def status(conn: str) -> Status:
    """What ``upgrade`` would do; reads only (no lock, creates nothing): one query."""
    executor = _executor(conn)
    steps = await executor.plan()
    on_disk = set(executor.loader.disk_migrations)
    applied = executor.loader.applied_migrations
    return Status(pending=[s.migration.name for s in steps if not s.backward],
                  unknown=sorted(k.name for k in applied - on_disk if k.app_label == APP))


async def upgrade(conn: str, *, empty_only: bool = False) -> list[str]:
    """Apply every pending migration under the lock; returns the names applied (a maild
    0.1.0 database's baseline is not among them: nothing ran for it). Refuses a database
    migrated by a newer maild. With ``empty_only``, only a database without maild tables is
    migrated (it gets the whole schema); one with tables and pending migrations is refused
    (``SchemaError`` naming ``maild db upgrade``)."""
    st = await status(conn)
    if st.current:
        return []  # the usual start: no lock taken
    if st.unknown:
        st.check()
    # with empty_only too, decide under the lock only: another process may be half-way
    # through migrating an empty database (some migrations recorded, tables there)
    async with schema_lock(conn):
        st = await status(conn)  # again: another process may have migrated meanwhile
        if st.current:
            return []
        if st.unknown or (empty_only and not await _empty(conn)):
            st.check()
        executor = _executor(conn)
        await _baseline(executor, conn)
        done: list[str] = []

        def progress(event: str, _app: str, name: str) -> None:
            if event == "apply_done":
                done.append(name)

        async with _sqlite_foreign_keys_off(conn):
            await executor.migrate(direction="forward", progress=progress)
        return done


async def _empty(conn: str) -> bool:
    """No migration recorded and no maild table (others' tables are left alone)."""
    if await _executor(conn).recorder.applied_migrations():
        return False
    return not (await _tables(conn)).keys() & TABLES_0_1_0


@asynccontextmanager
async def _sqlite_foreign_keys_off(conn: str) -> AsyncIterator[None]:
    """SQLite's own recipe for changing a table (new table, copy, DROP, RENAME), which
    tortoise's SQLite editor uses for AlterField/RemoveField: with foreign keys on, the DROP
    of a referenced table runs its ON DELETE actions (CASCADE empties timeline and timers,
    SET NULL unlinks messages and outbox). The pragma only takes effect outside a
    transaction, hence here around the migrations, each of which is a transaction."""
    db = connections.get(conn)
    if db.capabilities.dialect != "sqlite":
        yield
        return
    await db.execute_script("PRAGMA foreign_keys = OFF")
    try:
        yield
        broken = await db.execute_query_dict("PRAGMA foreign_key_check")
        if broken:
            raise SchemaError(f"a migration left rows pointing nowhere: {broken[:5]}")
    finally:
        await db.execute_script("PRAGMA foreign_keys = ON")


# -- the lock -------------------------------------------------------------------------------


@asynccontextmanager
async def schema_lock(conn: str) -> AsyncIterator[None]:
    client = connections.get(conn)
    if client.capabilities.dialect == "postgres":
        # a session lock on one connection taken from the pool and kept until the end;
        # the migrations run on other pool connections (the pool's maxsize must be >= 2)
        async with client.acquire_connection() as raw:
            await raw.execute("SELECT pg_advisory_lock($1)", PG_LOCK_KEY)
            try:
                yield
            finally:
                await raw.execute("SELECT pg_advisory_unlock($1)", PG_LOCK_KEY)
        return
    filename = client.filename
    if filename == ":memory:" or filename.startswith("file::memory:"):
        yield  # a private database: nobody to race with
        return
    fd = os.open(f"{filename}.schema-lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        # BEGIN IMMEDIATE cannot serve: the migrations run their own transactions on the
        # same connection; a flock is released by the kernel if the process dies
        await asyncio.to_thread(fcntl.flock, fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # drops the flock


# -- databases made before migrations ---------------------------------------------------------


async def _baseline(executor: MigrationExecutor, conn: str) -> None:
    """A maild 0.1.0 database (no migrations recorded, tables present): record
    ``0001_initial`` as applied without running it, when its tables hold that migration's
    columns. An empty database is left to the migrations; anything else is refused."""
    if await executor.recorder.applied_migrations():
        return
    have = await _tables(conn)
    if not have.keys() & TABLES_0_1_0:
        return  # no maild table (others' are left alone): 0001_initial creates them all
    expected = await initial_tables(conn)  # (replays 0001: some 90 ms of CPU)
    present = expected.keys() & have.keys()
    if "cases" in have and "owner" not in have["cases"]:
        await _add_owner(conn)  # what 0.1.0 did at every open, for databases made before it
        have["cases"].add("owner")
    problems = [f"table {t} is missing" for t in sorted(expected.keys() - have.keys())]
    problems += [f"table {t} lacks columns {', '.join(sorted(expected[t] - have[t]))}"
                 for t in sorted(present) if expected[t] - have[t]]
    if problems:
        raise SchemaError("the database has maild tables but not the schema of maild 0.1.0 "
                          "and no migrations recorded: " + "; ".join(problems))
    await executor.migrate([MigrationTarget(app_label=APP, name=INITIAL)], fake=True,
                           direction="forward")


async def initial_tables(conn: str) -> dict[str, set[str]]:
    """table -> column names, as ``0001_initial`` makes them (from the migration itself)."""
    migration = import_module(f"{MIGRATIONS}.{INITIAL}").Migration(INITIAL, APP)
    state = State(models={}, apps=StateApps(default_connections={APP: conn}))
    await migration.apply(state, dry_run=True)
    out: dict[str, set[str]] = {}
    for (_app, _name), model_state in state.models.items():
        model = state.apps.get_model(f"{model_state.app}.{model_state.name}")
        out[model._meta.db_table] = set(model._meta.fields_db_projection.values())
    return out


async def _tables(conn: str) -> dict[str, set[str]]:
    db = connections.get(conn)
    if db.capabilities.dialect == "postgres":
        rows = await db.execute_query_dict(
            "SELECT table_name, column_name FROM information_schema.columns "
            "WHERE table_schema = current_schema()")
        out: dict[str, set[str]] = {}
        for r in rows:
            out.setdefault(r["table_name"], set()).add(r["column_name"])
        return out
    names = [r["name"] for r in await db.execute_query_dict(
        "SELECT name FROM sqlite_master WHERE type = 'table'")]
    return {n: {r["name"] for r in await db.execute_query_dict(f'PRAGMA table_info("{n}")')}
            for n in names}


async def _add_owner(conn: str) -> None:
    db = connections.get(conn)
    kind = ("JSONB NOT NULL DEFAULT '[]'::jsonb" if db.capabilities.dialect == "postgres"
            else "JSON NOT NULL DEFAULT '[]'")
    await db.execute_script(f"ALTER TABLE cases ADD COLUMN owner {kind}")


__all__ = ["UPGRADE_COMMAND", "SchemaError", "Status", "app_config", "initial_tables",
           "schema_lock", "status", "upgrade"]
