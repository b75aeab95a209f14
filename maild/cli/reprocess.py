"""``maild reprocess``: a quarantined or triaged mail decided again, after its cause was
fixed (a broken template, a process definition, the directory); ``--dry-run`` shows what
would happen, as ``maild explain`` does, and writes nothing."""

from __future__ import annotations

import argparse
import asyncio

from maild import config as cfgmod
from maild.app import make_clock, with_store
from maild.cli.admin_cases import fail
from maild.cli.explain import explain_mail, format_text
from maild.cli.output import print_json
from maild.cli.triage import outcome_text
from maild.runners.reprocess import Redecided, check_redecidable, reprocess
from maild.site import Site
from maild.store import Store
from maild.store.admin import AdminError, find_inbound


def reprocess_mail(args: argparse.Namespace) -> int:
    cfg = cfgmod.load(args.config)
    now = make_clock(args.now)()
    if args.dry_run:
        async def raw(store: Store) -> bytes:
            row = await find_inbound(store, args.mail)
            await check_redecidable(row, force=args.force)
            return store.raw.get(row.raw_path)

        try:
            data = with_store(cfg, raw)
        except (AdminError, OSError) as e:
            return fail(e)
        result = asyncio.run(explain_mail(cfg, data, now))
        if args.json:
            print_json({**result, "dry_run": True})
        else:
            print(format_text(result) + "\n\ndry run: nothing was written")
        return 0
    site = Site.build(cfg)

    async def run(store: Store) -> Redecided:
        row = await find_inbound(store, args.mail)
        return await reprocess(store, site, row, now, force=args.force)

    try:
        done = with_store(cfg, run)
    except AdminError as e:
        return fail(e)
    if args.json:
        print_json(done.__dict__ | {"letters": list(done.letters)})
    else:
        print(outcome_text(done))
    return 0
