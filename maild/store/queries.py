"""What the command line reads: cases with their timelines, the latest mail in and out."""

from __future__ import annotations

from typing import Any

from maild.store.attachments import case_attachments
from maild.store.casefacts import process_facts
from maild.store.models import Case, Message, Outbox, TimelineEntry


class Queries:
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
        out["bounced"] = [{"address": a, **dict(v)}
                          for a, v in sorted(((c.data or {}).get("bounced") or {}).items())]
        out["attachments"] = await case_attachments(c)
        return out


def case_dict(c: Case) -> dict[str, Any]:
    return {
        "number": c.number, "process": c.process, "step": c.step, "status": c.status,
        "subject": c.subject, "department": c.department, "urgent": c.urgent,
        "opened_at": c.opened_at.isoformat(),
        "due_at": c.due_at.isoformat() if c.due_at else None,
        "closed_at": c.closed_at.isoformat() if c.closed_at else None,
        "parties": list(c.parties),
    }
