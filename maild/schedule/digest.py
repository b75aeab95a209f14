"""The weekly manager digest, decided purely: when it is due, which days it covers, and the
letter's context (bar widths included) from numbers the store aggregated.

When: every ``digest.weekday`` at ``digest.time`` in the calendar's zone (Monday 09:00 by
default). A daemon that was down then still sends it within ``catch_up_hours``; after that
the week is skipped. Each week has a key (``2026-W50``, the ISO week of the slot) under
which the store records every manager's digest, so it goes out once per week and manager.

What: the *period* is the seven whole days before the day the digest is made (Monday's
digest covers Monday to Sunday of the week before); the *coming week* is the seven days
from that day on. Open cases are counted as they are at ``now``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from maild import config as cfgmod

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_ZH_WEEKDAYS = "一二三四五六日"
_EN_WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_PROCESS_LABELS = {"zh": {"internal": "跨部门协作", "customer": "客户对接",
                          "supplier": "供应商协同"},
                   "en": {"internal": "Internal requests", "customer": "Customers",
                          "supplier": "Suppliers"}}
_LEVELS = {"zh": ("已到期", "已提醒负责人", "已上报部门负责人", "已上报管理层"),
           "en": ("due", "owner reminded", "head told", "managers told")}
_DUE = {"zh": ("已到期", "即将到期"), "en": ("due", "due soon")}
_CHASE_LEVELS = {"zh": ("待回复", "已催办", "已上报部门负责人"),
                 "en": ("awaiting reply", "chased", "head told")}
BAR_PX = 300  # the longest horizontal bar
COLUMN_PX = 90  # the tallest daily column


@dataclass(frozen=True)
class Schedule:
    weekday: int  # 0 = Monday
    at: time
    tz: ZoneInfo
    catch_up: timedelta
    #: the digest day is not a working day: "next_working_day", "skip" or "send"
    on_holiday: str = "send"
    working_day: Callable[[date], bool] | None = None  # the business calendar's

    @classmethod
    def from_config(cls, d: cfgmod.DigestConfig, timezone: str,
                    working_day: Callable[[date], bool] | None = None) -> Schedule:
        return cls(WEEKDAYS.index(d.weekday), time.fromisoformat(d.time), ZoneInfo(timezone),
                   timedelta(hours=d.catch_up_hours), d.on_holiday, working_day)

    def moved(self, slot: datetime) -> datetime | None:
        """When the digest of ``slot`` goes out: the same moment on a working day; the next
        working day at the same time (``next_working_day``), never (``skip``) or anyway
        (``send``) when ``slot`` falls on a statutory holiday or another day off."""
        ok = self.working_day
        if ok is None or self.on_holiday == "send" or ok(slot.date()):
            return slot
        if self.on_holiday == "skip":
            return None
        day = slot.date()
        for _ in range(31):  # the longest run of days off is well under a month
            day += timedelta(days=1)
            if ok(day):
                return datetime.combine(day, self.at, tzinfo=self.tz)
        return None

    def last_slot(self, now: datetime) -> datetime:
        """The latest scheduled moment at or before ``now``."""
        local = now.astimezone(self.tz)
        day = local.date() - timedelta(days=(local.weekday() - self.weekday) % 7)
        slot = datetime.combine(day, self.at, tzinfo=self.tz)
        return slot if slot <= local else slot - timedelta(days=7)

    def due_week(self, now: datetime) -> str | None:
        """The week whose digest is due at ``now`` (within the catch-up window), or None."""
        slot = self.last_slot(now)
        sent = self.moved(slot)
        if sent is None or sent > now:
            return None
        return week_key(slot) if now - sent < self.catch_up else None


def week_key(moment: datetime) -> str:
    year, week, _ = moment.isocalendar()
    return f"{year}-W{week:02d}"


@dataclass(frozen=True)
class Period:
    start: datetime  # local midnight seven days before ``today``
    end: datetime  # local midnight of ``today``
    ahead: datetime  # local midnight seven days after ``today``
    today: date

    @property
    def days(self) -> tuple[date, ...]:
        first = self.start.date()
        return tuple(first + timedelta(days=i) for i in range(7))

    @property
    def coming(self) -> tuple[date, date]:
        """First day of the coming week and the day after its last."""
        return self.today, self.today + timedelta(days=7)


def period(now: datetime, tz: ZoneInfo) -> Period:
    today = now.astimezone(tz).date()

    def midnight(d: date) -> datetime:
        return datetime.combine(d, time(0), tzinfo=tz)

    return Period(midnight(today - timedelta(days=7)), midnight(today),
                  midnight(today + timedelta(days=7)), today)


# -- what the store gathers ----------------------------------------------------------------

@dataclass(frozen=True)
class Deadline:
    number: str
    subject: str
    process: str
    step: str
    department: str
    due_at: datetime  # the deadline, or the next escalation once it passed
    level: int
    urgent: bool
    owner: str
    kind: str = "deadline"  # or "chase"
    what: str = ""  # chase: what the supplier owes
    deadline: str = ""  # the original deadline (ISO) once the ladder started


@dataclass(frozen=True)
class Dated:
    """A milestone (``title``) or an action item (``title``, ``owner``) on a date."""

    day: str  # ISO date
    number: str
    subject: str
    title: str
    owner: str = ""


@dataclass(frozen=True)
class DigestData:
    open_by_step: Sequence[tuple[str, str, str, int]]  # process, step, status, count
    overdue_count: int = 0
    overdue: Sequence[Deadline] = ()
    at_risk_count: int = 0
    at_risk: Sequence[Deadline] = ()
    milestones_count: int = 0
    milestones: Sequence[Dated] = ()
    actions_count: int = 0
    actions: Sequence[Dated] = ()
    delays_count: int = 0
    delays: Sequence[Deadline] = ()
    opened_by_day: Sequence[int] = (0,) * 7
    closed_by_day: Sequence[int] = (0,) * 7
    bounces_count: int = 0
    bounces: Sequence[Bounce] = ()
    satisfaction: Satisfaction | None = None


@dataclass(frozen=True)
class Rated:
    """A low satisfaction score (2 or less) and its case."""

    number: str
    subject: str
    party: str
    score: int
    basis: str


@dataclass(frozen=True)
class Satisfaction:
    """The survey answers of the period: scores read, answers without one, the low ones."""

    scores: Sequence[int] = ()
    unsure: int = 0
    low: Sequence[Rated] = ()

    def context(self, limit: int) -> dict[str, Any]:
        n = len(self.scores)
        return {"answers": n + self.unsure, "scored": n, "unsure": self.unsure,
                "average": f"{sum(self.scores) / n:.1f}" if n else "",
                "low": [{"number": r.number, "subject": r.subject, "party": r.party,
                         "score": r.score, "basis": r.basis} for r in self.low[:limit]],
                "low_more": max(0, len(self.low) - limit)}


@dataclass(frozen=True)
class Bounce:
    """A letter that did not reach its recipient: a delivery report marked the address on
    its case (``bounced``), the sender gave the letter up (``failed``), or it is held
    because the address bounced before (``held``)."""

    number: str  # "" for a letter of no case
    subject: str
    addr: str
    kind: str  # bounced / failed / held
    status: str  # the DSN status (5.1.1) or the server's answer, shortened
    at: datetime


@dataclass(frozen=True)
class Labels:
    """Display names of processes and steps (from the process definitions)."""

    processes: Mapping[str, str] = field(default_factory=dict)
    steps: Mapping[tuple[str, str], str] = field(default_factory=dict)
    chases: Mapping[tuple[str, str], str] = field(default_factory=dict)  # (process, what)

    def process(self, name: str, language: str) -> str:
        return self.processes.get(name) or _PROCESS_LABELS["zh" if language == "zh" else "en"
                                                            ].get(name, name)

    def step(self, process: str, step: str) -> str:
        return self.steps.get((process, step), step)

    def chase(self, process: str, what: str) -> str:
        """What a chased supplier owes (``quote`` -> 报价及资质文件); other text as it is."""
        return self.chases.get((process, what), what)


# -- the letter's context ------------------------------------------------------------------

def scope_label(departments: Sequence[str], language: str) -> str:
    if not departments:
        return "全部部门" if language == "zh" else "all departments"
    return ("、" if language == "zh" else ", ").join(departments)


def context(data: DigestData, *, per: Period, now: datetime, tz: ZoneInfo, language: str,
            org_name: str, manager_name: str, departments: Sequence[str], labels: Labels,
            limit: int) -> dict[str, Any]:
    """Everything ``templates/email/digest.*`` uses (see ``digest.sample.toml``)."""
    zh = language == "zh"
    opened, closed = sum(data.opened_by_day), sum(data.closed_by_day)
    open_now = sum(n for _, _, s, n in data.open_by_step if s == "open")
    waiting_now = sum(n for _, _, s, n in data.open_by_step if s == "waiting")
    first, last = per.days[0], per.days[-1]
    return {
        "org_name": org_name,
        "manager_name": manager_name,
        "scope": scope_label(departments, language),
        "week": week_key(now.astimezone(tz)),
        "period": f"{first.isoformat()} – {last.isoformat()}",
        "period_short": f"{first:%m-%d} – {last:%m-%d}" if zh else f"{first:%b %d} – {last:%b %d}",
        "coming": f"{per.today:%m-%d} – {(per.today + timedelta(days=6)):%m-%d}",
        "generated_at": now.astimezone(tz).strftime("%Y-%m-%d %H:%M"),
        "kpi": {"open": open_now + waiting_now, "waiting": waiting_now, "opened": opened,
                "closed": closed, "overdue": data.overdue_count,
                "at_risk": data.at_risk_count, "delays": data.delays_count},
        "processes": _processes(data, labels, language),
        "days": _days(data, per, language),
        "overdue": [_deadline(d, now, tz, labels, language) for d in data.overdue[:limit]],
        "overdue_more": max(0, data.overdue_count - min(limit, len(data.overdue))),
        "at_risk": [_deadline(d, now, tz, labels, language) for d in data.at_risk[:limit]],
        "at_risk_more": max(0, data.at_risk_count - min(limit, len(data.at_risk))),
        "milestones": [_dated(m, language) for m in data.milestones[:limit]],
        "milestones_more": max(0, data.milestones_count - min(limit, len(data.milestones))),
        "actions": [{**_dated(a, language), "overdue": a.day[:10] < per.today.isoformat()}
                    for a in data.actions[:limit]],
        "actions_more": max(0, data.actions_count - min(limit, len(data.actions))),
        "delays": [_deadline(d, now, tz, labels, language) for d in data.delays[:limit]],
        "delays_more": max(0, data.delays_count - min(limit, len(data.delays))),
        "bounces": [_bounce(b, tz, language) for b in data.bounces[:limit]],
        "bounces_more": max(0, data.bounces_count - min(limit, len(data.bounces))),
        "satisfaction": (data.satisfaction or Satisfaction()).context(limit),
    }


def _bar(n: int, top: int, px: int) -> int:
    """Bar length in pixels: proportional, at least 2 px for anything above zero."""
    if n <= 0 or top <= 0:
        return 0
    return max(2, round(px * n / top))


def _text_bar(n: int, top: int, width: int = 24) -> str:
    if n <= 0 or top <= 0:
        return ""
    return "█" * max(1, round(width * n / top))


def _processes(data: DigestData, labels: Labels, language: str) -> list[dict[str, Any]]:
    steps: dict[str, dict[str, dict[str, int]]] = {}
    for process, step, status, n in data.open_by_step:
        cell = steps.setdefault(process, {}).setdefault(step, {"open": 0, "waiting": 0})
        cell["waiting" if status == "waiting" else "open"] += n
    top = max((c["open"] + c["waiting"] for p in steps.values() for c in p.values()), default=0)
    order = {name: i for i, name in enumerate(("internal", "customer", "supplier"))}
    out = []
    for process in sorted(steps, key=lambda p: (order.get(p, 9), p)):
        rows = []
        step_order = list(labels.steps)
        for step, c in sorted(steps[process].items(), key=lambda kv: (
                step_order.index((process, kv[0])) if (process, kv[0]) in step_order
                else len(step_order), kv[0])):
            total = c["open"] + c["waiting"]
            open_px = _bar(c["open"], top, BAR_PX)
            waiting_px = _bar(c["waiting"], top, BAR_PX)
            rows.append({"label": labels.step(process, step), "open": c["open"],
                         "waiting": c["waiting"], "total": total, "open_px": open_px,
                         "waiting_px": waiting_px,
                         "rest_px": max(0, BAR_PX - open_px - waiting_px),
                         "text_bar": _text_bar(total, top)})
        out.append({"label": labels.process(process, language),
                    "total": sum(c["open"] + c["waiting"] for c in steps[process].values()),
                    "steps": rows})
    return out


def _days(data: DigestData, per: Period, language: str) -> list[dict[str, Any]]:
    top = max([*data.opened_by_day, *data.closed_by_day, 0])
    out = []
    for d, o, c in zip(per.days, data.opened_by_day, data.closed_by_day, strict=True):
        name = f"周{_ZH_WEEKDAYS[d.weekday()]}" if language == "zh" else _EN_WEEKDAYS[d.weekday()]
        out.append({"weekday": name, "date": f"{d:%m-%d}", "opened": o, "closed": c,
                    "opened_px": _bar(o, top, COLUMN_PX), "closed_px": _bar(c, top, COLUMN_PX),
                    "opened_bar": _text_bar(o, top, 16), "closed_bar": _text_bar(c, top, 16)})
    return out


def _deadline(d: Deadline, now: datetime, tz: ZoneInfo, labels: Labels,
              language: str) -> dict[str, Any]:
    lang = "zh" if language == "zh" else "en"
    names = _CHASE_LEVELS[lang] if d.kind == "chase" else _LEVELS[lang]
    deadline = datetime.fromisoformat(d.deadline) if d.deadline else d.due_at
    status = names[min(d.level, len(names) - 1)]
    if d.level == 0:
        status = _DUE[lang][0 if d.due_at <= now else 1]
    return {"number": d.number, "subject": d.subject,
            "process": labels.process(d.process, language),
            "step": (labels.chase(d.process, d.what) if d.kind == "chase" and d.what
                     else labels.step(d.process, d.step)),
            "department": d.department, "owner": d.owner, "urgent": d.urgent,
            "deadline": deadline.astimezone(tz).strftime("%m-%d %H:%M"),
            "level": d.level, "status": status}


_BOUNCE_KINDS = {"zh": {"bounced": "退信", "failed": "投递失败，已放弃", "held": "暂停发送"},
                 "en": {"bounced": "bounced", "failed": "given up", "held": "held"}}


def _bounce(b: Bounce, tz: ZoneInfo, language: str) -> dict[str, Any]:
    kinds = _BOUNCE_KINDS["zh" if language == "zh" else "en"]
    return {"number": b.number or "-", "subject": b.subject, "address": b.addr,
            "status": f"{kinds.get(b.kind, b.kind)} {b.status}".strip(),
            "when": b.at.astimezone(tz).strftime("%m-%d %H:%M")}


def _dated(x: Dated, language: str) -> dict[str, Any]:
    try:
        d = date.fromisoformat(x.day[:10])
        wd = f"周{_ZH_WEEKDAYS[d.weekday()]}" if language == "zh" else _EN_WEEKDAYS[d.weekday()]
        day = f"{d:%m-%d} {wd}"
    except ValueError:
        day = x.day
    return {"date": day, "number": x.number, "subject": x.subject, "title": x.title,
            "owner": x.owner}
