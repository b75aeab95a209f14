"""Timers in the database: due ones fired exactly once, pauses that follow the case status.

Once-only firing works like the outbox (``Store.claim``): a sweeper leases a batch of due
``pending`` timers with a fresh token, decides each firing purely (``maild.schedule.firing.fire``)
and writes it in one transaction together with its outbox letters and timeline entries.
Inside that transaction the timer row is updated first, *conditionally* on still being
``pending`` and leased by this token; when another sweeper got there first (our lease ran
out while we were slow) the update matches nothing and the firing is dropped, so a letter is
never queued twice. A sweeper killed before its commit leaves a lease that runs out after
``timers.lease_seconds``; then another sweep fires the timer. On PostgreSQL the conditional
update also serialises two daemons racing for the same row.

Pausing, resuming and cancelling with the case's status is part of applying a decision
(``maild.engine.apply``), written in the transaction of the case change (``Store.apply``).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, cast

from tortoise.exceptions import DBConnectionError
from tortoise.expressions import Q
from tortoise.functions import Max, Min
from tortoise.transactions import in_transaction

from maild.schedule.firing import (
    Cancel,
    Escalate,
    FireContext,
    Fired,
    Firing,
    Pause,
    Rearm,
    TimerView,
    fire,
)
from maild.store.cases import set_timer, view
from maild.store.limits import Budget
from maild.store.models import Case, Message, Outbox, TimelineEntry, Timer

if TYPE_CHECKING:
    from maild.store import ApplyEnv, Store

log = logging.getLogger("maild.timers")


@dataclass
class SweepCounts:
    fired: int = 0  # firings written (letters queued, levels climbed, re-armed)
    cancelled: int = 0
    paused: int = 0
    lost: int = 0  # another sweeper fired it first
    failed: int = 0  # left leased; retried when the lease runs out
    by_kind: dict[str, int] = field(default_factory=dict)

    def line(self) -> str:
        return (f"fired={self.fired} cancelled={self.cancelled} paused={self.paused} "
                f"lost={self.lost} failed={self.failed}")


async def claim_timers(now: datetime, limit: int, lease: timedelta) -> tuple[str, list[Timer]]:
    """Lease up to ``limit`` due pending timers to a fresh token (oldest due first)."""
    now = now.astimezone(UTC)  # SQLite compares the stored UTC text: never pass other zones
    free = Q(lease_until__isnull=True) | Q(lease_until__lt=now)
    ids = await Timer.filter(free, state="pending", due_at__lte=now
                             ).order_by("due_at", "id").limit(limit).values_list("id", flat=True)
    token = uuid.uuid4().hex
    if not ids:
        return token, []
    await Timer.filter(free, id__in=list(ids), state="pending").update(
        lease_until=now + lease, lease_owner=token)
    return token, list(await Timer.filter(id__in=list(ids), lease_owner=token
                                          ).order_by("due_at", "id"))


async def sweep(store: Store, env: ApplyEnv, ctx: FireContext, *, batch: int = 200,
                lease: timedelta = timedelta(seconds=120), max_rounds: int = 1000
                ) -> SweepCounts:
    """Fire every timer due at ``ctx.now``, batch by batch, each batch in one transaction."""
    counts = SweepCounts()
    for _ in range(max_rounds):
        token, timers = await claim_timers(ctx.now, batch, lease)
        if not timers:
            break
        cases = {c.id: c for c in await Case.filter(id__in={t.case_id for t in timers})}  # type: ignore[attr-defined]
        threads = await _threads(list(cases))
        work: list[tuple[Timer, Case, Firing]] = []
        for t in timers:
            case = cases[t.case_id]  # type: ignore[attr-defined]
            try:
                work.append((t, case, fire(timer_view(t), view(case), ctx)))
            except Exception:  # noqa: BLE001 - bad timer data must not stop the sweep
                log.exception("timer #%s (%s) of %s cannot be decided", t.id, t.kind,
                              case.number)
                counts.failed += 1
        await _write(store, env, token, work, threads, counts)
    if counts.fired or counts.failed or counts.lost:
        log.info("sweep at %s: %s", ctx.now.isoformat(), counts.line())
    return counts


async def _write(store: Store, env: ApplyEnv, token: str,
                 work: Sequence[tuple[Timer, Case, Firing]],
                 threads: dict[int, tuple[str, ...]], counts: SweepCounts) -> None:
    done: list[bool | None]
    try:
        async with in_transaction(store.conn):
            done = list(await apply_firings(store, env, token, work, threads))
    except DBConnectionError:
        raise
    except Exception:  # noqa: BLE001 - e.g. a broken template: find it, fire the rest
        log.warning("a batch of %d timers failed; firing them one by one", len(work))
        done = []
        for item in work:
            try:
                async with in_transaction(store.conn):
                    done += await apply_firings(store, env, token, [item], threads)
            except DBConnectionError:
                raise
            except Exception as e:  # noqa: BLE001
                t, c, _ = item
                log.exception("timer #%s (%s) of %s failed: %s", t.id, t.kind, c.number, e)
                counts.failed += 1
                done.append(None)
    for (t, c, f), ok in zip(work, done, strict=True):
        if ok is None:
            continue
        if not ok:
            counts.lost += 1
            continue
        o = f.outcome
        if isinstance(o, Cancel):
            counts.cancelled += 1
        elif isinstance(o, Pause):
            counts.paused += 1
        else:
            counts.fired += 1
            counts.by_kind[t.kind] = counts.by_kind.get(t.kind, 0) + 1
            log.info("%s timer #%s %s: %s", c.number, t.id, t.kind, f.summary)


async def apply_firing(store: Store, env: ApplyEnv, token: str, t: Timer, case: Case,
                       firing: Firing, threads: dict[int, tuple[str, ...]]) -> bool:
    """Write one firing inside the caller's transaction; False when someone else fired it."""
    [ok] = await apply_firings(store, env, token, [(t, case, firing)], threads)
    return ok


