"""Parsing batches in a real worker process: same outcomes as in-process, and a worker that
dies costs only the message it was parsing."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Never

import pytest
from support import find_corpus, mail

from maild.mail.parse import ParseError
from maild.runners import parser_pool as parsing
from maild.runners.intake import COMMIT_EVERY
from maild.runners.parser_pool import MIN_BATCH, Parser, parse_or_error

KILLER = b"X-Maild-Failpoint: parser\r\n"


def marked(raw: bytes) -> bytes:
    """The message with the header that makes the ``parser`` failpoint kill the worker."""
    return raw.replace(b"\n", b"\n" + KILLER, 1)


@pytest.fixture
def parser() -> Iterator[Parser]:
    """A parser whose worker is started (the first large batch would otherwise be parsed
    in-process while the worker starts)."""
    p = Parser(workers=1)
    p.start()
    try:
        yield p
    finally:
        p.close()


def corpus_raws() -> list[bytes]:
    files = sorted(f for f in find_corpus().rglob("*") if f.is_file())
    return [f.read_bytes() for f in files]


async def test_a_large_batch_is_parsed_in_a_worker_exactly_as_in_process(
        parser: Parser) -> None:
    raws = corpus_raws()  # real mail, malformed mail and files that are not mail at all
    raws += [mail(f"buyer{i}@huaxin.example.cn", f"询价 {i}", "您好，请报价。", charset=cs)
             for i, cs in enumerate(("gbk", "gb18030", "utf-8"))]
    raws.append(mail("buyer@taipei.example.tw", "詢價", "您好，請報價。", charset="big5"))
    assert len(raws) >= MIN_BATCH
    batch = parser.batch(raws)
    assert batch._futures is not None  # a worker process does the parsing
    for i, raw in enumerate(raws):
        got, want = await batch.get(i), parse_or_error(raw)
        if isinstance(want, ParseError):
            assert isinstance(got, ParseError) and str(got) == str(want)
        else:
            assert got == want
    assert any(isinstance(parse_or_error(r), ParseError) for r in raws)  # both kinds seen


async def test_a_small_batch_is_parsed_in_process_and_starts_nothing() -> None:
    parser = Parser(workers=1)
    raws = [mail("a@huaxin.example.cn", "询价")] * (MIN_BATCH - 1)
    batch = parser.batch(raws)
    assert (await batch.get(0)).subject == "询价"  # type: ignore[union-attr]
    assert parser._pool is None


async def test_the_first_large_batch_is_parsed_while_the_worker_starts() -> None:
    parser = Parser(workers=1)
    try:
        raws = [mail(f"buyer{i}@huaxin.example.cn", f"询价 {i}") for i in range(MIN_BATCH)]
        first = parser.batch(raws)
        assert first._futures is None and parser._pool is not None  # here, worker starting
        assert (await first.get(1)).subject == "询价 1"  # type: ignore[union-attr]
        second = parser.batch(raws)
        assert second._futures is not None  # the worker's
        assert (await second.get(2)).subject == "询价 2"  # type: ignore[union-attr]
    finally:
        parser.close()


async def test_a_worker_that_dies_costs_only_the_message_it_was_parsing(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MAILD_FAILPOINT", "parser")  # the worker inherits it when spawned
    parser = Parser(workers=1)
    parser.start()
    try:
        await dies_on_one(parser)
    finally:
        parser.close()


async def dies_on_one(parser: Parser) -> None:
    raws = [mail(f"buyer{i}@huaxin.example.cn", f"询价 {i}") for i in range(2 * MIN_BATCH)]
    raws[5] = marked(raws[5])
    batch = parser.batch(raws)
    outcomes = [await batch.get(i) for i in range(len(raws))]
    died = outcomes[5]
    assert isinstance(died, ParseError) and "parser process died" in str(died)
    assert [o.subject for i, o in enumerate(outcomes) if i != 5] == [  # type: ignore[union-attr]
        f"询价 {i}" for i in range(len(raws)) if i != 5]
    # and the next batch gets a working worker again
    again = parser.batch(raws[:5] + raws[6:])
    assert again._futures is not None and not isinstance(await again.get(0), ParseError)


async def test_intake_quarantines_the_mail_that_killed_the_parser(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from test_pipeline import Site

    from maild.adapters.sources.maildir import deliver
    from maild.store.models import Message

    monkeypatch.setenv("MAILD_FAILPOINT", "parser")
    site = Site(tmp_path)
    await site.store.open()
    try:
        # the poll's first batch (COMMIT_EVERY mails) is parsed in the daemon while the
        # worker starts; the second goes to the worker, with the killer in it
        n = COMMIT_EVERY + MIN_BATCH + 4
        for i in range(n):
            raw = mail(f"buyer{i}@huaxin.example.cn", f"询价 {i}")
            deliver(site.inbox, marked(raw) if i == COMMIT_EVERY + 3 else raw)
        counters = await site.intake.poll()
        assert (counters.processed, counters.quarantined) == (n - 1, 1)
        [bad] = await Message.filter(direction="in", state="quarantined")
        assert bad.uid == COMMIT_EVERY + 4 and "parser process died" in (bad.reason or "")
        assert len(site.folder("Quarantine")) == 1
        assert len(site.folder("Processed")) == n - 1
    finally:
        site.intake.close()
        await site.store.close()


async def test_a_worker_ignores_the_stop_signals_meant_for_the_daemon(parser: Parser) -> None:
    # systemd sends SIGTERM to every process of the service, Ctrl-C SIGINT to the whole
    # process group: the worker must live on until the daemon has finished its mail
    raws = [mail(f"buyer{i}@huaxin.example.cn", f"询价 {i}") for i in range(MIN_BATCH)]
    assert not isinstance(await parser.batch(raws).get(0), ParseError)
    pool = parser._pool
    assert pool is not None
    [pid] = list(pool._processes)  # the one worker
    for sig in (signal.SIGTERM, signal.SIGINT):
        os.kill(pid, sig)
    await asyncio.sleep(0.2)
    batch = parser.batch(raws)
    outcomes = [await batch.get(i) for i in range(len(raws))]
    assert not any(isinstance(o, ParseError) for o in outcomes)
    assert parser._pool is pool and list(pool._processes) == [pid]


async def test_a_worker_that_died_while_idle_is_replaced(parser: Parser) -> None:
    raws = [mail(f"buyer{i}@huaxin.example.cn", f"询价 {i}") for i in range(MIN_BATCH)]
    assert not isinstance(await parser.batch(raws).get(0), ParseError)
    pool = parser._pool
    assert pool is not None
    [pid] = list(pool._processes)
    os.kill(pid, signal.SIGKILL)  # the OOM killer, between two polls
    deadline = time.monotonic() + 10
    while alive(pid) and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    await asyncio.sleep(0.2)  # the pool notices
    batch = parser.batch(raws)
    outcomes = [await batch.get(i) for i in range(len(raws))]
    assert [o.subject for o in outcomes] == [  # type: ignore[union-attr]
        f"询价 {i}" for i in range(len(raws))]
    assert parser._pool is not pool


async def test_when_no_worker_can_be_started_the_daemon_parses_itself(
        monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    class NoProcesses(ProcessPoolExecutor):  # as when the system refuses to fork (EAGAIN)
        def submit(self, *args: object, **kwargs: object) -> Never:
            raise OSError(11, "Resource temporarily unavailable")

    monkeypatch.setattr(parsing, "ProcessPoolExecutor", NoProcesses)
    parser = Parser(workers=1)
    raws = [mail(f"buyer{i}@huaxin.example.cn", f"询价 {i}") for i in range(MIN_BATCH)]
    for _ in range(2):  # the first batch would start the worker; the second would use it
        batch = parser.batch(raws)
        assert (await batch.get(3)).subject == "询价 3"  # type: ignore[union-attr]
    assert "cannot start a parser process" in caplog.text
    assert parser._pool is None


ORPHAN_SCRIPT = """
import asyncio, os, signal, sys
sys.path.insert(0, sys.argv[1])
from support import mail
from maild.runners.parser_pool import MIN_BATCH, Parser

async def main(ready):
    parser = Parser(workers=1)
    parser.start()
    if ready:  # wait until the worker has parsed something; else die while it starts
        raws = [mail(f"b{i}@huaxin.example.cn", "询价") for i in range(MIN_BATCH)]
        await parser.batch(raws).get(0)
    print(*parser._pool._processes, flush=True)
    os.kill(os.getpid(), signal.SIGKILL)  # a daemon killed before it could stop its worker

if __name__ == "__main__":  # the worker, spawned, imports this file too
    asyncio.run(main(sys.argv[2] == "ready"))
"""


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


@pytest.mark.parametrize("when", ["ready", "starting"])
def test_a_worker_whose_daemon_was_killed_ends_too(tmp_path: Path, when: str) -> None:
    script = tmp_path / "orphan.py"
    script.write_text(ORPHAN_SCRIPT, encoding="utf-8")
    tests = Path(__file__).resolve().parents[1]  # where support.py and servers.py live
    proc = subprocess.run([sys.executable, str(script), str(tests), when],
                          capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    [pid] = [int(p) for p in proc.stdout.split()]
    deadline = time.monotonic() + 10
    while alive(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not alive(pid), "the parser process outlived the daemon"
