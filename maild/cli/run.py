"""``maild run``: the daemon, polling the mailbox and sending letters until stopped."""

from __future__ import annotations

import argparse
import logging
import signal

from maild import app, logs
from maild import config as cfgmod
from maild.cli.exits import EXIT_INTERRUPTED, EXIT_OK

log = logging.getLogger("maild.run")


def run(args: argparse.Namespace) -> int:
    from maild.cli.main import _version

    cfg = cfgmod.load(args.config)
    logs.apply(cfg)
    log.info("%s", logs.start_line(cfg, str(args.config.resolve()), _version()))
    daemon = app.run(cfg, once=args.once, now=args.now, config_path=args.config)
    return EXIT_INTERRUPTED if daemon.signal == signal.SIGINT else EXIT_OK
