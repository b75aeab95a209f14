"""``maild backup DIR``: a consistent copy of the site while it runs; ``maild backup
--restore DIR``: put one back into an empty site (see ``maild.store.admin``)."""

from __future__ import annotations

import argparse
import os
import shutil
from pathlib import Path

from maild import config as cfgmod
from maild.app import make_store
from maild.cli.admin_cases import fail
from maild.config import Config
from maild.site import secret_path
from maild.store.admin import AdminError, Backup, backup_site, restore_site


def site_dirs(cfg: Config) -> list[Path]:
    """The folders the config names relative to its own folder (letters, processes)."""
    out = []
    for value in (cfg.letters.templates, cfg.processes.dir):
        if value and not Path(value).is_absolute() and ".." not in Path(value).parts:
            out.append(Path(value))
    return out


def backup(args: argparse.Namespace) -> int:
    if args.restore:
        return restore(args)
    cfg = cfgmod.load(args.config)
    try:
        done = backup_site(make_store(cfg), args.dir, args.config, site_dirs(cfg))
    except AdminError as e:
        return fail(e)
    kept = _copy_secret(secret_path(cfg), done.dir / SECRET)
    print(f"backup in {done.dir}: {_counts(done)}, maild.toml"
          + (f", {SECRET} (the reply-token key: keep this backup private)" if kept else ""))
    if done.backend == "postgres":
        if not done.pg_done:
            print("maild: pg_dump is not on the PATH: install the PostgreSQL client (the "
                  "server's major version) and back up again, or run pg_dump yourself "
                  f"before copying the files:\n  {done.pg_command}")
            return 1
        print(f"database: {done.dir / 'maild.pgdump'} ({done.pg_command})")
    return 0


def restore(args: argparse.Namespace) -> int:
    """Into the site of ``-c CONFIG``; a missing CONFIG is the backup's own maild.toml,
    so restoring into an empty folder is one command."""
    if not args.config.exists() and (args.dir / "maild.toml").exists():
        args.config.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(args.dir / "maild.toml", args.config)
        print(f"{args.config}: the backup's config (check paths that are absolute)")
    cfg = cfgmod.load(args.config)
    try:
        done = restore_site(make_store(cfg), args.dir, Path(cfg.base_dir), force=args.force)
    except AdminError as e:
        return fail(e)
    secret = secret_path(cfg)
    if _copy_secret(done.dir / SECRET, secret):
        print(f"restored from {done.dir}: {_counts(done)}, the reply-token key into {secret}")
    else:
        print(f"restored from {done.dir}: {_counts(done)}; the backup holds no reply-token "
              "key: replies to letters sent before it must prove their sender otherwise")
    if done.pg_command:
        print(f"now restore the database into the empty PostgreSQL database:\n"
              f"  {done.pg_command}")
    return 0


#: the reply-token key in a backup: letters already sent stay able to prove replies
SECRET = "reply-token.key"


def _copy_secret(src: Path, dest: Path) -> bool:
    """Copy the site secret, readable by its owner only; False when there is none."""
    if not src.is_file():
        return False
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(dest.name + ".tmp")
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(src.read_bytes())
    os.replace(tmp, dest)
    return True


def _counts(done: Backup) -> str:
    return ", ".join(f"{n} {what}" for what, n in done.counts.items())
