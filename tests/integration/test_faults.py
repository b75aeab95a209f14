"""Faults of the environment are not the mail's: on the real stack (a Maildir, SQLite or
PostgreSQL, a real tmpfs), a full attachments disk, a read-only database and database
connections terminated in the middle of a backlog quarantine nothing and lose nothing, the
daemon logs the outage once, and processing resumes by itself once the fault clears."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from support import DIRECTORY_TOML, NOW, mail, make_config, pg_database

from maild.adapters.sources.maildir import deliver
from maild.app import build
from maild.runners.daemon import Daemon
from maild.store import Store

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="mounts a tmpfs: needs root")

#: the daemon polls once at start and then only when a fault is retried
QUIET = """
[mailbox]
poll_interval = 3600
fault_backoff_max = 0.2
parse_workers = 0

[timers]
sweep_seconds = 3600
"""
N = 40  # a backlog of two commit groups (25 + 15)


@contextlib.contextmanager
def tmpfs(path: Path, size: str, *options: str) -> Iterator[Path]:
    path.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", ",".join((f"size={size}", *options)),
                    "tmpfs", str(path)], check=True)
    try:
        yield path
    finally:
        if subprocess.run(["umount", str(path)], capture_output=True).returncode:
            subprocess.run(["umount", "-l", str(path)], check=True)


def fill(folder: Path) -> Path:
    """Take every free byte of the file system ``folder`` is on."""
    filler = folder / "filler"
    with open(filler, "wb") as f:
        with contextlib.suppress(OSError):
            while True:
                f.write(b"\0" * 65536)
                f.flush()
    return filler


async def until(check: Callable[[], Awaitable[bool]], what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting until {what}")
        await asyncio.sleep(0.05)


def backlog(inbox: Path, n: int = N) -> list[bytes]:
    raws = [mail(f"buyer{i}@huaxin.example.cn", f"询价 {i}",
                 attachments=((f"规格{i}.pdf", os.urandom(3000)),)) for i in range(n)]
    for raw in raws:
        deliver(inbox, raw)
    return raws


class Deployment:
    """An in-process daemon on the embedded defaults: Maildir in, letters to a folder."""

    def __init__(self, base: Path, db: str | None = None) -> None:
        self.base = base
        self.app = build(make_config(base, QUIET, db=db), NOW)
        self.daemon = Daemon(self.app)
        self.inbox = base / "var" / "mail"
        self.attachments = base / "var" / "attachments"

    def folder(self, name: str) -> int:
        d = self.inbox / f".{name}" / "cur" if name != "INBOX" else self.inbox / "cur"
        n = len(list(d.iterdir())) if d.is_dir() else 0
        return n + (len(list((self.inbox / "new").iterdir())) if name == "INBOX" else 0)

    def hook(self, after: Callable[[int], Awaitable[None]]) -> None:
        """Run ``after(mails handled so far)`` before each mail the intake handles."""
        intake = self.app.intake
        handle = intake._handle
        seen = [0]

        async def hooked(*args: Any) -> None:
            await after(seen[0])
            seen[0] += 1
            await handle(*args)

        intake._handle = hooked  # type: ignore[method-assign]

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[Daemon]:
        task = asyncio.create_task(self.daemon.run(once=False))
        try:
            yield self.daemon
        finally:
            self.daemon.stop()
            await asyncio.wait_for(task, 60)


def outage_lines(caplog: pytest.LogCaptureFixture) -> tuple[list[str], list[str]]:
    lines = [r.getMessage() for r in caplog.records if r.name == "maild.daemon"]
    return ([x for x in lines if x.startswith("intake stopped")],
            [x for x in lines if x.startswith("intake resumed")])


# -- a full attachments disk ---------------------------------------------------------------

async def test_a_full_attachments_disk_quarantines_nothing_and_resumes(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    d = Deployment(tmp_path)
    backlog(d.inbox)
    db = tmp_path / "var" / "maild.db"

    def count(sql: str) -> int:
        with contextlib.closing(sqlite3.connect(db)) as c:
            return int(c.execute(sql).fetchone()[0])

    def states() -> dict[str, int]:
        with contextlib.closing(sqlite3.connect(db)) as c:
            return dict(c.execute("SELECT state, COUNT(*) FROM messages WHERE direction = "
                                  "'in' GROUP BY state").fetchall())

    with tmpfs(d.attachments, "1m") as attachments:
        filler: list[Path] = []

        async def full_after_first_group(handled: int) -> None:
            if handled == 25 and not filler:  # the first commit group is in
                filler.append(fill(attachments))

        d.hook(full_after_first_group)
        async with d.running() as daemon:
            await until(lambda: asyncio.sleep(0, daemon.fault.attempts >= 3),
                        "the intake failed three times")
            fault = daemon.fault.fault
            assert fault is not None and fault.what == "disk full", fault
            # nothing quarantined, nothing lost: the rest waits in the inbox, unrecorded
            # or received, above the checkpoint
            assert states() == {"processed": 25, "received": N - 25}
            assert count("SELECT last_uid FROM checkpoints") == 25
            assert d.folder("INBOX") == N - 25 and d.folder("Quarantine") == 0
            assert count("SELECT COUNT(*) FROM cases") == 25

            filler[0].unlink()  # the space comes back
            await until(lambda: asyncio.sleep(0, d.folder("Processed") == N),
                        "every mail is processed")
            await until(lambda: asyncio.sleep(0, not daemon.fault.active), "the fault clears")
    assert states() == {"processed": N}
    assert count("SELECT COUNT(*) FROM cases") == N
    assert count("SELECT COUNT(*) FROM attachments") == N
    assert count("SELECT COUNT(*) FROM outbox WHERE letter = 'ack'") == N
    assert count("SELECT last_uid FROM checkpoints") == N
    assert d.folder("INBOX") == 0 and d.folder("Quarantine") == 0
    stopped, resumed = outage_lines(caplog)
    assert len(stopped) == 1 and "disk full" in stopped[0] and "retrying" in stopped[0]
    assert len(resumed) == 1, resumed
    assert not [r for r in caplog.records if r.name == "maild.error"]


# -- PostgreSQL: connections terminated, the database read-only ---------------------------

class Postgres:
    """A second connection to the deployment's database, as an administrator has one."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.name = url.rsplit("/", 1)[1]
        self.conn: asyncpg.Connection | None = None

    async def __aenter__(self) -> Postgres:
        self.conn = await asyncpg.connect(self.url)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.conn is not None
        await self.conn.close()

    async def terminate_others(self) -> int:
        assert self.conn is not None
        return int(await self.conn.fetchval(
            "SELECT COUNT(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE datname = $1 AND pid <> pg_backend_pid()", self.name))

    async def read_only(self, on: bool) -> None:
        assert self.conn is not None
        if on:
            await self.conn.execute(
                f'ALTER DATABASE "{self.name}" SET default_transaction_read_only = on')
        else:
            await self.conn.execute(
                f'ALTER DATABASE "{self.name}" RESET default_transaction_read_only')

    async def value(self, sql: str) -> int:
        assert self.conn is not None
        return int(await self.conn.fetchval(sql) or 0)

    async def states(self) -> dict[str, int]:
        assert self.conn is not None
        return {r["state"]: int(r["n"]) for r in await self.conn.fetch(
            "SELECT state, COUNT(*) AS n FROM messages WHERE direction = 'in' GROUP BY state")}


