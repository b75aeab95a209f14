"""The outbox: due letters leased to one sender at a time, marked sent or failed."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from tortoise.expressions import Q
from tortoise.transactions import in_transaction

from maild.store.models import Outbox, TimelineEntry


@dataclass(frozen=True)
class Outgoing:
    """What the sender needs of one outbox row."""

    id: int
    message_id: str
    mail_from: str
    rcpt: list[str]
    raw: bytes
    attempts: int


class OutboxQueue:
    conn: str

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
                         r.attempts) for r in rows]

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
            return await self.claim(now, *claim) if claim else []

    async def failed(self, out: Outgoing, now: datetime, error: str, *, permanent: bool,
                     max_attempts: int) -> bool:
        """Record a failed attempt; True when the letter is given up."""
        attempts = out.attempts + 1
        give_up = permanent or attempts >= max_attempts
        delay = timedelta(seconds=min(3600, 30 * 2 ** (attempts - 1)))
        await Outbox.filter(id=out.id).update(
            state="failed" if give_up else "pending", attempts=attempts,
            next_attempt_at=now + delay, lease_until=None, lease_owner=None,
            last_error=error[:2000])
        if give_up:
            row = await Outbox.get(id=out.id)
            if row.case_id is not None:  # type: ignore[attr-defined]
                await TimelineEntry.create(case_id=row.case_id,  # type: ignore[attr-defined]
                                           at=now, kind="send_failed", actor="maild",
                                           message_id=out.message_id, text=error[:2000])
        return give_up

    async def pending_letters(self) -> int:
        return await Outbox.filter(state="pending").count()

