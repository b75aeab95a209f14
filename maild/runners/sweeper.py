"""The scheduler's periodic work: fire due timers, send the weekly digest when it is due.

Both take ``now`` as a parameter; the daemon passes its clock (fixed by ``--now``).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from maild.calendar.durations import WorkingDuration
from maild.config import Manager
from maild.engine.effects import SendLetter
from maild.schedule.digest import Schedule, context, period, week_key
from maild.schedule.firing import FireContext, people_of
from maild.site import Site
from maild.store import ApplyEnv, Store
from maild.store.digest import already_sent, gather, record_and_enqueue
from maild.store.limits import flush
from maild.store.timers import SweepCounts, sweep

log = logging.getLogger("maild.timers")
digest_log = logging.getLogger("maild.digest")


class Sweeper:
    def __init__(self, site: Site, store: Store) -> None:
        self.site = site
        self.cfg = cfg = site.cfg
        self.store = store
        self.calendar = site.calendar
        self.tz = ZoneInfo(cfg.calendar.timezone)
        self.schedule = Schedule.from_config(cfg.digest, cfg.calendar.timezone,
                                             site.calendar.is_working_day)
        self.digest_language = cfg.digest.language or cfg.organisation.language
        self.labels = site.labels(self.digest_language)

    def apply_env(self, now: datetime) -> ApplyEnv:
        return ApplyEnv.for_site(self.site, now)

    def fire_context(self, now: datetime) -> FireContext:
        return self.site.fire_context(now)

    async def timers(self, now: datetime) -> SweepCounts:
        """Fire every timer due at ``now``; each exactly once across sweepers and restarts."""
        t = self.cfg.timers
        now = now.astimezone(UTC)  # the database compares UTC (SQLite: as text)
        counts = await sweep(self.store, self.apply_env(now), self.fire_context(now),
                             batch=t.batch_size, lease=timedelta(seconds=t.lease_seconds))
        # notices folded over the hourly limit, whose summary is due (maild.store.limits)
        await flush(self.store, self.apply_env(now), org_language=self.cfg.organisation.language,
                    prune=True)
        return counts

    # -- the weekly digest ----------------------------------------------------------------

    async def digest(self, now: datetime) -> int:
        """Queue this week's digest for every manager who has not had it; 0 when not due."""
        if not self.cfg.digest.enabled:
            return 0
        now = now.astimezone(UTC)
        week = self.schedule.due_week(now)
        if week is None:
            return 0
        sent = 0
        for m in self.cfg.directory.managers:
            if await already_sent(week, m.address):
                continue
            if await record_and_enqueue(self.store, self.apply_env(now),
                                        await self.digest_letter(now, m), week, m.address):
                digest_log.info("digest %s queued for %s", week, m.address)
                sent += 1
        return sent

    async def send_digest_now(self, now: datetime) -> int:
        """``maild digest --send``: every manager's digest, now, whatever the schedule."""
        now = now.astimezone(UTC)
        week = week_key(now.astimezone(self.tz))
        sent = 0
        for m in self.cfg.directory.managers:
            if await record_and_enqueue(self.store, self.apply_env(now),
                                        await self.digest_letter(now, m), week, m.address,
                                        manual=True):
                sent += 1
        return sent

    async def digest_letter(self, now: datetime, manager: Manager) -> SendLetter:
        ctx = await self.digest_context(now, manager.departments, manager.name)
        return SendLetter("digest", (manager.address,), ctx, self.digest_language,
                          automatic=False)

    async def digest_context(self, now: datetime, departments: Sequence[str] = (),
                             manager_name: str = "") -> dict[str, Any]:
        d = self.cfg.digest
        now = now.astimezone(UTC)
        per = period(now, self.tz)
        risk_until = WorkingDuration.parse(d.at_risk_within).after(self.calendar, now)
        data = await gather(self.store, now=now, per=per, risk_until=risk_until,
                            departments=departments, limit=d.list_limit,
                            people=people_of(self.site.directory, departments))
        return context(data, per=per, now=now, tz=self.tz, language=self.digest_language,
                       org_name=self.cfg.organisation.name, manager_name=manager_name,
                       departments=departments, labels=self.labels, limit=d.list_limit)
