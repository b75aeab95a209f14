"""The three processes driven by mail, decided purely (``sim.Sim``): steps, letters, timers.

The same flows run through Dovecot and SMTP in ``test_processes_e2e.py``; here every
detail is cheap to check: statuses, owners, deadlines, timers and each letter's content.
"""

from __future__ import annotations

from datetime import datetime

from flows import INITIATOR, INQUIRY, INTENT, MINUTES, ORDER, REQUEST_FORM, SOLUTION, at_step
from sim import Sim

from maild.engine.effects import Note

T = datetime.fromisoformat


def refused(s: Sim) -> list[str]:
    return [e.text for e in s.last.effects if isinstance(e, Note) and e.kind == "refused"]


# -- internal -------------------------------------------------------------------------------


def test_internal_request_missing_fields_then_completed() -> None:
    s = Sim()
    s.send(INITIATOR, "[跨部门][技术部] 新品推广技术支持", REQUEST_FORM)
    n = s.only_case()
    assert n == "2026-技-001"
    c = s.case(n)
    assert (c.step, c.status) == ("request", "waiting")
    assert c.data["missing"] == ["需协助事项"]
    [ask] = s.sent  # one letter, instead of the acknowledgement
    assert ask.letter == "request_more_info" and ask.to == ("wang@corp.example.test",)
    assert "需协助事项：" in ask.rendered.text and "沟通目标：" not in ask.rendered.text
    s.reply(n, INITIATOR, "好的，补充如下。\n\n在 2026-12-01 10:00，示例科技 写道：\n> 沟通目标：")
    assert s.case(n).status == "waiting" and len(s.sent) == 1  # nothing new: a plain reply
    s.reply(n, INITIATOR, "需协助事项：派一名工程师讲解 30 分钟\n")
    c = s.case(n)
    assert (c.step, c.status, c.owner) == ("confirm", "open", ("zhang@corp.example.test",))
    assert c.due_at == T("2026-12-02T10:00+08:00")  # 1 working day
    [notice] = s.sent[1:]
    assert notice.letter == "request_notice"
    assert notice.to == ("zhang@corp.example.test",) and notice.cc == ("wang@corp.example.test",)
    assert "派一名工程师讲解 30 分钟" in notice.rendered.text
    [deadline] = s.cases[n].pending_timers("deadline")
    assert deadline.key == "confirm" and deadline.data == {
        "step": "confirm", "owner": ["zhang@corp.example.test"], "department": "技术部",
        "label": "沟通对象确认", "language": "zh"}  # the timeline's words when it pauses


def test_an_urgent_request_has_two_working_hours() -> None:
    s = Sim(now=T("2026-12-04T17:00+08:00"))  # Friday 17:00
    s.send(INITIATOR, "[跨部门][技术部] 系统升级停机", REQUEST_FORM.replace("一般", "紧急")
           + "需协助事项：确认停机窗口\n")
    n = s.only_case()
    c = s.case(n)
    assert c.urgent and c.step == "confirm"
    assert c.due_at == T("2026-12-07T10:00+08:00")  # 1 h on Friday, 1 h on Monday
    assert "【紧急】" in s.sent[-1].rendered.text
    s.reply(n, "zhang@corp.example.test", "#确认")
    assert s.case(n).step == "meeting"
    assert s.names(2) == ["meeting_notice", "urgent_notice", "command_receipt"]
    urgent = s.sent[-2]
    assert urgent.cc == ("chen@corp.example.test",)  # the managers hear of it
    assert s.case(n).due_at == T("2026-12-07T10:00+08:00")  # urgent: 2 working hours


