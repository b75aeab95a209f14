"""``maild outbox list|retry|cancel``: the letters waiting to be sent, given up or sent, and
the administrator's hand on them (each retry and cancel is on the case's timeline)."""

from __future__ import annotations

import argparse
import sys
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from maild import config as cfgmod
from maild.app import make_clock, with_store
from maild.cli.output import print_json, table
from maild.store.outbox import check_address


def list_outbox(args: argparse.Namespace) -> int:
    cfg = cfgmod.load(args.config)
    states = tuple(args.state or ("pending", "failed"))
    rows = with_store(cfg, lambda s: s.outbox(states))
    if args.json:
        print_json(rows)
        return 0
    tz = ZoneInfo(cfg.calendar.timezone)

    def short(at: str | None) -> str:
        return datetime.fromisoformat(at).astimezone(tz).strftime("%m-%d %H:%M") if at else "-"

    shown: list[dict[str, Any]] = [{**r, "next_attempt": short(r["next_attempt"]),
                                    "last_error": r["last_error"] or ""} for r in rows]
    print(table(shown, ("id", "case", "letter", "to", "state", "attempts", "next_attempt",
                        "last_error"), limit=60))
    return 0


def retry(args: argparse.Namespace) -> int:
    cfg = cfgmod.load(args.config)
    if args.to is not None:
        try:
            check_address(args.to)
        except ValueError as e:
            print(f"maild: --to: {e}", file=sys.stderr)
            return 2
    now = make_clock(args.now)()
    return _report(with_store(cfg, lambda s: s.retry(args.ids, now, to=args.to)))


def cancel(args: argparse.Namespace) -> int:
    cfg = cfgmod.load(args.config)
    now = make_clock(args.now)()
    return _report(with_store(cfg, lambda s: s.cancel(args.ids, now)))


def _report(lines: list[str]) -> int:
    """Each letter's outcome; 1 when any was not what was asked."""
    ok = True
    for line in lines:
        done = line.endswith(("pending, due now", ": cancelled"))
        ok = ok and done
        print(line, file=sys.stdout if done else sys.stderr)
    return 0 if ok else 1
