"""Deadlines, reminders and notices at a fixed clock, fired once across restarts and sweepers."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import date, datetime, timedelta
from pathlib import Path

import pytest
from support import open_store
from timing import Desk, body, sh

from maild.calendar.business import BusinessCalendar, CalendarSettings
from maild.engine.effects import CancelTimers, SetTimer, UpdateCase
from maild.schedule.firing import WorkingDuration, fire, notice_at, response_due
from maild.store.cases import view as case_view
from maild.store.models import Outbox
from maild.store.timers import apply_firing, claim_timers, timer_view

CAL = BusinessCalendar(CalendarSettings())
OWNER = "li@corp.example.test"


@pytest.fixture(params=["sqlite", "postgres"])
async def desk(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Desk]:
    async with open_store(request.param, tmp_path) as store:
        yield Desk(store, tmp_path)


@pytest.fixture
async def sqlite_desk(tmp_path: Path) -> AsyncIterator[Desk]:
    async with open_store("sqlite", tmp_path) as store:
        yield Desk(store, tmp_path)


def deadline(due, step: str = "confirm", owner: str = OWNER) -> SetTimer:
    return SetTimer("deadline", due, key=step,
                    data={"step": step, "owner": [owner], "department": "技术部"})


# -- the rules, as pure functions of the clock ---------------------------------------------

@pytest.mark.parametrize(("received", "urgent", "due"), [
    # Friday 17:30 before the Spring Festival week: Sat 02-14 is a make-up workday (调休)
    ("2026-02-13 17:30", False, "2026-02-14 17:30"),
    # the make-up Saturday itself, last working day before nine days off
    ("2026-02-14 17:30", False, "2026-02-24 17:30"),
    # Wednesday before the National Day week
    ("2026-09-30 17:30", False, "2026-10-08 17:30"),
    # an ordinary Friday evening: the next Monday
    ("2026-12-04 17:30", False, "2026-12-07 17:30"),
    # urgent at 17:00: one hour today, one tomorrow morning
    ("2026-12-03 17:00", True, "2026-12-04 10:00"),
    # urgent on Friday 17:00: Monday 10:00
    ("2026-12-04 17:00", True, "2026-12-07 10:00"),
    # urgent at 17:00 on the make-up Saturday before the holiday: after the holiday week
    ("2026-02-14 17:00", True, "2026-02-24 10:00"),
    # urgent at lunch: counts from 13:30
    ("2026-12-03 12:15", True, "2026-12-03 15:30"),
])
def test_response_deadline(received: str, urgent: bool, due: str) -> None:
    assert response_due(sh(received), urgent, CAL) == sh(due)


@pytest.mark.parametrize(("due", "working_days", "at"), [
    ("2026-12-07", 2, "2026-12-03 09:00"),  # action due Monday: reminder on Thursday
    ("2026-03-02", 2, "2026-02-27 09:00"),  # Monday after make-up Sat 02-28: Friday
    ("2026-10-12", 2, "2026-10-09 09:00"),  # Monday after make-up Sat 10-10: Friday
    ("2026-02-24", 2, "2026-02-13 09:00"),  # first day after the Spring Festival
    ("2026-10-08", 3, "2026-09-28 09:00"),  # milestone after National Day: 3 days ahead
    ("2026-12-10", 3, "2026-12-07 09:00"),  # milestone on a Thursday: the Monday
])
def test_reminder_and_notice_moments(due: str, working_days: int, at: str) -> None:
    assert notice_at(date.fromisoformat(due), working_days, CAL) == sh(at)


@pytest.mark.parametrize(("text", "start", "end"), [
    ("1d", "2026-02-13 17:30", "2026-02-14 17:30"),
    ("2h", "2026-12-03 17:00", "2026-12-04 10:00"),
    ("0.5d", "2026-12-03 09:00", "2026-12-03 14:15"),  # 3.75 working hours
    ("2d", "2026-09-30 10:00", "2026-10-09 10:00"),
])
def test_working_durations(text: str, start: str, end: str) -> None:
    assert WorkingDuration.parse(text).after(CAL, sh(start)) == sh(end)


# -- firing at a fixed clock ---------------------------------------------------------------

async def test_friday_request_before_the_holiday_fires_on_the_make_up_day(desk: Desk) -> None:
    received = sh("2026-02-13 17:30")
    due = response_due(received, False, desk.calendar)
    number = await desk.open(received, deadline(due))
    assert (await desk.sweep(sh("2026-02-14 17:29"))).fired == 0
    assert (await desk.sweep(sh("2026-02-14 17:30"))).fired == 1
    assert await desk.letters() == [("deadline_reminder", (OWNER,))]
    [t] = await desk.timers(number)
    # the head hears one working day later: after the nine days of Spring Festival
    assert (t.state, t.level, t.due_at) == ("pending", 1, sh("2026-02-24 17:30"))
    assert (await desk.sweep(sh("2026-02-23 23:59"))).fired == 0


async def test_urgent_request_at_17_is_due_10_next_morning(desk: Desk) -> None:
    received = sh("2026-12-03 17:00")
    number = await desk.open(received, deadline(response_due(received, True, desk.calendar)),
                             urgent=True)
    [t] = await desk.timers(number)
    assert t.due_at == sh("2026-12-04 10:00")
    assert (await desk.sweep(sh("2026-12-04 09:59"))).fired == 0
    assert (await desk.sweep(sh("2026-12-04 10:00"))).fired == 1
    [reminder] = await desk.mails("deadline_reminder")
    assert reminder["Subject"].startswith(f"[{number}] 到期提醒：")
    text = body(reminder)
    assert "2026-12-04 10:00" in text and "【紧急】" in text
    assert "2026-12-04 12:00" in text  # urgent: the head hears 2 working hours later


async def test_action_reminder_two_working_days_before_a_monday(desk: Desk) -> None:
    now = sh("2026-10-07 10:00")  # during the National Day holiday
    at = notice_at(date(2026, 10, 12), 2, desk.calendar)
    number = await desk.open(now, SetTimer("action_reminder", at, key="a1", data={
        "action": "准备技术讲解材料", "owner": OWNER, "due": "2026-10-12",
        "support": "市场部提供产品定位资料"}))
    assert at == sh("2026-10-09 09:00")  # Friday: Sat 10-10 is a make-up day, 1 before
    assert (await desk.sweep(sh("2026-10-09 08:59"))).fired == 0
    assert (await desk.sweep(sh("2026-10-09 09:00"))).fired == 1
    [m] = await desk.mails("action_reminder")
    assert m["To"] == OWNER
    assert "准备技术讲解材料" in m["Subject"] and "2026-10-12 周一" in m["Subject"]
    assert "市场部提供产品定位资料" in body(m)
    assert await desk.timeline(number, "reminder") == [
        f"待办「准备技术讲解材料」2026-10-12 到期：已提醒 {OWNER}"]


async def test_milestone_notice_three_working_days_ahead(desk: Desk) -> None:
    now = sh("2026-09-21 10:00")
    at = notice_at(date(2026, 10, 8), 3, desk.calendar)
    number = await desk.open(now, SetTimer("milestone", at, key="2026-10-08", data={
        "title": "样机交付", "date": "2026-10-08", "to": ["wang@huaxin.example.cn"]}),
        process="customer", step="execution", department=None)
    assert at == sh("2026-09-28 09:00")
    assert (await desk.sweep(sh("2026-09-28 08:59"))).fired == 0
    assert (await desk.sweep(sh("2026-09-28 09:00"))).fired == 1
    [m] = await desk.mails("milestone_notice")
    assert m["To"] == "wang@huaxin.example.cn"
    assert m["Subject"] == f"[{number}] 里程碑预告：样机交付（2026-10-08 周四）"


async def test_progress_request_rearms_with_its_cadence(desk: Desk) -> None:
    start = sh("2026-12-07 09:00")
    number = await desk.open(start, SetTimer("progress", start, data={
        "cadence_days": 7, "to": [OWNER]}), process="customer", step="execution")
    assert (await desk.sweep(start)).fired == 1
    [done, nxt] = await desk.timers(number)
    assert (done.state, nxt.state, nxt.due_at) == ("fired", "pending", sh("2026-12-14 09:00"))
    # the daemon was down for three weeks: one request, the next one still on the cadence
    assert (await desk.sweep(sh("2027-01-06 11:00"))).fired == 1
    *_, last = await desk.timers(number)
    assert last.due_at == sh("2027-01-11 09:00")
    assert [lt for lt, _ in await desk.letters()] == ["progress_request"] * 2


async def test_progress_on_a_holiday_waits_for_the_next_working_morning(desk: Desk) -> None:
    start = sh("2026-09-24 09:00")  # Thursday; a week later is National Day
    number = await desk.open(start, SetTimer("progress", start, data={
        "cadence_days": 7, "to": [OWNER]}), process="customer", step="execution")
    await desk.sweep(start)
    [_, nxt] = await desk.timers(number)
    assert nxt.due_at == sh("2026-10-08 09:00")
    anchor = datetime.fromisoformat(nxt.data["anchor"])
    assert anchor == sh("2026-10-01 09:00")  # the cadence keeps its weekday


# -- exactly once --------------------------------------------------------------------------

async def test_each_timer_fires_once_across_a_restart(tmp_path: Path) -> None:
    received = sh("2026-12-03 17:00")
    async with open_store("sqlite", tmp_path) as store:
        desk = Desk(store, tmp_path)
        number = await desk.open(received, deadline(sh("2026-12-04 10:00")),
                                 SetTimer("action_reminder", sh("2026-12-04 09:00"), key="a1",
                                          data={"action": "复核", "owner": OWNER,
                                                "due": "2026-12-08"}))
        counts = await desk.sweep(sh("2026-12-04 10:00"))
        assert counts.fired == 2
    async with open_store("sqlite", tmp_path) as store:  # the daemon restarted
        desk = Desk(store, tmp_path)
        for now in ("2026-12-04 10:00", "2026-12-04 10:01", "2026-12-04 11:00"):
            assert (await desk.sweep(sh(now))).fired == 0
        assert sorted(await desk.letters()) == [("action_reminder", (OWNER,)),
                                                ("deadline_reminder", (OWNER,))]
        assert len(await desk.timeline(number, "escalation")) == 1


async def test_a_sweeper_killed_after_claiming_is_replaced_after_its_lease(
        sqlite_desk: Desk) -> None:
    desk = sqlite_desk
    await desk.open(sh("2026-12-03 09:00"), deadline(sh("2026-12-04 09:00")))
    now = sh("2026-12-04 09:00")
    _, claimed = await claim_timers(now, 10, timedelta(seconds=120))  # ...and then it died
    assert len(claimed) == 1
    assert (await desk.sweep(now + timedelta(seconds=60))).fired == 0  # still leased
    assert (await desk.sweep(now + timedelta(seconds=121))).fired == 1
    assert await desk.letters() == [("deadline_reminder", (OWNER,))]


async def test_a_slow_sweeper_whose_lease_ran_out_writes_nothing(sqlite_desk: Desk) -> None:
    desk = sqlite_desk
    number = await desk.open(sh("2026-12-03 09:00"), deadline(sh("2026-12-04 09:00")))
    now = sh("2026-12-04 09:00")
    token, [slow] = await claim_timers(now, 10, timedelta(seconds=1))
    assert (await desk.sweep(now + timedelta(seconds=5))).fired == 1  # another one took over
    case = await desk.case(number)
    firing = fire(timer_view(slow), case_view(case), desk.sweeper.fire_context(now))
    ok = await apply_firing(desk.store, desk.sweeper.apply_env(now), token, slow, case,
                            firing, {})
    assert ok is False
    assert await Outbox.all().count() == 1


async def test_concurrent_sweepers_fire_each_timer_once(desk: Desk) -> None:
    start = sh("2026-12-01 09:00")
    numbers = [await desk.open(start, deadline(sh("2026-12-02 09:00")),
                               SetTimer("milestone", sh("2026-12-02 09:00"), key="m",
                                        data={"title": "交付", "date": "2026-12-07",
                                              "to": ["wang@huaxin.example.cn"]}))
               for _ in range(12)]
    now = sh("2026-12-02 09:30")
    results = await asyncio.gather(*(desk.sweeper.timers(now) for _ in range(4)))
    assert sum(r.fired for r in results) == 24
    assert await Outbox.all().count() == 24
    for n in numbers:
        assert len(await desk.timeline(n, "escalation")) == 1


# -- cancelled, paused, closed -------------------------------------------------------------

async def test_cancelled_when_the_step_moves_on(desk: Desk) -> None:
    number = await desk.open(sh("2026-12-01 09:00"), deadline(sh("2026-12-02 09:00")))
    await desk.decide(number, (UpdateCase(step="meeting"), CancelTimers(("deadline",))),
                      sh("2026-12-01 15:00"))
    assert (await desk.sweep(sh("2026-12-10 09:00"))).fired == 0
    assert [t.state for t in await desk.timers(number)] == ["cancelled"]
    assert await desk.letters() == []


async def test_a_deadline_for_a_step_already_left_is_cancelled_not_sent(desk: Desk) -> None:
    number = await desk.open(sh("2026-12-01 09:00"), deadline(sh("2026-12-02 09:00")))
    await desk.decide(number, (UpdateCase(step="meeting"),), sh("2026-12-01 15:00"))
    counts = await desk.sweep(sh("2026-12-02 09:00"))
    assert (counts.fired, counts.cancelled) == (0, 1)
    assert await desk.letters() == []


async def test_closed_cases_never_fire(desk: Desk) -> None:
    number = await desk.open(sh("2026-12-01 09:00"), deadline(sh("2026-12-02 09:00")),
                             SetTimer("progress", sh("2026-12-02 09:00"),
                                      data={"cadence_days": 7, "to": [OWNER]}))
    await desk.decide(number, (UpdateCase(status="closed"),), sh("2026-12-01 16:00"))
    assert [t.state for t in await desk.timers(number)] == ["cancelled", "cancelled"]
    assert (await desk.case(number)).closed_at == sh("2026-12-01 16:00")
    assert (await desk.sweep(sh("2026-12-20 09:00"))).fired == 0
    assert await desk.letters() == []


async def test_a_timer_left_on_a_closed_case_is_cancelled_by_the_sweep(desk: Desk) -> None:
    number = await desk.open(sh("2026-12-01 09:00"), deadline(sh("2026-12-02 09:00")))
    case = await desk.case(number)
    case.status = "archived"  # e.g. closed by an admin straight in the database
    await case.save()
    counts = await desk.sweep(sh("2026-12-02 09:00"))
    assert (counts.fired, counts.cancelled) == (0, 1)
    assert await desk.letters() == []


async def test_waiting_pauses_the_deadline_by_the_working_time_spent(desk: Desk) -> None:
    # due Wednesday 10:00; on Tuesday 10:00 the case starts waiting with 7.5 working hours
    # left; it resumes on Friday 14:00
    number = await desk.open(sh("2026-12-01 09:00"), deadline(sh("2026-12-02 10:00")))
    await desk.decide(number, (UpdateCase(status="waiting"),), sh("2026-12-01 10:00"))
    [t] = await desk.timers(number)
    assert t.state == "paused" and t.data["remaining_s"] == 7.5 * 3600
    assert (await desk.sweep(sh("2026-12-03 10:00"))).fired == 0  # past due: paused
    await desk.decide(number, (UpdateCase(status="open"),), sh("2026-12-04 14:00"))
    [t] = await desk.timers(number)
    # 7.5 working hours after Friday 14:00: 4h Friday, then 3.5h on Monday from 09:00
    assert (t.state, t.due_at) == ("pending", sh("2026-12-07 14:00"))
    assert "remaining_s" not in t.data
    assert (await desk.sweep(sh("2026-12-07 13:59"))).fired == 0
    assert (await desk.sweep(sh("2026-12-07 14:00"))).fired == 1
    # a timer without a step label in its data (set before labels were kept) shows its key
    assert await desk.timeline(number, "timer") == [
        "等待对方回复，步骤「confirm」的截止时间暂停计时（剩余 7.5 个工作小时）",
        "对方已回复，步骤「confirm」的截止时间恢复计时，新的截止时间 2026-12-07 14:00"]


async def test_a_deadline_set_while_waiting_starts_paused(desk: Desk) -> None:
    number = await desk.open(sh("2026-12-01 09:00"))
    await desk.decide(number, (UpdateCase(status="waiting"),
                               deadline(sh("2026-12-02 09:00"))), sh("2026-12-01 09:00"))
    [t] = await desk.timers(number)
    assert t.state == "paused" and t.data["remaining_s"] == 7.5 * 3600


async def test_chasers_and_reminders_keep_running_while_waiting(desk: Desk) -> None:
    number = await desk.open(
        sh("2026-12-01 09:00"),
        SetTimer("chase", sh("2026-12-03 09:00"), key="quote",
                 data={"to": ["sales@hengda.example.cn"], "what": "报价单"}),
        process="supplier", step="intent", department="采购部")
    await desk.decide(number, (UpdateCase(status="waiting"),), sh("2026-12-01 10:00"))
    assert (await desk.sweep(sh("2026-12-03 09:00"))).fired == 1
    assert await desk.letters() == [("supplier_chase", ("sales@hengda.example.cn",))]


async def test_a_paused_deadline_is_replaced_by_a_new_one(desk: Desk) -> None:
    number = await desk.open(sh("2026-12-01 09:00"), deadline(sh("2026-12-02 09:00")))
    await desk.decide(number, (UpdateCase(status="waiting"),), sh("2026-12-01 10:00"))
    await desk.decide(number, (UpdateCase(status="open"), deadline(sh("2026-12-09 09:00"))),
                      sh("2026-12-03 10:00"))
    states = [(t.state, t.due_at) for t in await desk.timers(number)]
    assert states == [("cancelled", sh("2026-12-02 09:00")),
                      ("pending", sh("2026-12-09 09:00"))]


async def test_template_failure_leaves_the_timer_for_a_later_sweep(tmp_path: Path) -> None:
    async with open_store("sqlite", tmp_path) as store:
        desk = Desk(store, tmp_path)
        good = await desk.open(sh("2026-12-01 09:00"), deadline(sh("2026-12-02 09:00")))
        bad = await desk.open(sh("2026-12-01 09:00"), SetTimer(
            "milestone", sh("2026-12-02 09:00"), data={"title": "x", "date": "2026-12-07",
                                                       "to": ["a@huaxin.example.cn"]}))
        broken = tmp_path / "tpl"
        broken.mkdir()
        for f in desk.sweeper.site.letters.dir.iterdir():
            if f.is_file():
                (broken / f.name).write_bytes(f.read_bytes())
        (broken / "milestone_notice.zh.txt.j2").write_text("Subject: x\n\n{{ nope }}\n")
        from maild.adapters.letters import Letters

        desk.sweeper.site = replace(desk.sweeper.site, letters=Letters(broken))
        counts = await desk.sweep(sh("2026-12-02 09:00"))
        assert (counts.fired, counts.failed) == (1, 1)
        assert [t.state for t in await desk.timers(good)] == ["pending"]  # level 1 now
        [t] = await desk.timers(bad)
        assert t.state == "pending" and t.lease_owner is not None
        desk.sweeper.site = replace(desk.sweeper.site, letters=Letters())
        assert (await desk.sweep(sh("2026-12-02 09:03"))).fired == 1  # lease ran out
        assert [lt for lt, _ in await desk.letters()] == ["deadline_reminder",
                                                         "milestone_notice"]


async def test_reminders_thread_under_the_case(desk: Desk) -> None:
    number = await desk.open(sh("2026-12-01 09:00"), deadline(sh("2026-12-02 09:00")))
    await desk.sweep(sh("2026-12-02 09:00"))
    [m] = await desk.mails("deadline_reminder")
    assert m["In-Reply-To"] and m["In-Reply-To"] in m["References"]
    assert m["X-Maild-Case"] == number
