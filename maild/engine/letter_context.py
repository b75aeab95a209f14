"""What every process letter is told: one context of the case, the same keys for all.

Every letter a process definition names gets this context, so an admin can swap one letter
for another in the TOML without the template meeting an undefined variable. The keys are
listed in each letter's ``<letter>.sample.toml`` (``maild config check`` renders with it).
Values are plain strings, numbers, booleans, lists and tables (TOML has no null): "" or an
empty list stand for "nothing".
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from maild.engine.definitions import Step, role_label
from maild.engine.names import clean_display, greeting_name, name_for
from maild.mail.quoting import excerpt

if TYPE_CHECKING:
    from maild.engine.workflow import Work

#: per-letter additions, empty unless the event fills them
EXTRA_DEFAULTS: dict[str, Any] = {"added": [], "refusals": [], "message": ""}


def _pairs(values: Mapping[str, Any]) -> list[dict[str, str]]:
    return [{"name": str(k), "value": str(v)} for k, v in values.items()]


def _moment(work: Work, value: Any) -> str:
    if value is None:
        return ""
    return value.astimezone(work.ctx.calendar.tz).strftime("%Y-%m-%d %H:%M")


def case_context(work: Work, step: Step, language: str, extra: Mapping[str, Any],
                 recipient: str = "", external: bool = False,
                 to: Sequence[str] = ()) -> dict[str, Any]:
    """``recipient``: the first addressee; staff see the commands they may give now.
    ``recipient_name`` greets the addressee by name when the letter has only one (``to``)."""
    d = work.data
    directory, sender = work.ctx.directory, work.mail.from_
    delays = d.get("delays", [])
    report = d.get("report") or {}
    ctx: dict[str, Any] = {
        "org_name": work.ctx.org_name,
        "subject": work.subject,
        "process": work.proc.name,
        "process_label": work.proc.label(language),
        "status": work.status,
        "audience": "external" if external else "staff",
        "party": d.get("customer") or d.get("supplier") or "",
        "urgent": work.urgent,
        "sender_name": (name_for(directory, d, sender.addr)
                        or clean_display(sender.name or "", sender.addr) or sender.addr),
        "recipient_name": greeting_name(directory, d, to or ([recipient] if recipient else [])),
        "step_title": step.label(language),
        "step_owner": role_label(step.owner, language),
        "owners": list(work.owner),
        "due": _moment(work, work.due),
        "form": _pairs(d.get("form", {})),
        "missing": list(d.get("missing", [])),
        "departments": list(d.get("participants", [])),
        "initiator": d.get("initiator", ""),
        "receiving_department": work.department or "",
        "contact": d.get("contact", ""),
        "external": list(d.get("external", [])),
        "actions": [{"id": a["id"], "text": a["text"], "owner": a["owner"], "due": a["due"],
                     "support": a.get("support", ""), "done": bool(a.get("done"))}
                    for a in d.get("actions", [])],
        "pending": work.pending(),
        "minutes": d.get("minutes", ""),
        "report": report.get("text", ""),
        "requirements": list(d.get("requirements", [])),
        "expected_delivery": d.get("expected_delivery", ""),
        "solution": d.get("solution", ""),
        "version": int(d.get("version", 0)),
        "rounds": int(d.get("rounds", 0)),
        "milestones": [dict(m) for m in d.get("milestones", [])],
        "intent": _pairs(d.get("intent", {})),
        "order": _pairs(d.get("order", {})),
        "delay_date": delays[-1]["date"] if delays else "",
        "delay_reason": delays[-1]["reason"] if delays else "",
        "commands": [] if external or not recipient else work.commands_for(recipient, language),
        **EXTRA_DEFAULTS,
    }
    ctx["message"] = excerpt(work.text, 1500)
    for key, value in extra.items():
        if key not in EXTRA_DEFAULTS and key != "commands":
            raise KeyError(f"letter context has no extra key {key!r}")
        ctx[key] = value
    return ctx
