"""``maild db upgrade``: apply the schema migrations the configured database lacks."""

from __future__ import annotations

import argparse
import asyncio

from maild import config as cfgmod
from maild.app import make_store


def upgrade(args: argparse.Namespace) -> int:
    """Prints each migration applied, or that the database is up to date; a database that
    cannot be upgraded raises ``SchemaError`` (``main`` prints it and exits 78)."""
    cfg = cfgmod.load(args.config)
    applied = asyncio.run(make_store(cfg).upgrade())
    for name in applied:
        print(f"applied {name}")
    if not applied:
        print(f"{args.config}: database up to date")
    return 0
