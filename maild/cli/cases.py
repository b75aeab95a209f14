"""``maild cases list|show``: read cases from the store and print them as tables or JSON."""

from __future__ import annotations

import argparse
import asyncio
import sys
from datetime import datetime, tzinfo
from typing import Any
from zoneinfo import ZoneInfo

from maild import config as cfgmod
from maild.app import make_store
from maild.cli.output import clean, print_json, table
from maild.site import site_processes


def list_cases(args: argparse.Namespace) -> int:
    cfg = cfgmod.load(args.config)

    async def rows() -> list[dict[str, Any]]:
        store = make_store(cfg)
        await store.open()
        try:
            return await store.cases(open_only=args.open, process=args.process)
        finally:
            await store.close()

    found = asyncio.run(rows())
    if args.json:
        print_json(found)
    else:
        print(table(found, ("number", "process", "step", "status", "opened_at", "subject")))
    return 0


def show_case(args: argparse.Namespace) -> int:
    cfg = cfgmod.load(args.config)

    async def fetch() -> dict[str, Any] | None:
        store = make_store(cfg)
        await store.open()
        try:
            return await store.case(args.case)
        finally:
            await store.close()

    case = asyncio.run(fetch())
    if case is None:
        print(f"maild: no case {args.case}", file=sys.stderr)
        return 1
    steps = site_processes(cfg)[case["process"]].steps
    case["step_title"] = steps[case["step"]].title if case["step"] in steps else None
    if args.json:
        print_json(case)
    else:
        print(format_case(case, ZoneInfo(cfg.calendar.timezone)))
    return 0


def format_case(case: dict[str, Any], tz: tzinfo | None = None) -> str:
    """``cases show``: the case's step, owner, outputs, pending confirmations and timeline,
    times in ``tz`` (the business calendar's zone)."""
    def short(at: str | None) -> str:
        if not at:
            return "-"
        moment = datetime.fromisoformat(at)
        return (moment.astimezone(tz) if tz else moment).strftime("%Y-%m-%d %H:%M")

    title = f" {case['step_title']}" if case.get("step_title") else ""
    pending = case.get("pending_confirmations") or []
    head = [f"{case['number']}  {case['subject']}",
            f"  process: {case['process']}   step: {case['step']}{title}   "
            f"status: {case['status']}",
            f"  department: {case['department'] or '-'}   urgent: {case['urgent']}",
            f"  opened: {short(case['opened_at'])}   due: {short(case['due_at'])}   "
            f"closed: {short(case.get('closed_at'))}",
            f"  owner: {', '.join(case.get('owner') or []) or '-'}",
            f"  parties: {', '.join(case['parties']) or '-'}"]
    if case.get("contact"):
        head.append(f"  contact: {case['contact']}")
    if case.get("participants"):
        head.append(f"  participants: {'、'.join(case['participants'])}")
    head.append(f"  pending confirmations: {'、'.join(pending) if pending else '-'}")
    out = ["\n".join(clean(line) for line in head)]  # the subject and contact come from mail
    sections = [
        ("outputs", [{"at": short(o.get("at")), "name": o["name"], "by": o.get("by", ""),
                      "text": o.get("text", "")} for o in case.get("outputs") or []],
         ("at", "name", "by", "text")),
        ("attachments", [{**a, "at": short(a.get("at"))} for a in case.get("attachments") or []],
         ("at", "output", "filename", "size")),
        ("actions", [{**a, "id": f"#{a['id']}", "done": "done" if a.get("done") else "open"}
                     for a in case.get("actions") or []],
         ("id", "text", "owner", "due", "support", "done")),
        ("milestones", case.get("milestones") or [], ("date", "title")),
        ("delays", case.get("delays") or [], ("date", "reason", "explained")),
        ("bounced", [{**b, "at": short(b.get("at"))} for b in case.get("bounced") or []],
         ("address", "status", "at", "diagnostic")),
    ]
    for name, rows, columns in sections:
        if rows:
            out.append(f"{name}:\n" + table(rows, columns, limit=50))
    timeline = [{**t, "at": short(t["at"])} for t in case["timeline"]]
    out.append("timeline:\n" + table(timeline, ("at", "kind", "actor", "text"), limit=70))
    return "\n\n".join(out)
