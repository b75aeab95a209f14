"""The store: tortoise-orm over SQLite or PostgreSQL, raw bytes on disk beside it.

Each part is a module of its own: ``db`` (the connection), ``inbox`` (the inbound ledger),
``cases`` (a decision persisted in one transaction, letters rendered into the outbox),
``outbox`` (leasing and marking letters), ``queries`` (what the command line reads),
``timers`` (firing due timers once) and ``digest`` (the digest's numbers). ``Store`` is all
of them over one connection.
"""

from __future__ import annotations

from maild.store.cases import ApplyEnv, Cases, set_timer
from maild.store.db import Database, tortoise_url
from maild.store.inbox import DECIDED, Inbox, Kept
from maild.store.outbox import OutboxQueue, Outgoing
from maild.store.queries import Queries, case_dict
from maild.store.schema import SchemaError


class Store(Database, Inbox, Cases, OutboxQueue, Queries):
    """The whole store over one database connection."""


__all__ = ["DECIDED", "ApplyEnv", "Kept", "Outgoing", "SchemaError", "Store", "case_dict",
           "set_timer", "tortoise_url"]
