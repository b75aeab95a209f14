"""The ``maild`` command line: the user's stable interface (PRODUCT.md section 4)."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

from maild import config as cfgmod
from maild.config import ConfigError

EXIT_OK, EXIT_ERROR, EXIT_USAGE = 0, 1, 2


def _iso(value: str) -> datetime:
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{value!r} is not an ISO time like 2026-12-04T17:30+08:00") from None


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="maild", description=__doc__)
    p.add_argument("-v", "--verbose", action="store_true", help="log at DEBUG level")
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser("init", help="write an example config and an empty database")
    s.add_argument("dir", nargs="?", default=".", type=Path)
    s.add_argument("--force", action="store_true", help="overwrite an existing maild.toml")

    s = sub.add_parser("run", help="poll the mailbox and send letters")
    s.add_argument("-c", "--config", required=True, type=Path)
    s.add_argument("--once", action="store_true", help="one cycle, then exit")
    s.add_argument("--now", type=_iso, help="fix the clock for this run (ISO 8601)")

    s = sub.add_parser("config", help="configuration tools")
    csub = s.add_subparsers(dest="config_command", required=True)
    c = csub.add_parser("check", help="validate the config, templates and calendar")
    c.add_argument("-c", "--config", required=True, type=Path)

    s = sub.add_parser("explain", help="dry run: how one mail would be handled")
    s.add_argument("-c", "--config", required=True, type=Path)
    s.add_argument("mail", type=Path)
    s.add_argument("--json", action="store_true")
    s.add_argument("--now", type=_iso)

    s = sub.add_parser("cases", help="list and show cases")
    csub = s.add_subparsers(dest="cases_command", required=True)
    c = csub.add_parser("list")
    c.add_argument("-c", "--config", required=True, type=Path)
    c.add_argument("--json", action="store_true")
    c.add_argument("--open", action="store_true", help="only open and waiting cases")
    c.add_argument("--process", choices=cfgmod.PROCESSES)
    c = csub.add_parser("show")
    c.add_argument("-c", "--config", required=True, type=Path)
    c.add_argument("case")
    c.add_argument("--json", action="store_true")

    s = sub.add_parser("digest", help="the weekly manager digest: print, preview or send it")
    s.add_argument("-c", "--config", required=True, type=Path)
    s.add_argument("--preview", type=Path, metavar="FILE.html",
                   help="write the HTML digest to FILE.html without sending anything")
    s.add_argument("--send", action="store_true",
                   help="queue every manager's digest now and send the outbox")
    s.add_argument("--manager", metavar="ADDRESS",
                   help="the manager whose digest to preview or print (default: every one)")
    s.add_argument("--now", type=_iso, help="fix the clock for this run (ISO 8601)")

    s = sub.add_parser("demo", help="the whole flow on embedded defaults, no servers")
    s.add_argument("--dir", type=Path, help="keep the demo here (default: a temporary folder)")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO, stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s %(message)s")
    # mail-parser warns about every part type it does not handle; our parser handles them
    logging.getLogger("mailparser").setLevel(logging.ERROR)
    logging.getLogger("tortoise").setLevel(logging.WARNING)
    # two lines per scheduled run (cycle, timers) would drown the log; errors still show
    logging.getLogger("apscheduler.executors.default").setLevel(logging.WARNING)
    from maild.cli import actions as subcommands

    try:
        return int(subcommands.dispatch(args) or EXIT_OK)
    except ConfigError as e:
        print(f"maild: configuration error:\n{e}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        return EXIT_ERROR


def print_json(value: object) -> None:
    json.dump(value, sys.stdout, ensure_ascii=False, indent=2)
    sys.stdout.write("\n")


def run_async(coro: object) -> object:
    return asyncio.run(coro)  # type: ignore[arg-type]


if __name__ == "__main__":
    sys.exit(main())
