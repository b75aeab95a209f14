"""``fire`` decided purely: every ladder finds its rungs from the owner's department, a rung
that cannot be found is noted and reported, early warnings, overdue action items, and
timeline notes in the organisation's language."""

from __future__ import annotations

import shutil
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from flows import INTENT, at_step
from sim import PROCESS_DIRECTORY, Sim
from timing import sh

from maild.config import parse_config
from maild.engine.definitions import DEFAULT_DIR, ProcessError
from maild.engine.effects import CaseView, SendLetter
from maild.handlers import load_definitions
from maild.schedule.firing import (
    Cancel,
    Escalate,
    FireContext,
    Fired,
    Firing,
    TimerView,
    fire,
    owner_department,
)
from maild.site import Site

SUPPLIER = "sales@hengda.example.cn"
BUYER = "wu@corp.example.test"  # 采购部
BUYER_HEAD = "zhou@corp.example.test"
CHEN = "chen@corp.example.test"  # covers every department
LIU = "liu@corp.example.test"  # 采购部 and 市场部
SCOPED = '\n[[directory.managers]]\nname = "刘经理"\naddress = "liu@corp.example.test"\n' \
         'departments = ["采购部", "市场部"]\n'


def site(extra: str = "", *, managers: bool = True) -> Site:
    text = PROCESS_DIRECTORY + extra
    if not managers:
        text = text.replace('[[directory.managers]]\nname = "陈总"\n'
                            'address = "chen@corp.example.test"\n', "")
    return Site.build(parse_config(text, "t.toml", "."))


def ctx(s: Site, now: datetime, language: str = "zh") -> FireContext:
    return replace(s.fire_context(now), language=language)


def case(process: str = "supplier", step: str = "intent", *, department: str | None = None,
         status: str = "waiting", **data: Any) -> CaseView:
    return CaseView("2026-供-001", process, step, status, "铝合金外壳采购", department, False,
                    "zh", (SUPPLIER,), {"contact": BUYER, "external": [SUPPLIER], **data})


def chase(level: int = 0, due: str = "2026-12-03 09:00", **data: Any) -> TimerView:
    return TimerView(1, "chase", "quote", sh(due), level,
                     {"to": [SUPPLIER], "what": "quote", **data})


def letter(f: Firing) -> SendLetter:
    [one] = f.letters
    return one


def notes(f: Firing) -> list[str]:
    return [n.text for n in f.notes]


# -- whose department -------------------------------------------------------------------


def test_the_owners_department_is_the_contacts_for_external_cases() -> None:
    s = site()
    assert owner_department(s.directory, case()) == "采购部"
    customer = replace(case("customer", "contract"), data={"contact": "ma@corp.example.test"})
    assert owner_department(s.directory, customer) == "市场部"
    assert owner_department(s.directory, case(), ["li@corp.example.test"]) == "技术部"
    stranger = replace(case(department="质量部"), data={"contact": "nobody@corp.example.test"})
    assert owner_department(s.directory, stranger) == "质量部"


# -- a silent supplier ------------------------------------------------------------------


def test_a_silent_supplier_is_chased_then_the_buyers_head_hears() -> None:
    s = site()
    first = fire(chase(), case(), ctx(s, sh("2026-12-03 09:00")))
    chaser = letter(first)
    assert (chaser.letter, chaser.to) == ("supplier_chase", (SUPPLIER,))
    assert chaser.context["what"] == "报价及资质文件"  # the label, not the key "quote"
    assert chaser.context["department"] == "采购部"
    assert isinstance(first.outcome, Escalate)
    assert first.outcome.due_at == sh("2026-12-07 09:00")  # chase_escalate_after: 2 days
    assert notes(first) == ["第 1 级（供应商）：「报价及资质文件」自 2026-12-03 09:00 起未回复；"
                            f"已催办 {SUPPLIER}"]

    timer = replace(chase(1, "2026-12-07 09:00"), data=first.outcome.data)
    second = fire(timer, case(), ctx(s, sh("2026-12-07 09:00")))
    up = letter(second)
    assert (up.letter, up.to) == ("escalation", (BUYER_HEAD,))
    assert (up.context["department"], up.context["owner"]) == ("采购部", BUYER)
    assert up.context["audience"] == "head" and up.context["missing"] == []
    assert isinstance(second.outcome, Fired) and second.outcome.level == 2
    assert notes(second) == ["第 2 级（部门负责人）：「报价及资质文件」"
                             f"自 2026-12-03 09:00 起未回复；已上报 {BUYER_HEAD}"]


