"""Intake: mailbox -> raw store -> parse -> classify -> decide -> apply -> commit -> move.

Order matters for crash safety. Raw bytes and a ``received`` row are committed before any
decision; each decision, its case change and its letters are written in a savepoint, and
the decisions of 25 mails are committed together with the UID checkpoint; only then is the
mailbox copy moved. A crash anywhere repeats at most the step in hand: a ``received``
row is decided again (its earlier transaction never committed), a decided row is only moved.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from tortoise.exceptions import DBConnectionError
from tortoise.transactions import in_transaction

from maild import failpoints
from maild.adapters.sources.base import Fetched, MailSource
from maild.classify.rules import subject_tags
from maild.mail.message import ParsedMail
from maild.mail.parse import ParseError
from maild.runners.parser_pool import BatchParse, Parser
from maild.site import Site
from maild.store import DECIDED, ApplyEnv, Kept, Store
from maild.store.models import Message

#: mails decided per transaction
COMMIT_EVERY = 25

log = logging.getLogger("maild.intake")
decisions = logging.getLogger("maild.decision")
errors = logging.getLogger("maild.error")


@dataclass
class Counters:
    fetched: int = 0
    processed: int = 0
    quarantined: int = 0
    duplicates: int = 0
    moved: int = 0
    routes: dict[str, int] = field(default_factory=dict)

    def line(self) -> str:
        return (f"fetched={self.fetched} processed={self.processed} "
                f"quarantined={self.quarantined} duplicates={self.duplicates} moved={self.moved}")


@dataclass
class _Ahead:
    """A fetched batch whose raw bytes are being kept and whose mail is being parsed."""

    batch: list[Fetched]
    parses: BatchParse
    kept: asyncio.Future[list[Kept]]

    async def drop(self) -> None:
        """Not to be decided in this poll (stopping, or an error): let the writes finish
        (a thread cannot be stopped) and forget the parses. Its mail stays in the mailbox
        above the checkpoint, and files already written are simply found next time."""
        self.parses.cancel()
        try:
            await self.kept
        except Exception as e:  # noqa: BLE001 - the poll's own outcome is what counts
            log.debug("raw bytes of a batch not decided: %s", e)


class Intake:
    def __init__(self, site: Site, source: MailSource, store: Store,
                 clock: Callable[[], datetime]) -> None:
        self.site = site
        self.cfg = site.cfg
        self.source = source
        self.store = store
        self.clock = clock
        self.parser = Parser(self.cfg.mailbox.parse_workers)
        self.counters = Counters()
        #: set after each commit: letters may be waiting in the outbox
        self.committed = asyncio.Event()

    def close(self) -> None:
        """Stop the parser processes (blocking)."""
        self.parser.close()

    async def poll(self, should_stop: Callable[[], bool] = lambda: False) -> Counters:
        """Drain the mailbox once: every message with a UID above the checkpoint.

        While one batch is decided, the next one is already fetched: its raw bytes are
        being written (in a thread) and its mail parsed (in a worker process). It is recorded
        only after the batch before it, so the order of the steps is the same for each mail.
        """
        src = self.source
        await asyncio.to_thread(src.open)
        uidvalidity = await asyncio.to_thread(src.uidvalidity)
        last = await self.store.checkpoint(src.name, uidvalidity)
        await self._move_pending(uidvalidity)  # decided before a crash, never moved
        ahead = await self._fetch(last, COMMIT_EVERY)
        try:
            while ahead.batch and not should_stop():
                current = ahead
                kept = await current.kept
                rows = await self.store.record_fetched(src.name, uidvalidity, kept,
                                                       self.clock())
                failpoints.hit("after_fetch")
                ahead = await self._fetch(current.batch[-1].uid, 4 * len(current.batch))
                last = await self._batch(uidvalidity, current, rows, last, should_stop)
        finally:
            await ahead.drop()
        return self.counters

    async def _fetch(self, last: int, limit: int) -> _Ahead:
        """Fetch up to ``limit`` (at most a batch) and start keeping and parsing it.

        A poll starts with a small batch and grows it, so that the first decisions need not
        wait for a whole batch to be written and flushed to the disk."""
        batch = await asyncio.to_thread(self.source.fetch_after, last,
                                        min(limit, self.cfg.mailbox.batch_size))
        self.counters.fetched += len(batch)
        return _Ahead(batch, self.parser.batch([f.raw for f in batch]),  # parsing starts
                      asyncio.ensure_future(asyncio.to_thread(self.store.keep_raw, batch)))

    async def _batch(self, uidvalidity: int, current: _Ahead, rows: list[Message], last: int,
                     should_stop: Callable[[], bool]) -> int:
        """Decide, commit and move one recorded batch; returns the new checkpoint."""
        try:
            copies: dict[str, int] = {}
            for start in range(0, len(rows), COMMIT_EVERY):
                if should_stop():
                    break
                last = await self._commit_group(uidvalidity, rows, current.batch,
                                                current.parses, start, copies, last,
                                                should_stop)
                self.committed.set()
                # the sender may mark and lease letters now: its wake-up takes two turns of
                # the loop (the sending thread's callback, then the drain's own step)
                await asyncio.sleep(0)
                await asyncio.sleep(0)
        finally:
            current.parses.cancel()  # parses of mail not reached (stopping, or an error)
        await self._move_pending(uidvalidity)
        return last

    async def _commit_group(self, uidvalidity: int, rows: list[Message],
                            batch: list[Fetched], parses: BatchParse, start: int,
                            copies: dict[str, int], last: int,
                            should_stop: Callable[[], bool]) -> int:
        """Decide ``COMMIT_EVERY`` mails from ``start`` and the checkpoint in one commit.

        Each mail's decision is a savepoint inside it, so a bad mail rolls back alone, and a
        crash before the commit redoes the group (its mail is still in the mailbox above the
        checkpoint; no letter of it was visible to the sender). One fsync per group instead
        of one per mail; groups rather than the whole batch, so that the sender gets the
        database between them.
        """
        group = range(start, min(start + COMMIT_EVERY, len(rows)))
        async with in_transaction(self.store.conn):
            await self.store.lock([rows[i] for i in group])
            # handled copies of these bytes (one query per group, not one per message)
            for sha, first in (await self.store.decided_copies([rows[i] for i in group])).items():
                copies.setdefault(sha, first)
            for i in group:
                if should_stop():
                    break
                row = rows[i]
                await self._handle(row, parses, i, copies)
                if row.state in DECIDED:
                    copies.setdefault(row.sha256, row.id)
                last = batch[i].uid
            await self.store.advance(self.source.name, uidvalidity, last)
        failpoints.hit("after_commit")
        return last

    async def _move_pending(self, uidvalidity: int) -> None:
        for folder, uids in (await self.store.pending_moves(self.source.name,
                                                            uidvalidity)).items():
            failpoints.hit("before_move")
            await asyncio.to_thread(self.source.move, uids, folder)
            await self.store.mark_moved(self.source.name, uidvalidity, uids)
            self.counters.moved += len(uids)

    async def _handle(self, row: Message, parses: BatchParse, i: int,
                      copies: dict[str, int]) -> None:
        if row.state != "received":
            return  # decided in an earlier run; only its move may be pending
        dup = copies.get(row.sha256)
        if dup is not None and dup != row.id:
            await self.store.finish(row, "duplicate", self.cfg.mailbox.processed_folder,
                                    f"same bytes as message #{dup}")
            self.counters.duplicates += 1
            return
        mail = await parses.get(i)
        if isinstance(mail, ParseError):
            await self._quarantine(row, f"cannot parse: {mail}")
            return
        try:
            await self._decide(row, mail)
        except DBConnectionError:
            raise  # the store is away: stop this poll, the message stays for the next one
        except Exception as e:  # noqa: BLE001 - one bad message must not hold up the rest
            errors.exception("%s cannot be stored: %s", mail.message_id or f"uid {row.uid}", e)
            await self._quarantine(row, f"cannot store: {type(e).__name__}: {e}")

    async def _decide(self, row: Message, mail: ParsedMail) -> None:
        now = self.clock()
        site = self.site
        cls = site.classify(mail, await self.store.known(mail, subject_tags(mail.subject)))
        case = await self.store.case_view(cls.case_number) if cls.case_number else None
        decision = site.decide(mail, cls, case, now)
        folder = self.cfg.mailbox.processed_folder
        if cls.route == "triage":
            folder = self.cfg.mailbox.triage_folder
        number = await self.store.apply(row, mail, cls, decision, self.apply_env(now), folder)
        self.counters.processed += 1
        kind = cls.route.split(" ")[0]
        self.counters.routes[kind] = self.counters.routes.get(kind, 0) + 1
        decisions.info("%s from=%s route=%s case=%s: %s", mail.message_id, mail.from_.addr,
                       cls.route, number, decision.summary)

    def apply_env(self, now: datetime) -> ApplyEnv:
        return ApplyEnv.for_site(self.site, now)

    async def _quarantine(self, row: Message, reason: str) -> None:
        errors.warning("uid %s quarantined: %s", row.uid, reason)
        await self.store.finish(row, "quarantined", self.cfg.mailbox.quarantine_folder,
                                reason[:2000])
        self.counters.quarantined += 1
