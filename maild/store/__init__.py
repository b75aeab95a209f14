"""The store: tortoise-orm over SQLite or PostgreSQL, raw bytes on disk beside it.

Every case change, its timeline entries and its outgoing letters are written in one
transaction (``apply``); the sender drains the outbox separately.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from tortoise import Tortoise
from tortoise.backends.base.config_generator import expand_db_url
from tortoise.expressions import Q
from tortoise.transactions import in_transaction

from maild.calendar import BusinessCalendar
from maild.classify import Classification, Known
from maild.config import Config
from maild.effects import (
    CancelTimers,
    CaseView,
    Decision,
    KeepAttachments,
    Note,
    OpenCase,
    SendLetter,
    SetTimer,
    UpdateCase,
)
from maild.letters import Letters, compose, letter_subject, new_message_id
from maild.message import ParsedMail
from maild.sources.base import Fetched
from maild.store.attachments import ContentStore, case_attachments, keep
from maild.store.casefacts import add_process_columns, process_facts
from maild.store.models import Case, Checkpoint, Message, Outbox, TimelineEntry, Timer
from maild.store.timers import case_timers_follow_status

MODELS = "maild.store.models"
#: inbound states that count as handled: a later copy of the same bytes is a duplicate
DECIDED = ("processed", "quarantined")


def tortoise_url(url: str, base_dir: Path) -> str:
    """Resolve a relative ``sqlite://var/maild.db`` against the config's folder."""
    if url.startswith("sqlite://") and not url.startswith("sqlite://:memory:"):
        rest = url[len("sqlite://"):]
        path, _, query = rest.partition("?")
        p = Path(path) if path.startswith("/") else base_dir / path
        p.parent.mkdir(parents=True, exist_ok=True)
        return f"sqlite://{p}" + (f"?{query}" if query else "")
    if url.startswith("postgresql://"):
        return "postgres://" + url[len("postgresql://"):]
    return url


@dataclass(frozen=True)
class Kept:
    """A fetched message whose raw bytes are in the raw store."""

    uid: int
    raw_size: int
    sha256: str
    raw_path: str


@dataclass(frozen=True)
class Outgoing:
    """What the sender needs of one outbox row."""

    id: int
    message_id: str
    mail_from: str
    rcpt: list[str]
    raw: bytes
    attempts: int


