"""``maild triage list|show|open``: mail no process applied to (and quarantined mail),
read and turned into cases by the administrator."""

from __future__ import annotations

import argparse
from typing import Any

from maild import config as cfgmod
from maild.app import make_clock, with_store
from maild.cli.admin_cases import fail
from maild.cli.output import clean, print_json, table
from maild.runners.reprocess import Redecided, open_from_triage
from maild.site import Site
from maild.store import Store
from maild.store.admin import AdminError, find_inbound, inbound_rows, mail_detail


def list_triage(args: argparse.Namespace) -> int:
    cfg = cfgmod.load(args.config)
    box = cfg.mailbox
    rows = with_store(cfg, lambda s: inbound_rows(
        s, triage_folder=box.triage_folder, quarantine_folder=box.quarantine_folder,
        quarantined=args.quarantined))
    if args.json:
        print_json(rows)
    else:
        for r in rows:
            r["at"] = r["at"][:16].replace("T", " ")
        columns = ("id", "at", "from", "subject") + (("reason",) if args.quarantined else ())
        print(table(rows, columns))
    return 0


def show_mail(args: argparse.Namespace) -> int:
    cfg = cfgmod.load(args.config)

    async def run(store: Store) -> dict[str, Any]:
        return await mail_detail(store, await find_inbound(store, args.mail))

    try:
        detail = with_store(cfg, run)
    except AdminError as e:
        return fail(e)
    if args.json:
        print_json(detail)
        return 0
    cls = detail.get("classification") or {}
    lines = [f"#{detail['id']}  {detail['state']}  in {detail['folder'] or '-'}"
             + (f"  case {detail['case']}" if detail["case"] else ""),
             f"message: {detail['message_id']}", f"from:    {detail['from']}",
             f"to:      {', '.join(detail.get('to') or [])}", f"subject: {detail['subject']}",
             f"date:    {detail.get('date', '')}", f"route:   {cls.get('route', '-')}"]
    if detail["reason"]:
        lines.append(f"reason:  {detail['reason']}")
    out = [clean(line) for line in lines]
    for a in detail.get("attachments") or []:
        out.append(clean(f"attachment: {a['filename']} ({a['size']} bytes, "
                         f"{a['content_type']})"))
    if detail.get("error"):
        out.append(clean(detail["error"]))
    out += ["", detail.get("text", "").rstrip()]
    print("\n".join(out))
    return 0


def open_triage(args: argparse.Namespace) -> int:
    cfg = cfgmod.load(args.config)
    site = Site.build(cfg)
    now = make_clock(args.now)()

    async def run(store: Store) -> Redecided:
        row = await find_inbound(store, args.mail)
        return await open_from_triage(store, site, row, now, process=args.process,
                                      department=args.department, case=args.case)

    try:
        done = with_store(cfg, run)
    except AdminError as e:
        return fail(e)
    print(outcome_text(done))
    return 0


def outcome_text(done: Redecided) -> str:
    lines = [clean(f"#{done.id} {done.message_id}: route {done.route}"
                   + (f", case {done.case}" if done.case else ", no case")),
             clean(f"decision: {done.summary}")]
    if done.letters:
        lines.append(f"letters queued: {', '.join(done.letters)} (the daemon sends them)")
    lines.append(f"the mailbox copy stays in {done.folder}; there is no need to move it")
    return "\n".join(lines)
