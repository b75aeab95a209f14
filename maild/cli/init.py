"""``maild init``: write an example config and create its empty database and Maildir."""

from __future__ import annotations

import argparse
import asyncio
import sys

from maild import config as cfgmod
from maild.app import make_store
from maild.data import example_config
from maild.site import load_secret, secret_path


def init(args: argparse.Namespace) -> int:
    directory = args.dir
    directory.mkdir(parents=True, exist_ok=True)
    target = directory / "maild.toml"
    if target.exists() and not args.force:
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
    if cfg.security.reply_tokens:
        load_secret(cfg, create=True)  # the reply-token key: back it up with the database
        print(f"reply-token secret: {secret_path(cfg)} (mode 0600; keep a backup)")
    print(f"wrote {target} and the database {cfg.database.url}")
    print(f"next: edit it, then `maild config check -c {target}` and `maild run -c {target}`")
    return 0
