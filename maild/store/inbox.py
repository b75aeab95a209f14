"""The inbound ledger: UID checkpoints, raw mail kept before anything else, a ``received``
row per fetched message, locks that make two daemons decide a mail once, pending moves."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import cast

from tortoise import Tortoise

from maild.adapters.sources.base import Fetched
from maild.mail.message import ParsedMail
from maild.store.attachments import ContentStore
from maild.store.models import MESSAGE_ID_MAX, Checkpoint, Message, TimelineEntry

#: inbound states that count as handled: a later copy of the same bytes is a duplicate.
#: Not "quarantined": a quarantined mail that someone moves back to the inbox (after fixing
#: whatever was wrong) is decided again, not filed as a copy of itself.
DECIDED = ("processed",)


@dataclass(frozen=True)
class Kept:
    """A fetched message whose raw bytes are in the raw store."""

    uid: int
    raw_size: int
    sha256: str
    raw_path: str


class Inbox:
    raw: ContentStore
    conn: str  # the Tortoise connection's name

    async def checkpoint(self, source: str, uidvalidity: int) -> int:
        """The last UID handled in ``source``; reset to 0 when UIDVALIDITY changed."""
        cp, _ = await Checkpoint.get_or_create(source=source)
        if cp.uidvalidity != uidvalidity:
            cp.uidvalidity, cp.last_uid = uidvalidity, 0
            await cp.save()
        return int(cp.last_uid)

    async def advance(self, source: str, uidvalidity: int, last_uid: int) -> None:
        await Checkpoint.filter(source=source, uidvalidity=uidvalidity,
                                last_uid__lt=last_uid).update(last_uid=last_uid)

    def keep_raw(self, batch: Sequence[Fetched]) -> list[Kept]:
        """Write each fetched message's raw bytes to the raw store, flushed to the disk
        (blocking: the intake runs it in a thread, beside the decisions of the batch before).
        The ``received`` rows committed next point at them, so they must outlast a power cut
        as the database does."""
        kept = self.raw.put_durably([f.raw for f in batch])
        return [Kept(f.uid, len(f.raw), sha, rel)
                for f, (sha, rel) in zip(batch, kept, strict=True)]

    async def record_fetched(self, source: str, uidvalidity: int, batch: Sequence[Kept],
                             now: datetime) -> list[Message]:
        """A ``received`` row for every fetched message whose raw bytes are kept, in one
        statement. A row another daemon recorded first is kept as it is (the insert ignores
        it), and so is a row an earlier run recorded.
        """
        uids = [k.uid for k in batch]
        mine = Message.filter(mailbox=source, uidvalidity=uidvalidity, uid__in=uids)
        known = set(cast("list[int]", await mine.values_list("uid", flat=True)))
        new = [Message(direction="in", mailbox=source, uidvalidity=uidvalidity, uid=k.uid,
                       raw_size=k.raw_size, raw_path=k.raw_path, sha256=k.sha256,
                       state="received", at=now)
               for k in batch if k.uid not in known]
        if new:
            await Message.bulk_create(new, ignore_conflicts=True)
        rows = {m.uid: m for m in await mine}
        return [rows[k.uid] for k in batch]

    async def decided_copies(self, rows: Sequence[Message]) -> dict[str, int]:
        """sha256 -> id of the first processed inbound message with the same bytes, for the
        rows' hashes: copies seen before (e.g. after a UIDVALIDITY reset) are duplicates."""
        shas = list({r.sha256 for r in rows if r.state == "received"})
        if not shas:
            return {}
        found: dict[str, int] = {}
        for sha, mid in await Message.filter(direction="in", sha256__in=shas,
                                             state__in=DECIDED).order_by("id").values_list(
                                                 "sha256", "id"):
            found.setdefault(sha, int(mid))
        return found

    async def same_message_id(self, mail: ParsedMail, row_id: int | None = None
                              ) -> tuple[int | None, list[int]]:
        """Inbound mail decided before with ``mail``'s Message-ID: the first one from the same
        From address (``mail`` is a copy of it: a relay added a header, a mailbox delivered it
        twice) or None, and the ones from other senders (a collision: someone reused the id;
        ``mail`` is decided on its own, so a forger cannot suppress a genuine mail).

        Reads the ``messages.message_id`` index; rows decided earlier in the caller's
        transaction count too; ``row_id`` (the mail's own row) does not."""
        if not mail.message_id or not mail.from_.addr or len(mail.message_id) > MESSAGE_ID_MAX:
            return None, []  # an id too long to be stored is never anyone's but this mail's
        sender = mail.from_.addr[:320].lower()
        same: int | None = None
        others: list[int] = []
        # written out: this runs for every mail, and the query builder cost more than the
        # query (a tenth of the intake's time in bench/intake.py)
        n = 3 + len(DECIDED)
        marks = ["?"] * n if self.conn == "sqlite" else [f"${i}" for i in range(1, n + 1)]
        states = ", ".join(marks[3:])
        rows = await Tortoise.get_connection(self.conn).execute_query_dict(
            f'SELECT "id", "sender" FROM "messages" WHERE "message_id" = {marks[0]} '
            f'AND "direction" = {marks[1]} AND "id" <> {marks[2]} AND "state" IN ({states}) '
            'ORDER BY "id"', [mail.message_id, "in", row_id or 0, *DECIDED])
        for r in rows:
            mid, addr = int(r["id"]), str(r["sender"] or "")
            if addr.lower() == sender:
                same = mid if same is None else same
            else:
                others.append(mid)
        return same, others

    async def finish_copy(self, row: Message, mail: ParsedMail, first: int,
                          folder: str) -> None:
        """Record ``row`` as a duplicate of message ``first`` by Message-ID and sender."""
        row.state, row.route = "duplicate", folder
        row.message_id, row.sender = mail.message_id, mail.from_.addr[:320]
        row.reason = f"same Message-ID and sender as message #{first}"
        await row.save(update_fields=["state", "route", "reason", "message_id", "sender"])

    async def note_collision(self, row: Message, others: Sequence[int]) -> None:
        """A decided mail whose Message-ID other senders' mail already used: said on its row
        and on its case's timeline."""
        ids = ", ".join(f"#{i}" for i in others[:5])
        row.reason = (f"Message-ID also used by message {ids} from another sender: "
                      "decided on its own")
        await row.save(update_fields=["reason"])
        case_id = row.case_id  # type: ignore[attr-defined]
        if case_id is not None:
            await TimelineEntry.create(
                case_id=case_id, at=row.at, kind="msgid_collision", actor=row.sender or "?",
                message_id=row.message_id or None,
                text=f"Message-ID 与另一发件人的邮件（{ids}）相同：未视为重复，照常处理")

    async def lock(self, rows: Sequence[Message]) -> None:
        """Lock the rows until the caller's transaction ends and refresh their state.

        A second daemon that fetched the same mail waits here for the first one's commit
        and then sees it decided, so nothing is decided twice. (PostgreSQL; SQLite has one
        writer at a time and is meant for one daemon.)
        """
        fresh = {m.id: m.state for m in await Message.filter(
            id__in=[r.id for r in rows]).select_for_update()}
        for r in rows:
            r.state = fresh.get(r.id, r.state)

    async def finish(self, row: Message, state: str, folder: str, reason: str | None) -> None:
        row.state, row.route = state, folder
        row.reason = reason  # type: ignore[assignment]
        await row.save(update_fields=["state", "route", "reason"])

    async def pending_moves(self, source: str, uidvalidity: int) -> dict[str, list[int]]:
        rows = await Message.filter(mailbox=source, uidvalidity=uidvalidity, moved=False,
                                    state__in=("processed", "quarantined", "duplicate")
                                    ).values_list("uid", "route")
        out: dict[str, list[int]] = {}
        for uid, folder in rows:
            out.setdefault(folder, []).append(int(uid))
        return out

    async def mark_moved(self, source: str, uidvalidity: int, uids: Iterable[int]) -> None:
        await Message.filter(mailbox=source, uidvalidity=uidvalidity,
                             uid__in=list(uids)).update(moved=True)