def test_a_buyer_outside_every_department_is_reported_to_the_managers() -> None:
    s = site(SCOPED)
    stray = replace(case(), data={"contact": "temp@corp.example.test"})
    first = fire(chase(), stray, ctx(s, sh("2026-12-03 09:00")))
    assert letter(first).to == (SUPPLIER,)
    assert isinstance(first.outcome, Escalate)  # the hole is reported later, not skipped
    second = fire(replace(chase(1), data=first.outcome.data), stray,
                  ctx(s, sh("2026-12-07 09:00")))
    report = letter(second)
    assert (report.letter, report.to) == ("escalation", (CHEN,))  # all departments only
    assert report.context["audience"] == "managers"
    [missing] = report.context["missing"]
    assert "temp@corp.example.test 不在通讯录的任何部门" in missing
    assert notes(second) == [
        "第 2 级（部门负责人）无法找到："
        "找不到责任部门（temp@corp.example.test 不在通讯录的任何部门）",
        "第 2 级（部门负责人）：「报价及资质文件」自 2026-12-03 09:00 起未回复；"
        f"已报告管理层 {CHEN}"]
    rendered = s.letters.render(report.letter, report.language, {**report.context,
                                                                 "number": "2026-供-001"})
    assert "未能找到的上报对象" in rendered.text


def test_without_any_manager_the_ladder_ends_on_the_timeline_not_silently() -> None:
    s = site(managers=False)
    stray = replace(case(), data={"contact": "temp@corp.example.test"})
    first = fire(chase(), stray, ctx(s, sh("2026-12-03 09:00")))
    assert isinstance(first.outcome, Fired)  # nobody further up: said now
    assert notes(first)[1].startswith("第 2 级（部门负责人）无法找到：找不到责任部门")


# -- deadlines on customer cases ----------------------------------------------------------


def test_a_customer_deadline_climbs_through_the_account_managers_department() -> None:
    s = site(SCOPED)
    c = replace(case("customer", "contract", status="open"),
                data={"contact": "ma@corp.example.test"})
    t = TimerView(2, "deadline", "contract", sh("2026-12-01 10:00"), 0,
                  {"step": "contract", "owner": ["ma@corp.example.test"]})  # no department
    f1 = fire(t, c, ctx(s, sh("2026-12-01 10:00")))
    assert letter(f1).to == ("ma@corp.example.test",)
    assert isinstance(f1.outcome, Escalate)
    f2 = fire(replace(t, level=1, data=f1.outcome.data), c, ctx(s, sh("2026-12-02 10:00")))
    assert letter(f2).to == ("wang@corp.example.test",)  # 市场部's head
    assert letter(f2).context["department"] == "市场部"
    assert isinstance(f2.outcome, Escalate)
    f3 = fire(replace(t, level=2, data=f2.outcome.data), c, ctx(s, sh("2026-12-03 10:00")))
    assert letter(f3).to == (CHEN, LIU)  # the managers covering 市场部


def test_unconfirmed_minutes_remind_only_the_parties_still_to_confirm() -> None:
    sim, number = at_step("internal", "minutes")
    view = sim.case(number)
    [deadline] = [t for t in sim.cases[number].pending_timers("deadline")]
    assert deadline.key == "minutes"  # the minutes' confirmation has a deadline now
    sim.reply(number, "wang@corp.example.test", "#确认")  # 市场部 confirms
    view = sim.case(number)
    assert view.step == "minutes" and view.data["pending"] == ["技术部"]
    timer = TimerView(9, "deadline", "minutes", deadline.due_at, 0, dict(deadline.data))
    f = fire(timer, view, ctx(sim.site, deadline.due_at))
    assert letter(f).letter == "deadline_reminder"
    assert letter(f).to == ("zhang@corp.example.test",)  # 技术部's head, not 市场部's
    assert letter(f).context["department"] == "技术部"
    assert "共识与待办明确" in notes(f)[0]
    # 技术部 confirms, 市场部 does not: its head is reminded, then (being the department's
    # head) the managers hear — not 技术部's head
    sim2, number2 = at_step("internal", "minutes")
    sim2.reply(number2, "zhang@corp.example.test", "#确认")
    view2 = sim2.case(number2)
    assert view2.data["pending"] == ["市场部"]
    f1 = fire(timer, view2, ctx(sim2.site, deadline.due_at))
    assert letter(f1).to == ("wang@corp.example.test",)
    assert letter(f1).context["department"] == "市场部"
    assert isinstance(f1.outcome, Escalate)
    f2 = fire(replace(timer, level=1, data=f1.outcome.data), view2,
              ctx(sim2.site, f1.outcome.due_at))
    assert letter(f2).to == (CHEN,)
    assert notes(f2)[0] == "第 2 级（部门负责人）跳过：负责人即部门负责人"


