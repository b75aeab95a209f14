"""Push intake: a cycle as soon as new mail lands, instead of at the next poll.

``Push`` runs the source's ``MailWatch`` (IMAP IDLE on a connection of its own, or a look at
a Maildir's ``new/``) in a thread of its own, since both block; each time it reports news,
the daemon runs a cycle. News that comes while a cycle runs is kept for one more cycle right
after it, so mail that landed just after the intake looked is not left for the next poll.

The poll interval job stays as the safety net: it is what takes mail in while the watch is
down. A watch that loses its connection runs a cycle at once: if the mailbox is down, the
intake fails and logs the outage once (``Daemon``: "intake stopped", later "intake
resumed"). The watch tries again with backoff (1, 2, 4 … up to
``mailbox.fault_backoff_max`` seconds); it logs an outage of its own only when the intake
is not down with the mailbox after ``QUIET_ATTEMPTS`` failures (e.g. the server refuses a
second connection), once when it starts and once when it ends. So one outage of the mailbox
is one pair of lines. A server without IDLE is logged once and the daemon polls. When the
watch connects again after an outage, a cycle runs at once (mail may have arrived
meanwhile) even if the intake is still waiting out its own backoff.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from typing import TYPE_CHECKING

from maild.adapters.sources.base import MailSourceError, MailWatch, PushUnavailable
from maild.runners import faults
from maild.runners.faults import FaultState

if TYPE_CHECKING:
    from maild.config import Config
    from maild.runners.daemon import Daemon

log = logging.getLogger("maild.intake")

#: seconds the watch thread blocks at a time: how long a stop may wait for it
SLICE = 0.5
#: failed attempts of the watch before it logs its own outage, unless the intake's outage
#: (the mailbox down) already says it all
QUIET_ATTEMPTS = 3


class Push:
    """The daemon's push intake (see the module docstring); ``start``, then ``stop``."""

    def __init__(self, daemon: Daemon) -> None:
        self.daemon = daemon
        self.mailbox = daemon.app.cfg.mailbox
        #: the watch's own outage, for the log and a health check
        self.fault = FaultState(self.mailbox.fault_backoff_max)
        #: "push" while news is pushed to us, else "poll"
        self.mode = "poll"
        self._wake = asyncio.Event()
        self._halt = threading.Event()
        self._thread: threading.Thread | None = None
        self._task: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def start(self) -> None:
        """Start watching (unless ``mailbox.idle`` is off)."""
        if not self.mailbox.idle:
            log.info("intake: polling %s every %g s (mailbox.idle is off)",
                     self.daemon.app.source.name, self.mailbox.poll_interval)
            return
        watch = self.daemon.app.source.watch(self.mailbox.idle_seconds)
        log.info("intake: taking new mail in as it arrives in %s, and polling every %g s",
                 self.daemon.app.source.name, self.mailbox.poll_interval)
        self._loop = asyncio.get_running_loop()
        self.mode = "push"
        self.daemon.on_reload.append(self._reloaded)
        self._task = asyncio.create_task(self._cycles(), name="maild-push-cycles")
        self._thread = threading.Thread(target=self._watch, args=(watch,),
                                        name="maild-push", daemon=True)
        self._thread.start()

    async def stop(self) -> None:
        """Stop the thread (within ``SLICE`` seconds, plus a logout) and the cycles; a cycle
        in hand finishes as the daemon's stop tells it."""
        self._halt.set()
        self._wake.set()
        if self._task is not None:
            await self._task
        if self._thread is not None:
            await asyncio.to_thread(self._thread.join, 10.0)

    def _reloaded(self, cfg: Config, _site: object) -> None:
        """SIGHUP: the backoff may change; the watch's connection and intervals stay."""
        self.mailbox = cfg.mailbox
        self.fault.backoff_max = cfg.mailbox.fault_backoff_max

    # -- the event loop's side ---------------------------------------------------------

    async def _cycles(self) -> None:
        daemon = self.daemon
        while True:
            await self._wake.wait()
            if daemon.stopping.is_set() or self._halt.is_set():
                return
            self._wake.clear()
            try:
                await daemon.cycle(wait=True)
            except Exception:  # noqa: BLE001 - a bug: say so, and keep taking mail in
                log.exception("intake: a cycle for new mail failed")

    def _news(self, reconnected: bool) -> None:
        fault = self.daemon.fault
        if reconnected and fault.active and _mailbox_fault(fault.fault):
            # the mailbox answers again: no need to wait out the intake's backoff
            fault.retry_at = min(fault.retry_at, time.monotonic())
        self._wake.set()

    # -- the watch's thread ------------------------------------------------------------

    def _watch(self, watch: MailWatch) -> None:
        try:
            self._follow(watch)
        except Exception:  # noqa: BLE001 - a bug: say so, and the daemon polls on
            log.exception("intake: watching %s failed; polling every %g s",
                          self.daemon.app.source.name, self.mailbox.poll_interval)
            self.mode = "poll"
        finally:
            watch.close()

    def _follow(self, watch: MailWatch) -> None:
        name = self.daemon.app.source.name
        state = self.fault
        told = False  # the watch's own outage was logged
        while not self._halt.is_set():
            if state.waiting():
                self._halt.wait(min(SLICE, state.retry_at - time.monotonic()))
                continue
            try:
                news = watch.wait(SLICE)
            except PushUnavailable as e:
                log.warning("intake: %s; polling every %g s", e, self.mailbox.poll_interval)
                self.mode = "poll"
                return
            except MailSourceError as e:
                if state.failed(faults.environmental(e)):
                    # the mailbox may be down: a cycle finds out, and the intake reports it
                    self._call(False)
                intake = self.daemon.fault
                if (not told and state.attempts >= QUIET_ATTEMPTS
                        and not (intake.active and _mailbox_fault(intake.fault))):
                    told = True  # the intake works: only the watch is in trouble
                    log.warning("intake: new mail is not pushed any more: %s; reconnecting "
                                "with backoff, polling every %g s meanwhile",
                                e, self.mailbox.poll_interval)
                else:
                    log.debug("watch failing (attempt %d): %s", state.attempts, e)
                continue
            took = state.cleared()
            if took is not None and told:
                told = False
                log.warning("intake: new mail is pushed again after %.0f s, %d failed "
                            "attempts", *took)
            if news:
                self._call(took is not None)
        log.debug("stopped watching %s", name)

    def _call(self, reconnected: bool) -> None:
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._news, reconnected)


def _mailbox_fault(fault: faults.Fault | None) -> bool:
    """Is it the mailbox that failed (not the database, not the disk)?"""
    e = fault.exc if fault is not None else None
    seen: set[int] = set()
    while e is not None and id(e) not in seen:
        if isinstance(e, MailSourceError):
            return True
        seen.add(id(e))
        e = e.__cause__ or e.__context__
    return False
