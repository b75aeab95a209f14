"""``maild cases assign|close|reopen|note|export``: the administrator's actions on cases.

Each action is recorded on the case's timeline as an admin action and changes the case as
the same command by mail would (timers and letters included); see ``maild.store.admin``.
"""

from __future__ import annotations

import argparse
import sys
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from maild import config as cfgmod
from maild.app import make_clock, with_store
from maild.site import Site, site_processes
from maild.store import Store
from maild.store.admin import AdminError, admin_actor, case_action, cases_since, export_case


def fail(e: Exception) -> int:
    print(f"maild: {e}", file=sys.stderr)
    return 1


def assign(args: argparse.Namespace) -> int:
    return _action(args, "assign", args.who)


def close(args: argparse.Namespace) -> int:
    return _action(args, "close", args.reason or "")


def reopen(args: argparse.Namespace) -> int:
    return _action(args, "reopen", "")


def note(args: argparse.Namespace) -> int:
    return _action(args, "note", " ".join(args.text))


def _action(args: argparse.Namespace, action: str, arg: str) -> int:
    cfg = cfgmod.load(args.config)
    site = Site.build(cfg)
    now = make_clock(args.now)()
    try:
        done = with_store(cfg, lambda s: case_action(s, site, args.case, action, arg, now))
    except AdminError as e:
        return fail(e)
    print(f"{done.number}: {action} by {admin_actor()}: {done.summary}; "
          f"step {done.step}, {done.status}")
    if done.letters:
        print(f"letters queued: {', '.join(done.letters)} (the daemon sends them)")
    return 0


def export(args: argparse.Namespace) -> int:
    """``maild cases export NUMBER`` or ``--all [--since DATE]``: one zip per case."""
    if bool(args.case) == bool(args.all):
        return fail(ValueError("name a case, or give --all (with --since DATE)"))
    cfg = cfgmod.load(args.config)
    steps = {name: p.steps for name, p in site_processes(cfg).items()}
    since = None
    if args.since:
        try:
            since = datetime.fromisoformat(args.since)
        except ValueError:
            return fail(ValueError(f"{args.since!r} is not a date like 2026-12-01"))
        if since.tzinfo is None:
            since = since.replace(tzinfo=ZoneInfo(cfg.calendar.timezone))

    async def run(store: Store) -> list[Path]:
        numbers = [args.case] if args.case else await cases_since(since)
        out = []
        for number in numbers:
            case = await store.case(number)
            if case is None:
                raise AdminError(f"no case {number}")
            step = steps.get(case["process"], {}).get(case["step"])
            case["step_title"] = step.title if step is not None else None
            out.append(await export_case(store, case, args.out))
        return out

    try:
        paths = with_store(cfg, run)
    except AdminError as e:
        return fail(e)
    for p in paths:
        print(p)
    if not paths:
        print("no case to export", file=sys.stderr)
    return 0
