"""A small company's fortnight, seeded through the store, for the digest's goldens and the
screenshot: cases opened and closed on different days, deadlines at every escalation level,
milestones and action items in the coming week, suppliers chased. The digest is made on
Monday 2026-12-07 09:00 in Shanghai; the period is 2026-11-30 to 2026-12-06.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from pathlib import Path

from support import DIRECTORY_TOML, open_store
from timing import MANAGERS_TOML, Desk, sh

from maild.engine.effects import SetTimer, UpdateCase
from maild.schedule.firing import notice_at, response_due

DIGEST_AT = sh("2026-12-07 09:00")
SWEEP_FROM = sh("2026-11-23 09:00")

# (opened, process, step, department, urgent, subject, status changes [(when, status)])
CASES: list[tuple[str, str, str, str | None, bool, str, list[tuple[str, str]]]] = [
    ("2026-11-23 10:00", "internal", "track", "技术部", False, "服务器机房搬迁",
     [("2026-12-01 16:00", "closed")]),
    ("2026-11-26 15:00", "customer", "execution", "市场部", False, "定制工控主板 200 套", []),
    ("2026-11-27 11:00", "supplier", "intent", "采购部", False, "铝合金外壳采购", []),
    ("2026-11-30 10:00", "internal", "confirm", "技术部", False, "新品推广会技术讲解支持", []),
    ("2026-11-30 14:00", "customer", "contract", "市场部", False, "华信集团年度框架协议", []),
    ("2026-11-30 16:30", "internal", "minutes", "市场部", False, "官网改版需求评审", []),
    ("2026-12-01 09:30", "supplier", "order", "采购部", False, "电源模块采购订单", []),
    ("2026-12-01 10:15", "customer", "requirements", None, False, "工控机批量采购询价", []),
    ("2026-12-01 11:00", "customer", "solution", "市场部", False, "智慧园区项目方案", []),
    ("2026-12-01 15:00", "internal", "meeting", "市场部", False, "客户培训资料翻译",
     [("2026-12-04 17:00", "closed")]),
    ("2026-12-01 17:20", "internal", "request", "市场部", False, "展会物料设计支持",
     [("2026-12-03 11:00", "closed")]),
    ("2026-12-02 10:00", "customer", "aftersales", None, False, "售后：主板批次返修",
     [("2026-12-05 11:00", "closed")]),
    ("2026-12-02 14:00", "internal", "confirm", "技术部", False, "质量体系内审配合",
     [("2026-12-03 10:00", "waiting")]),
    ("2026-12-02 16:00", "supplier", "acceptance", "采购部", False, "包装材料询价",
     [("2026-12-03 15:00", "closed")]),
    ("2026-12-03 09:30", "customer", "requirements", None, False,
     "Inquiry about industrial boards", []),
    ("2026-12-03 10:10", "customer", "solution", "市场部", False, "边缘计算盒子定制方案", []),
    ("2026-12-03 11:00", "supplier", "fulfilment", "采购部", False, "PCB 打样", []),
    ("2026-12-03 14:00", "internal", "request", "技术部", False, "测试设备借用", []),
    ("2026-12-03 15:40", "internal", "confirm", "技术部", False, "客户现场故障排查支援",
     [("2026-12-04 10:00", "closed")]),
    ("2026-12-03 16:50", "supplier", "evaluation", "采购部", False, "散热器供应商评估", []),
    ("2026-12-04 09:40", "internal", "minutes", "市场部", False, "渠道政策调整沟通", []),
    ("2026-12-04 11:00", "internal", "confirm", "市场部", False, "年度预算数据核对", []),
    ("2026-12-04 16:00", "internal", "confirm", "技术部", True, "展会样机调试协助", []),
    ("2026-12-04 16:30", "customer", "requirements", "市场部", False, "工业网关询价", []),
    ("2026-12-05 10:00", "customer", "requirements", None, False, "嵌入式主板样品申请",
     [("2026-12-05 16:00", "closed")]),
    ("2026-12-05 10:30", "internal", "meeting", "技术部", False, "新员工产品培训", []),
]
OWNERS = {"技术部": "li@corp.example.test", "市场部": "wang@corp.example.test",
          "采购部": "zhou@corp.example.test"}


async def seed(desk: Desk) -> dict[str, str]:
    """Seed the fortnight; returns case numbers by subject."""
    cal = desk.calendar
    numbers: dict[str, str] = {}
    for opened, process, step, dept, urgent, subject, _ in CASES:
        at = sh(opened)
        effects: list[SetTimer] = []
        owner = OWNERS.get(dept or "", "li@corp.example.test")
        if step == "confirm":
            effects.append(SetTimer("deadline", response_due(at, urgent, cal), key=step,
                                    data={"step": step, "owner": [owner],
                                          "department": dept}))
        numbers[subject] = await desk.open(at, *effects, process=process, step=step,
                                           department=dept, urgent=urgent, subject=subject)
    n = numbers
    await _timers(desk, n)
    changes = sorted((sh(when), n[subject], status)
                     for *_, subject, updates in CASES for when, status in updates)
    moment = SWEEP_FROM
    for when, number, status in changes:
        moment = await _sweep_until(desk, moment, when)
        await desk.decide(number, (UpdateCase(status=status),), when)
    await _sweep_until(desk, moment, DIGEST_AT + timedelta(seconds=1))
    return numbers


async def _timers(desk: Desk, n: dict[str, str]) -> None:
    cal = desk.calendar
    at = sh("2026-12-01 12:00")

    def milestone(title: str, day: str, to: str) -> SetTimer:
        return SetTimer("milestone", notice_at(date.fromisoformat(day), 3, cal), key=day,
                        data={"title": title, "date": day, "to": [to]})

    def action(key: str, what: str, owner: str, due: str, support: str = "") -> SetTimer:
        return SetTimer("action_reminder", notice_at(date.fromisoformat(due), 2, cal),
                        key=key, data={"action": what, "owner": owner, "due": due,
                                       "support": support})

    await desk.decide(n["定制工控主板 200 套"], (
        milestone("样机交付", "2026-12-10", "wang@huaxin.example.cn"),
        milestone("小批量试产", "2026-12-21", "wang@huaxin.example.cn"),
        SetTimer("progress", sh("2026-12-03 09:00"),
                 data={"cadence_days": 7, "to": ["wang@corp.example.test"]})), at)
    await desk.decide(n["智慧园区项目方案"], (
        milestone("方案评审会", "2026-12-08", "pm@smartpark.example.cn"),), at)
    await desk.decide(n["官网改版需求评审"], (
        action("a1", "整理首页改版需求清单", "wang@corp.example.test", "2026-12-09"),
        action("a2", "提供产品参数与图片", "li@corp.example.test", "2026-12-11",
               "技术部提供最新规格书"),
        action("a3", "确认上线时间窗口", "zhang@corp.example.test", "2026-12-18")), at)
    await desk.decide(n["新员工产品培训"], (
        action("a1", "准备培训讲义", "li@corp.example.test", "2026-12-08"),), at)
    await desk.decide(n["铝合金外壳采购"], (
        SetTimer("chase", sh("2026-12-01 09:00"), key="quote",
                 data={"to": ["sales@hengda.example.cn"], "what": "报价单与资质文件"}),), at)
    await desk.decide(n["电源模块采购订单"], (
        SetTimer("chase", sh("2026-12-04 09:00"), key="order_confirmation",
                 data={"to": ["orders@power.example.cn"], "what": "订单确认与排产计划"}),), at)
    await desk.decide(n["PCB 打样"], (
        SetTimer("chase", sh("2026-12-09 09:00"), key="delay_explanation",
                 data={"to": ["pcb@fastboard.example.cn"], "what": "延期说明"}),), at)


async def _sweep_until(desk: Desk, moment: datetime, until: datetime) -> datetime:
    """Sweep every half hour up to ``until`` (exclusive), as a running daemon would."""
    while moment < until:
        await desk.sweep(moment)
        moment += timedelta(minutes=30)
    return moment


def write_config(base: Path, extra: str = "") -> Path:
    cfg = base / "maild.toml"
    cfg.write_text('[database]\nurl = "sqlite://maild.db"\n[mailbox]\nurl = "maildir://mail"\n'
                   '[smtp]\nurl = "maildir://sent"\n' + DIRECTORY_TOML + MANAGERS_TOML + extra,
                   encoding="utf-8")
    for sub in ("tmp", "new", "cur"):
        (base / "mail" / sub).mkdir(parents=True, exist_ok=True)
    return cfg


async def seed_sqlite(base: Path) -> None:
    async with open_store("sqlite", base) as store:
        await seed(Desk(store, base))
