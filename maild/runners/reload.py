"""SIGHUP (``systemctl reload maild``): the config file read again, the directory, the
process definitions and the letter templates with it.

The new config is loaded and the new ``Site`` built and checked (every template rendered
with its sample, as ``maild config check`` does) away from the running cycle; only when all
of it is good is it swapped in, between two cycles (under the daemon's busy lock), in every
place that holds it. A config with an error changes nothing: the daemon goes on with the
old one and the log says why (with file and line when the error names them).

Some settings are bound to what was opened at start: the database, the mailbox and SMTP
connections and their credentials, the poll and sweep intervals, the parser processes and
the metrics listener. A change to one of those is not applied — the old value stays — and
a warning names it: it takes a restart.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from jinja2 import TemplateError
from pydantic import BaseModel

from maild import config as cfgmod
from maild import logs
from maild.adapters.letters import Letters
from maild.config import Config, ConfigError
from maild.data import processes_dir
from maild.runners.sweeper import Sweeper
from maild.site import Site

if TYPE_CHECKING:
    from maild.runners.daemon import Daemon

log = logging.getLogger("maild.reload")
NO_FOLD = {"fold": False}  # each reload's outcome is logged, however often it is asked for

#: sections bound to what was opened at start: nothing in them changes without a restart
RESTART_SECTIONS = ("database",)
#: in these sections the listed settings are bound (the listening socket); the rest reloads
RESTART_IN = {"metrics": {"listen"}}
#: in these sections only the listed settings change on reload; the others (URLs,
#: credentials, OAuth, intervals, IDLE …) are bound to the open connections
RELOADABLE_IN = {
    "mailbox": {"processed_folder", "quarantine_folder", "triage_folder", "batch_size",
                "batch_bytes", "fault_backoff_max"},
    "smtp": {"retry_schedule", "give_up_after", "max_attempts", "lease_seconds"},
    "timers": {"batch_size", "lease_seconds"},
}

#: called with the new config and site after a reload, by parts that keep a copy of their
#: own (e.g. a metrics exporter): ``daemon.on_reload.append(fn)``
Hook = Callable[[Config, Site], None]


def kept(old: Config, new: Config) -> tuple[Config, list[str]]:
    """``new`` with every setting that needs a restart put back to ``old``'s value, and
    the names (``mailbox.url``) of those that differed."""
    differ: list[str] = []
    update: dict[str, Any] = {"base_dir": old.base_dir}
    for name in type(old).model_fields:
        was, now = getattr(old, name), getattr(new, name)
        if name in RESTART_SECTIONS:
            differ += [f"{name}.{k}" for k in _changed(was, now)]
            update[name] = was
        elif name in RELOADABLE_IN or name in RESTART_IN:
            fixed = {k: getattr(was, k) for k in type(was).model_fields
                     if (k not in RELOADABLE_IN[name] if name in RELOADABLE_IN
                         else k in RESTART_IN[name])}
            differ += [f"{name}.{k}" for k in _changed(was, now) if k in fixed]
            update[name] = now.model_copy(update=fixed)
    return new.model_copy(update=update), differ


def changes(old: Config, new: Config) -> list[str]:
    """What differs between two configs, as ``section.key`` names."""
    out = []
    for name in type(old).model_fields:
        if name == "base_dir":
            continue
        was, now = getattr(old, name), getattr(new, name)
        if isinstance(was, BaseModel) or isinstance(now, BaseModel):
            out += [f"{name}.{k}" for k in _changed(was, now)]
        elif was != now:
            out.append(name)
    return out


def _changed(a: Any, b: Any) -> list[str]:
    if a is None or b is None:
        return [] if a is b else ["(section)"]
    return [k for k in type(a).model_fields if getattr(a, k) != getattr(b, k)]


def freeze(letters: Letters) -> None:
    """Every template compiled now and kept: jinja would otherwise read a template file
    again whenever it changes on disk, so an edit (or a broken one) would take effect
    before any reload checked it."""
    env = letters.env
    if not isinstance(env.cache, dict):
        env.cache = {}  # no eviction: every template stays as it was read
    env.auto_reload = False
    for name in env.list_templates(filter_func=lambda n: n.endswith(".j2")):
        env.get_template(name)


def fingerprint(folder: Path) -> str:
    """The files of a folder, by content: a template or definition edited in place shows."""
    h = hashlib.sha256()
    for f in sorted(_files(folder)):
        h.update(str(f.relative_to(folder)).encode())
        h.update(f.read_bytes())
    return h.hexdigest()


def _files(folder: Path) -> Iterator[Path]:
    try:
        yield from (p for p in folder.rglob("*") if p.is_file())
    except OSError:
        return


def _process_dir(cfg: Config) -> Path:
    return cfg.path(cfg.processes.dir) if cfg.processes.dir else processes_dir()


def prepare(path: Path, old: Config) -> tuple[Config, Site, list[str]]:
    """Load and check everything (blocking: runs in a thread). ConfigError when unfit."""
    new = cfgmod.load(path)
    cfg, differ = kept(old, new)
    site = Site.build(cfg, create_secret=True)  # as at start (maild.app.build)
    problems = check(site)
    if problems:
        raise ConfigError("\n".join(problems))
    return cfg, site, differ


def check(site: Site) -> list[str]:
    """The site's templates compiled and kept (``freeze``), then each letter rendered with
    its sample: what is wrong with them, or nothing."""
    try:
        freeze(site.letters)
    except TemplateError as e:  # a syntax error: named with its file and line
        return [f"letter template {getattr(e, 'filename', None) or '?'}:"
                f"{getattr(e, 'lineno', None) or '?'}: {e}"]
    return site.letters.problems()


class Reloader:
    """Reloads for one daemon from one config file; one reload at a time."""

    def __init__(self, daemon: Daemon, path: Path) -> None:
        self.daemon = daemon
        self.path = path
        self._lock = asyncio.Lock()
        # the running templates change only by a reload, and must render from the start
        problems = check(daemon.app.site)
        if problems:
            raise ConfigError("\n".join(problems))
        self._prints = self._fingerprints(daemon.app.cfg, daemon.app.site)
        self.task: asyncio.Task[bool] | None = None

    def _fingerprints(self, cfg: Config, site: Site) -> tuple[str, str]:
        return fingerprint(site.letters.dir), fingerprint(_process_dir(cfg))

    def start(self) -> None:
        """The SIGHUP handler: a reload on the daemon's loop."""
        self.task = asyncio.get_running_loop().create_task(self.reload())

    async def reload(self) -> bool:
        """True when the new configuration is in force."""
        async with self._lock:
            d = self.daemon
            d.systemd.reloading()
            try:
                return await self._reload(d)
            finally:
                d.systemd.reloaded()

    async def _reload(self, d: Daemon) -> bool:
        log.debug("reload: reading %s", self.path)
        old_cfg = d.app.cfg
        try:
            cfg, site, differ = await asyncio.to_thread(prepare, self.path, old_cfg)
            prints = await asyncio.to_thread(self._fingerprints, cfg, site)
        except ConfigError as e:
            log.error("reload refused, still running on the previous configuration:\n%s", e,
                      extra=NO_FOLD)
            return False
        except Exception:  # noqa: BLE001 - whatever it is, the running site stays
            log.exception("reload failed, still running on the previous configuration",
                          extra=NO_FOLD)
            return False
        async with d._busy:  # between two cycles
            swap(d, cfg, site)
        what = changes(old_cfg, cfg)
        if prints[0] != self._prints[0]:
            what.append("letter templates")
        if prints[1] != self._prints[1]:
            what.append("process definitions")
        self._prints = prints
        log.info("reloaded %s: %s", self.path,
                 "changed " + ", ".join(what) if what else "nothing changed")
        if differ:
            log.warning("reload: %s changed but take%s effect only after a restart; the "
                        "running values stay", ", ".join(differ),
                        "s" if len(differ) == 1 else "", extra=NO_FOLD)
        return True


def swap(d: Daemon, cfg: Config, site: Site) -> None:
    """The new config and site, everywhere the daemon's parts hold them."""
    app = d.app
    app.cfg, app.site = cfg, site
    app.intake.site, app.intake.cfg = site, cfg
    app.intake.parser.dkim = site.dkim  # pinned DKIM keys and the staff's domains
    d.sweeper = Sweeper(site, app.store)  # it keeps the calendar, zone and digest schedule
    d.fault.backoff_max = cfg.mailbox.fault_backoff_max
    # the sender's owner notice is made from app.site at each send
    logs.apply(cfg)
    for hook in d.on_reload:
        hook(cfg, site)
