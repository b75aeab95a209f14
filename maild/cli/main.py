"""The ``maild`` command line: the user's stable interface (docs/SPECIFICATION.md)."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Callable, Sequence
from datetime import datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import maild
from maild import config as cfgmod
from maild.cli.exits import EXIT_CONFIG, EXIT_INTERRUPTED, EXIT_OK, EXIT_UNAVAILABLE
from maild.config import ConfigError

Handler = Callable[[argparse.Namespace], int]


def _version() -> str:
    try:
        return version("maild")
    except PackageNotFoundError:  # run from a tree that was never installed
        return maild.__version__


def _command(target: str) -> Handler:
    """The handler ``"module:function"`` of a sub-command, imported only when it runs: the
    store, the site and the runners take a second to import, which ``--help`` and
    ``--version`` need not wait for."""
    module, _, name = target.partition(":")

    def handler(args: argparse.Namespace) -> int:
        func: Handler = getattr(importlib.import_module(module), name)
        return func(args)

    handler.__qualname__ = target
    return handler


def _iso(value: str) -> datetime:
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{value!r} is not an ISO time like 2026-12-04T17:30+08:00") from None


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="maild", description=__doc__)
    p.add_argument("-v", "--verbose", action="store_true", help="log at DEBUG level")
    p.add_argument("--version", action="version", version=f"maild {_version()}")
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser("init", help="write an example config and an empty database")
    s.add_argument("dir", nargs="?", default=".", type=Path)
    s.add_argument("--force", action="store_true", help="overwrite an existing maild.toml")
    s.set_defaults(func=_command("maild.cli.init:init"))

    s = sub.add_parser("run", help="poll the mailbox and send letters")
    s.add_argument("-c", "--config", required=True, type=Path)
    s.add_argument("--once", action="store_true", help="one cycle, then exit")
    s.add_argument("--now", type=_iso, help="fix the clock for this run (ISO 8601)")
    s.set_defaults(func=_command("maild.cli.run:run"))

    s = sub.add_parser("config", help="configuration tools")
    csub = s.add_subparsers(dest="config_command", required=True)
    c = csub.add_parser("check", help="validate the config, templates and calendar")
    c.add_argument("-c", "--config", required=True, type=Path)
    c.set_defaults(func=_command("maild.cli.check:check"))

    s = sub.add_parser("db", help="database tools")
    csub = s.add_subparsers(dest="db_command", required=True)
    c = csub.add_parser("upgrade", help="apply the schema migrations the database lacks")
    c.add_argument("-c", "--config", required=True, type=Path)
    c.set_defaults(func=_command("maild.cli.db:upgrade"))

    s = sub.add_parser("explain", help="dry run: how one mail would be handled")
    s.add_argument("-c", "--config", required=True, type=Path)
    s.add_argument("mail", type=Path)
    s.add_argument("--json", action="store_true")
    s.add_argument("--now", type=_iso)
    s.set_defaults(func=_command("maild.cli.explain:explain"))

    s = sub.add_parser("cases", help="list, show, change (admin) and export cases")
    csub = s.add_subparsers(dest="cases_command", required=True)
    c = csub.add_parser("list")
    c.add_argument("-c", "--config", required=True, type=Path)
    c.add_argument("--json", action="store_true")
    c.add_argument("--open", action="store_true", help="only open and waiting cases")
    c.add_argument("--process", choices=cfgmod.PROCESSES)
    c.set_defaults(func=_command("maild.cli.cases:list_cases"))
    c = csub.add_parser("show")
    c.add_argument("-c", "--config", required=True, type=Path)
    c.add_argument("case")
    c.add_argument("--json", action="store_true")
    c.set_defaults(func=_command("maild.cli.cases:show_case"))
    c = csub.add_parser("assign", help="admin: a new owner (contact) for the case")
    c.add_argument("-c", "--config", required=True, type=Path)
    c.add_argument("case")
    c.add_argument("who", metavar="ADDRESS|DEPARTMENT")
    c.add_argument("--now", type=_iso)
    c.set_defaults(func=_command("maild.cli.admin_cases:assign"))
    c = csub.add_parser("close", help="admin: close the case (its timers stop)")
    c.add_argument("-c", "--config", required=True, type=Path)
    c.add_argument("case")
    c.add_argument("--reason", metavar="TEXT")
    c.add_argument("--now", type=_iso)
    c.set_defaults(func=_command("maild.cli.admin_cases:close"))
    c = csub.add_parser("reopen", help="admin: reopen a closed case at its step")
    c.add_argument("-c", "--config", required=True, type=Path)
    c.add_argument("case")
    c.add_argument("--now", type=_iso)
    c.set_defaults(func=_command("maild.cli.admin_cases:reopen"))
    c = csub.add_parser("note", help="admin: a note on the case's timeline")
    c.add_argument("-c", "--config", required=True, type=Path)
    c.add_argument("case")
    c.add_argument("text", nargs="+")
    c.add_argument("--now", type=_iso)
    c.set_defaults(func=_command("maild.cli.admin_cases:note"))
    c = csub.add_parser("export", help="a zip per case: timeline, every mail and file")
    c.add_argument("-c", "--config", required=True, type=Path)
    c.add_argument("case", nargs="?")
    c.add_argument("--all", action="store_true", help="every case (changed since --since)")
    c.add_argument("--since", metavar="DATE", help="with --all: changed on or after DATE")
    c.add_argument("--out", type=Path, default=Path("."), metavar="DIR")
    c.set_defaults(func=_command("maild.cli.admin_cases:export"))

    s = sub.add_parser("triage", help="mail no process applied to: list, show, open a case")
    csub = s.add_subparsers(dest="triage_command", required=True)
    c = csub.add_parser("list")
    c.add_argument("-c", "--config", required=True, type=Path)
    c.add_argument("--json", action="store_true")
    c.add_argument("--quarantined", action="store_true",
                   help="the quarantined mail instead, with the reason")
    c.set_defaults(func=_command("maild.cli.triage:list_triage"))
    c = csub.add_parser("show")
    c.add_argument("-c", "--config", required=True, type=Path)
    c.add_argument("mail", metavar="ID|MESSAGE-ID")
    c.add_argument("--json", action="store_true")
    c.set_defaults(func=_command("maild.cli.triage:show_mail"))
    c = csub.add_parser("open", help="open a case from the mail, or file it on a case")
    c.add_argument("-c", "--config", required=True, type=Path)
    c.add_argument("mail", metavar="ID|MESSAGE-ID")
    how = c.add_mutually_exclusive_group(required=True)
    how.add_argument("--process", choices=cfgmod.PROCESSES)
    how.add_argument("--case", metavar="NUMBER", help="file it on this existing case")
    c.add_argument("--department", metavar="NAME")
    c.add_argument("--now", type=_iso)
    c.set_defaults(func=_command("maild.cli.triage:open_triage"))

    s = sub.add_parser("reprocess", help="decide a quarantined or triaged mail again")
    s.add_argument("-c", "--config", required=True, type=Path)
    s.add_argument("mail", metavar="ID|MESSAGE-ID")
    s.add_argument("--dry-run", action="store_true", help="show what would happen, write nothing")
    s.add_argument("--force", action="store_true", help="even a mail already filed on a case")
    s.add_argument("--json", action="store_true")
    s.add_argument("--now", type=_iso)
    s.set_defaults(func=_command("maild.cli.reprocess:reprocess_mail"))

    s = sub.add_parser("backup", help="a consistent copy of the site; --restore puts one back")
    s.add_argument("-c", "--config", required=True, type=Path)
    s.add_argument("dir", type=Path)
    s.add_argument("--restore", action="store_true",
                   help="restore DIR into the (empty) site of CONFIG")
    s.add_argument("--force", action="store_true", help="restore over a database with data")
    s.set_defaults(func=_command("maild.cli.backup:backup"))

    s = sub.add_parser("digest", help="the weekly manager digest: print, preview or send it")
    s.add_argument("-c", "--config", required=True, type=Path)
    s.add_argument("--preview", type=Path, metavar="FILE.html",
                   help="write the HTML digest to FILE.html without sending anything")
    s.add_argument("--send", action="store_true",
                   help="queue every manager's digest now and send the outbox")
    s.add_argument("--manager", metavar="ADDRESS",
                   help="the manager whose digest to preview or print (default: every one)")
    s.add_argument("--now", type=_iso, help="fix the clock for this run (ISO 8601)")
    s.set_defaults(func=_command("maild.cli.digest:digest"))

    s = sub.add_parser("outbox", help="letters to send: list, retry or cancel them")
    csub = s.add_subparsers(dest="outbox_command", required=True)
    c = csub.add_parser("list", help="letters not sent yet (or in --state), oldest first")
    c.add_argument("-c", "--config", required=True, type=Path)
    c.add_argument("--json", action="store_true")
    c.add_argument("--state", choices=("pending", "failed", "sent", "cancelled"),
                   action="append", help="only these (repeatable; default pending, failed)")
    c.set_defaults(func=_command("maild.cli.outbox:list_outbox"))
    c = csub.add_parser("retry", help="send failed or pending letters again, now")
    c.add_argument("-c", "--config", required=True, type=Path)
    c.add_argument("ids", type=int, nargs="+", metavar="ID")
    c.add_argument("--to", metavar="ADDRESS", help="the corrected recipient (To) of the letter")
    c.add_argument("--now", type=_iso)
    c.set_defaults(func=_command("maild.cli.outbox:retry"))
    c = csub.add_parser("cancel", help="never send these letters")
    c.add_argument("-c", "--config", required=True, type=Path)
    c.add_argument("ids", type=int, nargs="+", metavar="ID")
    c.add_argument("--now", type=_iso)
    c.set_defaults(func=_command("maild.cli.outbox:cancel"))

    s = sub.add_parser("calendar", help="the business calendar: holidays and make-up days")
    csub = s.add_subparsers(dest="calendar_command", required=True)
    c = csub.add_parser("show", help="a year's days off and make-up working days, with sources")
    c.add_argument("year", type=int, metavar="YEAR")
    c.add_argument("-c", "--config", type=Path, help="default: the built-in calendar settings")
    c.add_argument("--json", action="store_true")
    c.set_defaults(func=_command("maild.cli.calendar:show"))

    s = sub.add_parser("status", help="is maild healthy? the daemon's /healthz and the backlog"
                       " (exit 0 healthy, 1 unhealthy, 2 cannot tell)")
    s.add_argument("-c", "--config", required=True, type=Path)
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=_command("maild.cli.status:status"))

    s = sub.add_parser("demo", help="the whole flow on embedded defaults, no servers")
    s.add_argument("--dir", type=Path, help="keep the demo here (default: a temporary folder)")
    s.set_defaults(func=_command("maild.cli.demo:demo"))
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; its exit status is one of ``maild.cli.exits``."""
    args = _parser().parse_args(argv)
    from maild import logs

    logs.setup(verbose=args.verbose)  # `maild run` applies the config's [logging] on top
    from maild.runners.faults import FaultExit
    from maild.store import SchemaError

    try:
        return int(args.func(args) or EXIT_OK)
    except ConfigError as e:
        return _fail(f"maild: configuration error:\n{e}", EXIT_CONFIG)
    except SchemaError as e:  # e.g. `maild run` on a database that needs `maild db upgrade`
        return _fail(f"maild: {e}", EXIT_CONFIG)
    except FaultExit as e:  # --once: the mailbox or the database did not answer
        return _fail(str(e.code), EXIT_UNAVAILABLE)
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED


def _fail(text: str, status: int) -> int:
    """The reason on stderr (each line an error to journald), and the status."""
    from maild.logs import under_journald

    prefix = "<3>" if under_journald() else ""
    print("\n".join(prefix + line for line in text.splitlines()), file=sys.stderr)
    return status


if __name__ == "__main__":
    sys.exit(main())
