"""The escalation ladder: owner, then department head, then managers; each level once."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from support import open_store
from timing import Desk, body, sh

from maild.engine.effects import SetTimer, UpdateCase

OWNER = "li@corp.example.test"
HEAD = "zhang@corp.example.test"  # 技术部
CHEN = "chen@corp.example.test"  # every department
LIU = "liu@corp.example.test"  # 市场部 only


@pytest.fixture(params=["sqlite", "postgres"])
async def desk(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Desk]:
    async with open_store(request.param, tmp_path) as store:
        yield Desk(store, tmp_path)


def deadline(due: str, department: str = "技术部", owner: str = OWNER) -> SetTimer:
    return SetTimer("deadline", sh(due), key="confirm",
                    data={"step": "confirm", "owner": [owner], "department": department})


async def test_owner_then_head_then_manager_each_once(desk: Desk) -> None:
    number = await desk.open(sh("2026-11-30 10:00"), deadline("2026-12-01 10:00"))
    quiet = ("2026-12-01 09:59", "2026-12-02 09:59", "2026-12-03 09:59")
    steps = ("2026-12-01 10:00", "2026-12-02 10:00", "2026-12-03 10:00")
    for before, at in zip(quiet, steps, strict=True):
        assert (await desk.sweep(sh(before))).fired == 0
        assert (await desk.sweep(sh(at))).fired == 1
        assert (await desk.sweep(sh(at))).fired == 0  # the same minute again: nothing
    for later in ("2026-12-04 10:00", "2026-12-10 10:00", "2027-03-01 10:00"):
        assert (await desk.sweep(sh(later))).fired == 0

    assert await desk.letters() == [("deadline_reminder", (OWNER,)),
                                    ("escalation", (HEAD,)),
                                    ("escalation", (CHEN,))]
    assert await desk.timeline(number, "escalation") == [
        f"第 1 级（负责人）：步骤「沟通对象确认」自 2026-12-01 10:00 起逾期；已提醒 {OWNER}",
        f"第 2 级（部门负责人）：步骤「沟通对象确认」自 2026-12-01 10:00 起逾期；已上报 {HEAD}",
        f"第 3 级（管理层）：步骤「沟通对象确认」自 2026-12-01 10:00 起逾期；已上报 {CHEN}",
    ]
    [t] = await desk.timers(number)
    assert (t.state, t.level) == ("fired", 3)
    assert [h["rung"] for h in t.data["ladder"]] == ["owner", "head", "managers"]

    to_head, to_managers = await desk.mails("escalation")
    assert to_head["Subject"] == f"[{number}] 逾期上报：新品推广会技术讲解支持（沟通对象确认）"
    head_text = body(to_head)
    assert head_text.startswith("部门负责人，您好：")
    assert "超时约 7.5 个工作小时" in head_text  # one working day
    assert f"{OWNER}（2026-12-01 10:00）" in head_text
    assert "如 2026-12-03 10:00 前仍未处理，系统将上报管理层" in head_text
    managers_text = body(to_managers)
    # one manager covers the department: greeted by the directory's name for them
    assert managers_text.startswith("陈总，您好：")
    assert "超时约 15.0 个工作小时" in managers_text
    assert f"{HEAD}（2026-12-02 10:00）" in managers_text


async def test_urgent_steps_climb_every_two_working_hours(desk: Desk) -> None:
    number = await desk.open(sh("2026-12-03 17:00"), deadline("2026-12-04 10:00"), urgent=True)
    for at in ("2026-12-04 10:00", "2026-12-04 12:00", "2026-12-04 15:30"):
        assert (await desk.sweep(sh(at))).fired == 1, at
    assert (await desk.sweep(sh("2026-12-31 10:00"))).fired == 0
    assert [to for _, to in await desk.letters()] == [(OWNER,), (HEAD,), (CHEN,)]
    assert len(await desk.timeline(number, "escalation")) == 3


async def test_managers_are_those_covering_the_department(desk: Desk) -> None:
    await desk.open(sh("2026-11-30 10:00"),
                    deadline("2026-12-01 10:00", department="市场部", owner=OWNER),
                    department="市场部")
    for at in ("2026-12-01 10:00", "2026-12-02 10:00", "2026-12-03 10:00"):
        await desk.sweep(sh(at))
    assert [to for _, to in await desk.letters()] == [
        (OWNER,), ("wang@corp.example.test",), (CHEN, LIU)]


async def test_a_missing_rung_is_skipped_and_noted(desk: Desk) -> None:
    number = await desk.open(sh("2026-11-30 10:00"),
                             deadline("2026-12-01 10:00", department="不存在的部门"),
                             department=None)
    await desk.sweep(sh("2026-12-01 10:00"))
    # no head to tell: the managers hear after the head's interval plus nothing more
    assert (await desk.sweep(sh("2026-12-02 09:59"))).fired == 0
    assert (await desk.sweep(sh("2026-12-02 10:00"))).fired == 1
    assert [to for _, to in await desk.letters()] == [(OWNER,), (CHEN,)]
    assert await desk.timeline(number, "escalation") == [
        f"第 1 级（负责人）：步骤「沟通对象确认」自 2026-12-01 10:00 起逾期；已提醒 {OWNER}",
        "第 2 级（部门负责人）无法找到：通讯录中没有部门「不存在的部门」或其负责人",
        f"第 3 级（管理层）：步骤「沟通对象确认」自 2026-12-01 10:00 起逾期；已上报 {CHEN}",
    ]


async def test_a_head_who_owns_the_step_is_not_told_twice(desk: Desk) -> None:
    number = await desk.open(sh("2026-11-30 10:00"),
                             deadline("2026-12-01 10:00", owner=HEAD))
    for at in ("2026-12-01 10:00", "2026-12-02 10:00"):
        assert (await desk.sweep(sh(at))).fired == 1
    assert [to for _, to in await desk.letters()] == [(HEAD,), (CHEN,)]
    assert (await desk.timeline(number, "escalation"))[1] == (
        "第 2 级（部门负责人）跳过：负责人即部门负责人")


async def test_supplier_chase_then_the_buyers_head(desk: Desk) -> None:
    number = await desk.open(
        sh("2026-12-01 09:00"),
        SetTimer("chase", sh("2026-12-03 09:00"), key="quote",
                 data={"to": ["sales@hengda.example.cn"], "what": "报价单"}),
        process="supplier", step="intent", department="采购部", subject="铝合金外壳采购")
    assert (await desk.sweep(sh("2026-12-03 09:00"))).fired == 1
    assert (await desk.sweep(sh("2026-12-07 08:59"))).fired == 0  # 2 working days later
    assert (await desk.sweep(sh("2026-12-07 09:00"))).fired == 1
    assert (await desk.sweep(sh("2026-12-31 09:00"))).fired == 0
    assert await desk.letters() == [("supplier_chase", ("sales@hengda.example.cn",)),
                                    ("escalation", ("zhou@corp.example.test",))]
    [chase] = await desk.mails("supplier_chase")
    assert chase["Subject"] == f"[{number}] 催办：报价单（铝合金外壳采购）"
    assert "《延期说明》" in body(chase)
    [esc] = await desk.mails("escalation")
    text = body(esc)
    assert "供应商（sales@hengda.example.cn）的「报价单」" in text
    assert await desk.timeline(number, "escalation") == [
        "第 1 级（供应商）：「报价单」自 2026-12-03 09:00 起未回复；"
        "已催办 sales@hengda.example.cn",
        "第 2 级（部门负责人）：「报价单」自 2026-12-03 09:00 起未回复；"
        "已上报 zhou@corp.example.test",
    ]


async def test_moving_on_between_levels_stops_the_ladder(desk: Desk) -> None:
    number = await desk.open(sh("2026-11-30 10:00"), deadline("2026-12-01 10:00"))
    await desk.sweep(sh("2026-12-01 10:00"))
    await desk.decide(number, (UpdateCase(step="meeting"),), sh("2026-12-01 15:00"))
    await desk.sweep(sh("2026-12-02 10:00"))
    assert await desk.letters() == [("deadline_reminder", (OWNER,))]
    [t] = await desk.timers(number)
    assert (t.state, t.level) == ("cancelled", 1)


async def test_each_level_once_across_restarts(tmp_path: Path) -> None:
    number = ""
    for i, at in enumerate(("2026-12-01 10:00", "2026-12-02 10:00", "2026-12-03 10:00")):
        async with open_store("sqlite", tmp_path) as store:
            desk = Desk(store, tmp_path)
            if i == 0:
                number = await desk.open(sh("2026-11-30 10:00"), deadline("2026-12-01 10:00"))
            assert (await desk.sweep(sh(at))).fired == 1
            assert (await desk.sweep(sh(at))).fired == 0
    async with open_store("sqlite", tmp_path) as store:
        desk = Desk(store, tmp_path)
        assert (await desk.sweep(sh("2026-12-20 10:00"))).fired == 0
        assert len(await desk.letters()) == 3
        assert len(await desk.timeline(number, "escalation")) == 3


async def test_intervals_come_from_the_config(tmp_path: Path) -> None:
    extra = '\n[escalation]\nhead_after = "4h"\nmanagers_after = "0.5d"\n'
    async with open_store("sqlite", tmp_path) as store:
        desk = Desk(store, tmp_path, extra)
        await desk.open(sh("2026-11-30 10:00"), deadline("2026-12-01 10:00"))
        for at in ("2026-12-01 10:00", "2026-12-01 15:30", "2026-12-02 10:15"):
            assert (await desk.sweep(sh(at))).fired == 1, at
        assert [to for _, to in await desk.letters()] == [(OWNER,), (HEAD,), (CHEN,)]
