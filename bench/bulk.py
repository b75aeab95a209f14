"""Seed a maild database with N cases quickly (bulk inserts in one transaction) for the
timer-sweep and digest benchmarks. Deterministic for a given seed.

Every case gets an inbound message (so reminders thread) and, while open, a response
deadline on its step; some get action items, milestones, progress cadences, supplier
chasers. ``due_now`` of the open cases' deadlines are due at ``now``; the rest lie in the
coming weeks. Closed cases were closed within their first weeks.
"""

from __future__ import annotations

import random
import sys
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from tortoise import Tortoise
from tortoise.transactions import in_transaction

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from maild.store import Store  # noqa: E402
from maild.store.models import Case, Message, Timer  # noqa: E402

DEPARTMENTS = (("技术部", "技"), ("市场部", "市"), ("采购部", "采"), ("质量部", "质"),
               ("财务部", "财"))
MAILBOX = {"技": "tech", "市": "mkt", "采": "buy", "质": "qa", "财": "fin"}  # ASCII addresses
STEPS = {"internal": ("request", "confirm", "meeting", "minutes", "track"),
         "customer": ("requirements", "solution", "contract", "execution", "aftersales"),
         "supplier": ("intent", "evaluation", "order", "fulfilment", "acceptance")}
SUBJECTS = ("新品推广会技术讲解支持", "定制工控主板询价", "铝合金外壳采购", "年度预算数据核对",
            "展会样机调试协助", "PCB 打样", "售后：主板批次返修", "智慧园区项目方案")

CONFIG = """\
[organisation]
name = "示例科技有限公司"
address = "service@example.test"
[database]
url = "{db}"
[mailbox]
url = "maildir://mail"
[smtp]
url = "maildir://sent"
[routing]
staff_domains = ["corp.example.test"]
{departments}
[[directory.managers]]
name = "陈总"
address = "chen@corp.example.test"

[[directory.managers]]
name = "刘经理"
address = "liu@corp.example.test"
departments = ["市场部"]

[[directory.managers]]
name = "周经理"
address = "zhou@corp.example.test"
departments = ["采购部", "质量部"]
"""


def config_text(db: str) -> str:
    deps = "".join(f'\n[[directory.departments]]\nname = "{n}"\nshort = "{s}"\n'
                   f'head = "head.{MAILBOX[s]}@corp.example.test"\n'
                   f'members = ["staff.{MAILBOX[s]}@corp.example.test"]\n' for n, s in DEPARTMENTS)
    return CONFIG.format(db=db, departments=deps)


@dataclass
class Seeded:
    cases: int
    open: int
    timers: int
    due_now: int
    seconds: float


async def seed(store: Store, n: int, now: datetime, *, due_now: int = 0, open_share: float = 1.0,
               seed_value: int = 7) -> Seeded:
    """Insert ``n`` cases (``open_share`` of them open) with their timers and messages."""
    t0 = time.perf_counter()
    rnd = random.Random(seed_value)
    n_open = round(n * open_share)
    cases: list[Case] = []
    plans: list[tuple[str, str, str, str, str, datetime, str]] = []
    for i in range(1, n + 1):
        process = rnd.choices(("internal", "customer", "supplier"), (6, 3, 2))[0]
        dept, short = rnd.choice(DEPARTMENTS)
        if process == "supplier":
            dept, short = "采购部", "采"
        is_open = i <= n_open
        opened = now - timedelta(minutes=rnd.randrange(1, 60 * 24 * (30 if is_open else 365)))
        step = rnd.choice(STEPS[process])
        status = ("waiting" if rnd.random() < 0.1 else "open") if is_open else "closed"
        closed = None if is_open else min(now, opened + timedelta(hours=rnd.randrange(2, 500)))
        number = {"internal": f"2026-{short}-{i:06d}", "customer": f"2026-客-{i:06d}",
                  "supplier": f"2026-供-{i:06d}"}[process]
        cases.append(Case(number=number, process=process, step=step, status=status,
                          subject=rnd.choice(SUBJECTS), department=dept,
                          urgent=rnd.random() < 0.05, language="zh",
                          parties=[f"staff.{MAILBOX[short]}@corp.example.test"], opened_at=opened,
                          updated_at=opened, closed_at=closed, data={}))
        plans.append((number, process, step, dept, short, opened, status))
    async with in_transaction(store.conn) as tx:
        await Case.bulk_create(cases, batch_size=5000, using_db=tx)
        ids = dict(await Case.all().using_db(tx).values_list("number", "id"))
        messages = [Message(direction="in", message_id=f"<m{k}@bench.example.test>",
                            case_id=ids[number], state="processed",
                            sender=f"staff.{MAILBOX[short]}@corp.example.test",
                            subject=number, at=opened)
                    for k, (number, _, _, _, short, opened, _) in enumerate(plans)]
        await Message.bulk_create(messages, batch_size=5000, using_db=tx)
        timers, due = _timers(rnd, plans, ids, now, due_now)
        await Timer.bulk_create(timers, batch_size=5000, using_db=tx)
    # fresh statistics, as a database in use has them (PostgreSQL: autovacuum's analyze)
    await Tortoise.get_connection(store.conn).execute_script("ANALYZE")
    return Seeded(n, n_open, len(timers), due, time.perf_counter() - t0)


def _timers(rnd: random.Random, plans: list[tuple[str, str, str, str, str, datetime, str]],
            ids: dict[str, int], now: datetime, due_now: int) -> tuple[list[Timer], int]:
    timers: list[Timer] = []
    due_left = due_now
    created = now - timedelta(days=1)
    for number, process, step, dept, short, _, status in plans:
        if status == "closed":
            continue
        case_id = ids[number]
        if due_left > 0 and status == "open":
            due = now - timedelta(minutes=rnd.randrange(0, 30))
            due_left -= 1
        else:
            due = now + timedelta(minutes=rnd.randrange(5, 60 * 24 * 30))
        owner = f"staff.{MAILBOX[short]}@corp.example.test"
        data: dict[str, Any] = {"step": step, "owner": [owner], "department": dept}
        if status == "waiting":  # as Store.apply leaves them: paused, working time kept
            data |= {"paused_at": now.isoformat(), "remaining_s": 3600.0}
        timers.append(Timer(case_id=case_id, kind="deadline", key=step, due_at=due, data=data,
                            state="paused" if status == "waiting" else "pending",
                            created_at=created))
        extra = rnd.random()
        day = (now + timedelta(days=rnd.randrange(1, 30))).date().isoformat()
        later = now + timedelta(days=rnd.randrange(1, 25))
        if process == "internal" and extra < 0.3:
            timers.append(Timer(case_id=case_id, kind="action_reminder", key=f"a{case_id}",
                                due_at=later, created_at=created,
                                data={"action": "准备材料", "owner": owner, "due": day,
                                      "support": ""}))
        elif process == "customer" and extra < 0.3:
            timers.append(Timer(case_id=case_id, kind="milestone", key=day, due_at=later,
                                created_at=created,
                                data={"title": "样机交付", "date": day,
                                      "to": ["buyer@customer.example.cn"]}))
        elif process == "supplier" and extra < 0.5:
            late = rnd.random() < 0.3  # already chased, waiting to escalate
            timers.append(Timer(case_id=case_id, kind="chase", key="quote", created_at=created,
                                due_at=now + timedelta(days=rnd.randrange(1, 10)),
                                level=1 if late else 0,
                                data={"to": ["sales@supplier.example.cn"], "what": "报价单",
                                      "deadline": (now - timedelta(days=3)).isoformat()}))
    return timers, due_now - due_left