# -- early warning --------------------------------------------------------------------------


def test_the_early_warning_is_armed_at_three_quarters_of_the_working_time() -> None:
    sim, number = at_step("internal", "request")
    sim.now = sh("2026-12-07 10:00")  # Monday: the step gets 1 working day (7.5 h)
    sim.reply(number, "王芳 <wang@corp.example.test>", "需协助事项：派一名工程师讲解 30 分钟\n")
    sc = sim.cases[number]
    assert sc.view.step == "confirm"
    [deadline] = sc.pending_timers("deadline")
    [warning] = sc.pending_timers("warning")
    assert deadline.due_at == sh("2026-12-08 10:00")
    # 5.625 working hours after Monday 10:00: 12:00, then 13:30 + 3 h 37.5 min
    assert warning.due_at == sh("2026-12-07 17:07:30")
    f = fire(TimerView(7, "warning", warning.key, warning.due_at, 0, dict(warning.data)),
             sc.view, ctx(sim.site, warning.due_at))
    w = letter(f)
    assert (w.letter, w.to) == ("deadline_warning", ("zhang@corp.example.test",))
    assert w.context["hours_left"] == 1.9
    assert w.context["deadline"] == "2026-12-08 10:00"
    assert isinstance(f.outcome, Fired)
    assert notes(f) == ["步骤「沟通对象确认」将于 2026-12-08 10:00 到期：已预先提醒 "
                        "zhang@corp.example.test"]
    text = sim.letters.render("deadline_warning", "zh", {**w.context, "number": number}).text
    assert "距截止还有约 1.9 个工作小时" in text


def test_early_warnings_can_be_turned_off_and_stop_with_the_step() -> None:
    off = Sim("\n[escalation]\nearly_warning = 0\n")
    off.send("王芳 <wang@corp.example.test>", "[跨部门][技术部] 新品推广技术支持",
             "发起部门/人：市场部/王芳\n接收部门/人：技术部/张伟\n沟通目标：讲解\n核心内容：新品\n"
             "需协助事项：讲解\n期望完成时间：2026-12-10\n紧急程度：一般\n")
    sc = off.cases[off.only_case()]
    assert sc.pending_timers("deadline") and not sc.pending_timers("warning")

    sim, number = at_step("internal", "meeting")  # the confirm step's warning is gone
    assert not sim.cases[number].pending_timers("warning")
    stale = TimerView(3, "warning", "confirm", sh("2026-12-01 15:00"), 0,
                      {"step": "confirm", "owner": ["zhang@corp.example.test"]})
    assert isinstance(fire(stale, sim.case(number), ctx(sim.site, sh("2026-12-01 15:00"))
                           ).outcome, Cancel)


# -- action items ---------------------------------------------------------------------------


def action_case(done: bool = False) -> CaseView:
    return CaseView("2026-市-001", "internal", "track", "open", "官网改版", "技术部", False,
                    "zh", (), {"actions": [{"id": 1, "text": "准备讲解材料",
                                            "owner": "li@corp.example.test",
                                            "due": "2026-12-09", "done": done}]})


def action_timer(level: int, due_at: str) -> TimerView:
    return TimerView(4, "action_reminder", "1", sh(due_at), level,
                     {"action": "准备讲解材料", "owner": "li@corp.example.test",
                      "due": "2026-12-09", "support": ""})


