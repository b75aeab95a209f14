"""What each ``maild`` sub-command does; the CLI parses, this module acts and prints."""

from __future__ import annotations

import argparse
import asyncio
import sys
from datetime import datetime, tzinfo
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from maild import config as cfgmod
from maild.app import make_clock, make_store
from maild.cli.main import print_json
from maild.config import Config, ConfigError
from maild.data import example_config
from maild.site import site_letters, site_processes


def dispatch(args: argparse.Namespace) -> int:
    if args.command == "init":
        return init(args.dir, force=args.force)
    if args.command == "demo":
        from maild.cli.demo import demo

        return demo(args.dir)
    cfg = cfgmod.load(args.config)
    if args.command == "run":
        from maild.runners.daemon import run

        run(cfg, once=args.once, now=args.now)
        return 0
    if args.command == "config":
        return check(cfg, args.config)
    if args.command == "explain":
        return explain(cfg, args.mail, as_json=args.json, now=args.now)
    if args.command == "cases":
        return asyncio.run(cases(cfg, args))
    if args.command == "digest":
        from maild.cli.digest import digest

        return asyncio.run(digest(cfg, args))
    raise AssertionError(args.command)


def init(directory: Path, *, force: bool = False) -> int:
    directory.mkdir(parents=True, exist_ok=True)
    target = directory / "maild.toml"
    if target.exists() and not force:
        print(f"maild: {target} exists; use --force to overwrite", file=sys.stderr)
        return 1
    target.write_text(example_config(), encoding="utf-8")
    cfg = cfgmod.load(target)
    for sub in ("tmp", "new", "cur"):
        cfg.path("var/mail").joinpath(sub).mkdir(parents=True, exist_ok=True)

    async def create_db() -> None:
        store = make_store(cfg)
        await store.open()
        await store.close()

    asyncio.run(create_db())
    print(f"wrote {target} and the database {cfg.database.url}")
    print(f"next: edit it, then `maild config check -c {target}` and `maild run -c {target}`")
    return 0


def check(cfg: Config, path: Path) -> int:
    from maild.adapters.letters import LetterError
    from maild.engine.definitions import check_letters, directory_warnings

    problems: list[str] = []
    letters = site_letters(cfg)
    for name in letters.names():
        letter, _, lang = name.rpartition(".")
        try:
            letters.render(letter, lang, letters.sample(letter))
        except LetterError as e:
            problems.append(str(e))
    warnings = cfgmod.warnings(cfg)
    try:
        processes = site_processes(cfg)
    except ConfigError as e:
        problems += str(e).splitlines()
    else:
        problems += check_letters(processes, letters.names())
        warnings += directory_warnings(processes, [d.name for d in cfg.directory.departments],
                                       cfg.directory.legal_department,
                                       len(cfg.directory.managers))
    for w in warnings:
        print(f"warning: {w}")
    if problems:
        print("\n".join(f"error: {p}" for p in problems), file=sys.stderr)
        return 1
    print(f"{path}: ok")
    return 0


def explain(cfg: Config, mail_path: Path, *, as_json: bool, now: Any) -> int:
    from maild.cli.explain import explain_mail

    try:
        raw = mail_path.read_bytes()
    except OSError as e:
        raise ConfigError(f"{mail_path}: cannot read: {e}") from e
    result = asyncio.run(explain_mail(cfg, raw, make_clock(now)()))
    if as_json:
        print_json(result)
    else:
        from maild.cli.explain import format_text

        print(format_text(result))
    return 0


async def cases(cfg: Config, args: argparse.Namespace) -> int:
    store = make_store(cfg)
    await store.open()
    try:
        if args.cases_command == "list":
            rows = await store.cases(open_only=args.open, process=args.process)
            if args.json:
                print_json(rows)
            else:
                print(table(rows, ("number", "process", "step", "status", "opened_at",
                                   "subject")))
            return 0
        case = await store.case(args.case)
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
    finally:
        await store.close()


def _width(s: str) -> int:
    """Display width: CJK characters take two terminal columns."""
    return sum(2 if ord(ch) >= 0x1100 and not 0x20A0 <= ord(ch) < 0x2E80 else 1 for ch in s)


def table(rows: list[dict[str, Any]], columns: tuple[str, ...], limit: int = 48) -> str:
    def cell(v: Any) -> str:
        s = "" if v is None else str(v).replace("\n", " ")
        while _width(s) > limit:
            s = s[:-2] + "…"
        return s

    cells = [[cell(r.get(c)) for c in columns] for r in rows]
    widths = [max([_width(c)] + [_width(row[i]) for row in cells])
              for i, c in enumerate(columns)]

    def line(values: list[str]) -> str:
        return "  ".join(v + " " * (w - _width(v)) for v, w in zip(values, widths,
                                                                   strict=True)).rstrip()

    out = [line(list(columns)), line(["-" * w for w in widths])]
    out += [line(r) for r in cells]
    if not rows:
        out.append("(none)")
    return "\n".join(out)


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
    out = ["\n".join(head)]
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
    ]
    for name, rows, columns in sections:
        if rows:
            out.append(f"{name}:\n" + table(rows, columns, limit=50))
    timeline = [{**t, "at": short(t["at"])} for t in case["timeline"]]
    out.append("timeline:\n" + table(timeline, ("at", "kind", "actor", "text"), limit=70))
    return "\n\n".join(out)


__all__ = ["dispatch"]
