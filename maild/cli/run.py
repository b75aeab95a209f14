"""``maild run``: the daemon, polling the mailbox and sending letters until stopped."""

from __future__ import annotations

import argparse

from maild import app
from maild import config as cfgmod


def run(args: argparse.Namespace) -> int:
    app.run(cfgmod.load(args.config), once=args.once, now=args.now)
    return 0