def test_internal_full_flow_with_participants_minutes_actions_and_acceptance() -> None:
    s, n = at_step("internal", "confirm")
    s.reply(n, "zhang@corp.example.test", "#assign 财务部\n#确认\n")
    c = s.case(n)
    assert c.step == "meeting" and c.data["participants"] == ["市场部", "技术部", "财务部"]
    assert s.cases[n].pending_timers("deadline") == []
    participant, meeting, receipt = s.sent[-3:]
    assert receipt.letter == "command_receipt" and receipt.to == ("zhang@corp.example.test",)
    assert participant.letter == "participant_notice" and participant.to == (
        "qian@corp.example.test",)
    assert meeting.letter == "meeting_notice"
    assert set(meeting.to) == {"wang@corp.example.test", "zhang@corp.example.test",
                               "qian@corp.example.test"}
    s.reply(n, INITIATOR, MINUTES + "#action 场地与设备 | 市场部 | 2026-12-09\n")
    c = s.case(n)
    assert c.step == "minutes" and c.data["pending"] == ["市场部", "技术部", "财务部"]
    minutes = s.sent[-2]
    assert s.sent[-1].letter == "command_receipt"
    assert minutes.letter == "minutes_confirm" and "li@corp.example.test" in minutes.to
    assert "#1 准备宽温设计讲解材料 | 负责人 li@corp.example.test | 截止 2026-12-09" in \
        minutes.rendered.text
    reminders = s.cases[n].pending_timers("action_reminder")
    assert [(t.key, t.due_at, t.data["owner"]) for t in reminders] == [
        ("1", T("2026-12-07T09:00+08:00"), "li@corp.example.test"),
        ("2", T("2026-12-07T09:00+08:00"), "wang@corp.example.test")]
    s.reply(n, "li@corp.example.test", "#确认")  # a member confirms for 技术部
    s.reply(n, "qian@corp.example.test", "#确认")
    assert s.case(n).data["pending"] == ["市场部"]
    s.reply(n, "qian@corp.example.test", "#确认")
    assert "已经确认过" in refused(s)[0]
    s.reply(n, INITIATOR, "#确认")
    assert s.case(n).step == "track"
    s.reply(n, "zhang@corp.example.test", "#advance\n讲解完成。")
    assert "未完成的待办" in refused(s)[0]
    s.reply(n, "li@corp.example.test", "#done 2")
    assert "没有您可以完成的待办" in refused(s)[0]
    s.reply(n, "li@corp.example.test", "#完成")
    s.reply(n, INITIATOR, "[完成]", subject=f"Re: [{n}] 新品推广技术支持 [完成]")
    assert s.cases[n].pending_timers("action_reminder") == []
    s.reply(n, INITIATOR, "#确认")
    assert "结果报告" in refused(s)[0]
    s.reply(n, "li@corp.example.test", "#advance\n讲解已于 12 月 10 日完成，反馈良好。")
    report = s.sent[-2]
    assert report.letter == "result_report" and report.to == ("wang@corp.example.test",)
    assert "反馈良好" in report.rendered.text
    s.reply(n, INITIATOR, "好的", subject=f"Re: [{n}] 结果报告 [确认]")
    c = s.case(n)
    assert c.status == "archived" and s.cases[n].closed_at is not None
    assert s.cases[n].pending_timers() == []
    closed, receipt = s.sent[-2:]
    assert closed.letter == "case_closed" and "已完成并归档" in closed.rendered.text
    assert receipt.letter == "command_receipt" and "案件已归档" in receipt.rendered.text


def test_refusals_say_why_and_list_what_is_possible() -> None:
    s, n = at_step("internal", "confirm")
    s.reply(n, "li@corp.example.test", "#推进\n#due 2026-13-40\n#frobnicate\n")
    letter = s.sent[-1]
    assert letter.letter == "command_refused" and letter.to == ("li@corp.example.test",)
    text = letter.rendered.text
    assert "#advance 只能由接收部门负责人发出" in text or "只能由接收部门负责人" in text
    assert "未知命令 #frobnicate" in text and "#help" in text
    s.reply(n, "nobody@corp.example.test", "#确认")
    assert "通讯录" in refused(s)[0]
    s.reply(n, "zhang@corp.example.test", "#due 2026-11-30")
    assert "已经过去" in refused(s)[0]
    s.reply(n, "zhang@corp.example.test", "#due 2026-12-03")
    assert s.case(n).due_at == T("2026-12-03T18:00+08:00")


