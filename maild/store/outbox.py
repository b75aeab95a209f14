"""The outbox: due letters leased to one sender at a time, marked sent or failed; the journal
of deliveries that makes a killed sender resend at most the letter it had in flight; and
what ``maild outbox list|retry|cancel`` does."""

from __future__ import annotations

import fcntl
import logging
import os
import re
import threading
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.utils import getaddresses
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tortoise.expressions import Q
from tortoise.transactions import in_transaction

from maild.engine.effects import CaseView, SendLetter
from maild.store.attachments import ContentStore
from maild.store.cases import ApplyEnv, view
from maild.store.models import Case, Outbox, TimelineEntry

log = logging.getLogger("maild.send")

#: states a letter can be in; only ``pending`` ones are leased
STATES = ("pending", "sent", "failed", "cancelled")


@dataclass(frozen=True)
class Outgoing:
    """What the sender needs of one outbox row."""

    id: int
    message_id: str
    mail_from: str
    rcpt: list[str]
    raw: bytes
    attempts: int
    letter: str = ""
    created_at: datetime | None = None  # the queue lifetime counts from here
    case_id: int | None = None


@dataclass(frozen=True)
class RetryPolicy:
    """When a letter the server did not take is tried again, and when it is given up: the
    waits of ``schedule`` in turn, the last one repeating, until ``give_up_after`` has passed
    since the letter was queued (or, when set, after ``max_attempts`` attempts)."""

    schedule: tuple[timedelta, ...] = tuple(timedelta(seconds=s) for s in (
        30, 60, 300, 900, 1800, 3600, 7200, 14400))
    give_up_after: timedelta = timedelta(days=5)
    max_attempts: int | None = None

    def delay(self, attempts: int) -> timedelta:
        """The wait after the ``attempts``-th failed attempt (1, 2, ...)."""
        return self.schedule[min(max(attempts, 1), len(self.schedule)) - 1]

    def expired(self, out: Outgoing, attempts: int, now: datetime) -> bool:
        if self.max_attempts is not None and attempts >= self.max_attempts:
            return True
        return out.created_at is not None and now - out.created_at >= self.give_up_after


#: who hears of a letter given up: (the letter to them, the environment to queue it in),
#: or None; called with the case, the letter, the error, whether its recipient was refused
#: for good (rather than the queue lifetime running out) and the time
Tell = Callable[[CaseView, Outgoing, str, bool, datetime],
                "tuple[SendLetter, ApplyEnv] | None"]


@dataclass(frozen=True)
class Delivered:
    """One line of the journal: the letter (at the attempt count it was leased with) went out."""

    id: int
    attempts: int
    message_id: str