_CHANGED = ("state", "level", "due_at", "data", "fired_at", "lease_owner", "lease_until")


async def apply_firings(store: Store, env: ApplyEnv, token: str,
                        work: Sequence[tuple[Timer, Case, Firing]],
                        threads: dict[int, tuple[str, ...]]) -> list[bool]:
    """Write firings inside the caller's transaction; False for each timer someone else
    fired first. A handful of statements per batch, not per timer."""
    if not work:
        return []
    now = env.now
    # Take the timers still leased to us over to a token only this transaction knows: on
    # PostgreSQL this locks the rows until commit, so a sweeper whose lease ran out waits
    # here and then finds nothing; on SQLite the update takes the database's write lock.
    mine = f"{token}:w"
    await Timer.filter(id__in=[t.id for t, _, _ in work], lease_owner=token,
                       state="pending").update(lease_owner=mine)
    owned = set(cast("list[int]", await Timer.filter(
        id__in=[t.id for t, _, _ in work], lease_owner=mine).values_list("id", flat=True)))
    changed: list[Timer] = []
    notes: list[TimelineEntry] = []
    letters: list[Outbox | Message | TimelineEntry] = []
    # the recipients' hourly limits, read once for the batch (maild.store.limits)
    budget = await Budget.load(store.conn, [a for t, _, f in work if t.id in owned
                                            for x in f.letters for a in (*x.to, *x.cc)], env)
    for t, case, firing in work:
        if t.id not in owned:
            continue
        _change(t, firing, now)
        changed.append(t)
        o = firing.outcome
        if isinstance(o, Rearm):
            await set_timer(case, o.timer, now)
        notes += [TimelineEntry(case=case, at=now, kind=n.kind, actor=n.actor, message_id=None,
                                text=n.text) for n in firing.notes]
        thread = threads.get(case.id, ())
        for letter in firing.letters:
            kw: dict[str, Any] = {"in_reply_to": thread[-1] if thread else None,
                                  "references": thread}
            if letter.automatic:  # replies count against the sender's limit: the slow path
                await store.enqueue(letter, case, env, **kw)
            elif letter.to or letter.cc:
                letters += budget.letter_rows(store, letter, case, **kw)
    if changed:
        await Timer.bulk_update(changed, fields=list(_CHANGED), batch_size=500)
    if notes:
        await TimelineEntry.bulk_create(notes, batch_size=500)
    outbox = [r for r in letters if isinstance(r, Outbox)]
    messages = [r for r in letters if isinstance(r, Message)]
    entries = [r for r in letters if isinstance(r, TimelineEntry)]
    if outbox:
        await Outbox.bulk_create(outbox, batch_size=500)
        await Message.bulk_create(messages, batch_size=500)
    if entries:
        await TimelineEntry.bulk_create(entries, batch_size=500)
    await budget.save()
    return [t.id in owned for t, _, _ in work]


def _change(t: Timer, firing: Firing, now: datetime) -> None:
    """The timer row after a firing (in memory; written by ``bulk_update``)."""
    o = firing.outcome
    t.lease_owner = t.lease_until = None
    if isinstance(o, Fired | Rearm):
        t.state, t.level, t.data, t.fired_at = "fired", o.level, dict(o.data), now
    elif isinstance(o, Escalate):
        t.level, t.due_at, t.data, t.fired_at = (o.level, o.due_at.astimezone(UTC),
                                                 dict(o.data), now)
    elif isinstance(o, Cancel):
        t.state = "cancelled"
    elif isinstance(o, Pause):
        t.state, t.data = "paused", _paused(dict(t.data or {}), now, o.remaining)


async def _threads(case_ids: list[int]) -> dict[int, tuple[str, ...]]:
    """Each case's first and latest Message-ID, so reminders thread under the case."""
    if not case_ids:
        return {}
    rows = await Message.filter(case_id__in=case_ids).exclude(message_id="").group_by(
        "case_id").annotate(first=Min("id"), last=Max("id")).values("case_id", "first", "last")
    wanted = {r["first"] for r in rows} | {r["last"] for r in rows}
    ids = dict(await Message.filter(id__in=list(wanted)).values_list("id", "message_id"))
    return {r["case_id"]: tuple(dict.fromkeys((ids[r["first"]], ids[r["last"]])))
            for r in rows}


def timer_view(t: Timer) -> TimerView:
    return TimerView(t.id, t.kind, t.key, t.due_at, t.level, dict(t.data or {}))


def _paused(data: dict[str, Any], now: datetime, remaining: timedelta) -> dict[str, Any]:
    return {**data, "paused_at": now.isoformat(), "remaining_s": remaining.total_seconds()}
