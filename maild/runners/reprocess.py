"""Deciding a stored mail again: ``maild reprocess`` and ``maild triage open``.

The mail's raw bytes come from the raw store; it is parsed, classified and decided by the
site (``Site.classify``, ``Site.decide``) and persisted by ``Store.apply`` on its own
``messages`` row, in one transaction, as the intake does (``Intake._decide``). Only the
mailbox copy stays where it is (Quarantine or Triage): the row keeps its folder, so
nothing is moved. Letters the decision makes are queued in the outbox as usual. The case
records an admin action on its timeline.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from datetime import datetime

from tortoise.exceptions import DBConnectionError
from tortoise.transactions import in_transaction

from maild.classify.rules import Classification, subject_tags
from maild.engine.effects import Decision, Note, OpenCase
from maild.mail.auth import DkimPolicy
from maild.mail.message import ParsedMail
from maild.mail.parse import ParseError, parse_mail
from maild.site import Site
from maild.store import ApplyEnv, Store
from maild.store.admin import AdminError, admin_actor, with_note
from maild.store.models import Case, Message

log = logging.getLogger("maild.decision")


@dataclass(frozen=True)
class Redecided:
    """A stored mail decided again."""

    id: int
    message_id: str
    route: str
    case: str | None
    summary: str
    letters: tuple[str, ...]  # the letters the decision queues
    folder: str  # where the mailbox copy stays


def load_mail(store: Store, row: Message, dkim: DkimPolicy | None = None) -> ParsedMail:
    """The stored mail, parsed (``dkim``: its signatures checked, as the intake does);
    AdminError when its bytes are gone or are not mail."""
    try:
        raw = store.raw.get(row.raw_path)
    except OSError as e:
        raise AdminError(f"#{row.id}: the raw mail is not in the raw store: {e}") from e
    try:
        return parse_mail(raw, dkim)
    except ParseError as e:
        raise AdminError(f"#{row.id}: cannot parse: {e}") from e


async def filed_on(row: Message) -> str | None:
    cid = row.case_id  # type: ignore[attr-defined]
    return None if cid is None else (await Case.get(id=cid)).number


async def check_redecidable(row: Message, *, force: bool = False) -> None:
    """Refuse a mail the intake has not decided, a duplicate, and (unless ``force``) one
    already filed on a case: deciding it again could open a second case."""
    if row.direction != "in":
        raise AdminError(f"#{row.id} is not an inbound mail")
    if row.state == "received":
        raise AdminError(f"#{row.id} is not decided yet: the daemon decides it next")
    if row.state == "duplicate":
        raise AdminError(f"#{row.id} is a duplicate ({row.reason}): reprocess the first copy")
    number = await filed_on(row)
    if number is not None and not force:
        raise AdminError(f"#{row.id} is already filed on {number}; --force decides it again "
                         "(which may open a second case)")


#: a mail's states as the timeline names them in Chinese
_STATES_ZH = {"quarantined": "已隔离", "triage": "待分拣", "processed": "已处理",
              "received": "已收取", "duplicate": "重复邮件"}


async def reprocess(store: Store, site: Site, row: Message, now: datetime, *,
                    force: bool = False, actor: str | None = None) -> Redecided:
    """``maild reprocess``: decide a quarantined or triaged mail again, as the intake would
    now (after its cause was fixed)."""
    mail = load_mail(store, row, site.dkim)
    zh = site.cfg.organisation.language != "en"
    state = _STATES_ZH.get(row.state, row.state) if zh else row.state
    was = (f"原为{state}" if zh else f"was {state}") + (f": {row.reason}" if row.reason else "")

    async def decide(cls: Classification) -> Decision:
        case = await store.case_view(cls.case_number) if cls.case_number else None
        return site.decide(mail, cls, case, now)

    async with in_transaction(store.conn):
        await store.lock([row])
        await row.refresh_from_db()
        await check_redecidable(row, force=force)
        cls = site.classify(mail, await store.known(mail, subject_tags(mail.subject)))
        decision = await decide(cls)
        note = Note("admin", (f"管理员重新处理（{was}）" if zh
                              else f"reprocessed by the administrator ({was})")[:2000],
                    actor or admin_actor())
        return await _apply(store, site, row, mail, cls, with_note(decision, note), now)


async def open_from_triage(store: Store, site: Site, row: Message, now: datetime, *,
                           process: str | None = None, department: str | None = None,
                           case: str | None = None, actor: str | None = None) -> Redecided:
    """``maild triage open``: a mail no process applied to opens a case of ``process``
    (its handler's ``open``, as if classified so), or is filed on the existing ``case``
    (its handler's ``reply``, as if it had threaded)."""
    if (process is None) == (case is None):
        raise AdminError("name a process or a case")
    mail = load_mail(store, row, site.dkim)
    actor = actor or admin_actor()
    async with in_transaction(store.conn):
        await store.lock([row])
        await row.refresh_from_db()
        await check_redecidable(row)
        cls = site.classify(mail, await store.known(mail, subject_tags(mail.subject)))
        if case is not None:
            view = await store.case_view(case)
            if view is None:
                raise AdminError(f"no case {case}")
            cls = replace(cls, case_number=case, robot=None)
            decision = site.decide(mail, cls, view, now)
            text = (f"管理员从待分拣邮件归入 {case}" if site.cfg.organisation.language != "en"
                    else f"filed on {case} from triage by the administrator")
        else:
            assert process is not None
            if process not in site.processes:
                raise AdminError(f"no process {process!r}")
            dept = _department(site, department) or cls.department
            if process == "internal" and dept is None:
                raise AdminError("an internal case needs its receiving --department")
            cls = replace(cls, process=process, department=dept, case_number=None,
                          robot=None)
            decision = site.decide(mail, cls, None, now)
            if not any(isinstance(e, OpenCase) for e in decision.effects):
                raise AdminError(f"the {process} process opened no case: {decision.summary}")
            label = site.processes[process].label(site.cfg.organisation.language)
            text = ((f"管理员从待分拣邮件开案：{label}" if site.cfg.organisation.language != "en"
                     else f"opened from triage by the administrator as {label}")
                    + (f" ({dept})" if dept else ""))
        return await _apply(store, site, row, mail, cls,
                            with_note(decision, Note("admin", text, actor)), now)


def _department(site: Site, name: str | None) -> str | None:
    """A department's name from its name or its short tag; AdminError when unknown."""
    if not name:
        return None
    d = site.directory.department_by_name(name) or site.directory.department(name)
    if d is None:
        known = "、".join(x.name for x in site.cfg.directory.departments) or "none"
        raise AdminError(f"no department {name!r} in the directory (known: {known})")
    return d.name


async def _apply(store: Store, site: Site, row: Message, mail: ParsedMail,
                 cls: Classification, decision: Decision, now: datetime) -> Redecided:
    """Persist as the intake does, on the same row; the mailbox copy stays in its folder."""
    cfg = site.cfg.mailbox
    folder = row.route or (cfg.triage_folder if cls.route == "triage" else
                           cfg.processed_folder)
    try:
        number = await store.apply(row, mail, cls, decision, ApplyEnv.for_site(site, now),
                                   folder)
    except (AdminError, DBConnectionError):
        raise
    except Exception as e:  # noqa: BLE001 - as the intake quarantines it: say why, keep it
        raise AdminError(f"#{row.id} cannot be stored: {type(e).__name__}: {e} "
                         f"(nothing was changed; the mail stays {row.state})") from e
    log.info("%s reprocessed by %s: route=%s case=%s: %s", mail.message_id, admin_actor(),
             cls.route, number, decision.summary)
    return Redecided(row.id, mail.message_id, cls.route, number, decision.summary,
                     tuple(e.letter for e in decision.letters()), folder)


__all__ = ["Redecided", "check_redecidable", "filed_on", "load_mail", "open_from_triage",
           "reprocess"]
