"""The composition root: the only place that wires config to concrete adapters."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TypeVar

from maild import config as cfgmod
from maild.adapters.oauth import oauth_login
from maild.adapters.senders import MailSender, SendThread, make_sender
from maild.adapters.sources.base import MailSource
from maild.config import Config, ConfigError
from maild.runners.daemon import App, Daemon
from maild.runners.intake import Intake
from maild.site import Site
from maild.store import Store

T = TypeVar("T")


def make_clock(now: datetime | None) -> Callable[[], datetime]:
    """The system clock, or one fixed at ``now`` (``--now``) for the whole run."""
    if now is None:
        return lambda: datetime.now(UTC)
    # in UTC: SQLite compares stored UTC timestamps as text, so other zones must not leak in
    fixed = (now if now.tzinfo else now.replace(tzinfo=UTC)).astimezone(UTC)
    return lambda: fixed


def make_store(cfg: Config) -> Store:
    return Store(cfg.database.url, cfg.raw_dir, Path(cfg.base_dir))


def with_store(cfg: Config, fn: Callable[[Store], Awaitable[T]]) -> T:
    """Run ``fn`` on the configured store, opened for it and closed after (one command)."""
    async def go() -> T:
        store = make_store(cfg)
        await store.open()
        try:
            return await fn(store)
        finally:
            await store.close()

    return asyncio.run(go())


def make_source(cfg: Config) -> MailSource:
    url = cfg.mailbox.url
    if url.startswith("maildir://"):
        from maild.adapters.sources.maildir import MaildirSource

        return MaildirSource(cfg.path(url[len("maildir://"):]))
    from maild.adapters.sources.imap import ImapSource

    oauth = oauth_login(cfg, cfg.mailbox.oauth)
    return ImapSource(url, None if oauth else cfgmod.secret(cfg, "imap"),
                      starttls=cfg.mailbox.starttls, oauth=oauth)


def make_mail_sender(cfg: Config) -> MailSender:
    s = cfg.smtp
    if s.oauth is not None and not s.url.startswith("maildir://"):
        return make_sender(s.url, Path(cfg.base_dir), username=s.username or s.oauth.user,
                           starttls=s.starttls, timeout=s.timeout,
                           oauth=oauth_login(cfg, s.oauth))
    return make_sender(s.url, Path(cfg.base_dir), username=s.username,
                       password=cfgmod.secret(cfg, "smtp"), starttls=s.starttls,
                       timeout=s.timeout)


def build(cfg: Config, now: datetime | None = None) -> App:
    """Every part the daemon runs, wired from the config."""
    clock = make_clock(now)
    # read once; a definition naming a missing letter stops us here
    site = Site.build(cfg, create_secret=True)  # the reply-token key, made at first run
    store = make_store(cfg)
    source = make_source(cfg)
    return App(cfg, site, clock, store, source, SendThread(make_mail_sender(cfg)),
               Intake(site, source, store, clock))


def run(cfg: Config, *, once: bool, now: datetime | None = None,
        config_path: Path | None = None) -> Daemon:
    """``maild run``: the daemon, until stopped (or one cycle); SIGHUP reloads
    ``config_path``."""
    daemon = Daemon(build(cfg, now), config_path)
    asyncio.run(daemon.run(once))
    return daemon


__all__ = ["App", "ConfigError", "build", "make_clock", "make_store", "run", "with_store"]
