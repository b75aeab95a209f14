"""The process state of a case as the store shows it.

``cases show`` reads the step's owner, pending confirmations, outputs, action items,
milestones and delays that the engine keeps in the case (``maild.engine.workflow``).
"""

from __future__ import annotations

from maild.store.models import Case


def process_facts(case: Case) -> dict[str, object]:
    """What ``cases show`` adds from the process state kept in the case's data."""
    d = case.data or {}
    return {
        "owner": list(case.owner or []),
        "pending_confirmations": list(d.get("pending", [])),
        "participants": list(d.get("participants", [])),
        "contact": d.get("contact") or None,
        "external": list(d.get("external", [])),
        "outputs": [dict(o) for o in d.get("outputs", [])],
        "actions": [dict(a) for a in d.get("actions", [])],
        "milestones": [dict(m) for m in d.get("milestones", [])],
        "delays": [dict(x) for x in d.get("delays", [])],
    }

