"""Cases as rows: a decision's result persisted with its mail's row in one transaction, and
letters rendered into outbox rows.

What the decision does to the case is decided by ``maild.engine.apply.apply``; this module
reads the case and its timers, draws the next number of a sequence, and writes the result.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, cast

from tortoise import Tortoise
from tortoise.transactions import in_transaction

from maild.adapters.documents import Documents
from maild.adapters.letters import Letters, compose, letter_subject, new_message_id
from maild.calendar.business import BusinessCalendar
from maild.classify.rules import Classification, Known
from maild.engine.apply import (
    CaseState,
    TimerState,
    apply,
    apply_timer,
    case_number,
    case_year,
    opening,
    sequence_key,
)
from maild.engine.bounce import BOUNCE_LETTER
from maild.engine.effects import (
    CancelTimers,
    CaseView,
    Decision,
    KeepAttachments,
    Note,
    SendLetter,
    SetTimer,
    UpdateCase,
)
from maild.mail.message import ParsedMail
from maild.mail.tokens import make_message_id
from maild.site import Site
from maild.store.attachments import ContentStore, keep
from maild.store.letter_files import letter_files, with_case_files
from maild.store.limits import Budget, letter_label, no_staff, staff_test
from maild.store.models import Case, Message, Outbox, TimelineEntry, Timer
from maild.store.notices import told_lately

#: timer states a decision may still change (a fired one only by a keyed cancel)
_CHANGEABLE = ("pending", "paused", "fired")


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
    calendar: BusinessCalendar  # pauses and resumes deadlines
    max_attachment_bytes: int
    # notices to one staff address per hour before they are folded (maild.store.limits)
    notices_per_hour: int = 0
    is_staff: Callable[[str], bool] = no_staff
    secret: bytes = b""  # the reply-token key (b"": plain Message-IDs)
    max_letter_bytes: int = 10 * 1024 * 1024  # files one letter carries (letter_files)
    documents: Documents | None = None  # generated documents letters carry ([documents])
    language: str = "zh"  # of the timeline entries the store writes (organisation.language)

    @classmethod
    def for_site(cls, site: Site, now: datetime) -> ApplyEnv:
        """The environment the site describes, at ``now`` (intake and sweeper alike)."""
        cfg = site.cfg
        org, n = cfg.organisation, cfg.numbering
        return cls(now=now, tz=site.calendar.tz,
                   numbering={"internal": n.internal, "customer": n.customer,
                              "supplier": n.supplier},
                   letters=site.letters, from_addr=org.address, org_name=org.name,
                   language=org.language,
                   msgid_domain=org.msgid_domain,
                   replies_per_hour=cfg.limits.replies_per_sender_per_hour,
                   calendar=site.calendar, max_attachment_bytes=cfg.limits.max_attachment_bytes,
                   notices_per_hour=cfg.limits.notices_per_staff_per_hour,
                   is_staff=staff_test(site), secret=site.secret,
                   max_letter_bytes=cfg.limits.max_letter_attachment_bytes,
                   documents=site.documents)


class Cases:
    conn: str
    files: ContentStore

    async def known(self, mail: ParsedMail, candidates: Sequence[str]) -> Known:
        returned = (mail.dsn.original_id,) if mail.dsn and mail.dsn.original_id else ()
        refs = list(dict.fromkeys((*returned, *mail.in_reply_to, *mail.references)))
        parent = set(mail.in_reply_to or mail.references[-1:])
        by_id: dict[str, str] = {}
        subjects: dict[str, str] = {}
        if refs:
            for mid, number, subject in await Message.filter(
                    message_id__in=refs).values_list("message_id", "case__number", "subject"):
                if number:
                    by_id[mid] = number
                if mid in parent and subject:  # the answered message's, for inherited tags
                    subjects[mid] = f"{subjects[mid]} {subject}" if mid in subjects else subject
        numbers: set[str] = set()
        if candidates:
            numbers = set(cast("list[str]", await Case.filter(
                number__in=list(candidates)).values_list("number", flat=True)))
        return Known(by_id, frozenset(numbers), subjects)

    async def case_view(self, number: str) -> CaseView | None:
        c = await Case.get_or_none(number=number)
        return None if c is None else view(c)

    async def apply(self, row: Message, mail: ParsedMail, cls: Classification,
                    decision: Decision, env: ApplyEnv, folder: str) -> str | None:
        """Persist a decision with the mail's row, in one transaction. Returns the case number."""
        async with in_transaction(self.conn):
            case = await Case.get_or_none(number=cls.case_number) if cls.case_number else None
            before = await case_state(case) if case is not None else None
            opened = opening(decision)
            number = None
            if opened is not None:
                year = case_year(env.now, env.tz)
                seq = await self._next(sequence_key(opened, year))
                number = case_number(env.numbering[opened.process], opened, year, seq)
            applied = apply(before, decision, env.now, env.calendar, number=number)
            if applied.case is not None:
                touched = any(isinstance(e, UpdateCase) for e in decision.effects)
                case = await write_case(case, applied.case, env.now, touched)
            for out in applied.outputs:
                if isinstance(out, SendLetter):
                    await self._enqueue(out, case, mail, env)
                elif case is None:
                    continue
                elif isinstance(out, Note):
                    await TimelineEntry.create(case=case, at=env.now, kind=out.kind,
                                               actor=out.actor, message_id=mail.message_id
                                               or None, text=clean(out.text))
                elif isinstance(out, KeepAttachments):
                    await keep(self.files, out, case, mail, env.max_attachment_bytes,
                               env.now)
            if case is not None:
                await write_timers(case, applied.timers, before, env.now)
            row.message_id = mail.message_id
            row.case = case
            row.sender = mail.from_.addr[:320]
            row.subject = clean(mail.subject)
            row.state, row.route = "processed", folder
            row.reason = None  # type: ignore[assignment]
            row.rules = cls.as_dict()
            await row.save()
        return case.number if case else None

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
        if letter.letter == BOUNCE_LETTER and letter.context.get("outbox_id", 0) is None:
            letter = await _bounced_letter(letter, env)
        refs = [*mail.references[-8:], mail.message_id] if mail.message_id else []
        if await told_lately(letter, case, env):  # a notice once an hour
            return
        await self.enqueue(letter, case, env, in_reply_to=mail.message_id or None,
                           references=refs)

    async def enqueue(self, letter: SendLetter, case: Case | None, env: ApplyEnv, *,
                      in_reply_to: str | None = None, references: Sequence[str] = ()
                      ) -> str | None:
        """Render, compose and queue a letter in the caller's transaction; its Message-ID.
        Recipients over their hourly limit are left out (``maild.store.limits``)."""
        rcpt = [a for a in (*letter.to, *letter.cc) if a]
        letter = await with_case_files(letter, case)
        if not rcpt:
            return None
        budget = await self._over_limit(rcpt, env)
        rows = budget.letter_rows(self, letter, case, in_reply_to=in_reply_to,
                                  references=references)
        for row in rows:
            await row.save()
        await budget.save()
        return rows[0].message_id if rows else None

    def letter_rows(self, letter: SendLetter, case: Case | None, env: ApplyEnv, *,
                    in_reply_to: str | None = None, references: Sequence[str] = ()
                    ) -> list[Outbox | Message | TimelineEntry]:
        """A letter rendered and composed into its unsaved outbox, message and timeline rows,
        for writers that insert many at once (the timer sweep). No rate limit here.

        One copy per recipient (the same To and Cc headers), each with its own Message-ID:
        the ID carries a reply token for that recipient (``maild.mail.tokens``), so a reply
        proves who answers. One timeline entry for the letter."""
        rcpt = list(dict.fromkeys(a for a in (*letter.to, *letter.cc) if a))
        number = case.number if case else ""
        context = {**letter.context, "number": number}
        rendered = env.letters.render(letter.letter, letter.language, context)
        letter, unmade = (env.documents.for_letter(letter, context) if env.documents
                          else (letter, ""))
        rendered, files, remark = letter_files(self.files, letter, rendered,
                                               env.max_letter_bytes)
        remark = "; ".join(r for r in (remark, unmade) if r)
        subject = letter_subject(rendered, case.number if case else None)
        rows: list[Outbox | Message | TimelineEntry] = []
        notes: list[TimelineEntry] = []
        first = ""
        for addr in rcpt:
            mid = (make_message_id(env.secret, number, addr, env.msgid_domain) if env.secret
                   else new_message_id(env.msgid_domain))
            first = first or mid
            raw = compose(rendered, message_id=mid, from_addr=env.from_addr,
                          from_name=env.org_name, to=letter.to, cc=letter.cc,
                          case_number=case.number if case else None, in_reply_to=in_reply_to,
                          references=references, now=env.now, files=files)
            bounced = held(case, [addr])
            rows += [
                Outbox(case=case, message_id=mid, letter=letter.letter,
                       mail_from=env.from_addr, rcpt=[addr], rcpt_key=addr,
                       automatic=letter.automatic, body=raw,
                       state="held" if bounced else "pending", next_attempt_at=env.now,
                       created_at=env.now),
                Message(direction="out", message_id=mid, case=case, state="queued",
                        sender=env.from_addr, subject=subject, raw_size=len(raw), at=env.now)]
            if case is not None and bounced:
                notes.append(TimelineEntry(
                    case=case, at=env.now, kind="held", actor="maild", message_id=mid,
                    text=f"{letter_label(letter.letter, 'en')} → {addr} held: the address "
                         f"bounced ({'; '.join(bounced)}); `maild outbox retry` sends it"
                    if env.language == "en" else
                    f"「{letter_label(letter.letter, 'zh')}」→ {addr} 暂停发送：该地址曾退信"
                    f"（{'; '.join(bounced)}）；`maild outbox retry` 可重发"))
        if case is not None and rcpt:
            rows.append(TimelineEntry(case=case, at=env.now, kind="letter", actor="maild",
                                      message_id=first,
                                      text=f"{letter_label(letter.letter, env.language)} → "
                                      f"{', '.join(rcpt)}" + (f" ({remark})" if remark else "")))
        return rows + notes

    async def _over_limit(self, rcpt: Sequence[str], env: ApplyEnv) -> Budget:
        """The last hour's letters to these recipients: what the limits still allow."""
        return await Budget.load(self.conn, rcpt, env)


