"""Intake: mailbox -> raw store -> parse -> classify -> decide -> apply -> commit -> move.

Order matters for crash safety. Raw bytes and a ``received`` row are committed before any
decision; each decision, its case change and its letters are written in a savepoint, and
the decisions of 25 mails are committed together with the UID checkpoint; only then is the
mailbox copy moved. A crash anywhere repeats at most the step in hand: a ``received``
row is decided again (its earlier transaction never committed), a decided row is only moved.

Only the mail's own faults quarantine it (``maild.runners.faults``). A fault of the
environment (disk, database, mailbox) stops the poll with ``IntakeFault``: the group in hand
rolls back, the checkpoint stays, and the mail is decided when the daemon tries again.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from tortoise.transactions import in_transaction

from maild import failpoints
from maild.adapters.sources.base import Fetched, MailSource
from maild.classify.rules import subject_tags
from maild.mail.message import ParsedMail
from maild.mail.parse import ParseError
from maild.runners import faults
from maild.runners.faults import Fault, IntakeFault
from maild.runners.parser_pool import BatchParse, Parser, Unparsed, release_large_buffers
from maild.site import Site
from maild.store import DECIDED, ApplyEnv, Kept, Store
from maild.store.limits import flush
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
    """A fetched batch whose raw bytes are being kept and whose mail is being parsed. The raw
    bytes are held only by those two steps, each dropping them when done with them."""

    uids: list[int]
    size: int  # raw bytes fetched
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
        self.parser = Parser(self.cfg.mailbox.parse_workers, dkim=site.dkim)
        release_large_buffers()  # large mails: their buffers are not kept once freed
        self.counters = Counters()
        #: set after each commit: letters may be waiting in the outbox
        self.committed = asyncio.Event()
        #: mails held back by an unexpected error: row id -> (error, polls confirmed)
        self._suspects: dict[int, tuple[str, int]] = {}
        self._hold: int | None = None  # this poll's first held-back UID: the checkpoint stays
        self._held: list[int] = []  # row ids held back in this poll
        self._unexpected_last = False  # the last mail decided in this poll failed so

    def close(self) -> None:
        """Stop the parser processes (blocking)."""
        self.parser.close()

    async def poll(self, should_stop: Callable[[], bool] = lambda: False) -> Counters:
        """Drain the mailbox once: every message with a UID above the checkpoint.

        While one batch is decided, the next one is already fetched: its raw bytes are
        being written (in a thread) and its mail parsed (in a worker process). It is recorded
        only after the batch before it, so the order of the steps is the same for each mail.

        Raises ``IntakeFault`` when the environment fails (disk, database, mailbox): the
        commit group in hand rolls back and its mail stays above the checkpoint; nothing is
        quarantined for it.
        """
        self._hold, self._held, self._unexpected_last = None, [], False
        decided = self.counters.processed
        try:
            await self._poll(should_stop)
            # notices folded over the hourly limit in this poll go out in one summary each
            await flush(self.store, self.apply_env(self.clock()),
                        org_language=self.cfg.organisation.language)
        except IntakeFault:
            raise
        except Exception as e:  # noqa: BLE001 - outside a mail's decision: never the mail's
            raise IntakeFault(faults.environmental(e)) from e
        if self.counters.processed > decided:  # other mail went through: strikes count
            for rid in self._held:
                error, strikes = self._suspects[rid]
                self._suspects[rid] = (error, strikes + 1)
        return self.counters

    async def _poll(self, should_stop: Callable[[], bool]) -> None:
        src = self.source
        await asyncio.to_thread(src.open)
        uidvalidity = await asyncio.to_thread(src.uidvalidity)
        last = await self.store.checkpoint(src.name, uidvalidity)
        await self._move_pending(uidvalidity)  # decided before a crash, never moved
        budget = self.cfg.mailbox.batch_bytes
        ahead = await self._fetch(last, COMMIT_EVERY, budget)
        try:
            while ahead.uids and not should_stop():
                current = ahead
                kept = await current.kept
                rows = await self.store.record_fetched(src.name, uidvalidity, kept,
                                                       self.clock())
                failpoints.hit("after_fetch")
                # the look-ahead shares the byte budget with the batch in hand: what does
                # not fit beside it is fetched once that batch is decided
                after, limit = current.uids[-1], 4 * len(current.uids)
                ahead = await self._fetch(after, limit, budget - current.size, alone=False)
                last = await self._batch(uidvalidity, current, rows, last, should_stop)
                if not ahead.uids and not should_stop():
                    ahead = await self._fetch(after, limit, budget)
        finally:
            await ahead.drop()

    async def _fetch(self, last: int, limit: int, max_bytes: int, alone: bool = True
                     ) -> _Ahead:
        """Fetch up to ``limit`` (at most a batch) and ``max_bytes`` (a larger first mail
        alone, or, not ``alone``, nothing) and start keeping and parsing it.

        A poll starts with a small batch and grows it, so that the first decisions need not
        wait for a whole batch to be written and flushed to the disk. A mail larger than
        ``limits.max_message_bytes`` is not parsed (it is quarantined with the reason); its
        raw bytes are kept, only the first ``limits.max_raw_bytes`` of a larger one."""
        lim = self.cfg.limits
        batch: list[Fetched] = []
        if max_bytes > 0 or alone:
            batch = await asyncio.to_thread(self.source.fetch_after, last,
                                            min(limit, self.cfg.mailbox.batch_size),
                                            max_bytes, lim.max_raw_bytes, alone)
        self.counters.fetched += len(batch)
        too_large: dict[int, ParsedMail | ParseError] = {
            i: Unparsed(_too_large(f, lim.max_message_bytes))
            for i, f in enumerate(batch) if f.full_size > lim.max_message_bytes}
        raws = [b"" if i in too_large else f.raw for i, f in enumerate(batch)]
        return _Ahead([f.uid for f in batch], sum(len(f.raw) for f in batch),
                      self.parser.batch(raws, too_large),  # parsing starts
                      asyncio.ensure_future(asyncio.to_thread(self.store.keep_raw, batch)))

    async def _batch(self, uidvalidity: int, current: _Ahead, rows: list[Message], last: int,
                     should_stop: Callable[[], bool]) -> int:
        """Decide, commit and move one recorded batch; returns the new checkpoint."""
        try:
            copies: dict[str, int] = {}
            for start in range(0, len(rows), COMMIT_EVERY):
                if should_stop():
                    break
                last = await self._commit_group(uidvalidity, rows, current.uids,
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
                            uids: list[int], parses: BatchParse, start: int,
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
        c = self.counters
        counted = (c.processed, c.quarantined, c.duplicates, dict(c.routes))
        try:
            async with in_transaction(self.store.conn):
                try:
                    last = await self._decide_group(uidvalidity, rows, uids, parses, group,
                                                    copies, last, should_stop)
                except IntakeFault:
                    raise
                except Exception as e:  # noqa: BLE001 - outside a mail's decision
                    # raised as IntakeFault, tortoise rolls back even after its own
                    # TransactionManagementError (a read-only transaction, say)
                    raise IntakeFault(faults.environmental(e)) from e
        except BaseException:
            c.processed, c.quarantined, c.duplicates, c.routes = counted  # rolled back
            raise
        failpoints.hit("after_commit")
        return last

    async def _decide_group(self, uidvalidity: int, rows: list[Message],
                            uids: list[int], parses: BatchParse, group: range,
                            copies: dict[str, int], last: int,
                            should_stop: Callable[[], bool]) -> int:
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
            if self._hold is None:  # not past a mail held back
                last = uids[i]
        await self.store.advance(self.source.name, uidvalidity, last)
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
            decisions.info("uid %s duplicate of message #%d (same bytes)", row.uid, dup)
            return
        mail = await parses.get(i)
        if isinstance(mail, ParseError):
            await self._quarantine(row, str(mail) if isinstance(mail, Unparsed)
                                   else f"cannot parse: {mail}")
            self._unexpected_last = False
            return
        copy_of, collided = await self.store.same_message_id(mail, row.id)
        if copy_of is not None:  # the same Message-ID from the same sender: a copy
            await self.store.finish_copy(row, mail, copy_of, self.cfg.mailbox.processed_folder)
            self.counters.duplicates += 1
            decisions.info("%s from=%s duplicate of message #%d (same Message-ID and sender)",
                           mail.message_id, mail.from_.addr, copy_of)
            return
        try:
            await self._decide(row, mail)
            if collided:  # another sender's mail had this Message-ID: decided on its own
                log.warning("%s from=%s: Message-ID already used by message %s from another "
                            "sender; not taken for a duplicate", mail.message_id,
                            mail.from_.addr, ", ".join(f"#{i}" for i in collided[:5]))
                await self.store.note_collision(row, collided)
        except Exception as e:  # noqa: BLE001 - whose fault it is decides what follows
            fault = faults.classify(e)
            if fault.kind == faults.MESSAGE:  # one bad message must not hold up the rest
                errors.exception("%s cannot be stored: %s", mail.message_id or f"uid {row.uid}",
                                 e)
                await self._quarantine(row, f"cannot store: {type(e).__name__}: {e}")
            elif fault.certain:  # the disk, the database: stop, roll back, retry later
                raise IntakeFault(fault) from e
            else:
                await self._suspect(row, mail, fault)
                return
        self._suspects.pop(row.id, None)
        self._unexpected_last = False

    async def _suspect(self, row: Message, mail: ParsedMail, fault: Fault) -> None:
        """An unexpected error, neither clearly the mail's fault nor the environment's.

        Two mails in a row failing so blame the environment: the poll stops. One is held
        back: the poll goes on with the rest, the checkpoint stays below it, and the next
        poll tries it again. Failing the same way in ``SUSPECT_STRIKES`` polls, the earlier
        ones each deciding other mail, it is taken for the mail's own fault: quarantined.
        """
        if self._unexpected_last:
            raise IntakeFault(fault) from fault.exc
        name = mail.message_id or f"uid {row.uid}"
        error, strikes = self._suspects.get(row.id, ("", 0))
        if error != fault.signature:
            errors.error("%s held back, to be tried again: %s", name, fault,
                         exc_info=fault.exc)
            error, strikes = fault.signature, 0
        if strikes + 1 >= faults.SUSPECT_STRIKES:
            self._suspects.pop(row.id, None)
            await self._quarantine(row, f"failed the same way {faults.SUSPECT_STRIKES} times "
                                   f"while other mail went through: {fault.detail}")
            self._unexpected_last = False
            return
        self._suspects[row.id] = (error, strikes)
        self._held.append(row.id)
        if self._hold is None:
            self._hold = row.uid
        self._unexpected_last = True

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


def _too_large(f: Fetched, limit: int) -> str:
    reason = f"message too large: {f.full_size} bytes (limit {limit})"
    if f.truncated:
        reason += f"; only its first {len(f.raw)} bytes are kept"
    return reason
