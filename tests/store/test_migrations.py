"""Schema migrations (``maild.store.schema``): a maild 0.1.0 database is upgraded without
losing a row, on SQLite and PostgreSQL; ``maild run`` refuses a database that needs an
upgrade; daemons starting at once on one empty database all come up (the schema lock); the
migrations describe the models exactly."""

from __future__ import annotations

import asyncio
import re
import sqlite3
import sys
from datetime import datetime
from pathlib import Path

import asyncpg
import pytest
from support import pg_database

from maild.store import SchemaError, Store, schema
from maild.store.models import Case, Outbox, Timer

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "schema-0.1.0.sqlite.sql"
TABLES = ["cases", "timeline", "timers", "outbox", "messages", "counters", "checkpoints",
          "digests", "attachments"]
FIXTURE_ROWS = {"cases": 4, "timeline": 57, "timers": 5, "outbox": 19, "messages": 34,
                "counters": 3, "checkpoints": 1, "digests": 1, "attachments": 0}
#: the rows pointing at a case: a table rebuild with foreign keys on would delete or unlink them
LINKED = ["timeline", "timers", "outbox", "messages"]
ALL = ["0001_initial", "0002_outbox_lease_owner_index", "0003_letter_counts"]


def fixture_db() -> sqlite3.Connection:
    c = sqlite3.connect(":memory:")
    c.executescript(FIXTURE.read_text(encoding="utf-8"))
    return c


def fixture_links() -> dict[str, list[tuple[int, int | None]]]:
    c = fixture_db()
    try:
        return {t: c.execute(f'SELECT id, case_id FROM "{t}" ORDER BY id').fetchall()
                for t in LINKED}
    finally:
        c.close()


def sqlite_from_fixture(db: Path) -> None:
    src, dst = fixture_db(), sqlite3.connect(db)
    try:
        src.backup(dst)
    finally:
        src.close()
        dst.close()


async def pg_from_fixture(url: str) -> None:
    """maild 0.1.0's tables (0001_initial's SQL, which is what 0.1.0's generate_schemas made,
    comments aside) with the fixture's rows, and no migrations table."""
    from tortoise import Tortoise
    from tortoise.connection import connections
    from tortoise.migrations.executor import MigrationExecutor

    await Tortoise.init(config={"connections": {"postgres": url},
                                "apps": schema.app_config("postgres")})
    try:
        sql = await MigrationExecutor(connections.get("postgres"),
                                      schema.app_config("postgres")).collect_sql(
            schema.APP, schema.INITIAL)
        ddl = "\n".join(s for s in sql if not s.startswith("--"))
        await connections.get("postgres").execute_script(ddl)
    finally:
        await Tortoise.close_connections()
    lite, pg = fixture_db(), await asyncpg.connect(url)
    try:
        for t in TABLES:
            types = {r["column_name"]: r["data_type"] for r in await pg.fetch(
                "SELECT column_name, data_type FROM information_schema.columns "
                "WHERE table_name = $1", t)}
            cur = lite.execute(f'SELECT * FROM "{t}"')
            cols = [d[0] for d in cur.description]
            rows = [tuple(_to_pg(types[c], v) for c, v in zip(cols, r, strict=True))
                    for r in cur]
            if rows:
                await pg.copy_records_to_table(t, records=rows, columns=cols)
            if "id" in cols:
                await pg.execute(f"SELECT setval(pg_get_serial_sequence('{t}', 'id'), "
                                 f"GREATEST((SELECT max(id) FROM \"{t}\"), 1))")
    finally:
        lite.close()
        await pg.close()


def _to_pg(kind: str, v: object) -> object:
    if v is None:
        return None
    if kind.startswith("timestamp"):
        return datetime.fromisoformat(str(v))
    return bool(v) if kind == "boolean" else v


async def query(store: Store, sql: str) -> list[dict[str, object]]:
    from tortoise.connection import connections

    rows: list[dict[str, object]] = await connections.get(store.conn).execute_query_dict(sql)
    return rows


async def check_upgrade(url: str, base: Path) -> None:
    store = Store(url, base / "raw", base)
    for mode in (False, "empty"):  # maild run, cases, digest... before the upgrade
        with pytest.raises(SchemaError, match=re.escape(
                f"(pending: {', '.join(ALL)}); run `maild db upgrade -c CONFIG`")):
            await store.open(migrate=mode)
    assert await store.upgrade() == ALL[1:]  # 0001: recorded
    assert await store.upgrade() == []
    await store.open(migrate=False)
    try:
        assert {t: (await query(store, f'SELECT count(*) AS n FROM "{t}"'))[0]["n"]
                for t in TABLES} == FIXTURE_ROWS
        assert {t: [(r["id"], r["case_id"]) for r in await query(
            store, f'SELECT id, case_id FROM "{t}" ORDER BY id')] for t in LINKED} \
            == fixture_links()
        assert [r["name"] for r in await query(
            store, "SELECT name FROM tortoise_migrations ORDER BY id")] == ALL
        case = await Case.get(number="2026-客-001")
        assert case.owner == ["wang.fang@example.com"] and case.data["customer"] == "华信集团"
        assert case.process == "customer" and case.step == "contract"
        assert await Timer.filter(state="pending").count() == 1
        assert await Outbox.filter(letter="digest").count() == 1
        assert len((await Outbox.get(letter="digest")).body) == 4096
    finally:
        await store.close()


