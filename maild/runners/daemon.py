"""The daemon's lifecycle: one cycle (``--once``) or polling until SIGTERM/SIGINT.

The scheduler runs three jobs: ``cycle`` (poll the mailbox, send; every
``mailbox.poll_interval``), ``timers`` (fire due timers, send the weekly digest when it is
due, send; every ``timers.sweep_seconds``) and ``digest`` (the same at the digest's
weekday and time in the calendar's zone, so it is punctual). ``--once`` does all of it once
at the clock's time (``--now``): intake, every timer due then, the digest if ``now`` lies in
its window (from the scheduled time for ``digest.catch_up_hours``) and has not gone out for
that week, then sending. The timers and the digest are recorded in the database, so
restarts and several daemons fire each timer and send each weekly digest once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Protocol

from apscheduler.schedulers.asyncio import AsyncIOScheduler

from maild import logs
from maild.adapters.senders import MailSender
from maild.adapters.sources.base import MailSource
from maild.calendar.business import uncovered_warning, uncovered_years
from maild.config import Config
from maild.runners import faults, systemd
from maild.runners.faults import Fault, FaultExit, FaultState, IntakeFault
from maild.runners.health import Watch
from maild.runners.intake import Intake
from maild.runners.outbox import Outage, drain, owner_notice, retry_policy
from maild.runners.push import Push
from maild.runners.reload import Hook, Reloader
from maild.runners.sweeper import Sweeper
from maild.site import Site
from maild.store import SchemaError, Store

log = logging.getLogger("maild.daemon")


@dataclass
class App:
    """The wired parts the daemon runs (``maild.app.build`` wires them from the config)."""

    cfg: Config
    site: Site
    clock: Callable[[], datetime]
    store: Store
    source: MailSource
    sender: MailSender
    intake: Intake


class _Closable(Protocol):
    def close(self) -> None: ...


class _NoServer:
    def close(self) -> None:
        return None


class Daemon:
    def __init__(self, app: App, config_path: Path | None = None) -> None:
        self.app = app
        #: the config file SIGHUP reloads (None: nothing to reload)
        self.config_path = config_path
        self.reloader: Reloader | None = None
        self.on_reload: list[Hook] = []  # parts keeping their own copy of config or site
        self.systemd = systemd.Notifier.from_env()
        self.polled = False  # a poll went through: the mailbox and the database answered
        self.signal: int | None = None  # the signal that stopped us, if one did
        self.stopping = asyncio.Event()
        self._busy = asyncio.Lock()  # one cycle at a time; shutdown waits for it
        self.sent = self.send_failures = 0
        self.fired = self.digests = 0
        self.sweeper = Sweeper(app.site, app.store)
        self.outage = Outage()  # delivery trouble, reported once
        #: the outage in hand (database or intake), for the log and a health check
        self.fault = FaultState(app.cfg.mailbox.fault_backoff_max)
        self.watch = Watch()  # what /metrics and /healthz report (maild.runners.metrics)
        self.push = Push(self)  # the mailbox watch (IDLE) and its own outage
        self._once = False
        self._retry: asyncio.Task[None] | None = None

    def stop(self, sig: int | None = None) -> None:
        if not self.stopping.is_set():
            log.info("stopping: finishing the message in hand")
            self.signal = sig
            self.systemd.stopping()
            self.stopping.set()

    def hup(self) -> None:
        """SIGHUP: reload the config, directory, processes and templates."""
        if self.reloader is None:
            log.warning("SIGHUP: nothing to reload (%s)",
                        "--once" if self._once else "no config file")
        elif not self.stopping.is_set():
            self.reloader.start()

    def _serve_metrics(self, once: bool) -> _Closable:
        if once or not self.app.cfg.metrics.listen:
            return _NoServer()
        # prometheus_client (9 MB) only in a daemon that serves metrics
        from maild.runners.metrics import serve

        return serve(self, once)

    async def _after_cycle(self) -> None:
        logs.flush_repeats()
        await systemd.after_cycle(self)

    async def cycle(self, *, intake: bool = True, timers: bool = False,
                    wait: bool = False) -> None:
        """Poll the mailbox (``intake``), fire due timers and the digest (``timers``), then
        send what is due. Letters the intake commits are sent while it goes on. Errors are
        logged, never fatal: a failed intake is retried with backoff (``self.fault``), and
        the intake waits for its turn meanwhile. A busy daemon skips the run unless told to
        ``wait`` for the one in hand."""
        if self._busy.locked() and not wait:
            return
        async with self._busy:
            failed = False
            if intake and not self.fault.waiting():
                failed = not await self._intake()
                if failed and self._once:
                    return  # exits non-zero: nothing else to try in this run
            if timers and not self.stopping.is_set():
                await self._timers()
            if not failed:  # else most likely the sender's trouble too: the next cycle sends
                await self._send()
            await self.watch.refresh(self.app.clock(), self.app.cfg.mailbox)  # for /metrics
            await self._after_cycle()

    async def _intake(self) -> bool:
        """One poll, the sender sending what it commits; False when the environment failed
        it (the mail stays in the mailbox; the next attempt is scheduled with backoff)."""
        app = self.app
        if self.fault.active:  # a new connection: the old one may be read-only or dead
            try:
                await app.store.reconnect()
            except Exception as e:  # noqa: BLE001 - the database is not back yet
                self._intake_failed(faults.environmental(e))
                return False
        done = asyncio.Event()
        sending = asyncio.create_task(self._send_during_intake(done))
        try:
            await app.intake.poll(self.stopping.is_set)
        except IntakeFault as e:
            self._intake_failed(e.fault)
            return False
        finally:
            done.set()
            app.intake.committed.set()
            try:
                await sending
            except Exception as e:  # noqa: BLE001 - the sender's trouble: it reports it
                log.debug("sending during the intake: %s", e)
            try:
                await asyncio.to_thread(app.source.close)
            except Exception as e:  # noqa: BLE001 - e.g. a logout on a dead connection
                log.debug("closing the mailbox: %s", e)
        self.polled = True
        self.watch.polled()
        took = self.fault.cleared()
        if took is not None:
            log.warning("intake resumed after %.0f s, %d failed attempts", *took)
        return True

    def _intake_failed(self, fault: Fault) -> None:
        """Log an outage once, when it starts, and schedule the next attempt."""
        if self.fault.failed(fault):
            log.error("intake stopped: %s%s", fault,
                      "" if self._once else ": retrying with backoff",
                      exc_info=None if fault.certain else fault.exc)
        else:
            log.debug("intake still failing (attempt %d): %s", self.fault.attempts, fault)
        if self._once or self.stopping.is_set():
            return
        if self._retry is not None and self._retry is not asyncio.current_task():
            self._retry.cancel()  # asleep or waiting for the busy lock: one retry at a time
        self._retry = asyncio.create_task(
            self._retry_intake(self.fault.retry_at - time.monotonic()))

    async def _retry_intake(self, delay: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.stopping.wait(), max(0.0, delay))
        if not self.stopping.is_set():
            await self.cycle(wait=True)

    async def _send_during_intake(self, done: asyncio.Event) -> None:
        committed = self.app.intake.committed
        while not done.is_set():
            await committed.wait()
            committed.clear()
            if not done.is_set() and not await self._send():
                return  # the sender failed: the send after the intake tries again

    async def _send(self) -> bool:
        """Send what is due; False when sending failed (logged)."""
        app = self.app
        try:
            sent, failed = await drain(app.store, app.sender, app.clock,
                                       retry=retry_policy(app.cfg.smtp),
                                       lease=app.cfg.smtp.lease_seconds,
                                       should_stop=self.stopping.is_set,
                                       tell=owner_notice(app.site), outage=self.outage)
        except Exception as e:  # noqa: BLE001 - a database away or read-only, a disk: retried
            log.error("sending failed, will retry next cycle: %s", faults.environmental(e))
            return False
        self.sent += sent
        self.send_failures += failed
        self.watch.drained(sent)
        return not failed

    async def _timers(self) -> None:
        now = self.app.clock()
        try:
            self.fired += (await self.sweeper.timers(now)).fired
        except Exception as e:  # noqa: BLE001 - a database away or read-only, a disk: retried
            log.error("timer sweep failed, will retry: %s", faults.environmental(e))
        try:
            self.digests += await self.sweeper.digest(now)
        except Exception as e:  # noqa: BLE001 - e.g. a broken digest template: keep running
            fault = faults.classify(e)
            if fault.kind == faults.ENVIRONMENT and fault.certain:
                log.error("digest failed, will retry: %s", fault)
            else:
                log.exception("digest failed, will retry at the next sweep")

    def warn_uncovered_years(self) -> None:
        """Loudly, at start-up: a year without official holiday data lacks its 调休 days."""
        settings = self.sweeper.calendar.settings
        year = self.app.clock().astimezone(self.sweeper.tz).year
        for y in uncovered_years(settings, (year, year + 1)):
            log.warning("%s", uncovered_warning(settings, y))

    async def run(self, once: bool) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.stop, sig)
        loop.add_signal_handler(signal.SIGHUP, self.hup)
        watchdog = asyncio.create_task(self.systemd.watchdog(self.stopping))
        self._once = once
        if self.config_path is not None and not once:
            self.reloader = Reloader(self, self.config_path)
        http = self._serve_metrics(once)  # [metrics] listen: /metrics and /healthz
        if not await self._open():
            http.close()
            return  # stopped while waiting for the database
        self.watch.opened()
        self.warn_uncovered_years()
        try:
            if once:
                await self.cycle(timers=True)
                if self.fault.fault is not None:
                    raise FaultExit(f"maild: intake failed: {self.fault.fault}")
            else:
                await self._forever()
        finally:
            async with self._busy:
                await self.app.sender.close()
                await self.app.store.close()
                self.app.store.journal.close()  # every delivery in it is marked by now
                await asyncio.to_thread(self.app.intake.close)
            for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
                loop.remove_signal_handler(sig)
            watchdog.cancel()
            http.close()
            log.info("exit: %s sent=%d send_failures=%d timers_fired=%d digests=%d",
                     self.app.intake.counters.line(), self.sent, self.send_failures,
                     self.fired, self.digests)

    async def _open(self) -> bool:
        """Open the store and check that it takes a write. One that cannot be used yet (a
        server down, a file or server read-only) is tried again with backoff, each time on
        a new connection, and logged once; ``--once`` exits non-zero instead. False when
        stopped while waiting."""
        store = self.app.store
        while True:
            try:
                await store.open(migrate="empty")  # an existing database: maild db upgrade
                try:
                    await store.probe()
                except Exception:
                    with contextlib.suppress(Exception):
                        await store.close()
                    raise
            except SchemaError:
                raise
            except Exception as e:  # noqa: BLE001 - the database is not usable (yet)
                fault = faults.environmental(e)
                if self._once:
                    raise FaultExit(f"maild: database unusable: {fault}") from e
                if self.fault.failed(fault):
                    log.error("database unusable: %s: retrying with backoff", fault)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.stopping.wait(),
                                           max(0.0, self.fault.retry_at - time.monotonic()))
                if self.stopping.is_set():
                    return False
                continue
            took = self.fault.cleared()
            if took is not None:
                log.warning("database usable after %.0f s, %d failed attempts", *took)
            return True

    async def _forever(self) -> None:
        scheduler = AsyncIOScheduler(timezone="UTC")
        scheduler.add_job(self.cycle, "interval", seconds=self.app.cfg.mailbox.poll_interval,
                          id="cycle", max_instances=1, coalesce=True,
                          next_run_time=datetime.now().astimezone())
        scheduler.add_job(self.cycle, "interval", seconds=self.app.cfg.timers.sweep_seconds,
                          id="timers", kwargs={"intake": False, "timers": True},
                          max_instances=1, coalesce=True,
                          next_run_time=datetime.now().astimezone())
        d = self.app.cfg.digest
        if d.enabled:
            hour, minute = (int(x) for x in d.time.split(":"))
            scheduler.add_job(self.cycle, "cron", day_of_week=d.weekday, hour=hour,
                              minute=minute, timezone=self.sweeper.tz, id="digest",
                              kwargs={"intake": False, "timers": True, "wait": True},
                              max_instances=1, coalesce=True,
                              misfire_grace_time=int(d.catch_up_hours * 3600))
        scheduler.start()
        self.push.start()  # a cycle as soon as mail lands (IMAP IDLE, Maildir new/)
        try:
            await self.stopping.wait()
        finally:
            await self.push.stop()
            await self._shutdown(scheduler)

    async def _shutdown(self, scheduler: AsyncIOScheduler) -> None:
        """A graceful stop: no run starts any more; the run in hand, told by ``stopping``,
        decides the mail in hand (or leaves it untouched), lets the letter in flight finish,
        marks what went out and gives back the letters it had not tried; only then does the
        scheduler go, cancelling nothing but runs still waiting for their turn."""
        scheduler.pause()
        async with self._busy:
            scheduler.shutdown(wait=False)


