"""``maild config check``: validate the config, its letter templates and process files."""

from __future__ import annotations

import argparse
import sys

from maild import config as cfgmod
from maild.adapters.documents import document_problems
from maild.adapters.oauth import oauth_problems
from maild.classify.routing import routing_problems
from maild.cli.exits import EXIT_CONFIG
from maild.config import ConfigError
from maild.engine.definitions import check_letters, directory_warnings
from maild.handlers.form import form_letter_missing
from maild.site import load_secret, secret_path, site_letters, site_processes


def check(args: argparse.Namespace) -> int:
    cfg = cfgmod.load(args.config)
    problems: list[str] = []
    letters = site_letters(cfg)
    problems += letters.problems()
    problems += document_problems(cfg, letters.sample)  # [documents] templates
    warnings = cfgmod.warnings(cfg)
    problems += oauth_problems(cfg)  # [mailbox.oauth] / [smtp.oauth]: files, command
    try:
        processes = site_processes(cfg)
    except ConfigError as e:
        problems += str(e).splitlines()
    else:
        problems += check_letters(processes, letters.names())
        problems += form_letter_missing(letters.names())
        warnings += directory_warnings(processes, [d.name for d in cfg.directory.departments],
                                       cfg.directory.legal_department,
                                       len(cfg.directory.managers))
    problems += routing_problems(cfg)  # [[routing.rules]] against the directory
    sec_problems, sec_warnings = security_problems(cfg)
    problems += sec_problems
    warnings += sec_warnings
    for w in warnings:
        print(f"warning: {w}")
    if problems:
        print("\n".join(f"error: {p}" for p in problems), file=sys.stderr)
        return EXIT_CONFIG
    print(f"{args.config}: ok")
    return 0


def security_problems(cfg: cfgmod.Config) -> tuple[list[str], list[str]]:
    """What is wrong (errors) or weak (warnings) in how senders of commands are proven."""
    sec = cfg.security
    errors: list[str] = []
    warnings: list[str] = []
    if sec.allow_unproven_commands:
        warnings.append("[security] allow_unproven_commands = true: anyone who writes a staff "
                        "address in From can run commands")
        return errors, warnings
    usable = []
    if "authentication-results" in sec.command_proof:
        if sec.trusted_authserv_ids:
            usable.append("authentication-results")
        else:
            warnings.append("[security] trusted_authserv_ids is empty: Authentication-Results "
                            "prove nothing (set it to your mail server's authserv-id)")
    if "dkim" in sec.command_proof:
        if sec.verify_dkim:
            usable.append("dkim")
        else:
            warnings.append("[security] verify_dkim = false: DKIM proves nothing")
    if "reply-token" in sec.command_proof:
        if sec.reply_tokens:
            usable.append("reply-token")
        else:
            warnings.append("[security] reply_tokens = false: replies prove nothing")
    if not usable:
        errors.append("[security]: nothing can prove a sender, so no staff command will ever "
                      "run (trust an authserv-id, or turn on verify_dkim or reply_tokens)")
    if sec.reply_tokens:
        try:
            if not load_secret(cfg):
                warnings.append(f"[security] secret_file {secret_path(cfg)} does not exist "
                                "yet: `maild init` or the first `maild run` creates it")
        except ConfigError as e:
            errors.append(str(e))
    return errors, warnings