class DeliveryJournal:
    """Letters the SMTP server accepted, one line each, written and flushed to the disk by
    the sending thread as each is accepted (``record``: one small write and an fdatasync).

    The database marks them sent later, many in one commit; only then are their lines
    dropped (``marked``). A sender killed in between leaves its lines behind, and the next
    drain (``OutboxQueue.fold_journal``, before it leases anything) marks those letters
    sent, so they are not sent again. What remains is the letter between the server's
    answer and its line: at most one per kill.

    Each process writes a file of its own in ``folder`` and holds an exclusive ``flock`` on
    it while it lives; a file nobody holds belongs to a process that died, and is folded and
    removed by whoever drains next. The file is written full of zeros when it is made, and
    lines overwrite them: a flush of data in place costs the disk less than an append, which
    changes the file's size and so commits the file system's journal (where the database's
    own commits wait their turn).
    """

    #: bytes of zeros a journal starts with (some 4,000 lines; it grows when it must)
    PREALLOCATE = 256 * 1024

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.path: Path | None = None
        self._fd: int | None = None
        self._lock = threading.Lock()
        self._unmarked: dict[tuple[int, int], Delivered] = {}
        self._end = 0  # where the next line goes; the lines before it may be unmarked
        self._size = 0

    def record(self, out: Outgoing) -> None:
        """``out`` was accepted by the server: note it durably (called from the sending
        thread, off the event loop)."""
        entry = Delivered(out.id, out.attempts, out.message_id)
        line = f"{entry.id} {entry.attempts} {entry.message_id}\n".encode("utf-8", "replace")
        with self._lock:
            fd = self._open()
            if self._end + len(line) > self._size:
                grow = max(self.PREALLOCATE, len(line))
                os.pwrite(fd, bytes(grow), self._size)
                self._size += grow
            os.pwrite(fd, line, self._end)
            os.fdatasync(fd)
            self._end += len(line)
            self._unmarked[(entry.id, entry.attempts)] = entry

    def marked(self, rows: Iterable[Outgoing | Delivered]) -> None:
        """These letters are marked sent in the database (committed): forget their lines."""
        with self._lock:
            for r in rows:
                self._unmarked.pop((r.id, r.attempts), None)
            if not self._unmarked and self._end and self._fd is not None:
                # need not be durable: a line folded twice changes nothing (its attempt
                # count no longer matches)
                os.pwrite(self._fd, bytes(self._end), 0)
                self._end = 0

    def unmarked(self) -> tuple[list[Delivered], list[Path]]:
        """Deliveries whose marks may be missing: this process's not yet marked, and every
        line of the journals of processes that died (with those files, to remove once the
        marks are committed)."""
        with self._lock:
            entries = list(self._unmarked.values())
        dead: list[Path] = []
        try:
            names = [e.name for e in os.scandir(self.folder) if e.name.endswith(".journal")]
        except FileNotFoundError:
            return entries, dead
        for name in names:
            p = self.folder / name
            if p == self.path:
                continue
            lines = _read_if_dead(p)
            if lines is not None:
                dead.append(p)
                entries += lines
        return entries, dead

    def folded(self, entries: Sequence[Delivered], dead: Sequence[Path]) -> None:
        """The marks of ``entries`` are committed: remove the dead journals they came from."""
        self.marked(entries)
        for p in dead:
            try:
                p.unlink()
            except FileNotFoundError:
                pass

    def close(self) -> None:
        """At a clean stop: close the file, and remove it when every line in it is marked."""
        with self._lock:
            fd, path, self._fd = self._fd, self.path, None
            if fd is None or path is None:
                return
            if not self._unmarked:
                path.unlink(missing_ok=True)
            os.close(fd)  # releases the lock; lines left are folded by the next drain
            self.path = None

    def _open(self) -> int:
        if self._fd is None:
            self.folder.mkdir(parents=True, exist_ok=True)
            path = self.folder / f"{os.getpid()}-{uuid.uuid4().hex[:8]}.journal"
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            os.pwrite(fd, bytes(self.PREALLOCATE), 0)
            os.fsync(fd)
            _sync_dir(self.folder)  # the file itself outlasts a power cut
            self._fd, self.path = fd, path
            self._end, self._size = 0, self.PREALLOCATE
        return self._fd