def test_help_lists_the_commands_valid_now() -> None:
    s, n = at_step("internal", "track")
    s.reply(n, "li@corp.example.test", "#help")
    help_ = s.sent[-1]
    assert help_.letter == "command_help" and help_.to == ("li@corp.example.test",)
    usages = [c["usage"] for c in help_.context["commands"]]
    assert "#done 2" in usages and "#advance" in usages and "#confirm" not in usages
    assert "结果跟踪与反馈" in help_.rendered.text


def test_a_subject_tag_counts_once_per_step() -> None:
    s, n = at_step("internal", "minutes")
    subject = f"Re: [{n}] 请确认纪要 [确认]"
    s.reply(n, "zhang@corp.example.test", "同意", subject=subject)
    s.reply(n, "zhang@corp.example.test", "补充一点", subject="Re: " + subject)
    assert not refused(s)
    assert [e.kind for e in s.last.effects if isinstance(e, Note)][-1] == "ignored"


# -- customer -------------------------------------------------------------------------------


def test_customer_flow_rounds_legal_milestones_survey_archive() -> None:
    s = Sim()
    s.send("王经理 <wang@huaxin.example.cn>", "定制工控主板询价", INQUIRY)
    n = s.only_case()
    c = s.case(n)
    assert (n, c.step, c.owner) == ("2026-客-001", "requirements", ("ma@corp.example.test",))
    assert c.data["requirements"] == ["定制工控主板 200 套", "支持宽温 -20℃~70℃",
                                      "两路 RS-485 接口"]
    assert c.data["expected_delivery"] == "2027-01-15"
    assert s.names() == ["ack", "new_case_notice"]
    assert s.sent[1].to == ("ma@corp.example.test",)
    s.reply(n, "ma@corp.example.test", SOLUTION)
    letter, receipt = s.sent[-2:]
    assert letter.letter == "customer_confirmation" and letter.to == ("wang@huaxin.example.cn",)
    assert receipt.letter == "command_receipt" and receipt.to == ("ma@corp.example.test",)
    assert "《客户需求确认函》（第 1 版）" in letter.rendered.subject
    assert s.case(n).status == "waiting"
    s.reply(n, "wang@huaxin.example.cn", "方案可以，但希望一次交齐。\n\n> 原邮件")
    assert s.case(n).status == "open" and s.sent[-1].letter == "reply_notice"
    assert "一次交齐" in s.sent[-1].rendered.text
    s.reply(n, "ma@corp.example.test", "#revise\n方案要点：K7 宽温主板，一次交齐。")
    c = s.case(n)
    assert (c.status, c.data["version"], c.data["rounds"]) == ("waiting", 2, 2)
    assert "第 2 版" in s.sent[-2].rendered.subject
    s.reply(n, "wang@huaxin.example.cn", "同意，没有问题。")
    c = s.case(n)
    assert (c.step, c.data["confirmed_version"]) == ("contract", 2)
    legal = s.sent[-1]
    assert legal.letter == "legal_review" and legal.to == ("zhao@corp.example.test",)
    s.reply(n, "ma@corp.example.test", "#advance")
    assert "法务部" in refused(s)[0]
    s.reply(n, "ma@corp.example.test", "#confirm")
    assert "只能由法务部" in refused(s)[0]
    s.reply(n, "sun@corp.example.test", "#确认")
    s.reply(n, "ma@corp.example.test", "#advance\n合同已签订。", attachments=(
        ("合同-签字版.pdf", b"%PDF-1.4 contract"),))
    assert s.case(n).step == "execution"
    [progress] = s.cases[n].pending_timers("progress")
    assert progress.data == {"cadence_days": 7, "to": ["ma@corp.example.test"]}
    s.reply(n, "ma@corp.example.test", "#milestone 2026-12-15 样机交付")
    [ms] = s.cases[n].pending_timers("milestone")
    assert (ms.key, ms.due_at) == ("2026-12-15:样机交付", T("2026-12-10T09:00+08:00"))
    assert ms.data["to"] == ["wang@huaxin.example.cn"]
    s.reply(n, "ma@corp.example.test", "#milestone 下周 样机")
    assert "无效" in refused(s)[0]
    s.reply(n, "ma@corp.example.test", "#advance")
    assert s.case(n).step == "aftersales"
    assert s.names(-2) == ["satisfaction_survey", "command_receipt"]
    assert s.cases[n].pending_timers("progress") == []
    s.reply(n, "wang@huaxin.example.cn", "总体满意度：5 分。")
    assert s.case(n).status == "open"
    s.reply(n, "wang@huaxin.example.cn", "确认无异议，谢谢！")
    assert s.case(n).status == "archived"
    assert s.sent[-1].letter == "case_closed" and s.sent[-1].to == ("wang@huaxin.example.cn",)


