"""The process state of a case as the store shows it, and the columns processes added.

``cases show`` reads the step's owner, pending confirmations, outputs, action items,
milestones and delays that the engine keeps in the case (``maild.engine.workflow``).
"""

from __future__ import annotations

from tortoise import Tortoise

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


async def add_process_columns(conn: str) -> None:
    """Databases made before cases had an ``owner``: add the column (safe to repeat)."""
    db = Tortoise.get_connection(conn)
    if conn == "sqlite":
        rows = await db.execute_query_dict("PRAGMA table_info(cases)")
        have = {r["name"] for r in rows}
        kind = "JSON NOT NULL DEFAULT '[]'"
    else:
        rows = await db.execute_query_dict(
            "SELECT column_name FROM information_schema.columns WHERE table_name = 'cases'")
        have = {r["column_name"] for r in rows}
        kind = "JSONB NOT NULL DEFAULT '[]'::jsonb"
    if have and "owner" not in have:
        await db.execute_script(f"ALTER TABLE cases ADD COLUMN owner {kind}")
