"""Tortoise models: cases, their timelines, every message in and out, the outbox."""

from __future__ import annotations

from typing import Any

from tortoise import fields
from tortoise.models import Model

#: RFC 5322 caps a header line at 998 characters; an id longer than that is not mail.
MESSAGE_ID_MAX = 998


class Case(Model):
    id = fields.IntField(primary_key=True)
    number = fields.CharField(64, unique=True)
    process = fields.CharField(16)  # internal / customer / supplier
    step = fields.CharField(32)
    status = fields.CharField(16, default="open")  # open / waiting / closed / archived
    subject = fields.TextField()
    department = fields.CharField(64, null=True)
    urgent = fields.BooleanField(default=False)
    language = fields.CharField(8, default="zh")
    # external and staff addresses on the case
    parties: fields.JSONField[list[str]] = fields.JSONField(default=list)
    opened_at = fields.DatetimeField()
    updated_at = fields.DatetimeField()
    due_at = fields.DatetimeField(null=True)
    closed_at = fields.DatetimeField(null=True)
    data: fields.JSONField[dict[str, Any]] = fields.JSONField(default=dict)  # process state
    # addresses answering for the current step
    owner: fields.JSONField[list[str]] = fields.JSONField(default=list)

    class Meta:
        table = "cases"
        # the digest's aggregates: open cases by step, per department, opened/closed per day
        indexes = (("status", "process", "step"), ("department", "status", "process", "step"),
                   ("opened_at",), ("closed_at",))


class TimelineEntry(Model):
    id = fields.IntField(primary_key=True)
    case: fields.ForeignKeyRelation[Case] = fields.ForeignKeyField(
        "maild.Case", related_name="timeline", on_delete=fields.CASCADE)
    at = fields.DatetimeField()
    kind = fields.CharField(32)
    actor = fields.CharField(320)
    message_id = fields.CharField(MESSAGE_ID_MAX, null=True)
    text = fields.TextField()

    class Meta:
        table = "timeline"
        ordering = ["id"]
        indexes = (("case_id", "id"),)  # a case's timeline, in order


class Message(Model):
    """Every message seen or written: inbound (with its mailbox position) and outbound."""

    id = fields.IntField(primary_key=True)
    direction = fields.CharField(3)  # in / out
    message_id = fields.CharField(MESSAGE_ID_MAX, default="", db_index=True)
    case: fields.ForeignKeyNullableRelation[Case] = fields.ForeignKeyField(
        "maild.Case", related_name="messages", null=True, on_delete=fields.SET_NULL)
    mailbox = fields.CharField(255, null=True)
    uidvalidity = fields.BigIntField(null=True)
    uid = fields.BigIntField(null=True)
    raw_size = fields.IntField(default=0)
    raw_path = fields.CharField(255, default="")  # relative to the raw store
    sha256 = fields.CharField(64, default="", db_index=True)
    # in: received / processed / quarantined / duplicate; out: queued
    state = fields.CharField(16)
    route = fields.CharField(32, default="")  # where the mailbox copy went: Processed, ...
    reason = fields.TextField(null=True)
    moved = fields.BooleanField(default=False)
    sender = fields.CharField(320, default="")
    subject = fields.TextField(default="")
    at = fields.DatetimeField()
    rules: fields.JSONField[dict[str, Any] | None] = fields.JSONField(null=True)

    class Meta:
        table = "messages"
        unique_together = (("mailbox", "uidvalidity", "uid"),)
        indexes = (("case_id", "id"),)  # a case's messages, e.g. to thread its reminders


class Outbox(Model):
    id = fields.IntField(primary_key=True)
    case: fields.ForeignKeyNullableRelation[Case] = fields.ForeignKeyField(
        "maild.Case", related_name="outbox", null=True, on_delete=fields.SET_NULL)
    message_id = fields.CharField(MESSAGE_ID_MAX, unique=True)
    letter = fields.CharField(64)
    mail_from = fields.CharField(320)
    rcpt: fields.JSONField[list[str]] = fields.JSONField()
    rcpt_key = fields.CharField(320, default="", db_index=True)  # first recipient, for limits
    automatic = fields.BooleanField(default=True)
    body = fields.BinaryField()  # the composed letter, exactly as it will be sent
    state = fields.CharField(16, default="pending", db_index=True)  # pending / sent / failed
    attempts = fields.IntField(default=0)
    next_attempt_at = fields.DatetimeField()
    lease_until = fields.DatetimeField(null=True)
    lease_owner = fields.CharField(64, null=True)
    last_error = fields.TextField(null=True)
    created_at = fields.DatetimeField()
    sent_at = fields.DatetimeField(null=True)

    class Meta:
        table = "outbox"
        indexes = (("lease_owner",),)  # the sender finds its leased rows by owner