async def test_sqlite_database_of_0_1_0_is_upgraded_without_losing_a_row(tmp_path: Path) -> None:
    db = tmp_path / "maild.db"
    sqlite_from_fixture(db)
    await check_upgrade(f"sqlite://{db}", tmp_path)
    c = sqlite3.connect(db)
    try:
        assert c.execute("SELECT count(*) FROM sqlite_master WHERE type = 'index' "
                         "AND sql LIKE '%outbox%lease_owner%'").fetchone() == (1,)
    finally:
        c.close()


async def test_postgres_database_of_0_1_0_is_upgraded_without_losing_a_row(
        tmp_path: Path) -> None:
    async with pg_database() as url:
        await pg_from_fixture(url)
        await check_upgrade(url, tmp_path)
        pg = await asyncpg.connect(url)
        try:
            assert await pg.fetchval("SELECT count(*) FROM pg_indexes WHERE tablename = "
                                     "'outbox' AND indexdef LIKE '%(lease_owner)%'") == 1
        finally:
            await pg.close()


async def test_the_default_open_upgrades_and_a_newer_mailds_database_is_refused(
        tmp_path: Path) -> None:
    db = tmp_path / "maild.db"
    sqlite_from_fixture(db)
    store = Store(f"sqlite://{db}", tmp_path / "raw", tmp_path)
    await store.open()  # init, demo, the tests: upgrade
    try:
        assert await Case.all().count() == 4
        await query(store, "INSERT INTO tortoise_migrations (app, name, applied_at) "
                           "VALUES ('maild', '0099_from_the_future', '2027-01-01')")
    finally:
        await store.close()
    for mode in (True, "empty", False):
        with pytest.raises(SchemaError, match=r"newer maild \(0099_from_the_future\)"):
            await store.open(migrate=mode)
    with pytest.raises(SchemaError, match="newer maild"):
        await store.upgrade()


async def test_tables_that_are_not_maild_0_1_0s_are_refused(tmp_path: Path) -> None:
    db = tmp_path / "maild.db"
    sqlite_from_fixture(db)
    c = sqlite3.connect(db)
    c.execute("DROP TABLE counters")
    c.close()
    store = Store(f"sqlite://{db}", tmp_path / "raw", tmp_path)
    with pytest.raises(SchemaError, match="not the schema of maild 0.1.0.*counters is missing"):
        await store.upgrade()


REBUILD = """
from tortoise import fields, migrations
from tortoise.migrations import operations as ops

class Migration(migrations.Migration):
    dependencies = [("maild", "LAST")]
    operations = [ops.AlterField(model_name="Case", name="subject",
                                 field=fields.TextField(null=True))]
"""