def test_an_english_customer_gets_english_letters_and_staff_chinese_ones() -> None:
    s = Sim("\n[[directory.managers]]\nname = \"x\"\naddress = \"chen2@corp.example.test\"\n")
    s.send("Alice <alice@globex.example.org>", "Inquiry: industrial boards",
           "Hello,\n1. 50 industrial boards\n2. delivery by 2027-02-01\nAlice\n")
    n = s.only_case()
    assert s.case(n).language == "en"
    ack, notice = s.sent
    assert ack.language == "en" and notice.language == "zh"
    assert set(notice.to) == {"chen@corp.example.test", "chen2@corp.example.test"}
    s.reply(n, "chen@corp.example.test", "#assign ma@corp.example.test")
    assert s.case(n).data["contact"] == "ma@corp.example.test"
    assert s.names(-2) == ["assigned_notice", "command_receipt"]
    s.reply(n, "ma@corp.example.test", "#advance\nBoard K7, industrial grade.")
    letter = s.sent[-2]
    assert s.sent[-1].language == "zh"  # the receipt to staff is in the organisation's
    assert letter.language == "en" and "Requirements confirmation (version 1)" in \
        letter.rendered.subject
    s.reply(n, "alice@globex.example.org", "Confirmed, thanks.")
    assert s.case(n).step == "contract"


def test_a_staff_opened_customer_case_needs_the_customers_address() -> None:
    s = Sim()
    s.send("ma@corp.example.test", "[客户] 华信集团新需求", "1. 主板 100 套\n")
    assert s.cases == {} and s.names() == ["request_more_info"]
    assert "客户邮箱" in s.sent[0].rendered.text
    s.send("ma@corp.example.test", "[客户] 华信集团新需求", "客户：wang@huaxin.example.cn\n"
           "1. 主板 100 套\n")
    n = s.only_case()
    assert s.case(n).data["external"] == ["wang@huaxin.example.cn"]
    assert s.case(n).data["contact"] == "ma@corp.example.test"


# -- supplier -------------------------------------------------------------------------------


