"""The digest's numbers, aggregated in SQL so they stay fast at 100k cases, and its sending:
each manager's digest is written to the outbox in one transaction with a ``digests`` row
whose unique key (week and manager) makes the weekly digest go out once, across restarts
and with several daemons on one database.

Every query filters on indexed columns (``cases(status, process, step)``,
``cases(opened_at)``, ``cases(closed_at)``, ``timers(kind, state, due_at)``) and returns
counts or a few rows; the lists are limited in SQL.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Sequence
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING, Any

from tortoise import Tortoise
from tortoise.exceptions import IntegrityError
from tortoise.transactions import in_transaction

from maild.engine.effects import SendLetter
from maild.schedule.digest import (
    Bounce,
    Dated,
    Deadline,
    DigestData,
    Period,
    Rated,
    Satisfaction,
)
from maild.store.models import DigestSent

if TYPE_CHECKING:
    from maild.store import ApplyEnv, Store

log = logging.getLogger("maild.digest")

OPEN = "c.status IN ('open', 'waiting')"


class _Query:
    """SQL text portable between SQLite and PostgreSQL: placeholders, times, JSON fields."""

    def __init__(self, store: Store, departments: Sequence[str],
                 people: Sequence[str] = ()) -> None:
        self.conn = Tortoise.get_connection(store.conn)
        self.pg = store.conn != "sqlite"
        self.departments = list(departments)
        self.people = [p.lower() for p in people]

    def at(self, dt: datetime) -> Any:
        # SQLite keeps tortoise's UTC text ("2026-12-01 02:00:00+00:00"): compare as text
        return dt if self.pg else dt.astimezone(UTC).isoformat(" ")

    def json(self, column: str, key: str) -> str:
        return f"({column}->>'{key}')" if self.pg else f"json_extract({column}, '$.{key}')"

    def scope(self) -> tuple[str, list[Any]]:
        if not self.departments:
            return "", []
        marks = ", ".join("?" for _ in self.departments)
        if not self.people:
            return f" AND c.department IN ({marks})", list(self.departments)
        # customer and supplier cases belong to their contact's (buyer's, account
        # manager's) department: maild.schedule.firing.owner_department
        who = ", ".join("?" for _ in self.people)
        return (f" AND (c.department IN ({marks}) OR c.process <> 'internal' AND "
                f"{self.json('c.data', 'contact')} IN ({who}))",
                [*self.departments, *self.people])

    async def rows(self, sql: str, params: Sequence[Any]) -> list[dict[str, Any]]:
        if self.pg:
            parts = sql.split("?")
            sql = parts[0] + "".join(f"${i}{p}" for i, p in enumerate(parts[1:], 1))
        return list(await self.conn.execute_query_dict(sql, list(params)))


def _dt(value: Any) -> datetime:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    return datetime.fromisoformat(str(value))


def _data(value: Any) -> dict[str, Any]:
    if isinstance(value, dict):
        return value
    try:
        out = json.loads(value) if value else {}
    except (TypeError, ValueError):
        return {}
    return out if isinstance(out, dict) else {}


def _owner(data: dict[str, Any]) -> str:
    owner = data.get("owner")
    if isinstance(owner, list):
        return ", ".join(str(o) for o in owner)
    return str(owner or "")


async def gather(store: Store, *, now: datetime, per: Period, risk_until: datetime,
                 departments: Sequence[str] = (), limit: int = 10,
                 people: Sequence[str] = ()) -> DigestData:
    """The digest's numbers for a scope of departments (empty: all), at ``now``; ``people``
    (the departments' heads and members) scope customer and supplier cases by contact."""
    q = _Query(store, departments, people)
    scope, sp = q.scope()
    open_rows = await q.rows(
        f"SELECT c.process, c.step, c.status, COUNT(*) AS n FROM cases c WHERE {OPEN}{scope} "
        "GROUP BY c.process, c.step, c.status", sp)
    by_step = [(r["process"], r["step"], r["status"], int(r["n"])) for r in open_rows]

    deadline_from = (f"FROM timers t JOIN cases c ON c.id = t.case_id WHERE {OPEN}{scope} "
                     "AND t.kind = 'deadline' AND t.key = c.step ")
    overdue = ("AND (t.state IN ('pending', 'fired', 'paused') AND t.level > 0 "
               "OR t.state = 'pending' AND t.due_at <= ?)")
    overdue_n, overdue_rows = await _deadlines(q, deadline_from + overdue, [*sp, q.at(now)],
                                               "t.level DESC, t.due_at", limit)
    risk = "AND t.state = 'pending' AND t.level = 0 AND t.due_at > ? AND t.due_at <= ?"
    risk_n, risk_rows = await _deadlines(q, deadline_from + risk,
                                         [*sp, q.at(now), q.at(risk_until)], "t.due_at", limit)
    chase = (f"FROM timers t JOIN cases c ON c.id = t.case_id WHERE {OPEN}{scope} "
             "AND t.kind = 'chase' AND (t.state IN ('pending', 'fired') AND t.level > 0 "
             "OR t.state = 'pending' AND t.due_at <= ?)")
    delays_n, delay_rows = await _deadlines(q, chase, [*sp, q.at(now)],
                                            "t.level DESC, t.due_at", limit)
    first, after = per.coming
    ms_n, milestones = await _dated(q, "milestone", "date", "title", first, after, limit)
    # action items stay listed until done (#done cancels their timer), overdue ones first
    act_n, actions = await _dated(q, "action_reminder", "due", "action", None, after, limit)
    bounces_n, bounces = await _bounces(q, per, limit)
    return DigestData(
        by_step, overdue_n, overdue_rows, risk_n, risk_rows, ms_n, milestones, act_n, actions,
        delays_n, delay_rows, await _per_day(q, "opened_at", per),
        await _per_day(q, "closed_at", per), bounces_count=bounces_n, bounces=bounces,
        satisfaction=await _satisfaction(q, per))


async def _deadlines(q: _Query, where: str, params: list[Any], order: str,
                     limit: int) -> tuple[int, list[Deadline]]:
    # COUNT(*) OVER (): the total before LIMIT, in the same scan as the listed rows
    rows = await q.rows(
        "SELECT c.number, c.subject, c.process, c.step, c.department, c.urgent, t.kind, "
        f"t.due_at, t.level, t.data, COUNT(*) OVER () AS total {where} "
        f"ORDER BY {order} LIMIT {int(limit)}", params)
    out = []
    for r in rows:
        data = _data(r["data"])
        out.append(Deadline(
            r["number"], r["subject"], r["process"], r["step"],
            r["department"] or str(data.get("department") or ""),  # the owner's, external
            _dt(r["due_at"]), int(r["level"]), bool(r["urgent"]), _owner(data), r["kind"],
            str(data.get("what") or ""), str(data.get("deadline") or "")))
    return (int(rows[0]["total"]) if rows else 0), out


async def _dated(q: _Query, kind: str, key: str, title: str, first: date | None, after: date,
                 limit: int) -> tuple[int, list[Dated]]:
    scope, sp = q.scope()
    day = q.json("t.data", key)
    since = f"AND {day} >= ? " if first is not None else ""
    where = (f"FROM timers t JOIN cases c ON c.id = t.case_id WHERE {OPEN}{scope} "
             f"AND t.kind = ? AND t.state IN ('pending', 'fired') {since}AND {day} < ?")
    params = [*sp, kind, *([first.isoformat()] if first is not None else []),
              after.isoformat()]
    rows = await q.rows(f"SELECT c.number, c.subject, t.key, t.data, COUNT(*) OVER () AS total "
                        f"{where} ORDER BY {day}, c.number LIMIT {int(limit)}", params)
    out = []
    for r in rows:
        data = _data(r["data"])
        out.append(Dated(str(data.get(key) or ""), r["number"], r["subject"],
                         str(data.get(title) or r["key"]), _owner(data)))
    return (int(rows[0]["total"]) if rows else 0), out


async def _per_day(q: _Query, column: str, per: Period) -> list[int]:
    """Cases opened (or closed) on each of the period's seven days, in one range scan."""
    scope, sp = q.scope()
    bounds = [datetime.combine(d, per.start.timetz()) for d in per.days] + [per.end]
    sums = ", ".join(f"SUM(CASE WHEN c.{column} >= ? AND c.{column} < ? THEN 1 ELSE 0 END) "
                     f"AS d{i}" for i in range(7))
    params: list[Any] = []
    for i in range(7):
        params += [q.at(bounds[i]), q.at(bounds[i + 1])]
    [row] = await q.rows(f"SELECT {sums} FROM cases c WHERE c.{column} >= ? "
                         f"AND c.{column} < ?{scope}",
                         [*params, q.at(per.start), q.at(per.end), *sp])
    return [int(row[f"d{i}"] or 0) for i in range(7)]


async def _bounces(q: _Query, per: Period, limit: int) -> tuple[int, list[Bounce]]:
    """Letters that did not arrive, newest first: addresses a delivery report marked on open
    cases (or cases closed in the period) during the period, letters given up in the period,
    and letters held because their address bounced (until someone retries or cancels them).
    Each query reads an index (``cases`` by status or ``closed_at``, ``outbox`` by state)."""
    scope, sp = q.scope()
    out: list[Bounce] = []
    marked = await q.rows(
        f"SELECT c.number, c.subject, c.data FROM cases c WHERE ({OPEN} OR c.closed_at >= ?)"
        f"{scope} AND {q.json('c.data', 'bounced')} IS NOT NULL", [q.at(per.start), *sp])
    for r in marked:
        for addr, b in (_data(r["data"]).get("bounced") or {}).items():
            try:
                at = _dt(b.get("at"))
            except (TypeError, ValueError):
                continue
            if at >= per.start:  # the period and today until the digest is made
                out.append(Bounce(r["number"], r["subject"], str(addr), "bounced",
                                  str(b.get("status") or ""), at))
    total = len(out)
    out.sort(key=lambda b: b.at, reverse=True)
    out = out[:limit]
    for state, when, since in (("failed", "next_attempt_at", per.start), ("held", "created_at",
                                                                          None)):
        cond = f" AND o.{when} >= ?" if since is not None else ""
        rows = await q.rows(
            f"SELECT c.number, c.subject, o.rcpt, o.last_error, o.{when} AS at, "
            f"COUNT(*) OVER () AS total FROM outbox o LEFT JOIN cases c ON c.id = o.case_id "
            f"WHERE o.state = ?{cond}{scope} ORDER BY o.{when} DESC LIMIT {int(limit)}",
            [state, *([q.at(since)] if since is not None else []), *sp])
        total += int(rows[0]["total"]) if rows else 0
        for r in rows:
            rcpt = r["rcpt"] if isinstance(r["rcpt"], list) else json.loads(r["rcpt"] or "[]")
            error = " ".join(str(r["last_error"] or "").split())
            out.append(Bounce(r["number"] or "", r["subject"] or "", ", ".join(rcpt), state,
                              error[:80] + ("…" if len(error) > 80 else ""), _dt(r["at"])))
    out.sort(key=lambda b: b.at, reverse=True)
    return total, out[:limit]


async def _satisfaction(q: _Query, per: Period) -> Satisfaction:
    """The survey answers given in the period (``data.satisfaction.at``, UTC ISO text, set by
    ``maild.handlers.customer``): customer cases opened before the period's end and still
    open or closed since its start (a survey answer comes before the archive)."""
    scope, sp = q.scope()
    at = ("(c.data->'satisfaction'->>'at')" if q.pg
          else "json_extract(c.data, '$.satisfaction.at')")
    start, end = per.start.astimezone(UTC).isoformat(), per.end.astimezone(UTC).isoformat()
    rows = await q.rows(
        f"SELECT c.number, c.subject, c.data FROM cases c WHERE c.process = 'customer' "
        f"AND ({OPEN} OR c.closed_at >= ?) AND {at} >= ? AND {at} < ?{scope} "
        "ORDER BY c.number", [q.at(per.start), start, end, *sp])
    scores: list[int] = []
    unsure = 0
    low: list[Rated] = []
    for r in rows:
        data = _data(r["data"])
        answer = data.get("satisfaction") or {}
        score = answer.get("score")
        if not isinstance(score, int) or not 1 <= score <= 5:
            unsure += 1
            continue
        scores.append(score)
        if score <= 2:
            low.append(Rated(r["number"], r["subject"], str(data.get("customer") or ""), score,
                             str(answer.get("basis") or "")))
    low.sort(key=lambda x: (x.score, x.number))
    return Satisfaction(tuple(scores), unsure, tuple(low))


# -- sending ----------------------------------------------------------------------------

async def already_sent(week: str, manager: str) -> bool:
    return await DigestSent.filter(key=f"{week} {manager}").exists()


async def record_and_enqueue(store: Store, env: ApplyEnv, letter: SendLetter, week: str,
                             manager: str, *, manual: bool = False) -> str | None:
    """Queue one manager's digest; None when this week's was already queued (by anyone)."""
    key = f"{week} {manager}" + (f" manual {uuid.uuid4().hex[:12]}" if manual else "")
    try:
        async with in_transaction(store.conn):
            # the row first: a second daemon blocks here (PostgreSQL) and then fails
            row = await DigestSent.create(key=key, week=week, manager=manager, message_id="",
                                          created_at=env.now)
            mid = await store.enqueue(letter, None, env)
            row.message_id = mid or ""
            await row.save(update_fields=["message_id"])
    except IntegrityError:
        log.info("digest %s for %s was already sent", week, manager)
        return None
    return mid