async def test_a_sqlite_table_rebuild_keeps_the_rows_pointing_at_it(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """SQLite's AlterField copies ``cases`` to a new table and drops the old one: with
    foreign keys on, that DROP would delete every timeline entry and timer, and unlink
    messages and letters (the upgrade turns them off around the migrations)."""
    package = tmp_path / "pkg" / "rebuild_migrations"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    for name in ALL:
        (package / f"{name}.py").write_bytes(
            (Path(schema.__file__).parent / "migrations" / f"{name}.py").read_bytes())
    rebuild = f"{len(ALL) + 1:04d}_rebuild_cases"
    (package / f"{rebuild}.py").write_text(REBUILD.replace("LAST", ALL[-1]))
    monkeypatch.syspath_prepend(str(tmp_path / "pkg"))
    monkeypatch.setattr(schema, "MIGRATIONS", "rebuild_migrations")
    db = tmp_path / "maild.db"
    sqlite_from_fixture(db)
    store = Store(f"sqlite://{db}", tmp_path / "raw", tmp_path)
    assert await store.upgrade() == [*ALL[1:], rebuild]
    c = sqlite3.connect(db)
    try:
        assert {t: c.execute(f'SELECT id, case_id FROM "{t}" ORDER BY id').fetchall()
                for t in LINKED} == fixture_links()
        notnull = {r[1]: r[3] for r in c.execute('PRAGMA table_info("cases")')}
        assert notnull["subject"] == 0  # the rebuild did happen
    finally:
        c.close()


RACER = """
import asyncio, sys
from pathlib import Path
from maild.store import Store
async def main():
    s = Store(sys.argv[1], Path(sys.argv[2]) / "raw", Path(sys.argv[2]))
    print("ready", flush=True)
    sys.stdin.readline()  # all start together
    await s.open(migrate=True if sys.argv[3] == "all" else "empty")
    await s.close()
asyncio.run(main())
"""


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
async def test_daemons_starting_at_once_on_an_empty_database_all_come_up(
        tmp_path: Path, backend: str) -> None:
    """Two ``maild run`` (which migrate an empty database only) and one ``maild init``."""
    async def race(url: str) -> None:
        procs = [await asyncio.create_subprocess_exec(
            sys.executable, "-c", RACER, url, str(tmp_path / f"d{i}"), mode,
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE) for i, mode in enumerate(["empty", "all", "empty"])]
        for p in procs:  # each has imported maild and is about to open the store
            assert p.stdout is not None
            assert await p.stdout.readline() == b"ready\n"
        for p in procs:
            assert p.stdin is not None
            p.stdin.write(b"go\n")
            await p.stdin.drain()
        results = [await p.communicate() for p in procs]
        assert [p.returncode for p in procs] == [0, 0, 0], [e.decode() for _, e in results]
        store = Store(url, tmp_path / "raw", tmp_path)
        await store.open(migrate=False)
        try:
            assert [r["name"] for r in await query(
                store, "SELECT name FROM tortoise_migrations ORDER BY id")] == ALL
        finally:
            await store.close()

    if backend == "sqlite":
        await race(f"sqlite://{tmp_path}/maild.db")
    else:
        async with pg_database() as url:
            await race(url)


async def test_models_have_no_changes_without_a_migration() -> None:
    """Whoever changes a model writes its migration (see ``maild.store.schema``)."""
    from tortoise import Tortoise
    from tortoise.migrations.autodetector import MigrationAutodetector

    await Tortoise.init(config=schema.TORTOISE_ORM)
    try:
        writers = await MigrationAutodetector(
            Tortoise.apps, schema.TORTOISE_ORM["apps"]).changes()
        assert [w.name for w in writers] == []
    finally:
        await Tortoise.close_connections()


def sqlite_shape(db: Path) -> dict[str, object]:
    c = sqlite3.connect(db)
    try:
        tables = [n for (n,) in c.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' "
            "AND name NOT IN ('tortoise_migrations', 'sqlite_sequence')")]
        return {t: (sorted(tuple(r[1:]) for r in c.execute(f'PRAGMA table_info("{t}")')),
                    sorted((ix[1], ix[2], [col[2] for col in c.execute(
                        f'PRAGMA index_info("{ix[1]}")')])
                           for ix in c.execute(f'PRAGMA index_list("{t}")')),
                    sorted(tuple(r[2:]) for r in c.execute(f'PRAGMA foreign_key_list("{t}")')))
                for t in tables}
    finally:
        c.close()


async def pg_shape(url: str) -> dict[str, object]:
    pg = await asyncpg.connect(url)
    try:
        skip = "('tortoise_migrations')"
        columns = await pg.fetch(
            "SELECT table_name, column_name, data_type, character_maximum_length, "
            "is_nullable, column_default FROM information_schema.columns WHERE table_schema "
            f"= 'public' AND table_name NOT IN {skip} ORDER BY table_name, column_name")
        indexes = await pg.fetch("SELECT tablename, indexname, indexdef FROM pg_indexes WHERE "
                                 f"schemaname = 'public' AND tablename NOT IN {skip} "
                                 "ORDER BY indexname")
        constraints = await pg.fetch(
            "SELECT conrelid::regclass::text AS t, conname, pg_get_constraintdef(oid) AS d "
            f"FROM pg_constraint WHERE connamespace = 'public'::regnamespace "
            f"AND conrelid::regclass::text NOT IN {skip} ORDER BY conname")
        return {"columns": [tuple(r) for r in columns], "indexes": [tuple(r) for r in indexes],
                "constraints": [tuple(r) for r in constraints]}
    finally:
        await pg.close()


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
async def test_migrations_make_the_schema_the_models_describe(
        tmp_path: Path, backend: str) -> None:
    """Tables, columns, indexes and constraints after every migration are those
    ``generate_schemas`` makes from the models (tortoise's SQLite table rebuild drops
    indexes, for one)."""
    from tortoise import Tortoise

    async def both(migrated: str, models: str) -> None:
        store = Store(migrated, tmp_path / "raw", tmp_path)
        await store.open()
        await store.close()
        conn = store.conn
        await Tortoise.init(config={"connections": {conn: models},
                                    "apps": schema.app_config(conn)})
        try:
            await Tortoise.generate_schemas()
        finally:
            await Tortoise.close_connections()

    if backend == "sqlite":
        await both(f"sqlite://{tmp_path}/migrated.db", f"sqlite://{tmp_path}/models.db")
        assert sqlite_shape(tmp_path / "migrated.db") == sqlite_shape(tmp_path / "models.db")
        return
    async with pg_database() as migrated, pg_database() as models:
        await both(migrated, models)
        assert await pg_shape(migrated) == await pg_shape(models)