class Store:
    def __init__(self, url: str, raw_root: Path, base_dir: Path = Path(".")) -> None:
        self.url = tortoise_url(url, base_dir)
        # tortoise caches SQL per connection name: one name per backend (LIBRARY-NOTES 12)
        self.conn = "sqlite" if self.url.startswith("sqlite") else "postgres"
        self.raw = ContentStore(raw_root, ".eml")
        self.files = ContentStore(raw_root.parent / "attachments")

    async def open(self) -> None:
        conn: str | dict[str, Any] = self.url
        if self.conn == "sqlite":  # statements on the loop's thread (see sqlite_inline)
            conn = {**expand_db_url(self.url), "engine": "maild.store.sqlite_inline"}
        await Tortoise.init(config={
            "connections": {self.conn: conn},
            "apps": {"maild": {"models": [MODELS], "default_connection": self.conn}},
            "use_tz": True, "timezone": "UTC",
        })
        await Tortoise.generate_schemas(safe=True)
        await add_process_columns(self.conn)

    async def close(self) -> None:
        await Tortoise.close_connections()

    # -- intake ---------------------------------------------------------------------------

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
        known = set(await mine.values_list("uid", flat=True))
        new = [Message(direction="in", mailbox=source, uidvalidity=uidvalidity, uid=k.uid,
                       raw_size=k.raw_size, raw_path=k.raw_path, sha256=k.sha256,
                       state="received", at=now)
               for k in batch if k.uid not in known]
        if new:
            await Message.bulk_create(new, ignore_conflicts=True)
        rows = {m.uid: m for m in await mine}
        return [rows[k.uid] for k in batch]

    async def decided_copies(self, rows: Sequence[Message]) -> dict[str, int]:
        """sha256 -> id of the first handled inbound message with the same bytes, for the
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
        row.state, row.route, row.reason = state, folder, reason
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

    # -- decisions ------------------------------------------------------------------------

    async def known(self, mail: ParsedMail, candidates: Sequence[str]) -> Known:
        refs = list(dict.fromkeys((*mail.in_reply_to, *mail.references)))
        by_id: dict[str, str] = {}
        if refs:
            for mid, number in await Message.filter(
                    message_id__in=refs, case_id__isnull=False).values_list(
                    "message_id", "case__number"):
                by_id[mid] = number
        numbers: set[str] = set()
        if candidates:
            numbers = set(await Case.filter(number__in=list(candidates)).values_list(
                "number", flat=True))
        return Known(by_id, frozenset(numbers))

    async def case_view(self, number: str) -> CaseView | None:
        c = await Case.get_or_none(number=number)
        return None if c is None else _view(c)

    async def apply(self, row: Message, mail: ParsedMail, cls: Classification,
                    decision: Decision, env: ApplyEnv, folder: str) -> str | None:
        """Persist a decision with the mail's row, in one transaction. Returns the case number."""
        async with in_transaction(self.conn):
            case = await Case.get_or_none(number=cls.case_number) if cls.case_number else None
            status_before = case.status if case is not None else None
            opened = False  # a case opened here is inserted with its updates already applied
            new_timers: set[tuple[str, str | None]] = set()  # what it has, when opened here
            for effect in decision.effects:
                if isinstance(effect, OpenCase):
                    updates = [e for e in decision.effects if isinstance(e, UpdateCase)]
                    case = await self._open(effect, env, updates)
                    opened = True
                elif isinstance(effect, UpdateCase) and case is not None and not opened:
                    _update(case, effect)
                    case.updated_at = env.now
                    await case.save()
                elif isinstance(effect, Note) and case is not None:
                    await TimelineEntry.create(case=case, at=env.now, kind=effect.kind,
                                               actor=effect.actor, message_id=mail.message_id
                                               or None, text=_clean(effect.text))
                elif isinstance(effect, SendLetter):
                    await self._enqueue(effect, case, mail, env)
                elif isinstance(effect, SetTimer | CancelTimers) and case is not None:
                    await set_timer(case, effect, env.now,
                                    fresh=new_timers if opened else None)
                elif isinstance(effect, KeepAttachments) and case is not None:
                    await keep(self.files, effect, case, mail, env.max_attachment_bytes,
                               env.now)
            if case is not None:  # pause, resume or cancel timers as the case's status says
                await case_timers_follow_status(case, status_before, decision, env)
            row.message_id = mail.message_id
            row.case = case  # type: ignore[assignment]
            row.sender = mail.from_.addr[:320]
            row.subject = _clean(mail.subject)
            row.state, row.route, row.reason = "processed", folder, None
            row.rules = cls.as_dict()
            await row.save()
        return case.number if case else None

    async def _open(self, effect: OpenCase, env: ApplyEnv,
                    updates: Sequence[UpdateCase] = ()) -> Case:
        fmt = env.numbering[effect.process]
        year = env.now.astimezone(env.tz).year if env.tz else env.now.year
        seq = await self._next(f"{effect.process}:{effect.number_key}:{year}")
        number = fmt.format(year=year, seq=seq, dept=effect.number_key)
        case = Case(
            number=number, process=effect.process, step=effect.step, status="open",
            subject=_clean(effect.subject), department=effect.department,
            urgent=effect.urgent, language=effect.language, parties=list(effect.parties),
            opened_at=env.now, updated_at=env.now, data={})
        for u in updates:
            _update(case, u)
        await case.save()
        return case

    async def _next(self, key: str) -> int:
        """The next value of a yearly sequence, atomically (upsert ... returning)."""
        conn = Tortoise.get_connection(self.conn)
        ph = "?" if self.conn == "sqlite" else "$1"
        rows = await conn.execute_query_dict(
            f"INSERT INTO counters (key, value) VALUES ({ph}, 1) "
            "ON CONFLICT (key) DO UPDATE SET value = counters.value + 1 RETURNING value",
            [key])
        return int(rows[0]["value"])

    async def _enqueue(self, letter: SendLetter, case: Case | None, mail: ParsedMail,
                       env: ApplyEnv) -> None:
        refs = [*mail.references[-8:], mail.message_id] if mail.message_id else []
        await self.enqueue(letter, case, env, in_reply_to=mail.message_id or None,
                           references=refs)

    async def enqueue(self, letter: SendLetter, case: Case | None, env: ApplyEnv, *,
                      in_reply_to: str | None = None, references: Sequence[str] = ()
                      ) -> str | None:
        """Render, compose and queue a letter in the caller's transaction; its Message-ID."""
        rcpt = [a for a in (*letter.to, *letter.cc) if a]
        if not rcpt:
            return None
        if letter.automatic and await self._over_limit(rcpt[0], env):
            if case is not None:
                await TimelineEntry.create(
                    case=case, at=env.now, kind="rate_limited", actor="maild",
                    message_id=None, text=f"automatic {letter.letter} to {rcpt[0]} suppressed: "
                    f"more than {env.replies_per_hour} automatic replies in an hour")
            return None
        rows = self.letter_rows(letter, case, env, in_reply_to=in_reply_to,
                                references=references)
        for row in rows:
            await row.save()
        return rows[0].message_id  # type: ignore[attr-defined, no-any-return]

    def letter_rows(self, letter: SendLetter, case: Case | None, env: ApplyEnv, *,
                    in_reply_to: str | None = None, references: Sequence[str] = ()
                    ) -> list[Outbox | Message | TimelineEntry]:
        """A letter rendered and composed into its unsaved outbox, message and timeline rows,
        for writers that insert many at once (the timer sweep). No rate limit here."""
        rcpt = [a for a in (*letter.to, *letter.cc) if a]
        context = {**letter.context, "number": case.number if case else ""}
        rendered = env.letters.render(letter.letter, letter.language, context)
        mid = new_message_id(env.msgid_domain)
        raw = compose(rendered, message_id=mid, from_addr=env.from_addr, from_name=env.org_name,
                      to=letter.to, cc=letter.cc, case_number=case.number if case else None,
                      in_reply_to=in_reply_to, references=references, now=env.now)
        rows: list[Outbox | Message | TimelineEntry] = [
            Outbox(case=case, message_id=mid, letter=letter.letter, mail_from=env.from_addr,
                   rcpt=rcpt, rcpt_key=rcpt[0], automatic=letter.automatic, body=raw,
                   state="pending", next_attempt_at=env.now, created_at=env.now),
            Message(direction="out", message_id=mid, case=case, state="queued",
                    sender=env.from_addr,
                    subject=letter_subject(rendered, case.number if case else None),
                    raw_size=len(raw), at=env.now)]
        if case is not None:
            rows.append(TimelineEntry(case=case, at=env.now, kind="letter", actor="maild",
                                      message_id=mid,
                                      text=f"{letter.letter} → {', '.join(rcpt)}"))
        return rows

    async def _over_limit(self, addr: str, env: ApplyEnv) -> bool:
        if env.replies_per_hour <= 0:
            return False
        since = Outbox._meta.fields_map["created_at"].to_db_value(
            env.now - timedelta(hours=1), Outbox)
        # written out rather than built by the query builder: this runs for every
        # automatic letter, and building the query cost several times running it
        a, b, c = ("?", "?", "?") if self.conn == "sqlite" else ("$1", "$2", "$3")
        rows = await Tortoise.get_connection(self.conn).execute_query_dict(
            f'SELECT COUNT(*) AS n FROM "outbox" WHERE "rcpt_key" = {a} AND "automatic" = {b} '
            f'AND "created_at" >= {c}', [addr, True, since])
        return int(rows[0]["n"]) >= env.replies_per_hour

    # -- outbox ---------------------------------------------------------------------------

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
        # by primary key: lease_owner has no index, and a scan would read every letter body
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

    # -- reading cases ----------------------------------------------------------------------

    async def cases(self, *, open_only: bool = False, process: str | None = None
                    ) -> list[dict[str, Any]]:
        q = Case.all().order_by("id")
        if open_only:
            q = q.filter(status__in=("open", "waiting"))
        if process:
            q = q.filter(process=process)
        return [case_dict(c) for c in await q]

    async def inbound(self, limit: int = 200) -> list[dict[str, Any]]:
        """The latest inbound messages with their outcome, oldest first."""
        rows = await Message.filter(direction="in").order_by("-id").limit(limit
                                                                          ).prefetch_related("case")
        return [{"uid": m.uid, "from": m.sender, "subject": m.subject, "state": m.state,
                 "route": (m.rules or {}).get("route") or m.route,
                 "case": m.case.number if m.case else "", "reason": m.reason}
                for m in reversed(rows)]

    async def letters(self, limit: int = 200) -> list[dict[str, Any]]:
        """The latest outgoing letters with their delivery state, oldest first."""
        rows = await Outbox.filter().order_by("-id").limit(limit).prefetch_related("case")
        subjects = dict(await Message.filter(
            direction="out", message_id__in=[r.message_id for r in rows]).values_list(
            "message_id", "subject"))
        return [{"case": r.case.number if r.case else "", "letter": r.letter,
                 "to": ", ".join(r.rcpt), "subject": subjects.get(r.message_id, ""),
                 "state": r.state, "message_id": r.message_id}
                for r in reversed(rows)]

    async def case(self, number: str) -> dict[str, Any] | None:
        c = await Case.get_or_none(number=number)
        if c is None:
            return None
        out = case_dict(c)
        out["timeline"] = [
            {"at": t.at.isoformat(), "kind": t.kind, "actor": t.actor,
             "message_id": t.message_id, "text": t.text}
            for t in await TimelineEntry.filter(case=c).order_by("id")]
        out.update(process_facts(c))
        out["attachments"] = await case_attachments(c)
        return out


