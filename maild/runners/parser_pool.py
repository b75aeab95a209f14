"""Parsing a batch of mail, in a worker process when the batch is large.

mail-parser is pure Python and the largest single cost of the intake (about 1 ms a mail on
this machine): a large batch is handed to a worker process, which parses mail after mail
while the daemon decides the ones already parsed, so the two use two cores. Small batches,
the steady trickle of a running daemon, are parsed in the daemon's own process: starting a
worker would cost more than it saves. Results come back in the batch's order.

A worker that dies (the kernel's OOM killer on a mail bomb, a crash in C code) costs only the
mail it was parsing: the rest of the batch is parsed again one message at a time in a fresh
worker, and the one that kills that worker too is quarantined with the reason. Any exception the
parser raises becomes the message's quarantine reason; it never stops the batch.
"""

from __future__ import annotations

import asyncio
import ctypes
import logging
import multiprocessing
import os
import signal
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any

from maild import failpoints
from maild.mail.auth import DkimPolicy
from maild.mail.message import ParsedMail
from maild.mail.parse import ParseError, parse_mail

log = logging.getLogger("maild.intake")

#: batches with fewer messages are parsed in the daemon's own process
MIN_BATCH = 16
#: seconds between a worker's checks that the daemon that started it is still alive
ORPHAN_CHECK = 0.5
#: messages per task sent to a worker (fewer round trips than one task per message)
CHUNK = 25

#: mallopt's M_MMAP_THRESHOLD
M_MMAP_THRESHOLD = -3

Outcome = ParsedMail | ParseError


class Unparsed(ParseError):
    """A message not parsed at all (too large): the text is the whole quarantine reason."""


def parse_or_error(raw: bytes, dkim: DkimPolicy | None = None) -> Outcome:
    """The parsed mail, or the ParseError whose text is the quarantine reason. ``dkim``:
    check DKIM signatures with these keys (the raw bytes are needed for it)."""
    try:
        return parse_mail(raw, dkim)
    except ParseError as e:
        return ParseError(str(e))  # without its traceback: it may cross a process boundary
    except (RecursionError, MemoryError) as e:
        return ParseError(f"too complex to parse ({type(e).__name__})")
    except Exception as e:  # noqa: BLE001 - a parser bug must not stop the batch
        return ParseError(f"the parser failed: {type(e).__name__}: {e}"[:300])


def release_large_buffers() -> None:
    """Have glibc map every allocation of 1 MB or more on its own, so that a large mail's
    buffers go back to the system when freed. By default glibc raises that threshold to the
    size of the largest block freed (up to 32 MB), after which the buffers of 20 MB mails
    come from its heaps and stay resident: a backlog of them grows the process by ~40 MB.
    Without glibc, nothing happens."""
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(M_MMAP_THRESHOLD, 1024 * 1024)
    except (OSError, AttributeError):
        pass


def _worker_start(daemon: int) -> None:
    """In the worker: leave SIGTERM and SIGINT to the daemon. systemd signals every process
    of the service and a terminal's Ctrl-C the whole process group; the daemon finishes the
    mail in hand and then stops its workers itself. A daemon that dies without doing so
    (SIGKILL, the OOM killer) is noticed within a second, and the worker ends too."""
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    release_large_buffers()

    def watch() -> None:
        # the daemon's pid comes with the task: it may have died before this worker got here
        while os.getppid() == daemon:
            time.sleep(ORPHAN_CHECK)
        os._exit(0)  # orphaned: the daemon is gone, and so is everything it asked for

    threading.Thread(target=watch, name="maild-parser-orphan-check", daemon=True).start()


def _ready() -> None:
    """A first task, so that the worker process is spawned before it is needed."""


def _parse_chunk(raws: list[bytes], dkim: DkimPolicy | None = None) -> list[Outcome]:
    """Run in the worker process."""
    out = []
    for raw in raws:
        failpoints.hit_marked("parser", raw)
        out.append(parse_or_error(raw, dkim))
    return out