def test_supplier_flow_intent_order_delay_acceptance_settlement() -> None:
    s = Sim()
    s.send("吴采购 <wu@corp.example.test>", "[供应商] 铝合金外壳采购", INTENT)
    n = s.only_case()
    c = s.case(n)
    assert (n, c.step, c.status) == ("2026-供-001", "intent", "waiting")
    assert s.names() == ["ack", "supplier_intent"]
    intent = s.sent[1]
    assert intent.to == ("sales@hengda.example.cn",) and intent.cc == ("wu@corp.example.test",)
    assert "合作范围：铝合金外壳 500 件" in intent.rendered.text
    [chase] = s.cases[n].pending_timers("chase")
    assert (chase.key, chase.due_at) == ("quote", T("2026-12-08T18:00+08:00"))
    assert chase.data == {"to": ["sales@hengda.example.cn"], "what": "quote"}
    s.reply(n, "wu@corp.example.test", "#advance")
    assert "对方尚未答复" in refused(s)[0]
    s.reply(n, "sales@hengda.example.cn", "附上资质文件和报价。")
    assert s.case(n).status == "open" and s.cases[n].pending_timers("chase") == []
    s.reply(n, "wu@corp.example.test", "#advance")
    s.reply(n, "wu@corp.example.test", ORDER.replace("验收标准：按图纸 HX-201 全检\n", ""))
    assert "验收标准" in refused(s)[0]
    s.reply(n, "wu@corp.example.test", ORDER)
    c = s.case(n)
    assert c.step == "order" and c.status == "waiting"
    assert s.names(-3) == ["selection_notice", "purchase_order", "command_receipt"]
    assert "数量：500 件" in s.sent[-2].rendered.text
    s.reply(n, "sales@hengda.example.cn", "确认订单，排期：12-18 发货。")
    assert s.case(n).step == "fulfilment"
    s.reply(n, "wu@corp.example.test", "#delay 2026-12-28 原材料短缺")
    c = s.case(n)
    assert c.status == "waiting" and c.data["delays"][-1]["date"] == "2026-12-28"
    request = s.sent[-2]
    assert request.letter == "delay_explanation_request"
    assert "2026-12-28" in request.rendered.text and "原材料短缺" in request.rendered.text
    delays = [e for e in s.cases[n].timeline if e.kind == "delay"]
    assert delays[-1].text == "2026-12-28 原材料短缺"
    s.reply(n, "sales@hengda.example.cn", "延期原因：铝锭短缺。调整计划：12-28 发货。")
    assert s.case(n).status == "open" and s.case(n).data["delays"][-1]["explained"]
    s.reply(n, "wu@corp.example.test", "#advance")
    s.reply(n, "zheng@corp.example.test", "#确认\n验收合格。")
    assert s.names(-2) == ["acceptance_notice", "command_receipt"]
    assert s.case(n).status == "waiting"
    s.reply(n, "qian@corp.example.test", "#advance")
    assert "发票" in refused(s)[0]
    s.reply(n, "sales@hengda.example.cn", "发票见附件。", attachments=(("发票.pdf", b"%PDF"),))
    s.reply(n, "qian@corp.example.test", "#advance")
    assert s.case(n).status == "archived"


def test_a_supplier_saying_they_are_late_is_asked_for_an_explanation() -> None:
    s, n = at_step("supplier", "fulfilment")
    s.reply(n, "sales@hengda.example.cn", "抱歉，可能要推迟到 2026-12-30 才能发货。")
    c = s.case(n)
    assert c.status == "waiting" and c.data["delays"][-1]["date"] == "2026-12-30"
    assert s.names(-2) == ["delay_explanation_request", "reply_notice"]
    assert [t.key for t in s.cases[n].pending_timers("chase")] == ["delay_explanation"]


def test_a_supplier_that_writes_first_has_answered() -> None:
    s = Sim()
    s.send("sales@hengda.example.cn", "铝合金外壳报价", "单价 86 元，起订量 500 件。")
    n = s.only_case()
    c = s.case(n)
    assert (c.step, c.status) == ("intent", "open")
    assert s.cases[n].pending_timers("chase") == []
    assert s.names() == ["ack", "new_case_notice"]  # to the managers: no buyer known
    assert s.sent[1].to == ("chen@corp.example.test",)


def test_commands_in_the_mail_that_opens_a_case_are_answered_not_dropped() -> None:
    s = Sim()
    s.send("吴采购 <wu@corp.example.test>", "[供应商] 铝合金外壳采购", INTENT + "#due 2026-12-10\n")
    n = s.only_case()
    assert s.case(n).due_at is None
    assert s.names() == ["ack", "command_refused", "supplier_intent"]
    assert "开案邮件中的命令不执行" in s.sent[1].rendered.text
    assert "回复期限：2026-12-08\n" in s.sent[2].rendered.text  # the command is no field