async def assert_every_mail_decided_once(d: Deployment, pg: Postgres) -> None:
    assert await pg.states() == {"processed": N}
    assert await pg.value("SELECT COUNT(*) FROM cases") == N
    assert await pg.value("SELECT COUNT(*) FROM outbox WHERE letter = 'ack'") == N
    assert await pg.value("SELECT COUNT(DISTINCT rcpt_key) FROM outbox") == N
    assert await pg.value("SELECT last_uid FROM checkpoints") == N
    assert d.folder("Processed") == N
    assert d.folder("INBOX") == 0 and d.folder("Quarantine") == 0


async def test_c_connections_terminated_during_a_backlog(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    async with pg_database() as url, Postgres(url) as pg:
        d = Deployment(tmp_path, db=url)
        backlog(d.inbox)
        terminated: list[int] = []

        async def terminate_mid_group(handled: int) -> None:
            if handled == 30 and not terminated:  # 5 mails into the second commit group
                terminated.append(await pg.terminate_others())

        d.hook(terminate_mid_group)
        async with d.running() as daemon:
            await until(lambda: asyncio.sleep(0, d.folder("Processed") == N),
                        "every mail is processed")
            await until(lambda: asyncio.sleep(0, not daemon.fault.active), "the fault clears")
        assert terminated and terminated[0] >= 1
        await assert_every_mail_decided_once(d, pg)
    stopped, resumed = outage_lines(caplog)
    assert len(stopped) == 1 and stopped[0].startswith("intake stopped: database"), stopped
    assert len(resumed) == 1, resumed
    assert not [r for r in caplog.records if r.name == "maild.error"]


async def test_b_read_only_database_during_a_backlog(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    async with pg_database() as url, Postgres(url) as pg:
        d = Deployment(tmp_path, db=url)
        backlog(d.inbox)
        done: list[bool] = []

        async def read_only_mid_group(handled: int) -> None:
            if handled == 30 and not done:
                await pg.read_only(True)
                await pg.terminate_others()  # sessions take the setting when they start
                done.append(True)

        d.hook(read_only_mid_group)
        async with d.running() as daemon:
            await until(lambda: asyncio.sleep(0, daemon.fault.attempts >= 3),
                        "the intake failed three times")
            fault = daemon.fault.fault
            assert fault is not None and fault.what == "database read-only", fault
            # the second group rolled back: 25 decided, the rest waits, nothing quarantined
            assert await pg.states() == {"processed": 25, "received": N - 25}
            assert await pg.value("SELECT last_uid FROM checkpoints") == 25
            assert d.folder("INBOX") == N - 25 and d.folder("Quarantine") == 0
            await pg.read_only(False)  # the daemon's next connection may write again
            await until(lambda: asyncio.sleep(0, d.folder("Processed") == N),
                        "every mail is processed")
            await until(lambda: asyncio.sleep(0, not daemon.fault.active), "the fault clears")
        await assert_every_mail_decided_once(d, pg)
    stopped, resumed = outage_lines(caplog)
    assert len(stopped) == 1, stopped
    assert len(resumed) == 1, resumed
    assert not [r for r in caplog.records if r.name == "maild.error"]


async def test_a_database_read_only_at_start_is_waited_for_not_sat_on(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    # the daemon can read (the schema is current) but not write: it must neither run idle
    # on that connection nor give up; it tries again on new connections until it can write
    caplog.set_level(logging.INFO)
    async with pg_database() as url, Postgres(url) as pg:
        store = Store(url, tmp_path / "var" / "raw", tmp_path)
        await store.open()
        await store.close()
        await pg.read_only(True)
        d = Deployment(tmp_path, db=url)
        backlog(d.inbox, 3)
        async with d.running() as daemon:
            await until(lambda: asyncio.sleep(0, daemon.fault.attempts >= 2),
                        "the start failed twice")
            assert daemon.fault.fault is not None
            assert daemon.fault.fault.what == "database read-only"
            assert d.folder("INBOX") == 3
            await pg.read_only(False)
            await until(lambda: asyncio.sleep(0, d.folder("Processed") == 3),
                        "every mail is processed")
        assert await pg.states() == {"processed": 3}
    lines = [r.getMessage() for r in caplog.records if r.name == "maild.daemon"]
    assert len([x for x in lines if x.startswith("database unusable")]) == 1, lines
    assert len([x for x in lines if x.startswith("database usable after")]) == 1, lines


# -- an unusable SQLite file at start: `maild run` as the supervisor runs it ----------------

def write_config(base: Path) -> Path:
    config = base / "maild.toml"
    config.write_text('[database]\nurl = "sqlite://db/maild.db"\n' + DIRECTORY_TOML
                      + QUIET.replace("poll_interval = 3600", "poll_interval = 0.5"),
                      encoding="utf-8")
    return config


async def make_database(base: Path) -> None:
    store = Store("sqlite://db/maild.db", base / "var" / "raw", base)
    await store.open()
    await store.close()


def maild(base: Path, *args: str, log: Path) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAILD_")}
    with open(log, "wb") as err:
        return subprocess.Popen([sys.executable, "-m", "maild", "run", "-c",
                                 str(base / "maild.toml"), *args], cwd=base, env=env,
                                stdout=subprocess.DEVNULL, stderr=err)


def remount(path: Path, mode: str) -> None:
    subprocess.run(["mount", "-o", f"remount,{mode}", str(path)], check=True)


async def test_run_on_a_read_only_database_waits_and_recovers_by_itself(
        tmp_path: Path) -> None:
    write_config(tmp_path)
    log = tmp_path / "maild.log"
    with tmpfs(tmp_path / "db", "16m") as db:
        await make_database(tmp_path)
        remount(db, "ro")  # the database cannot be written (nor opened, in WAL mode)
        raw = mail("buyer@huaxin.example.cn", "询价", attachments=(("规格.pdf", b"%PDF-1"),))
        deliver(tmp_path / "var" / "mail", raw)
        p = maild(tmp_path, log=log)
        try:
            async def says(text: str) -> bool:
                return text in log.read_text(encoding="utf-8")

            await until(lambda: says("database unusable"), "the daemon says so", 30)
            assert p.poll() is None  # waiting, not exited, and nothing decided
            assert not list((tmp_path / "var" / "mail" / ".Processed").glob("cur/*"))
            remount(db, "rw")
            await until(lambda: says("database usable after"), "the daemon recovers", 30)
            await until(lambda: asyncio.sleep(0, len(list(
                (tmp_path / "var" / "mail" / ".Processed").glob("cur/*"))) == 1),
                "the mail is processed", 30)
        finally:
            p.send_signal(signal.SIGTERM)
            try:
                p.wait(30)
            finally:
                if p.poll() is None:
                    p.kill()
                    p.wait()
    text = log.read_text(encoding="utf-8")
    assert p.returncode == 0, text
    assert text.count("database unusable") == 1, text
    assert "exit: fetched=1 processed=1 quarantined=0" in text


async def test_run_once_on_a_read_only_database_exits_non_zero(tmp_path: Path) -> None:
    write_config(tmp_path)
    log = tmp_path / "maild.log"
    with tmpfs(tmp_path / "db", "16m") as db:
        await make_database(tmp_path)
        remount(db, "ro")
        deliver(tmp_path / "var" / "mail", mail("buyer@huaxin.example.cn", "询价"))
        p = maild(tmp_path, "--once", log=log)
        try:
            code = p.wait(60)
        finally:
            if p.poll() is None:
                p.kill()
                p.wait()
    text = log.read_text(encoding="utf-8")
    assert code != 0, text
    assert "maild: database unusable: database cannot be opened" in text
    assert "Traceback" not in text


# -- the mail's own faults, and faults nobody can place -------------------------------------

class Intake:
    """The intake in-process on a Maildir and SQLite, as tests/integration/test_pipeline."""

    def __init__(self, base: Path) -> None:
        from maild.adapters.sources.maildir import MaildirSource
        from maild.runners.intake import Intake as Runner
        from maild.site import Site

        self.inbox = base / "mail"
        self.store = Store(f"sqlite://{base}/maild.db", base / "raw", base)
        self.intake = Runner(Site.build(make_config(base, "[mailbox]\nparse_workers = 0\n")),
                             MaildirSource(self.inbox), self.store, lambda: NOW)

    def folder(self, name: str) -> list[Path]:
        d = self.inbox / f".{name}" / "cur"
        return sorted(d.iterdir()) if d.is_dir() else []

    def inbox_count(self) -> int:
        return sum(len(list((self.inbox / d).iterdir())) for d in ("new", "cur"))

    def fail(self, subjects: set[str], error: Callable[[], Exception]) -> None:
        """Deciding a mail with one of these subjects raises ``error()``."""
        decide = self.intake._decide

        async def failing(row: Any, mail: Any) -> None:
            if mail.subject in subjects:
                raise error()
            await decide(row, mail)

        self.intake._decide = failing  # type: ignore[method-assign]


@pytest.fixture
async def intake(tmp_path: Path) -> AsyncIterator[Intake]:
    s = Intake(tmp_path)
    await s.store.open()
    try:
        yield s
    finally:
        s.intake.close()
        await s.store.close()


async def test_a_quarantined_mail_moved_back_to_the_inbox_is_decided_again(
        intake: Intake) -> None:
    from maild.store.models import Case, Message

    raw = mail("a@huaxin.example.cn", "询价")
    deliver(intake.inbox, raw)
    intake.fail({"询价"}, lambda: ValueError("a template bug, fixed since"))
    assert (await intake.intake.poll()).quarantined == 1  # the mail's fault, as it looked
    [quarantined] = intake.folder("Quarantine")
    del intake.intake._decide  # the fix is deployed
    # someone moves it back to the inbox: a new UID, the same bytes
    quarantined.rename(intake.inbox / "new" / quarantined.name.split(":")[0])
    counters = await intake.intake.poll()
    assert (counters.processed, counters.duplicates) == (1, 0)
    first, again = await Message.filter(direction="in").order_by("uid")
    assert (first.state, again.state) == ("quarantined", "processed")
    assert await Case.all().count() == 1
    assert len(intake.folder("Processed")) == 1 and intake.folder("Quarantine") == []


async def test_an_environmental_error_while_deciding_quarantines_nothing(
        intake: Intake) -> None:
    from maild.runners.faults import IntakeFault
    from maild.store.models import Checkpoint, Message

    for i in range(3):
        deliver(intake.inbox, mail(f"b{i}@huaxin.example.cn", f"询价 {i}"))
    intake.fail({"询价 1"}, lambda: OSError(5, "Input/output error"))
    with pytest.raises(IntakeFault, match="I/O error"):
        await intake.intake.poll()
    # the group rolled back: the first mail's decision too; all three wait in the inbox
    assert {m.state for m in await Message.filter(direction="in")} == {"received"}
    assert (await Checkpoint.get()).last_uid == 0
    assert intake.inbox_count() == 3 and intake.intake.counters.processed == 0
    del intake.intake._decide
    assert (await intake.intake.poll()).processed == 3


async def test_a_mail_failing_unexpectedly_is_held_back_then_quarantined(
        intake: Intake) -> None:
    from maild.runners.faults import SUSPECT_STRIKES, IntakeFault
    from maild.store.models import Checkpoint, Message

    # two in a row failing unexpectedly: the environment's, whatever it is
    for i in range(2):
        deliver(intake.inbox, mail(f"c{i}@huaxin.example.cn", f"询价 {i}"))
    intake.fail({"询价 0", "询价 1"}, lambda: RuntimeError("driver in a bad state"))
    with pytest.raises(IntakeFault, match="unexpected error"):
        await intake.intake.poll()
    assert intake.intake.counters.quarantined == 0 and intake.inbox_count() == 2
    del intake.intake._decide
    await intake.intake.poll()
    assert len(intake.folder("Processed")) == 2

    # one mail that fails so while the others go through is held back, then quarantined
    intake.fail({"坏的"}, lambda: RuntimeError("a bug this mail triggers"))
    deliver(intake.inbox, mail("bad@huaxin.example.cn", "坏的"))
    for n in range(SUSPECT_STRIKES):
        deliver(intake.inbox, mail(f"d{n}@huaxin.example.cn", f"询价 d{n}"))
        counters = await intake.intake.poll()
        held = n < SUSPECT_STRIKES - 1
        assert counters.quarantined == (0 if held else 1)
        assert len(intake.folder("Processed")) == 2 + n + 1  # the others are not held up
        assert intake.inbox_count() == (1 if held else 0)
        bad = await Message.get(direction="in", uid=3)
        assert bad.state == ("received" if held else "quarantined")
        if held:  # the checkpoint stays below it, so the next poll tries it again
            assert (await Checkpoint.get()).last_uid == 2
    assert "failed the same way 3 times" in (bad.reason or "")
    assert "a bug this mail triggers" in (bad.reason or "")
    assert (await Checkpoint.get()).last_uid == 3 + SUSPECT_STRIKES


async def test_run_once_with_a_full_disk_exits_non_zero_and_keeps_the_mail(
        tmp_path: Path) -> None:
    write_config(tmp_path)
    log = tmp_path / "maild.log"
    await make_database(tmp_path)
    inbox = tmp_path / "var" / "mail"
    deliver(inbox, mail("buyer@huaxin.example.cn", "询价",
                        attachments=(("规格.pdf", os.urandom(3000)),)))
    with tmpfs(tmp_path / "var" / "attachments", "256k") as attachments:
        filler = fill(attachments)
        p = maild(tmp_path, "--once", log=log)
        try:
            code = p.wait(60)
        finally:
            if p.poll() is None:
                p.kill()
                p.wait()
        text = log.read_text(encoding="utf-8")
        assert code != 0, text
        assert "maild: intake failed: disk full" in text and "Traceback" not in text
        assert "quarantined=0" in text
        assert len(list((inbox / "new").iterdir()) + list((inbox / "cur").iterdir())) == 1
        filler.unlink()
        p = maild(tmp_path, "--once", log=log)
        assert p.wait(60) == 0, log.read_text(encoding="utf-8")
    assert len(list((inbox / ".Processed" / "cur").iterdir())) == 1
    assert "exit: fetched=1 processed=1 quarantined=0" in log.read_text(encoding="utf-8")
