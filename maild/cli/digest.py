"""``maild digest``: print the weekly digest, write its HTML (``--preview``) or send it now.

Without ``--send`` nothing is written to the database. ``--send`` queues every manager's
digest as a manual send (recorded, but it does not stand in for the scheduled weekly one)
and then sends the outbox, as ``maild run`` would.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys

from maild import config as cfgmod
from maild.adapters.letters import Rendered
from maild.app import make_clock, make_mail_sender, make_store
from maild.config import Config, ConfigError, Manager
from maild.runners.outbox import drain
from maild.runners.sweeper import Sweeper
from maild.site import Site

log = logging.getLogger("maild.digest")


def digest(args: argparse.Namespace) -> int:
    return asyncio.run(run_digest(cfgmod.load(args.config), args))


async def run_digest(cfg: Config, args: argparse.Namespace) -> int:
    managers = _managers(cfg, args.manager)
    clock = make_clock(args.now)
    site = Site.build(cfg)
    letters = site.letters
    store = make_store(cfg)
    await store.open()
    try:
        sweeper = Sweeper(site, store)
        now = clock()
        if args.preview or not args.send:
            rendered = []
            for m in managers:
                ctx = await sweeper.digest_context(now, m.departments, m.name)
                rendered.append((m, letters.render("digest", sweeper.digest_language, ctx)))
            if args.preview:
                args.preview.write_text(rendered[0][1].html, encoding="utf-8")
                print(f"wrote {args.preview} ({_who(rendered[0][0])})")
            elif not args.send:
                for m, r in rendered:
                    _print(m, r)
        if args.send:
            if not cfg.directory.managers:
                print("maild: no [[directory.managers]] to send the digest to", file=sys.stderr)
                return 1
            queued = await sweeper.send_digest_now(now)
            sender = make_mail_sender(cfg)
            try:
                sent, failed = await drain(store, sender, clock,
                                           max_attempts=cfg.smtp.max_attempts,
                                           lease=cfg.smtp.lease_seconds)
            finally:
                await sender.close()
            print(f"queued {queued} digest(s); sent {sent} letter(s), {failed} failed attempt(s)")
            return 0 if not failed else 1
        return 0
    finally:
        await store.close()


def _managers(cfg: Config, address: str | None) -> list[Manager]:
    managers = list(cfg.directory.managers)
    if address:
        managers = [m for m in managers if m.address.lower() == address.lower()]
        if not managers:
            raise ConfigError(f"no manager {address!r} in [[directory.managers]]")
    return managers or [Manager(name="", address="(all departments)")]


def _who(m: Manager) -> str:
    return f"{m.name} <{m.address}>" if m.name else m.address


def _print(m: Manager, r: Rendered) -> None:
    print(f"To: {_who(m)}\nSubject: {r.subject}\n\n{r.text}")