def _read_if_dead(path: Path) -> list[Delivered] | None:
    """The lines of a journal no live process holds, or None while one does."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return None  # its process is alive and will mark its letters itself
        with os.fdopen(os.dup(fd), "rb") as f:
            data = f.read()
    finally:
        os.close(fd)
    out = []
    for line in data.split(b"\n"):
        parts = line.strip(b"\0").decode("utf-8", "replace").split(" ", 2)
        # a torn last line (a power cut during the write) is not a delivery we know of
        if len(parts) == 3 and parts[0].isdigit() and parts[1].isdigit() and parts[2]:
            out.append(Delivered(int(parts[0]), int(parts[1]), parts[2]))
    return out


def _sync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class OutboxQueue:
    conn: str
    raw: ContentStore
    _journal: DeliveryJournal | None = None

    if TYPE_CHECKING:  # Cases, beside this part in Store
        async def enqueue(self, letter: SendLetter, case: Case | None, env: ApplyEnv, *,
                          in_reply_to: str | None = None, references: Sequence[str] = ()
                          ) -> str | None: ...

    @property
    def journal(self) -> DeliveryJournal:
        """The delivery journal, in ``delivered/`` beside the raw mail folder."""
        if self._journal is None:
            self._journal = DeliveryJournal(self.raw.root.parent / "delivered")
        return self._journal

    async def claim(self, now: datetime, limit: int, lease: timedelta) -> list[Outgoing]:
        """Lease due outbox rows to this caller; safe with several daemons on PostgreSQL."""
        free = Q(lease_until__isnull=True) | Q(lease_until__lt=now)
        ids = await Outbox.filter(free, state="pending", next_attempt_at__lte=now
                                  ).order_by("id").limit(limit).values_list("id", flat=True)
        if not ids:
            return []
        token = uuid.uuid4().hex
        await Outbox.filter(free, id__in=list(ids), state="pending").update(
            lease_until=now + lease, lease_owner=token)
        # by primary key: the ids are known, and a scan would read every letter body
        rows = await Outbox.filter(id__in=list(ids), lease_owner=token).order_by("id")
        return [Outgoing(r.id, r.message_id, r.mail_from, list(r.rcpt), bytes(r.body),
                         r.attempts, r.letter, r.created_at,
                         r.case_id)  # type: ignore[attr-defined]
                for r in rows]

    async def release(self, rows: Sequence[Outgoing]) -> None:
        """Give back leased letters that were not attempted."""
        if rows:
            await Outbox.filter(id__in=[o.id for o in rows], state="pending").update(
                lease_until=None, lease_owner=None)

    async def sent(self, done: Sequence[tuple[Outgoing, str | None]], now: datetime, *,
                   claim: tuple[int, timedelta] | None = None) -> list[Outgoing]:
        """Mark letters sent (each with its refusal note or None), all in one commit; with
        ``claim`` (limit, lease), lease the next due letters in the same transaction."""
        groups: dict[tuple[int, str | None], list[int]] = {}
        for out, note in done:
            groups.setdefault((out.attempts + 1, note), []).append(out.id)
        async with in_transaction(self.conn):
            for (attempts, note), ids in groups.items():
                await Outbox.filter(id__in=ids).update(state="sent", sent_at=now,
                                                       lease_until=None, lease_owner=None,
                                                       attempts=attempts, last_error=note)
            rows = await self.claim(now, *claim) if claim else []
        if done:
            self.journal.marked(out for out, _ in done)
        return rows

    async def fold_journal(self, now: datetime) -> int:
        """Mark sent the letters the journal says went out but the database does not (a
        sender killed before its marks, or a drain cancelled); the number marked. Before
        any lease, so none of them is sent again."""
        entries, dead = self.journal.unmarked()
        if not entries and not dead:
            return 0
        n = 0
        if entries:
            async with in_transaction(self.conn):
                for e in entries:
                    # the attempt count tells this delivery from a later one of the same row
                    n += await Outbox.filter(
                        id=e.id, attempts=e.attempts, message_id=e.message_id,
                        state__in=("pending", "cancelled")).update(
                        state="sent", sent_at=now, attempts=e.attempts + 1, lease_until=None,
                        lease_owner=None, last_error=None)
        self.journal.folded(entries, dead)
        if n:
            log.warning("%d letter(s) delivered by a sender stopped before marking them "
                        "are marked sent now, not sent again", n)
        return n

    async def failed(self, out: Outgoing, now: datetime, error: str, *, permanent: bool,
                     max_attempts: int | None = None, retry: RetryPolicy | None = None,
                     tell: Tell | None = None) -> bool:
        """Record a failed attempt; True when the letter is given up: refused for good, or
        past the retry policy's limits. A letter given up is noted on its case
        (``send_failed``) and, through ``tell``, its owner is sent a letter about it, in one
        transaction."""
        policy = retry or RetryPolicy(max_attempts=max_attempts)
        attempts = out.attempts + 1
        error = error[:2000]
        if not (permanent or policy.expired(out, attempts, now)):
            await Outbox.filter(id=out.id, state="pending").update(
                attempts=attempts, next_attempt_at=now + policy.delay(attempts),
                lease_until=None, lease_owner=None, last_error=error)
            return False
        async with in_transaction(self.conn):
            # a letter cancelled while in flight stays cancelled
            if not await Outbox.filter(id=out.id, state="pending").update(
                    state="failed", attempts=attempts, next_attempt_at=now, lease_until=None,
                    lease_owner=None, last_error=error):
                return False
            if out.case_id is not None:
                case = await Case.get_or_none(id=out.case_id)
            else:
                case = await Case.get_or_none(outbox__id=out.id)
            if case is None:
                log.error("%s (%s to %s) given up, and it belongs to no case: %s",
                          out.message_id, out.letter or "letter", ", ".join(out.rcpt), error)
                return True
            await TimelineEntry.create(
                case=case, at=now, kind="send_failed", actor="maild",
                message_id=out.message_id,
                text=f"{out.letter or 'letter'} → {', '.join(out.rcpt)} given up after "
                     f"{attempts} attempt(s): {error}"[:2000])
            notice = tell(view(case), out, error, permanent, now) if tell else None
            if notice is not None:
                letter, env = notice
                await self.enqueue(letter, case, env)
        return True

    async def pending_letters(self) -> int:
        return await Outbox.filter(state="pending").count()

    # -- maild outbox list|retry|cancel -------------------------------------------------------

    async def outbox(self, states: Sequence[str] = ("pending", "failed", "held"),
                     limit: int = 1000
                     ) -> list[dict[str, Any]]:
        """Letters in ``states`` (every state when empty), oldest first."""
        q = Outbox.filter(state__in=list(states)) if states else Outbox.all()
        rows = await q.order_by("-id").limit(limit).values(
            "id", "case__number", "letter", "rcpt", "state", "attempts", "next_attempt_at",
            "last_error", "message_id", "created_at", "sent_at")
        return [{"id": r["id"], "case": r["case__number"] or "", "letter": r["letter"],
                 "to": ", ".join(r["rcpt"] or []), "state": r["state"],
                 "attempts": r["attempts"],
                 "next_attempt": (r["next_attempt_at"].isoformat()
                                  if r["state"] == "pending" and r["next_attempt_at"] else None),
                 "last_error": r["last_error"], "message_id": r["message_id"],
                 "created_at": r["created_at"].isoformat() if r["created_at"] else None,
                 "sent_at": r["sent_at"].isoformat() if r["sent_at"] else None}
                for r in reversed(rows)]

    async def retry(self, ids: Sequence[int], now: datetime, *, to: str | None = None
                    ) -> list[str]:
        """``maild outbox retry``: each failed, pending, held or cancelled letter (or a sent
        one that bounced, given ``to``) due again now, its queue lifetime starting again;
        ``to`` replaces its To recipient (the header of the stored message too; the
        Message-ID stays). Returns a line per letter; an admin entry goes on the case's
        timeline."""
        if to is not None:
            to = check_address(to)
        out = []
        for i in ids:
            async with in_transaction(self.conn):
                row = await Outbox.get_or_none(id=i)
                if row is None:
                    out.append(f"#{i}: no such letter")
                    continue
                if row.state == "sent" and to is None:  # a bounced one goes to a new address
                    out.append(f"#{i}: already sent at {row.sent_at}; not sent again")
                    continue
                fields: dict[str, Any] = {"state": "pending", "next_attempt_at": now,
                                          "created_at": now}
                what = f"{row.letter} → {', '.join(row.rcpt)}"
                if to is not None:
                    body, cc = readdress(bytes(row.body), to)
                    rcpt = list(dict.fromkeys([to, *cc]))
                    fields.update(body=body, rcpt=rcpt, rcpt_key=to)
                    what = f"{row.letter} → {', '.join(rcpt)} (was {', '.join(row.rcpt)})"
                await Outbox.filter(id=i, state=row.state).update(**fields)
                await _admin(row, now, f"outbox retry #{i}: {what} (was {row.state}, "
                                       f"{row.attempts} attempt(s))")
                out.append(f"#{i}: {what}: pending, due now")
        return out

    async def cancel(self, ids: Sequence[int], now: datetime) -> list[str]:
        """``maild outbox cancel``: pending or failed letters never to be sent. Returns a line
        per letter; an admin entry goes on the case's timeline."""
        out = []
        for i in ids:
            async with in_transaction(self.conn):
                row = await Outbox.get_or_none(id=i)
                if row is None:
                    out.append(f"#{i}: no such letter")
                    continue
                if row.state not in ("pending", "failed"):
                    out.append(f"#{i}: {row.state}; nothing to cancel")
                    continue
                await Outbox.filter(id=i, state=row.state).update(state="cancelled",
                                                                  lease_until=None,
                                                                  lease_owner=None)
                what = f"{row.letter} → {', '.join(row.rcpt)}"
                await _admin(row, now, f"outbox cancel #{i}: {what} (was {row.state})")
                out.append(f"#{i}: {what}: cancelled")
        return out


