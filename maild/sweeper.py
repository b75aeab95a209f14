"""The scheduler's periodic work: fire due timers, send the weekly digest when it is due.

Both take ``now`` as a parameter; the daemon passes its clock (fixed by ``--now``).
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from maild.calendar import BusinessCalendar
from maild.config import Config
from maild.directory import Directory
from maild.letters import Letters
from maild.store import ApplyEnv, Store
from maild.store.timers import SweepCounts, sweep
from maild.timers import EscalationPolicy, FireContext

log = logging.getLogger("maild.timers")


class Sweeper:
    def __init__(self, cfg: Config, store: Store, letters: Letters,
                 calendar: BusinessCalendar | None = None) -> None:
        self.cfg = cfg
        self.store = store
        self.letters = letters
        self.calendar = calendar or BusinessCalendar(cfg.calendar.settings())
        self.directory = Directory(cfg.directory, cfg.routing.staff_domains,
                                   cfg.organisation.address)
        self.policy = EscalationPolicy.from_config(cfg.escalation)
        self.tz = ZoneInfo(cfg.calendar.timezone)

    def apply_env(self, now: datetime) -> ApplyEnv:
        org, n = self.cfg.organisation, self.cfg.numbering
        return ApplyEnv(now=now, tz=self.tz,
                        numbering={"internal": n.internal, "customer": n.customer,
                                   "supplier": n.supplier},
                        letters=self.letters, from_addr=org.address, org_name=org.name,
                        msgid_domain=org.msgid_domain,
                        replies_per_hour=self.cfg.limits.replies_per_sender_per_hour,
                        calendar=self.calendar)

    def fire_context(self, now: datetime) -> FireContext:
        org = self.cfg.organisation
        return FireContext(now, self.calendar, self.directory, org.name, org.language,
                           self.policy)

    async def timers(self, now: datetime) -> SweepCounts:
        """Fire every timer due at ``now``; each exactly once across sweepers and restarts."""
        t = self.cfg.timers
        now = now.astimezone(UTC)  # the database compares UTC (SQLite: as text)
        return await sweep(self.store, self.apply_env(now), self.fire_context(now),
                           batch=t.batch_size, lease=timedelta(seconds=t.lease_seconds))