def held(case: Case | None, rcpt: Sequence[str]) -> list[str]:
    """Why a letter is held: each of its recipients bounced on its case (else empty)."""
    bounced = (case.data or {}).get("bounced") or {} if case is not None else {}
    if not rcpt or not all(a.lower() in bounced for a in rcpt):
        return []
    return [f"{a} {bounced[a.lower()].get('status', '')}".strip() for a in rcpt]


async def _bounced_letter(letter: SendLetter, env: ApplyEnv) -> SendLetter:
    """The owner's ``delivery_failed`` letter about a bounce, with the bounced letter's
    outbox row (its name, when it was queued, its id for ``maild outbox retry``)."""
    row = await Outbox.get_or_none(message_id=letter.context.get("message_id") or "")
    tz = env.tz
    extra: dict[str, Any] = {"outbox_id": row.id if row else 0,
                             "letter": letter_label(row.letter, env.language) if row and row.letter
                             else ("邮件" if env.language != "en" else "letter")}
    if row is not None:
        extra["attempts"] = max(row.attempts, 1)
        extra["queued_at"] = row.created_at.astimezone(tz).strftime("%Y-%m-%d %H:%M")
    return replace(letter, context={**letter.context, **extra})


# -- rows <-> the engine's values ------------------------------------------------------------

