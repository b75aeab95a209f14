"""``maild config check``: validate the config, its letter templates and process files."""

from __future__ import annotations

import argparse
import sys

from maild import config as cfgmod
from maild.adapters.letters import LetterError
from maild.config import ConfigError
from maild.engine.definitions import check_letters, directory_warnings
from maild.site import site_letters, site_processes


def check(args: argparse.Namespace) -> int:
    cfg = cfgmod.load(args.config)
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
    print(f"{args.config}: ok")
    return 0