def test_an_action_item_is_reminded_then_followed_up_then_escalated() -> None:
    s = site()
    f0 = fire(action_timer(0, "2026-12-07 09:00"), action_case(), ctx(s, sh("2026-12-07 09:00")))
    assert letter(f0).to == ("li@corp.example.test",) and not letter(f0).context["overdue"]
    assert isinstance(f0.outcome, Escalate)
    assert f0.outcome.due_at == sh("2026-12-10 09:00")  # the working day after the due date
    f1 = fire(action_timer(1, "2026-12-10 09:00"), action_case(), ctx(s, sh("2026-12-10 09:00")))
    assert letter(f1).context["overdue"] and letter(f1).to == ("li@corp.example.test",)
    assert notes(f1) == ["待办「准备讲解材料」已于 2026-12-09 到期仍未完成："
                         "已提醒 li@corp.example.test"]
    assert isinstance(f1.outcome, Escalate) and f1.outcome.due_at == sh("2026-12-11 09:00")
    f2 = fire(action_timer(2, "2026-12-11 09:00"), action_case(), ctx(s, sh("2026-12-11 09:00")))
    head = letter(f2)
    assert head.to == ("zhang@corp.example.test",)  # li's head in 技术部
    assert (head.context["audience"], head.context["department"]) == ("head", "技术部")
    assert isinstance(f2.outcome, Fired)
    text = s.letters.render("action_reminder", "zh", {**head.context, "number": "2026-市-001"})
    assert text.subject.startswith("待办逾期上报")
    assert "负责人 li@corp.example.test 仍未完成" in text.text


def test_a_done_action_item_is_never_chased_and_a_late_one_is_overdue_at_once() -> None:
    s = site()
    f = fire(action_timer(1, "2026-12-10 09:00"), action_case(done=True),
             ctx(s, sh("2026-12-10 09:00")))
    assert isinstance(f.outcome, Cancel) and not f.letters
    late = fire(action_timer(0, "2026-12-07 09:00"), action_case(),
                ctx(s, sh("2026-12-14 09:00")))  # the daemon was down past the due date
    assert letter(late).context["overdue"]
    assert isinstance(late.outcome, Escalate) and late.outcome.level == 2


# -- language ------------------------------------------------------------------------------


def test_timeline_notes_follow_the_organisations_language() -> None:
    s = site()
    f = fire(chase(), case(), ctx(s, sh("2026-12-03 09:00"), "en"))
    assert notes(f) == ["level 1 (supplier): 'quotation and qualification documents' "
                        f"unanswered since 2026-12-03 09:00; chased {SUPPLIER}"]
    progress = TimerView(5, "progress", "", sh("2026-12-03 09:00"), 0,
                         {"cadence_days": 7, "to": ["ma@corp.example.test"]})
    zh = notes(fire(progress, replace(case("customer", "execution"), status="open"),
                    ctx(s, sh("2026-12-03 09:00"))))
    assert zh == ["已请 ma@corp.example.test 提交进度报告；下次 2026-12-10 09:00"]
    milestone = TimerView(6, "milestone", "2026-12-10", sh("2026-12-07 09:00"), 0,
                          {"title": "样机交付", "date": "2026-12-10", "to": ["a@b.example"]})
    assert notes(fire(milestone, replace(case("customer", "execution"), status="open"),
                      ctx(s, sh("2026-12-07 09:00")))) == [
        f"里程碑「样机交付」（2026-12-10）：已通知 a@b.example（抄送 {BUYER}）"]


def test_a_staff_opened_supplier_case_chases_by_the_reply_date() -> None:
    sim = Sim()
    sim.send("吴采购 <wu@corp.example.test>", "[供应商] 铝合金外壳采购", INTENT)
    sc = sim.cases[sim.only_case()]
    [t] = sc.pending_timers("chase")
    f = fire(TimerView(1, "chase", t.key, t.due_at, 0, dict(t.data)), sc.view,
             ctx(sim.site, t.due_at + timedelta(minutes=1)))
    assert letter(f).context["what"] == "报价及资质文件"
    assert letter(f).context["department"] == "采购部"


def test_a_chase_without_a_label_is_refused_at_load(tmp_path: Path) -> None:
    shutil.copytree(DEFAULT_DIR, tmp_path / "p")
    path = tmp_path / "p" / "supplier.toml"
    text = path.read_text(encoding="utf-8")
    for line, problem in (('quote = { title = "报价及资质文件"',
                           "chase.what 'quote' has no label in [chases]"),
                          ('delay_explanation = { title',
                           "chases.delay_explanation: missing (handlers/supplier.py")):
        path.write_text(text.replace(line, "# " + line, 1), encoding="utf-8")
        with pytest.raises(ProcessError) as e:
            load_definitions(tmp_path / "p")
        assert problem in str(e.value)
