"""The scheduler's periodic work: fire due timers, send the weekly digest when it is due.

Both take ``now`` as a parameter; the daemon passes its clock (fixed by ``--now``).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from maild.calendar import BusinessCalendar
from maild.config import Config, Manager
from maild.digest import Labels, Schedule, context, period, week_key
from maild.directory import Directory
from maild.effects import SendLetter
from maild.handlers import load_site_processes
from maild.letters import Letters
from maild.process import ProcessDef
from maild.store import ApplyEnv, Store
from maild.store.digest import already_sent, gather, record_and_enqueue
from maild.store.timers import SweepCounts, sweep
from maild.timers import EscalationPolicy, FireContext, WorkingDuration

log = logging.getLogger("maild.timers")
digest_log = logging.getLogger("maild.digest")


def labels(procs: Mapping[str, ProcessDef], language: str) -> Labels:
    """Process and step names from the process definitions."""
    return Labels({name: p.label(language) for name, p in procs.items()},
                  {(name, sid): step.label(language)
                   for name, p in procs.items() for sid, step in p.steps.items()})


class Sweeper:
    def __init__(self, cfg: Config, store: Store, letters: Letters,
                 calendar: BusinessCalendar | None = None,
                 processes: Mapping[str, ProcessDef] | None = None) -> None:
        self.cfg = cfg
        self.store = store
        self.letters = letters
        self.calendar = calendar or BusinessCalendar(cfg.calendar.settings())
        self.directory = Directory(cfg.directory, cfg.routing.staff_domains,
                                   cfg.organisation.address)
        self.policy = EscalationPolicy.from_config(cfg.escalation)
        self.tz = ZoneInfo(cfg.calendar.timezone)
        self.schedule = Schedule.from_config(cfg.digest, cfg.calendar.timezone)
        self.digest_language = cfg.digest.language or cfg.organisation.language
        procs = processes if processes is not None else load_site_processes(cfg)
        self.labels = labels(procs, self.digest_language)
        self.step_labels = labels(procs, cfg.organisation.language).steps

    def apply_env(self, now: datetime) -> ApplyEnv:
        return ApplyEnv.for_site(self.cfg, self.letters, self.calendar, now)

    def fire_context(self, now: datetime) -> FireContext:
        org = self.cfg.organisation
        return FireContext(now, self.calendar, self.directory, org.name, org.language,
                           self.policy, self.step_labels)

    async def timers(self, now: datetime) -> SweepCounts:
        """Fire every timer due at ``now``; each exactly once across sweepers and restarts."""
        t = self.cfg.timers
        now = now.astimezone(UTC)  # the database compares UTC (SQLite: as text)
        return await sweep(self.store, self.apply_env(now), self.fire_context(now),
                           batch=t.batch_size, lease=timedelta(seconds=t.lease_seconds))

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
                            departments=departments, limit=d.list_limit)
        return context(data, per=per, now=now, tz=self.tz, language=self.digest_language,
                       org_name=self.cfg.organisation.name, manager_name=manager_name,
                       departments=departments, labels=self.labels, limit=d.list_limit)
