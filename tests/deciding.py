"""Deciding one raw mail the way the intake does, without a mailbox: the tests' builder for
a store that has seen some mail (record, parse, classify, decide, apply)."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from pathlib import Path

from support import NOW, make_config

from maild.adapters.letters import Letters
from maild.adapters.sources.base import Fetched
from maild.classify.rules import subject_tags
from maild.mail.parse import parse_mail
from maild.runners.intake import Intake
from maild.site import Site
from maild.store import Store
from maild.store.models import Message


class Deciding:
    """Decide and apply one raw mail the way the intake does, without a mailbox."""

    def __init__(self, store: Store, base: Path, letters: Letters | None = None,
                 extra: str = "", security: str = "") -> None:
        self.store = store
        self.cfg = make_config(base, extra, security=security)
        site = Site.build(self.cfg, create_secret=True)  # as `maild run`: tokens on
        self.site = site if letters is None else replace(site, letters=letters)
        self.intake = Intake(self.site, None, store, lambda: NOW)  # type: ignore[arg-type]
        self.uid = 0

    def limit_replies(self, per_hour: int) -> None:
        limits = self.cfg.limits.model_copy(update={"replies_per_sender_per_hour": per_hour})
        self.site = replace(self.site, cfg=self.cfg.model_copy(update={"limits": limits}))
        self.intake.site = self.site

    async def feed(self, raw: bytes, now: datetime = NOW) -> tuple[Message, str | None]:
        self.uid += 1
        [row] = await self.store.record_fetched(
            "test", 1, self.store.keep_raw([Fetched(self.uid, raw)]), now)
        m = parse_mail(raw)
        known = await self.store.known(m, subject_tags(m.subject))
        cls = self.site.classify(m, known)
        case = await self.store.case_view(cls.case_number) if cls.case_number else None
        decision = self.site.decide(m, cls, case, now)
        number = await self.store.apply(row, m, cls, decision, self.intake.apply_env(now),
                                        "Processed")
        return row, number