class Timer(Model):
    """A deadline, reminder or notice of a case, written in the case change's transaction."""

    id = fields.IntField(primary_key=True)
    case: fields.ForeignKeyRelation[Case] = fields.ForeignKeyField(
        "maild.Case", related_name="timers", on_delete=fields.CASCADE)
    kind = fields.CharField(32)
    key = fields.CharField(128, default="")
    due_at = fields.DatetimeField(db_index=True)
    state = fields.CharField(16, default="pending", db_index=True)  # pending/fired/cancelled
    level = fields.IntField(default=0)  # escalation level reached
    data: fields.JSONField[dict[str, Any]] = fields.JSONField(default=dict)
    created_at = fields.DatetimeField()
    fired_at = fields.DatetimeField(null=True)
    lease_until = fields.DatetimeField(null=True)
    lease_owner = fields.CharField(64, null=True)

    class Meta:
        table = "timers"
        # the sweep (due pending timers) and the digest (escalated, at-risk, by kind)
        indexes = (("state", "due_at"), ("kind", "state", "due_at"), ("kind", "level", "state"))


class DigestSent(Model):
    """A digest letter written to the outbox: ``key`` makes the weekly one happen once."""

    id = fields.IntField(primary_key=True)
    key = fields.CharField(400, unique=True)  # "2026-W50 chen@example.com"; manual: + uuid
    week = fields.CharField(16)
    manager = fields.CharField(320)
    message_id = fields.CharField(MESSAGE_ID_MAX)
    created_at = fields.DatetimeField()

    class Meta:
        table = "digests"


class Attachment(Model):
    """A file a case received, stored once by content (``maild.store.attachments``)."""

    id = fields.IntField(primary_key=True)
    case: fields.ForeignKeyRelation[Case] = fields.ForeignKeyField(
        "maild.Case", related_name="attachments", on_delete=fields.CASCADE)
    message_id = fields.CharField(MESSAGE_ID_MAX, null=True)
    sha256 = fields.CharField(64, db_index=True)
    filename = fields.CharField(255)  # made safe
    content_type = fields.CharField(128, default="application/octet-stream")
    size = fields.IntField()
    output = fields.CharField(64)  # the step output it stands for, e.g. 报价
    path = fields.CharField(255)  # relative to the attachments folder
    at = fields.DatetimeField()

    class Meta:
        table = "attachments"
        unique_together = (("case", "sha256"),)


class Checkpoint(Model):
    source = fields.CharField(255, primary_key=True)
    uidvalidity = fields.BigIntField(default=0)
    last_uid = fields.BigIntField(default=0)

    class Meta:
        table = "checkpoints"


class Counter(Model):
    key = fields.CharField(128, primary_key=True)
    value = fields.IntField(default=0)

    class Meta:
        table = "counters"


class LetterCount(Model):
    """One recipient of one letter maild wrote or held back, for the hourly limits.

    ``state``: ``sent`` (queued), ``dropped`` (an automatic reply over the limit),
    ``folded`` (a staff notice over the limit, waiting for its summary) or ``summarised``
    (in the summary letter ``summary_id``). ``maild.store.limits`` reads and writes it.
    """

    id = fields.IntField(primary_key=True)
    addr = fields.CharField(320)  # lower case
    at = fields.DatetimeField()
    state = fields.CharField(16)
    letter = fields.CharField(64)
    automatic = fields.BooleanField(default=False)
    number = fields.CharField(64, default="")  # the case, if any
    subject = fields.TextField(default="")  # the case's subject, shortened
    language = fields.CharField(8, default="zh")
    summary_id = fields.CharField(MESSAGE_ID_MAX, null=True)

    class Meta:
        table = "letter_counts"
        # the hour's count per address, the folded notices waiting for a summary, pruning
        indexes = (("addr", "at"), ("state", "addr"), ("at",))