def view(c: Case) -> CaseView:
    return CaseView(c.number, c.process, c.step, c.status, c.subject, c.department, c.urgent,
                    c.language, tuple(c.parties), dict(c.data or {}), tuple(c.owner or ()),
                    c.due_at)


async def case_state(c: Case) -> CaseState:
    """A case row with the timers a decision may still change."""
    timers = await Timer.filter(case=c, state__in=_CHANGEABLE).order_by("id")
    return CaseState(view(c), c.closed_at, tuple(
        TimerState(t.kind, t.key, t.due_at, t.state, dict(t.data or {}), t.id)
        for t in timers))


async def write_case(row: Case | None, state: CaseState, now: datetime,
                     touched: bool) -> Case:
    v = state.view
    if row is None:
        row = Case(number=v.number, process=v.process, opened_at=now)
    elif not touched and row.closed_at == state.closed_at:
        return row
    row.step, row.status, row.subject = v.step, v.status, clean(v.subject)
    row.department, row.urgent, row.language = v.department, v.urgent, v.language
    row.parties, row.data, row.owner = list(v.parties), dict(v.data), list(v.owner)
    row.due_at, row.closed_at, row.updated_at = v.due_at, state.closed_at, now
    await row.save()
    return row


async def write_timers(case: Case, timers: Sequence[TimerState],
                       before: CaseState | None, now: datetime) -> None:
    """Create the new timers and write the changed ones; a timer is changed only in the
    state it was read in (one that a sweeper fired meanwhile is left as it is)."""
    was = {t.id: t.state for t in before.timers} if before is not None else {}
    new = [Timer(case=case, kind=t.kind, key=t.key, due_at=t.due_at, state=t.state,
                 data=dict(t.data), created_at=now) for t in timers if t.id is None]
    for t in timers:
        if t.id is not None:
            await Timer.filter(id=t.id, state=was.get(t.id, t.state)).update(
                state=t.state, due_at=t.due_at, data=dict(t.data), lease_owner=None,
                lease_until=None)
    if len(new) == 1:
        await new[0].save()
    elif new:
        await Timer.bulk_create(new)


async def set_timer(case: Case, effect: SetTimer | CancelTimers, now: datetime) -> None:
    """One timer effect outside a decision (a re-armed timer), in the caller's transaction."""
    state = await case_state(case)
    await write_timers(case, apply_timer(state.timers, effect), state, now)


_CONTROLS = str.maketrans(dict.fromkeys(
    [*range(0x00, 0x09), 0x0b, 0x0c, *range(0x0e, 0x20), *range(0x7f, 0xa0)]))


def clean(s: str) -> str:
    """Text as the databases accept it (PostgreSQL refuses NUL characters) and terminals show
    it: no control characters but tab and line breaks; lone surrogates replaced."""
    s = s.translate(_CONTROLS)
    try:
        s.encode("utf-8")
    except UnicodeEncodeError:
        s = s.encode("utf-8", "replace").decode("utf-8")
    return s
