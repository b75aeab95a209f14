"""Receipts for staff commands and notices to the people a change affects, through the
decision path (``Sim``: the production ``Site``, decide and apply, every letter rendered).

A member of staff whose commands ran gets one ``command_receipt`` (refusals of the same mail
included); ``#reopen`` tells the step's owner their deadline; legal's approval reaches the
account manager; a milestone notice goes to the customer with a copy to the account
manager; a supplier ``#advance`` after the quote keeps the order fields it carries.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime

from flows import ORDER, SOLUTION, at_step
from sim import Sent, Sim

from maild.engine.effects import Note
from maild.schedule.firing import TimerView, fire

BUYER, LEGAL, ACCOUNT = "wu@corp.example.test", "sun@corp.example.test", "ma@corp.example.test"
MANAGER = "chen@corp.example.test"


def T(s: str) -> datetime:
    return datetime.fromisoformat(s)


def letters(s: Sim, n: int, name: str) -> list[Sent]:
    return [x for x in s.sent[n:] if x.letter == name]


def notes(s: Sim, number: str, kind: str) -> list[str]:
    return [e.text for e in s.cases[number].timeline if e.kind == kind]


def test_an_advance_gets_one_receipt_with_the_new_step() -> None:
    s, n = at_step("customer", "requirements")
    before = len(s.sent)
    s.reply(n, "马丽 <ma@corp.example.test>", SOLUTION)
    assert s.names(before) == ["customer_confirmation", "command_receipt"]
    receipt = s.sent[-1]
    assert receipt.to == (ACCOUNT,) and receipt.cc == () and receipt.language == "zh"
    text = receipt.rendered.text
    assert receipt.rendered.subject == "已执行：定制工控主板询价"
    assert "马丽，您好" in text
    assert "#advance\n    已推进：需求初步对接 → 方案设计与沟通" in text
    assert "案件当前步骤：方案设计与沟通（负责：ma@corp.example.test），等待对方答复。" in text
    # a notice, not an automatic reply: it counts towards the hourly notice limit
    [effect] = [e for e in s.last.letters() if e.letter == "command_receipt"]
    assert effect.automatic is False and effect.files == ()


def test_a_deadline_is_shown_as_people_read_it() -> None:
    s, n = at_step("supplier", "evaluation")
    s.reply(n, BUYER, "#due 2026-12-03")
    receipt = s.sent[-1]
    assert receipt.letter == "command_receipt"
    assert "#due 2026-12-03\n    截止时间改为 12月3日 18:00" in receipt.rendered.text
    assert "（负责：wu@corp.example.test；截止 12月3日 18:00）" in receipt.rendered.text


def test_refusals_in_the_same_mail_go_in_the_receipt_not_a_second_letter() -> None:
    s, n = at_step("internal", "confirm")
    before = len(s.sent)
    s.reply(n, "zhang@corp.example.test", "#assign 财务部\n#due 2026-13-40\n")
    assert s.names(before) == ["participant_notice", "command_receipt"]
    receipt = s.sent[-1].rendered
    assert receipt.subject == "已执行（另有 1 条未执行）：新品推广技术支持"
    assert "#assign 财务部" in receipt.text and "以下命令没有执行：\n  #due 2026-13-40" in \
        receipt.text
    assert "原因：日期「2026-13-40」无效" in receipt.text


def test_a_mail_of_refusals_only_still_gets_the_refusal_letter() -> None:
    s, n = at_step("internal", "confirm")
    before = len(s.sent)
    s.reply(n, "li@corp.example.test", "#推进\n")
    assert s.names(before) == ["command_refused"]


def test_confirmations_that_move_on_by_themselves_are_said_so() -> None:
    s, n = at_step("internal", "confirm")
    s.reply(n, "zhang@corp.example.test", "#确认\n")
    assert s.case(n).step == "meeting"
    text = s.sent[-1].rendered.text
    assert "#确认\n    已确认" in text
    assert "随后自动推进：沟通对象确认 → 会议/沟通执行" in text


def test_note_and_help_get_no_receipt_by_default() -> None:
    s, n = at_step("internal", "confirm")
    before = len(s.sent)
    s.reply(n, "zhang@corp.example.test", "#note 周五前答复\n#help\n")
    assert s.names(before) == ["command_help"]


def test_which_commands_get_a_receipt_is_configurable() -> None:
    s = Sim("\n[receipts]\nskip = []\n")
    s.cases = at_step("internal", "confirm")[0].cases
    n = s.only_case()
    s.reply(n, "zhang@corp.example.test", "#note 周五前答复\n")
    assert s.names()[-1:] == ["command_receipt"]
    assert "#note 周五前答复\n    已执行" in s.sent[-1].rendered.text

    only_close = Sim('\n[receipts]\ncommands = ["关闭"]\n')
    only_close.cases = at_step("supplier", "evaluation")[0].cases
    n = only_close.only_case()
    only_close.reply(n, BUYER, "#due 2026-12-03")
    assert only_close.names() == []
    only_close.reply(n, BUYER, "#close 供应商退出")
    assert only_close.names() == ["case_closed", "command_receipt"]
    assert "案件已关闭" in only_close.sent[-1].rendered.text

    off = Sim("\n[receipts]\nenabled = false\n")
    off.cases = at_step("supplier", "evaluation")[0].cases
    off.reply(off.only_case(), BUYER, "#due 2026-12-03")
    assert off.names() == []


def test_reopen_tells_the_owner_of_the_step_and_the_deadline() -> None:
    s, n = at_step("supplier", "evaluation")
    s.reply(n, MANAGER, "#close 暂停")
    assert s.case(n).status == "closed"
    before = len(s.sent)
    s.reply(n, "陈总 <chen@corp.example.test>", "#reopen\n")
    c = s.case(n)
    assert (c.status, c.step, c.owner) == ("open", "evaluation", (BUYER,))
    assert c.due_at == T("2026-12-08T10:00+08:00")  # 5 working days from Tuesday 10:00
    assert s.names(before) == ["change_notice", "command_receipt"]
    told, receipt = s.sent[-2:]
    assert told.to == (BUYER,) and receipt.to == (MANAGER,)
    assert told.rendered.subject == "案件已重开：铝合金外壳采购"
    assert "陈总 重开了本案，「评估与选定」由您负责，请在 12月8日 10:00 前完成。" in \
        told.rendered.text
    assert "#advance" in told.rendered.text  # the commands the owner may give now
    assert "已重开：评估与选定；截止 12月8日 10:00" in receipt.rendered.text
    assert notes(s, n, "told") == [f"案件已重开：已通知 {BUYER}"]


def test_the_owner_reopening_the_case_gets_the_receipt_only() -> None:
    s, n = at_step("supplier", "evaluation")
    s.reply(n, BUYER, "#close")
    before = len(s.sent)
    s.reply(n, BUYER, "#重开")
    assert s.names(before) == ["command_receipt"]


def test_legal_approval_reaches_the_account_manager() -> None:
    s, n = at_step("customer", "contract")
    before = len(s.sent)
    s.reply(n, "孙律师 <sun@corp.example.test>", "#确认 条款无误")
    assert s.case(n).step == "contract"  # the account manager goes on with #advance
    assert s.names(before) == ["change_notice", "command_receipt"]
    told, receipt = s.sent[-2:]
    assert told.to == (ACCOUNT,) and receipt.to == (LEGAL,)
    assert told.rendered.subject.startswith("法务部已确认：")
    assert "法务部（孙律师）已在「合同/协议签订」确认，可以继续：回复 #advance 进入下一步。" in \
        told.rendered.text
    assert "#advance" in [c["usage"].split()[0] for c in told.context["commands"]]
    assert "#确认 条款无误\n    已确认" in receipt.rendered.text
    s.reply(n, ACCOUNT, "#advance\n合同已签订。")
    assert s.case(n).step == "execution"


def test_a_milestone_notice_goes_with_a_copy_to_the_account_manager() -> None:
    s, n = at_step("customer", "execution")
    s.reply(n, ACCOUNT, "#milestone 2026-12-15 样机交付")
    assert "已登记节点 2026-12-15 样机交付（提前 3 个工作日通知客户，抄送您）" in \
        s.sent[-1].rendered.text
    [timer] = s.cases[n].pending_timers("milestone")
    view = TimerView(1, timer.kind, timer.key, timer.due_at, 0, timer.data)
    firing = fire(view, s.case(n), s.site.fire_context(timer.due_at))
    [letter] = firing.letters
    assert letter.letter == "milestone_notice"
    assert letter.to == ("wang@huaxin.example.cn",) and letter.cc == (ACCOUNT,)
    assert [x.text for x in firing.notes] == [
        f"里程碑「样机交付」（2026-12-15）：已通知 wang@huaxin.example.cn（抄送 {ACCOUNT}）"]


def _quoted() -> tuple[Sim, str]:
    s, n = at_step("supplier", "intent")
    s.reply(n, "sales@hengda.example.cn", "附上资质文件和报价：单价 86 元。")
    return s, n


def test_the_order_fields_with_the_first_advance_send_the_order() -> None:
    s, n = _quoted()
    before = len(s.sent)
    s.reply(n, BUYER, ORDER)
    c = s.case(n)
    assert (c.step, c.status) == ("order", "waiting")
    assert c.data["order"]["数量"] == "500 件"
    assert s.names(before) == ["selection_notice", "purchase_order", "command_receipt"]
    assert "数量：500 件" in s.sent[-2].rendered.text
    assert "已推进：供应商信息对接 → 订单与要求确认" in s.sent[-1].rendered.text


def test_some_order_fields_are_kept_and_the_receipt_says_what_is_missing() -> None:
    s, n = _quoted()
    s.reply(n, BUYER, "#advance\n规格：铝合金外壳 HX-201\n数量：500 件\n")
    c = s.case(n)
    assert c.step == "evaluation" and c.data["order_draft"] == {
        "规格": "铝合金外壳 HX-201", "数量": "500 件"}
    text = s.sent[-1].rendered.text
    assert ("已推进：供应商信息对接 → 评估与选定；截止 12月8日 10:00。"
            "已记下采购订单的：规格、数量；还缺：交货日期、验收标准") in text
    s.reply(n, BUYER, "#advance\n交货日期：2026-12-20\n验收标准：按图纸全检\n")
    c = s.case(n)
    assert c.step == "order" and c.data["order"] == {
        "规格": "铝合金外壳 HX-201", "数量": "500 件", "交货日期": "2026-12-20",
        "验收标准": "按图纸全检"}
    assert c.data["order_draft"] == {}
    assert "规格：铝合金外壳 HX-201" in s.sent[-2].rendered.text  # the purchase order


def test_an_advance_without_order_fields_says_what_to_send_next() -> None:
    s, n = _quoted()
    s.reply(n, BUYER, "#advance")
    assert s.case(n).step == "evaluation"
    assert "评估后回复 #advance，并每项一行写明采购订单的规格、数量、交货日期、验收标准" in \
        s.sent[-1].rendered.text


def test_a_bad_delivery_date_with_the_first_advance_changes_nothing() -> None:
    s, n = _quoted()
    s.reply(n, BUYER, ORDER.replace("2026-12-20", "2025-01-01"))
    assert s.case(n).step == "intent"
    assert s.names()[-1] == "command_refused"
    assert "交货日期 2025-01-01 已经过去" in s.sent[-1].rendered.text
    assert not [e for e in s.last.effects if isinstance(e, Note) and e.kind == "step"]


def test_an_english_organisation_gets_english_receipts_and_notices() -> None:
    s, n = at_step("supplier", "evaluation")
    org = s.cfg.organisation.model_copy(update={"language": "en"})
    s.site = replace(s.site, cfg=s.cfg.model_copy(update={"organisation": org}))
    s.reply(n, MANAGER, "#close")
    s.reply(n, "Chen <chen@corp.example.test>", "#reopen")
    told, receipt = s.sent[-2:]
    assert (told.language, receipt.language) == ("en", "en")
    assert told.rendered.subject == "Case reopened: 铝合金外壳采购"
    assert "Chen reopened the case; 'Evaluation' is yours, due 8 Dec 10:00." in \
        told.rendered.text
    assert receipt.rendered.subject == "Done: 铝合金外壳采购"
    assert "reopened: Evaluation; due 8 Dec 10:00" in receipt.rendered.text