async def set_timer(case: Case, effect: SetTimer | CancelTimers, now: datetime, *,
                    fresh: set[tuple[str, str | None]] | None = None) -> None:
    """Apply a timer effect inside the caller's transaction (paused timers count as pending).

    ``fresh``, for a case opened in this transaction: the (kind, key) of the timers set so
    far; a timer not among them has nothing to replace, and no query looks for one."""
    if fresh is not None and isinstance(effect, SetTimer):
        known = (effect.kind, effect.key) in fresh
        fresh.add((effect.kind, effect.key))
        if not known:
            await Timer.create(case=case, kind=effect.kind, key=effect.key,
                               due_at=effect.due_at, data=dict(effect.data), created_at=now)
            return
    pending = Timer.filter(case=case, state__in=("pending", "paused"))
    if isinstance(effect, CancelTimers):
        if effect.kinds:
            pending = pending.filter(kind__in=list(effect.kinds))
        if effect.key is not None:
            # a keyed cancel retires that item (an action done, a supplier who answered)
            # even after its reminder fired, so the digest stops listing it
            pending = Timer.filter(case=case, state__in=("pending", "paused", "fired"),
                                   key=effect.key)
            if effect.kinds:
                pending = pending.filter(kind__in=list(effect.kinds))
        await pending.update(state="cancelled")
        return
    await pending.filter(kind=effect.kind, key=effect.key).update(state="cancelled")
    await Timer.create(case=case, kind=effect.kind, key=effect.key, due_at=effect.due_at,
                       data=dict(effect.data), created_at=now)


