"""The daemon's lifecycle: one cycle (``--once``) or polling until SIGTERM/SIGINT."""

from __future__ import annotations

import asyncio
import logging
import signal
from datetime import datetime

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from tortoise.exceptions import DBConnectionError

from maild.app import App
from maild.config import Config
from maild.sender import drain
from maild.sources.base import MailSourceError

log = logging.getLogger("maild.daemon")


class Daemon:
    def __init__(self, app: App) -> None:
        self.app = app
        self.stopping = asyncio.Event()
        self._busy = asyncio.Lock()  # one cycle at a time; shutdown waits for it
        self.sent = self.send_failures = 0

    def stop(self) -> None:
        if not self.stopping.is_set():
            log.info("stopping: finishing the message in hand")
            self.stopping.set()

    async def cycle(self) -> None:
        """Poll the mailbox once, then send what is due. Errors are logged, never fatal."""
        if self._busy.locked():
            return
        async with self._busy:
            app = self.app
            try:
                await app.intake.poll(self.stopping.is_set)
            except (MailSourceError, DBConnectionError, OSError) as e:
                log.error("intake failed, will retry next cycle: %s", e)
            finally:
                await asyncio.to_thread(app.source.close)
            try:
                sent, failed = await drain(app.store, app.sender, app.clock,
                                           max_attempts=app.cfg.smtp.max_attempts,
                                           lease=app.cfg.smtp.lease_seconds,
                                           should_stop=self.stopping.is_set)
                self.sent += sent
                self.send_failures += failed
            except (DBConnectionError, OSError) as e:
                log.error("sending failed, will retry next cycle: %s", e)

    async def run(self, once: bool) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.stop)
        await self.app.store.open()
        try:
            if once:
                await self.cycle()
            else:
                await self._forever()
        finally:
            async with self._busy:
                await self.app.sender.close()
                await self.app.store.close()
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.remove_signal_handler(sig)
            log.info("exit: %s sent=%d send_failures=%d", self.app.intake.counters.line(),
                     self.sent, self.send_failures)

    async def _forever(self) -> None:
        scheduler = AsyncIOScheduler(timezone="UTC")
        scheduler.add_job(self.cycle, "interval", seconds=self.app.cfg.mailbox.poll_interval,
                          id="cycle", max_instances=1, coalesce=True,
                          next_run_time=datetime.now().astimezone())
        scheduler.start()
        try:
            await self.stopping.wait()
        finally:
            scheduler.shutdown(wait=False)


def run(cfg: Config, *, once: bool, now: datetime | None = None) -> App:
    app = App.build(cfg, now)
    asyncio.run(Daemon(app).run(once))
    return app
