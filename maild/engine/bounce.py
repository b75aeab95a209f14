"""A bounce on a case: its failed recipients marked, its owner told once.

A failed recipient gets a ``bounce`` note and an entry in the case's ``bounced`` data
(status, time, diagnostic), which holds further letters to it (``maild.store.cases``). The
first time an address bounces on a case, its owners on staff (else its department's head,
else our own address) get the ``delivery_failed`` letter. A delayed recipient is only noted.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from maild.classify.directory import Directory
from maild.engine.effects import CaseView, Context, Decision, Effect, Note, SendLetter, UpdateCase
from maild.mail.dsn import Dsn

__all__ = ["BOUNCE_LETTER", "bounce_decision"]

BOUNCE_LETTER = "delivery_failed"


def bounce_decision(case: CaseView, dsn: Dsn, sender: str, ctx: Context) -> Decision | None:
    """The decision on a bounce of one of the case's letters; None when it reports neither
    a failure nor a delay."""
    if not dsn.failed and not dsn.delayed:
        return None
    actor = sender or "(robot)"
    effects: list[Effect] = []
    bounced: dict[str, Any] = dict(case.data.get("bounced") or {})
    new = []
    en = ctx.language == "en"
    for r in dsn.failed:
        effects.append(Note("bounce", (f"bounced: {r.addr} {r.status} {r.diagnostic}" if en
                                       else f"退信：{r.addr} {r.status} {r.diagnostic}").strip(),
                            actor))
        if r.addr not in bounced:
            new.append(r)
        bounced[r.addr] = {"status": r.status, "at": ctx.now.isoformat(),
                           "diagnostic": r.diagnostic, "message_id": dsn.original_id}
    for r in dsn.delayed:
        effects.append(Note("bounce", (f"delivery delayed: {r.addr} {r.status} {r.diagnostic}"
                                       if en else
                                       f"投递延迟：{r.addr} {r.status} {r.diagnostic}").strip(),
                            actor))
    if dsn.failed:
        effects.append(UpdateCase(data={"bounced": bounced}))
    if new:
        when = ctx.now.astimezone(ctx.calendar.tz).strftime("%Y-%m-%d %H:%M")
        context = {"org_name": ctx.org_name, "subject": case.subject, "letter": "",
                   "rcpt": [r.addr for r in new],
                   "error": "; ".join(f"{r.addr}: {r.diagnostic or r.status}" for r in new),
                   "attempts": 1, "permanent": True, "message_id": dsn.original_id,
                   "queued_at": "", "given_up_at": when, "outbox_id": None}
        to = who_hears(case, (r.addr for r in new), ctx.directory, ctx.org_address)
        effects.append(SendLetter(BOUNCE_LETTER, tuple(to), context, ctx.language,
                                  automatic=False))
    addrs = ", ".join(r.addr for r in (*dsn.failed, *dsn.delayed))
    what = "bounce" if dsn.failed else "delayed delivery"
    return Decision(tuple(effects), f"{what} for {addrs}: recorded on {case.number}"
                    + (", owner told" if new else ""))


def who_hears(case: CaseView, failed: Iterable[str], directory: Directory,
              org_address: str) -> list[str]:
    """Who is told that mail of the case did not arrive: its owners on staff, else its
    department's head, else our own address; never an address that failed."""
    gone = {a.lower() for a in failed}
    staff = [a for a in case.owner
             if a.lower() not in gone and directory.lookup(a).role == "staff"]
    if staff:
        return staff
    dept = directory.department_by_name(case.department)
    if dept is not None and dept.head.lower() not in gone:
        return [dept.head]
    return [org_address]