@dataclass(frozen=True)
class ApplyEnv:
    """What ``Store.apply`` needs besides the decision: clock, identity, letters, limits."""

    now: datetime
    tz: Any
    numbering: dict[str, str]
    letters: Letters
    from_addr: str
    org_name: str
    msgid_domain: str
    replies_per_hour: int
    calendar: BusinessCalendar = field(default_factory=BusinessCalendar)  # pauses deadlines
    max_attachment_bytes: int = 25 * 1024 * 1024

    @classmethod
    def for_site(cls, cfg: Config, letters: Letters, calendar: BusinessCalendar,
                 now: datetime) -> ApplyEnv:
        """The environment the config describes, at ``now`` (intake and sweeper alike)."""
        org, n = cfg.organisation, cfg.numbering
        return cls(now=now, tz=calendar.tz,
                   numbering={"internal": n.internal, "customer": n.customer,
                              "supplier": n.supplier},
                   letters=letters, from_addr=org.address, org_name=org.name,
                   msgid_domain=org.msgid_domain,
                   replies_per_hour=cfg.limits.replies_per_sender_per_hour,
                   calendar=calendar, max_attachment_bytes=cfg.limits.max_attachment_bytes)


def _clean(s: str) -> str:
    """Text as the databases accept it: PostgreSQL refuses NUL characters."""
    return s.replace("\x00", "")


def _update(case: Case, u: UpdateCase) -> None:
    if u.step:
        case.step = u.step
    if u.status:
        case.status = u.status
    for p in u.add_parties:
        if p not in case.parties:
            case.parties = [*case.parties, p]
    if u.data:
        case.data = {**case.data, **u.data}
    if u.owner is not None:
        case.owner = list(u.owner)
    if u.set_due:
        case.due_at = u.due_at
    if u.urgent is not None:
        case.urgent = u.urgent
    if u.status in ("open", "waiting"):
        case.closed_at = None  # reopened


def _view(c: Case) -> CaseView:
    return CaseView(c.number, c.process, c.step, c.status, c.subject, c.department, c.urgent,
                    c.language, tuple(c.parties), dict(c.data), tuple(c.owner or ()), c.due_at)


def case_dict(c: Case) -> dict[str, Any]:
    return {
        "number": c.number, "process": c.process, "step": c.step, "status": c.status,
        "subject": c.subject, "department": c.department, "urgent": c.urgent,
        "opened_at": c.opened_at.isoformat(),
        "due_at": c.due_at.isoformat() if c.due_at else None,
        "closed_at": c.closed_at.isoformat() if c.closed_at else None,
        "parties": list(c.parties),
    }