class Parser:
    """Parses batches; owns the worker processes (``workers`` 0: always in-process)."""

    def __init__(self, workers: int = 1, min_batch: int = MIN_BATCH,
                 dkim: DkimPolicy | None = None) -> None:
        self.workers = workers
        self.dkim = dkim  # how DKIM signatures are checked (None: they are not)
        self.min_batch = max(1, min_batch)
        self._pool: ProcessPoolExecutor | None = None

    def batch(self, raws: Sequence[bytes], preset: dict[int, Outcome] | None = None
              ) -> BatchParse:
        """Start parsing ``raws``; ``await result.get(i)`` gives the i-th outcome, which is
        ``preset[i]`` when given (that message is not parsed; its raw may be empty).

        The first large batch starts the worker and is parsed here while it starts."""
        preset = preset or {}
        if self.workers <= 0 or len(raws) < self.min_batch:
            return BatchParse(self, raws, None, None, preset)
        if self._pool is None:
            self.start()
            return BatchParse(self, raws, None, None, preset)
        submitted = self._submit([[list(raws[i:i + CHUNK]), self.dkim]
                                  for i in range(0, len(raws), CHUNK)])
        if submitted is None:
            return BatchParse(self, raws, None, None, preset)
        pool, futures = submitted
        return BatchParse(self, raws, pool, [asyncio.wrap_future(f) for f in futures], preset)

    async def alone(self, raw: bytes) -> Outcome:
        """Parse one message in a worker of its own making after a worker died."""
        pool = self._live_pool()
        try:
            [outcome] = await asyncio.get_running_loop().run_in_executor(
                pool, _parse_chunk, [raw], self.dkim)
        except BrokenProcessPool as e:
            self._drop(pool)
            return ParseError(f"the parser process died while parsing this message ({e})")
        return outcome

    def start(self) -> None:
        """Start the worker processes now (they take a moment to be ready)."""
        if self.workers > 0 and self._pool is None:
            self._submit([[]], _ready)  # processes are spawned at the first task

    def _submit(self, args: list[list[object]], fn: Callable[..., object] = _parse_chunk
                ) -> tuple[ProcessPoolExecutor, list[Future[Any]]] | None:
        """``fn(*a)`` in a worker for each ``a`` of ``args``. A pool whose worker died while
        idle is replaced, once; None (logged) when no worker can be started."""
        error: BaseException | None = None
        for _ in (1, 2):
            pool = None
            try:
                pool = self._live_pool()
                return pool, [pool.submit(fn, *a) for a in args]
            except (BrokenProcessPool, OSError) as e:
                self._drop(pool)
                error = e
        log.error("cannot start a parser process (%s); parsing in the daemon", error)
        return None

    def close(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)

    def _live_pool(self) -> ProcessPoolExecutor:
        if self._pool is None:
            log.info("starting %d parser process(es)", self.workers)
            # spawn: a clean interpreter, whatever threads this process has running
            self._pool = ProcessPoolExecutor(self.workers,
                                             mp_context=multiprocessing.get_context("spawn"),
                                             initializer=_worker_start,
                                             initargs=(os.getpid(),))
        return self._pool

    def _drop(self, pool: ProcessPoolExecutor | None) -> None:
        """Forget a pool whose worker died, so the next parse starts a fresh one."""
        if pool is not None and self._pool is pool:
            self._pool = None
            pool.shutdown(wait=False, cancel_futures=True)


class BatchParse:
    """The outcomes of a batch, each to be taken once: the raw bytes of a message are
    dropped when its outcome is taken, so that a batch's bytes are not held longer than
    needed."""

    def __init__(self, parser: Parser, raws: Sequence[bytes], pool: ProcessPoolExecutor | None,
                 futures: list[asyncio.Future[list[Outcome]]] | None,
                 preset: dict[int, Outcome] | None = None) -> None:
        self._parser = parser
        self._raws = list(raws)
        self._preset = preset or {}
        self._pool = pool
        self._futures = futures
        self._broken = False

    async def get(self, i: int) -> Outcome:
        try:
            return await self._get(i)
        finally:
            self._raws[i] = b""

    async def _get(self, i: int) -> Outcome:
        if i in self._preset:
            return self._preset[i]
        if self._futures is None:
            return parse_or_error(self._raws[i], self._parser.dkim)
        if not self._broken:
            try:
                return (await self._futures[i // CHUNK])[i % CHUNK]
            except BrokenProcessPool:
                # a worker died on some message: the rest of the batch goes one at a time
                log.warning("a parser process died; parsing the rest of its batch one "
                            "message at a time")
                self._broken = True
                self.cancel()
                self._parser._drop(self._pool)
        return await self._parser.alone(self._raws[i])

    def cancel(self) -> None:
        """Drop the parses not yet needed (the poll is stopping, or they are redone)."""
        for f in self._futures or ():
            f.cancel()
