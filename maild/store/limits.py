"""Hourly limits on the letters maild writes, per recipient address, and the summary letter
that folded staff notices go out in.

Every recipient of every letter written to the outbox gets a ``letter_counts`` row in the
same transaction (one row per address, however the outbox splits the letter into rows), so
the count is the database's and survives restarts. Within the last hour, for one address:

- any address gets at most ``limits.replies_per_sender_per_hour`` *automatic* replies
  (acknowledgements, refusals, ``#help`` answers, the blank form); one more is dropped:
  backscatter protection, recorded as ``dropped`` and on the case's timeline
  (``rate_limited``). Staff addresses too: the mail answered may carry a forged From.
  Letters a person caused (a confirmation that ``#advance`` sent) are counted but never
  held back.
- a member of staff (in the directory, a manager, or in a staff domain) gets at most
  ``limits.notices_per_staff_per_hour`` *notices* (letters maild writes on its own: new
  case, reply, step, reminder, escalation ..., from the intake and the timer sweep alike);
  one more is folded: recorded as ``folded`` with its case on the timeline (``folded``), and
  listed later in one ``notice_summary`` letter to that address. The weekly digest and
  summaries are counted but neither limited nor counted against the notices.

``flush`` writes the summaries: at the end of each intake poll and each timer sweep, for
every address with folded notices and no summary in the last hour (so a person gets at most
the limit of notices plus one summary an hour; a summary lists at most ``PER_SUMMARY``
notices, more go in further letters of the same flush). Rows older than ``KEEP`` are
deleted by the sweeper's ``flush`` (folded ones only once summarised).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from tortoise import Tortoise
from tortoise.transactions import in_transaction

from maild.adapters.letters import LetterError
from maild.engine.effects import SendLetter
from maild.store.models import Case, LetterCount, TimelineEntry

if TYPE_CHECKING:
    from maild.store import ApplyEnv, Store
    from maild.store.cases import Cases
    from maild.store.models import Message, Outbox

log = logging.getLogger("maild.limits")

SUMMARY = "notice_summary"
#: letters counted but never folded: they are already one letter a week or an hour
NEVER_FOLDED = frozenset({"digest", SUMMARY, "meeting_invite"})  # an invitation comes as itself
#: notices listed in one summary letter (a letter stays well under 100 KB)
PER_SUMMARY = 200
#: how long counted rows are kept (only the last hour is read)
KEEP = timedelta(days=2)
WINDOW = timedelta(hours=1)
SUBJECT_MAX = 120

SEND, FOLD, DROP = "send", "fold", "drop"

#: what a folded notice was, by letter, for the summary (unknown letters show their name)
KINDS = {
    "zh": {"new_case_notice": "新案件", "reply_notice": "新回复", "step_notice": "步骤变更",
           "request_notice": "新需求", "urgent_notice": "加急事项", "assigned_notice": "指派",
           "participant_notice": "参与通知", "deadline_reminder": "到期提醒",
           "escalation": "逾期上报", "action_reminder": "待办提醒",
           "deadline_warning": "即将到期",
           "milestone_notice": "里程碑提醒", "delivery_failed": "退信",
           "case_closed": "案件关闭", "acceptance_notice": "验收通知",
           "command_unproven": "未验证的命令", "confirm_unsure": "待判断的客户回复",
           "request_more_info": "补充信息", "ack": "受理回执", "command_help": "命令说明",
           "command_refused": "命令未执行", "customer_confirmation": "客户需求确认函",
           "delay_explanation_request": "延期说明请求", "legal_review": "合同审核",
           "meeting_notice": "会议通知", "minutes_confirm": "会议纪要确认",
           "need_department": "需指定部门", "progress_request": "进度汇报请求",
           "purchase_order": "采购订单", "result_report": "结果反馈",
           "satisfaction_survey": "满意度调查", "selection_notice": "选定通知",
           "supplier_chase": "供应商催办", "supplier_intent": "采购意向",
           "command_receipt": "命令回执", "change_notice": "案件变更",
           "request_form": "空白申请表"},
    "en": {"new_case_notice": "new case", "reply_notice": "new reply",
           "step_notice": "step change", "request_notice": "new request",
           "urgent_notice": "urgent", "assigned_notice": "assignment",
           "participant_notice": "participation", "deadline_reminder": "deadline reminder",
           "escalation": "escalation", "action_reminder": "action reminder",
           "deadline_warning": "deadline warning",
           "milestone_notice": "milestone", "delivery_failed": "bounce",
           "case_closed": "case closed", "acceptance_notice": "acceptance",
           "confirm_unsure": "unclear customer reply",
           "command_unproven": "unproven command",
           "request_more_info": "more information", "ack": "acknowledgement",
           "command_help": "command help", "command_refused": "command refused",
           "customer_confirmation": "requirement confirmation",
           "delay_explanation_request": "delay explanation request",
           "legal_review": "contract review", "meeting_notice": "meeting notice",
           "minutes_confirm": "minutes confirmation", "need_department": "department needed",
           "progress_request": "progress request", "purchase_order": "purchase order",
           "result_report": "result report", "satisfaction_survey": "satisfaction survey",
           "selection_notice": "selection notice", "supplier_chase": "supplier chase",
           "supplier_intent": "purchase intent",
           "command_receipt": "command receipt", "change_notice": "case change",
           "request_form": "blank request form"},
}


def letter_label(letter: str, language: str) -> str:
    """A letter as people read it on the timeline (「受理回执」, "acknowledgement"); its name
    when it has no label (a letter an admin added)."""
    return KINDS["en" if language == "en" else "zh"].get(letter, letter)


def no_staff(addr: str) -> bool:
    return False


def staff_test(site: Any) -> Callable[[str], bool]:
    """Whether an address belongs to staff: in the directory (departments, staff domains)
    or one of its managers. ``site`` is a ``maild.site.Site``."""
    managers = {m.address.lower() for m in site.cfg.directory.managers}
    lookup = site.directory.lookup

    def is_staff(addr: str) -> bool:
        a = addr.lower()
        return a in managers or lookup(a).role == "staff"

    return is_staff


def _key(addr: str) -> str:
    """An address as ``letter_counts`` keeps it."""
    return addr.lower()[:320]


def _now(env: ApplyEnv) -> datetime:
    """UTC: SQLite compares the stored text, so every time written or compared is UTC."""
    return env.now.astimezone(UTC)


def _since(env: ApplyEnv) -> Any:
    return LetterCount._meta.fields_map["at"].to_db_value(_now(env) - WINDOW, LetterCount)


@dataclass
class Budget:
    """The last hour's letters per recipient, read once for a batch of letters and kept
    current in memory as letters are admitted; ``save`` writes what was counted."""

    env: ApplyEnv
    notices: dict[str, int] = field(default_factory=dict)  # letters that may be folded
    replies: dict[str, int] = field(default_factory=dict)  # automatic ones
    rows: list[LetterCount] = field(default_factory=list)
    notes: list[TimelineEntry] = field(default_factory=list)

    @classmethod
    async def load(cls, conn: str, addrs: Iterable[str], env: ApplyEnv) -> Budget:
        budget = cls(env)
        wanted = sorted({_key(a) for a in addrs if a})
        if not wanted:
            return budget
        db = Tortoise.get_connection(conn)
        for start in range(0, len(wanted), 500):
            part = wanted[start:start + 500]
            marks = [f"${i}" if conn != "sqlite" else "?" for i in range(1, len(part) + 2)]
            rows = await db.execute_query_dict(
                'SELECT "addr", "automatic", "letter", COUNT(*) AS n FROM "letter_counts" '
                f'WHERE "addr" IN ({", ".join(marks[:-1])}) AND "state" = \'sent\' '
                f'AND "at" >= {marks[-1]} GROUP BY "addr", "automatic", "letter"',
                [*part, _since(env)])
            for r in rows:
                budget._add(r["addr"], bool(r["automatic"]), r["letter"], int(r["n"]))
        return budget

    def _add(self, addr: str, automatic: bool, letter: str, n: int = 1) -> None:
        if automatic:
            self.replies[addr] = self.replies.get(addr, 0) + n
        elif letter not in NEVER_FOLDED:
            self.notices[addr] = self.notices.get(addr, 0) + n

    def verdict(self, addr: str, letter: SendLetter) -> str:
        a, env = _key(addr), self.env
        # an automatic reply answers a mail that may be forged (a From of staff asking for the
        # form, opening requests): whoever the address is, at most so many an hour
        replies = env.replies_per_hour
        if letter.automatic:
            return DROP if replies > 0 and self.replies.get(a, 0) >= replies else SEND
        limit = env.notices_per_hour
        if not env.is_staff(a) or letter.letter in NEVER_FOLDED or limit <= 0:
            return SEND
        return FOLD if self.notices.get(a, 0) >= limit else SEND

    def admit(self, letter: SendLetter, case: Case | None) -> SendLetter | None:
        """The letter to the recipients the limits allow (None: to nobody); the others are
        recorded as folded or dropped, with a timeline entry on the case."""
        keep: set[str] = set()
        for addr in dict.fromkeys(a for a in (*letter.to, *letter.cc) if a):
            v = self.verdict(addr, letter)
            if v == SEND:
                keep.add(addr)
            else:
                self._held(addr, letter, case, v)
        if not keep:
            return None
        if len(keep) < len({a for a in (*letter.to, *letter.cc) if a}):
            letter = replace(letter, to=tuple(a for a in letter.to if a in keep),
                             cc=tuple(a for a in letter.cc if a in keep))
        return letter

    def count(self, letter: SendLetter, case: Case | None) -> None:
        """Count a letter written to the outbox, once per recipient address."""
        for a in dict.fromkeys(_key(a) for a in (*letter.to, *letter.cc) if a):
            self._add(a, letter.automatic, letter.letter)
            self.rows.append(self._row(a, "sent", letter, case))

    def letter_rows(self, store: Cases, letter: SendLetter, case: Case | None,
                    **kw: Any) -> list[Outbox | Message | TimelineEntry]:
        """``store.letter_rows`` for the recipients the limits allow, counted; the timeline
        entries of folded or dropped recipients are in ``notes`` until ``save``."""
        kept = self.admit(letter, case)
        if kept is None:
            return []
        self.count(kept, case)
        return store.letter_rows(kept, case, self.env, **kw)

    async def save(self) -> None:
        if self.rows:
            await LetterCount.bulk_create(self.rows, batch_size=500)
        if self.notes:
            await TimelineEntry.bulk_create(self.notes, batch_size=500)
        self.rows, self.notes = [], []

    def _row(self, addr: str, state: str, letter: SendLetter, case: Case | None
             ) -> LetterCount:
        subject = (case.subject if case is not None else "") or ""
        if len(subject) > SUBJECT_MAX:
            subject = subject[:SUBJECT_MAX - 1] + "…"
        return LetterCount(addr=_key(addr), at=_now(self.env), state=state,
                           letter=letter.letter[:64], automatic=letter.automatic,
                           number=case.number if case is not None else "",
                           subject=subject, language=letter.language[:8] or "zh")

    def _held(self, addr: str, letter: SendLetter, case: Case | None, verdict: str) -> None:
        env, number = self.env, case.number if case is not None else "-"
        self.rows.append(self._row(addr, "folded" if verdict == FOLD else "dropped",
                                   letter, case))
        label, en = letter_label(letter.letter, env.language), env.language == "en"
        if verdict == FOLD:
            text = (f"{label} → {addr} folded: {env.notices_per_hour} notices already sent "
                    "this hour (the limit); it goes in the next summary" if en else
                    f"{label} → {addr} 已合并：一小时内已发出 {env.notices_per_hour} "
                    "封通知（上限），将列入下一封汇总邮件")
            log.info("%s: %s to %s folded into the next summary (%d notices this hour)",
                     number, letter.letter, addr, env.notices_per_hour)
        else:
            text = (f"automatic {label} not sent to {addr}: {env.replies_per_hour} automatic "
                    "replies already this hour (the limit)" if en else
                    f"自动回复「{label}」未发给 {addr}：一小时内已自动回复 "
                    f"{env.replies_per_hour} 封（上限）")
            log.info("%s: automatic %s to %s dropped (%d automatic replies this hour)",
                     number, letter.letter, addr, env.replies_per_hour)
        if case is not None:
            self.notes.append(TimelineEntry(
                case=case, at=env.now, kind="folded" if verdict == FOLD else "rate_limited",
                actor="maild", message_id=None, text=text))


# -- summaries --------------------------------------------------------------------------

async def flush(store: Store, env: ApplyEnv, *, org_language: str = "zh",
                prune: bool = False) -> int:
    """Write a summary letter for every address whose folded notices wait and who had no
    summary in the last hour; returns the letters written. Each address in a transaction;
    one whose summary cannot be rendered (a template folder without ``notice_summary``) is
    logged and keeps its folded notices for the next try. ``prune``: delete rows older than
    ``KEEP`` (the sweeper does, once a sweep)."""
    waiting = await LetterCount.filter(state="folded").distinct().values_list("addr", flat=True)
    written = 0
    for addr in sorted(set(waiting)):
        try:
            async with in_transaction(store.conn):
                written += await _summarise(store, env, str(addr), org_language)
        except LetterError as e:
            log.error("the summary of folded notices for %s cannot be written: %s", addr, e)
    if prune:
        await LetterCount.filter(at__lt=_now(env) - KEEP, state__not="folded").delete()
    return written


async def _summarise(store: Store, env: ApplyEnv, addr: str, org_language: str) -> int:
    # locked first: a second daemon (PostgreSQL) waits here, then finds them summarised
    folded = await LetterCount.filter(addr=addr, state="folded").order_by(
        "id").select_for_update()
    if not folded:
        return 0
    if await LetterCount.filter(addr=addr, letter=SUMMARY, state="sent",
                                at__gte=_now(env) - WINDOW).exists():
        return 0
    written = 0
    for start in range(0, len(folded), PER_SUMMARY):
        part = folded[start:start + PER_SUMMARY]
        language = part[0].language if part[0].language in KINDS else org_language
        letter = SendLetter(SUMMARY, (addr,), summary_context(part, env, language),
                            language, automatic=False)
        budget = Budget(env)
        budget.count(letter, None)
        rows = store.letter_rows(letter, None, env)
        for row in rows:
            await row.save()
        await budget.save()
        mid = str(rows[0].message_id)
        await LetterCount.filter(id__in=[r.id for r in part]).update(
            state="summarised", summary_id=mid)
        cases = {c.number: c for c in await Case.filter(
            number__in=list({r.number for r in part if r.number}))}
        notes = [TimelineEntry(case=cases[r.number], at=env.now, kind="summary", actor="maild",
                               message_id=mid,
                               text=(f"{letter_label(r.letter, 'en')} → {addr}: in the summary"
                                     if env.language == "en" else
                                     f"{letter_label(r.letter, 'zh')} → {addr} 已列入汇总邮件"))
                 for r in part if r.number in cases]
        if notes:
            await TimelineEntry.bulk_create(notes, batch_size=500)
        log.info("summary of %d folded notices queued for %s (%s)", len(part), addr, mid)
        written += 1
    return written


def summary_context(rows: Sequence[LetterCount], env: ApplyEnv, language: str
                    ) -> dict[str, Any]:
    """What ``templates/email/notice_summary.*`` uses (see ``notice_summary.sample.toml``)."""
    kinds = KINDS.get(language, KINDS["en"])
    tz = env.tz

    def local(dt: datetime) -> str:
        return dt.astimezone(tz or UTC).strftime("%m-%d %H:%M")

    counts: dict[str, int] = {}
    items = []
    for r in rows:
        what = kinds.get(r.letter, r.letter)
        counts[what] = counts.get(what, 0) + 1
        items.append({"number": r.number or "-", "subject": r.subject, "what": what,
                      "at": local(r.at)})
    return {"org_name": env.org_name, "count": len(rows),
            "cases": len({r.number for r in rows if r.number}),
            "limit": env.notices_per_hour, "since": local(rows[0].at),
            "until": local(rows[-1].at),
            "kinds": [{"what": k, "count": n} for k, n in counts.items()],
            "items": items}


__all__ = ["Budget", "KINDS", "letter_label", "NEVER_FOLDED", "PER_SUMMARY", "SUMMARY", "flush",
           "staff_test", "summary_context"]
