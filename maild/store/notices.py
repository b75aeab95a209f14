"""The notice that commands were not run because their sender is not proven goes to one
address once an hour at most: the outbox itself is the memory (it survives restarts)."""

from __future__ import annotations

from datetime import UTC, timedelta
from typing import TYPE_CHECKING

from maild.engine.effects import SendLetter
from maild.engine.operations import UNPROVEN_LETTER
from maild.store.models import Case, Outbox, TimelineEntry

if TYPE_CHECKING:
    from maild.store.cases import ApplyEnv

EVERY = timedelta(hours=1)


async def told_lately(letter: SendLetter, case: Case | None, env: ApplyEnv) -> bool:
    """True when ``letter`` is an unproven-command notice and its address was sent one in
    the last hour; then it is not sent again, and the case's timeline says so."""
    if letter.letter != UNPROVEN_LETTER or not letter.to:
        return False
    addr = letter.to[0]
    since = env.now.astimezone(UTC) - EVERY
    if not await Outbox.filter(letter=UNPROVEN_LETTER, rcpt_key=addr,
                               created_at__gte=since).exists():
        return False
    if case is not None:
        await TimelineEntry.create(case=case, at=env.now, kind="notice_skipped", actor="maild",
                                   message_id=None,
                                   text=f"「未验证的命令」通知 → {addr}：一小时内已通知过，不再重复"
                                   if env.language != "en" else
                                   f"unproven-command notice → {addr}: already told within "
                                   "the hour")
    return True