async def _admin(row: Outbox, now: datetime, text: str) -> None:
    if row.case_id is not None:  # type: ignore[attr-defined]
        await TimelineEntry.create(case_id=row.case_id,  # type: ignore[attr-defined]
                                   at=now, kind="admin", actor="admin",
                                   message_id=row.message_id, text=text)


_ADDRESS = re.compile(r"^[^\s@<>,;:\"()\[\]\\]+@[^\s@<>,;:\"()\[\]\\]+\.[^\s@<>,;:\"()\[\]\\]+$")


def check_address(addr: str) -> str:
    """A plain ASCII address (``name@example.com``), or ValueError."""
    addr = addr.strip()
    if not addr.isascii() or not _ADDRESS.match(addr):
        raise ValueError(f"{addr!r} is not a plain address like name@example.com")
    return addr


def readdress(raw: bytes, to: str) -> tuple[bytes, list[str]]:
    """``raw`` with its To field replaced by ``to`` (in place, every other byte as it was),
    and the addresses of its Cc field."""
    eol = b"\r\n" if b"\r\n\r\n" in raw or b"\n\n" not in raw else b"\n"
    head, sep, body = raw.partition(eol + eol)
    lines = head.split(eol)
    fields: list[list[bytes]] = []
    for line in lines:
        if fields and line[:1] in (b" ", b"\t"):
            fields[-1].append(line)  # a folded continuation
        else:
            fields.append([line])
    out: list[bytes] = []
    cc: list[str] = []
    replaced = False
    for f in fields:
        name = f[0].split(b":", 1)[0].strip().lower()
        if name == b"to":
            if not replaced:
                out.append(b"To: " + to.encode("ascii"))
                replaced = True
            continue
        if name == b"cc":
            value = b"".join(f).split(b":", 1)[1].decode("utf-8", "replace")
            cc += [a for _, a in getaddresses([value]) if a]
        out.append(eol.join(f))
    if not replaced:
        out.append(b"To: " + to.encode("ascii"))
    return eol.join(out) + sep + body, cc
