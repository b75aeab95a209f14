"""Each process from first mail to archive through real IMAP and SMTP: ``maild run --once``
against Dovecot and an SMTP sink, with the mails real people would send (replies to the
letters they got, quoted the way their mail clients quote), checking every step change,
every letter's recipients and key content, and the archived case at the end.
"""

from __future__ import annotations

import email
import email.policy
from email.message import EmailMessage
from pathlib import Path

import pytest
from servers import DovecotServer, SmtpSink
from sim import PROCESS_DIRECTORY
from support import mail
from test_e2e import Deployment

pytestmark = pytest.mark.slow
NOW = "2026-12-02T10:00:00+08:00"  # a Wednesday: no digest is due, nothing times out


class Site(Deployment):
    """The e2e deployment with a directory that has every role the processes need."""

    def __init__(self, base: Path, dovecot: DovecotServer, sink: SmtpSink) -> None:
        super().__init__(base, dovecot, sink)
        text = self.config.read_text(encoding="utf-8")
        head = text[: text.index("[organisation]")] if "[organisation]" in text else text
        self.config.write_text(head + PROCESS_DIRECTORY, encoding="utf-8")
        self.seen = 0

    def deliver(self, *raws: bytes) -> None:
        for raw in raws:
            self.dovecot.append(raw)

    def cycle(self) -> list[tuple[str, list[str]]]:
        """One ``maild run --once``; the letters it sent: (letter, recipients). A letter
        goes out as one copy per recipient, written together (same letter, moment, To and
        Cc): the copies are one letter here."""
        self.run("run", "-c", str(self.config), "--once", "--now", NOW)
        rows = self.db("select letter, rcpt, state, created_at, body from outbox order by id")
        new, self.seen = rows[self.seen:], len(rows)
        assert all(state == "sent" for _, _, state, _, _ in new), new
        out: list[tuple[str, list[str]]] = []
        last: tuple[object, ...] | None = None
        for letter, rcpt, _, at, body in new:
            head = email.message_from_bytes(bytes(body))  # type: ignore[arg-type]
            key = (letter, at, head["To"], head["Cc"])
            if key == last:
                out[-1] = (str(letter), sorted([*out[-1][1], *eval_json(rcpt)]))
            else:
                out.append((str(letter), sorted(eval_json(rcpt))))
            last = key
        return out

    def letter(self, kind_subject: str, to: str) -> EmailMessage:
        """The latest letter to ``to`` whose subject contains ``kind_subject``: the copy
        sent to ``to`` (its Message-ID carries the reply token made for ``to``)."""
        for received in reversed(self.sink.messages):
            m = email.message_from_bytes(received.raw, policy=email.policy.default)
            if to in received.rcpt_tos and kind_subject in str(m["Subject"]):
                return m  # type: ignore[return-value]
        raise AssertionError(f"no letter {kind_subject!r} to {to}")

    def state(self, number: str) -> tuple[str, str]:
        case = self.case(number)
        return str(case["step"]), str(case["status"])


def eval_json(text: object) -> list[str]:
    import json

    return list(json.loads(str(text)))


def body_of(m: EmailMessage) -> str:
    return m.get_body(("plain",)).get_content()  # type: ignore[union-attr]


def reply(letter: EmailMessage, sender: str, text: str, *, style: str = "gmail",
          subject: str | None = None, **kw: object) -> bytes:
    """A reply as a mail client writes it: Re: subject, threading headers, quoted letter."""
    original = body_of(letter)
    if style == "outlook":
        quoted = ("\n\n-----Original Message-----\nFrom: 示例科技有限公司 <service@example.test>\n"
                  f"Sent: Wednesday, December 2, 2026 10:00 AM\nSubject: {letter['Subject']}\n\n"
                  + original)
    elif style == "qq":
        quoted = ("\n\n------------------\xa0原始邮件\xa0------------------\n"
                  "发件人: \"示例科技有限公司\" <service@example.test>;\n"
                  "发送时间: 2026年12月2日(星期三) 上午10:00\n\n" + original)
    else:
        quoted = ("\n\nOn Wed, Dec 2, 2026 at 10:00 AM 示例科技有限公司 <service@example.test> "
                  "wrote:\n" + "".join(f"> {ln}\n" for ln in original.splitlines()))
    return mail(sender, subject or f"Re: {letter['Subject']}", text + quoted,
                In_Reply_To=str(letter["Message-ID"]), References=str(letter["Message-ID"]),
                **kw)  # type: ignore[arg-type]


@pytest.fixture
def site(tmp_path: Path, dovecot: DovecotServer, smtp_sink: SmtpSink) -> Site:
    return Site(tmp_path, dovecot, smtp_sink)


def test_internal_request_from_form_to_archive(site: Site) -> None:
    d = site
    d.deliver(mail("王芳 <wang@corp.example.test>", "[跨部门][技术部] 新品推广技术支持",
                   "张经理好，申请如下：\n\n发起部门/人：市场部/王芳\n接收部门/人：技术部/张伟\n"
                   "沟通目标：新品推广会技术讲解\n核心内容：12 月 10 日推广会讲解宽温设计\n"
                   "期望完成时间：2026-12-10\n紧急程度：一般\n\n王芳\n"))
    assert d.cycle() == [("request_more_info", ["wang@corp.example.test"])]
    [case] = d.cases()
    number = str(case["number"])
    assert number == "2026-技-001" and d.state(number) == ("request", "waiting")
    ask = d.letter("请补充", "wang@corp.example.test")
    assert "需协助事项：" in body_of(ask)

    d.deliver(reply(ask, "王芳 <wang@corp.example.test>", "需协助事项：派一名工程师讲解 30 分钟",
                    style="outlook"))
    assert d.cycle() == [("request_notice", ["wang@corp.example.test",
                                             "zhang@corp.example.test"])]
    assert d.state(number) == ("confirm", "open")
    assert d.case(number)["due_at"] == "2026-12-03T02:00:00+00:00"  # 1 working day
    notice = d.letter("待确认", "zhang@corp.example.test")
    assert "派一名工程师讲解 30 分钟" in body_of(notice)

    d.deliver(reply(notice, "li@corp.example.test", "#确认"))  # not the head: refused
    assert d.cycle() == [("command_refused", ["li@corp.example.test"])]
    assert "只能由接收部门负责人发出" in body_of(d.letter("命令未执行", "li@corp.example.test"))

    d.deliver(reply(notice, "张伟 <zhang@corp.example.test>", "#assign 财务部\n#确认\n没问题。",
                    style="qq"))
    assert d.cycle() == [
        ("participant_notice", ["qian@corp.example.test", "wang@corp.example.test"]),
        ("meeting_notice", ["qian@corp.example.test", "wang@corp.example.test",
                            "zhang@corp.example.test"]),
        ("command_receipt", ["zhang@corp.example.test"])]
    assert d.state(number) == ("meeting", "open")
    meeting = d.letter("沟通会议安排", "wang@corp.example.test")

    d.deliver(reply(meeting, "王芳 <wang@corp.example.test>",
                    "#advance\n#action 准备宽温设计讲解材料 | li@corp.example.test | 2026-12-09 | "
                    "市场部提供产品资料\n#action 确认会场设备 | 市场部 | 2026-12-09\n"
                    "会议纪要：\n1. 技术部李娜讲解宽温设计 30 分钟。\n"
                    "2. 分歧：样机数量，会后确认。"))
    assert d.cycle() == [("minutes_confirm", ["li@corp.example.test", "qian@corp.example.test",
                                              "wang@corp.example.test",
                                              "zhang@corp.example.test"]),
                         ("command_receipt", ["wang@corp.example.test"])]
    assert d.state(number) == ("minutes", "open")
    minutes = d.letter("纪要", "qian@corp.example.test")
    assert "#1 准备宽温设计讲解材料 | 负责人 li@corp.example.test | 截止 2026-12-09" in \
        body_of(minutes)
    assert d.case(number)["pending_confirmations"] == ["市场部", "技术部", "财务部"]

    d.deliver(reply(minutes, "zhang@corp.example.test", "#确认"),
              reply(minutes, "qian@corp.example.test", "#确认", style="outlook"))
    assert d.cycle() == [("command_receipt", ["zhang@corp.example.test"]),
                         ("command_receipt", ["qian@corp.example.test"])]
    assert d.case(number)["pending_confirmations"] == ["市场部"]
    d.deliver(reply(minutes, "wang@corp.example.test", "同意纪要。",
                    subject=f"Re: {minutes['Subject']} [确认]"))
    assert d.cycle() == [("command_receipt", ["wang@corp.example.test"])]
    assert "随后自动推进：共识与待办明确 → 结果跟踪与反馈" in body_of(
        d.letter("已执行", "wang@corp.example.test"))
    assert d.state(number) == ("track", "open")
    timers = d.db("select kind, key, state from timers where kind = 'action_reminder'")
    assert sorted(timers) == [("action_reminder", "1", "pending"),
                              ("action_reminder", "2", "pending")]

    d.deliver(reply(minutes, "li@corp.example.test", "#done 1\n材料已完成。"),
              reply(minutes, "wang@corp.example.test", "#完成 2"),
              reply(minutes, "zhang@corp.example.test",
                    "#advance\n结果报告：讲解已于 12 月 10 日完成，听众反馈良好。"))
    assert d.cycle() == [("command_receipt", ["li@corp.example.test"]),
                         ("command_receipt", ["wang@corp.example.test"]),
                         ("result_report", ["wang@corp.example.test",
                                            "zhang@corp.example.test"]),
                         ("command_receipt", ["zhang@corp.example.test"])]
    report = d.letter("结果报告待验收", "wang@corp.example.test")
    assert "听众反馈良好" in body_of(report)

    d.deliver(reply(report, "wang@corp.example.test", "验收通过。",
                    subject=f"Re: {report['Subject']} [确认]"))
    assert d.cycle() == [("case_closed", ["qian@corp.example.test", "wang@corp.example.test",
                                          "zhang@corp.example.test"]),
                         ("command_receipt", ["wang@corp.example.test"])]
    case = d.case(number)
    assert (case["step"], case["status"]) == ("track", "archived")
    assert case["closed_at"] and case["due_at"] is None
    steps = [e["text"] for e in case["timeline"] if e["kind"] == "step"]  # type: ignore
    assert steps == ["需求发起与明确 → 沟通对象确认", "沟通对象确认 → 会议/沟通执行",
                     "会议/沟通执行 → 共识与待办明确", "共识与待办明确 → 结果跟踪与反馈"]
    assert d.db("select count(*) from timers where state = 'pending'") == [(0,)]
    assert d.dovecot.count("INBOX") == 0


def test_customer_from_inquiry_to_archive(site: Site) -> None:
    d = site
    d.deliver(mail("王经理 <wang@huaxin.example.cn>", "定制工控主板询价（镕铭系列）",
                   "您好：\n\n我司计划采购一批定制工控主板，需求如下：\n1. 定制工控主板 200 套\n"
                   "2. 支持宽温 -20℃~70℃\n3. 两路 RS-485 接口\n期望交付时间：2027-01-15\n\n"
                   "华信集团 王喆\n", charset="gbk"))
    assert d.cycle() == [("ack", ["wang@huaxin.example.cn"]),
                         ("new_case_notice", ["ma@corp.example.test"])]
    number = str(d.cases()[0]["number"])
    assert number == "2026-客-001" and d.state(number) == ("requirements", "open")
    notice = d.letter("新案件", "ma@corp.example.test")
    assert "2. 支持宽温 -20℃~70℃" in body_of(notice)

    d.deliver(reply(notice, "ma@corp.example.test",
                    "#advance\n方案要点：K7 宽温工控主板，板载两路隔离 RS-485，分两批交付。"))
    assert d.cycle() == [("customer_confirmation", ["ma@corp.example.test",
                                                    "wang@huaxin.example.cn"]),
                         ("command_receipt", ["ma@corp.example.test"])]
    assert d.state(number) == ("solution", "waiting")
    v1 = d.letter("客户需求确认函", "wang@huaxin.example.cn")
    assert "第 1 版" in str(v1["Subject"]) and "两路隔离 RS-485" in body_of(v1)
    assert v1["Cc"] == "ma@corp.example.test"

    d.deliver(reply(v1, "王经理 <wang@huaxin.example.cn>", "方案基本可以，但希望一次交齐。",
                    charset="gbk"))
    assert d.cycle() == [("reply_notice", ["ma@corp.example.test"])]
    assert d.state(number) == ("solution", "open")
    d.deliver(reply(v1, "ma@corp.example.test", "#revise\n方案要点：K7 宽温工控主板，"
                    "两路隔离 RS-485，2027-01-15 一次交齐。"))
    assert d.cycle() == [("customer_confirmation", ["ma@corp.example.test",
                                                    "wang@huaxin.example.cn"]),
                         ("command_receipt", ["ma@corp.example.test"])]
    v2 = d.letter("第 2 版", "wang@huaxin.example.cn")
    assert "一次交齐" in body_of(v2) and "第 2 轮沟通" in body_of(v2)

    d.deliver(reply(v2, "王经理 <wang@huaxin.example.cn>", "确认。签字版见附件。",
                    attachments=(("确认函-签字版.pdf", b"%PDF-1.4 signed"),)))
    assert d.cycle() == [("reply_notice", ["ma@corp.example.test"]),
                         ("legal_review", ["ma@corp.example.test", "zhao@corp.example.test"])]
    assert d.state(number) == ("contract", "open")
    legal = d.letter("法务审核", "zhao@corp.example.test")
    assert "第 2 版" in body_of(legal)

    d.deliver(reply(legal, "sun@corp.example.test", "#确认\n条款无误。"),
              reply(legal, "ma@corp.example.test", "#advance\n合同已签订。",
                    attachments=(("合同-双方盖章.pdf", b"%PDF-1.4 contract"),)))
    assert d.cycle() == [("change_notice", ["ma@corp.example.test"]),  # legal approved
                         ("command_receipt", ["sun@corp.example.test"]),
                         ("step_notice", ["ma@corp.example.test"]),
                         ("command_receipt", ["ma@corp.example.test"])]
    assert d.state(number) == ("execution", "open")
    kickoff = d.letter("执行过程跟进", "ma@corp.example.test")

    d.deliver(reply(kickoff, "ma@corp.example.test", "#milestone 2026-12-15 样机交付"),
              mail("ma@corp.example.test", f"[{number}] 本周进度", "王经理好：样机已完成调试。",
                   to="wang@huaxin.example.cn", Cc="service@example.test"),
              reply(kickoff, "ma@corp.example.test", "#advance\n项目已交付。"))
    assert d.cycle() == [("command_receipt", ["ma@corp.example.test"]),
                         ("satisfaction_survey", ["ma@corp.example.test",
                                                  "wang@huaxin.example.cn"]),
                         ("command_receipt", ["ma@corp.example.test"])]
    assert d.state(number) == ("aftersales", "waiting")
    survey = d.letter("满意度调研", "wang@huaxin.example.cn")

    d.deliver(reply(survey, "王经理 <wang@huaxin.example.cn>",
                    "确认无异议。\n1. 总体满意度：5 分\n2. 交付质量：好", style="qq"))
    assert d.cycle() == [("reply_notice", ["ma@corp.example.test"]),
                         ("case_closed", ["ma@corp.example.test", "wang@huaxin.example.cn"])]
    case = d.case(number)
    assert (case["step"], case["status"]) == ("aftersales", "archived") and case["closed_at"]
    kinds = [e["kind"] for e in case["timeline"]]  # type: ignore[union-attr]
    assert "milestone" in kinds and kinds.count("step") == 4
    outputs = {a["output"]: a["filename"] for a in case["attachments"]}  # type: ignore
    assert outputs == {"客户需求确认函 v2（客户确认）": "确认函-签字版.pdf",
                       "正式合同文本": "合同-双方盖章.pdf"}
    progress = [e for e in case["outputs"] if e["name"] == "进度报告"]  # type: ignore
    assert progress and "样机已完成调试" in progress[0]["text"]


def test_supplier_from_intent_to_settlement(site: Site) -> None:
    d = site
    d.deliver(mail("吴采购 <wu@corp.example.test>", "[供应商] 铝合金外壳采购",
                   "供应商：sales@hengda.example.cn\n合作范围：铝合金外壳 500 件\n"
                   "资质要求：ISO 9001 认证\n交付标准：按图纸 HX-201，公差 ±0.05\n"
                   "回复期限：2026-12-08\n"))
    assert d.cycle() == [("ack", ["wu@corp.example.test"]),
                         ("supplier_intent", ["sales@hengda.example.cn",
                                              "wu@corp.example.test"])]
    number = str(d.cases()[0]["number"])
    assert number == "2026-供-001" and d.state(number) == ("intent", "waiting")
    intent = d.letter("合作意向函", "sales@hengda.example.cn")
    assert "合作范围：铝合金外壳 500 件" in body_of(intent)
    assert d.db("select kind, key from timers where state = 'pending'") == [("chase", "quote")]

    d.deliver(reply(intent, "恒达销售 <sales@hengda.example.cn>", "贵司好，附上资质文件与报价。",
                    attachments=(("营业执照.pdf", b"%PDF licence"), ("报价单.xlsx", b"PK quote")),
                    charset="gb2312"))
    assert d.cycle() == [("reply_notice", ["wu@corp.example.test"])]
    assert d.state(number) == ("intent", "open")
    answer = d.letter("对方回复", "wu@corp.example.test")

    d.deliver(reply(answer, "wu@corp.example.test", "#advance"))
    assert d.cycle() == [("command_receipt", ["wu@corp.example.test"])]
    assert d.state(number) == ("evaluation", "open")
    d.deliver(reply(answer, "wu@corp.example.test",
                    "#advance\n评估结论：资质齐全，产能满足，价格合理。\n规格：铝合金外壳 HX-201\n"
                    "数量：500 件\n交货日期：2026-12-20\n验收标准：按图纸 HX-201 全检\n"))
    assert d.cycle() == [("selection_notice", ["sales@hengda.example.cn",
                                               "wu@corp.example.test"]),
                         ("purchase_order", ["sales@hengda.example.cn",
                                             "wu@corp.example.test"]),
                         ("command_receipt", ["wu@corp.example.test"])]
    assert d.state(number) == ("order", "waiting")
    order = d.letter("采购订单", "sales@hengda.example.cn")
    assert "数量：500 件" in body_of(order) and "交货日期：2026-12-20" in body_of(order)

    d.deliver(reply(order, "sales@hengda.example.cn",
                    "确认订单。\n排期：12-05 原材料到货，12-10 开始生产，12-18 发货。",
                    style="outlook"))
    assert d.cycle() == [("reply_notice", ["wu@corp.example.test"])]
    assert d.state(number) == ("fulfilment", "open")

    d.deliver(reply(order, "wu@corp.example.test", "#delay 2026-12-28 原材料短缺"))
    assert d.cycle() == [("delay_explanation_request", ["sales@hengda.example.cn",
                                                        "wu@corp.example.test"]),
                         ("command_receipt", ["wu@corp.example.test"])]
    assert d.state(number) == ("fulfilment", "waiting")
    request = d.letter("延期说明", "sales@hengda.example.cn")
    assert "2026-12-28" in body_of(request) and "原材料短缺" in body_of(request)
    d.deliver(reply(request, "sales@hengda.example.cn",
                    "延期原因：铝锭供应商停产一周。\n调整计划：12-20 原材料到货，12-28 发货。"))
    assert d.cycle() == [("reply_notice", ["wu@corp.example.test"])]
    assert d.state(number) == ("fulfilment", "open")

    d.deliver(reply(request, "wu@corp.example.test", "#advance"),
              reply(request, "zheng@corp.example.test", "#确认\n验收合格，抽检 50 件无缺陷。"))
    assert d.cycle() == [("command_receipt", ["wu@corp.example.test"]),
                         ("acceptance_notice", ["sales@hengda.example.cn",
                                                "wu@corp.example.test"]),
                         ("command_receipt", ["zheng@corp.example.test"])]
    assert d.state(number) == ("acceptance", "waiting")
    accepted = d.letter("验收合格", "sales@hengda.example.cn")
    d.deliver(reply(accepted, "sales@hengda.example.cn", "发票已开具，见附件。",
                    attachments=(("发票-2026-1208.pdf", b"%PDF invoice"),)))
    assert d.cycle() == [("reply_notice", ["wu@corp.example.test"])]
    d.deliver(reply(accepted, "qian@corp.example.test", "#advance\n已按合同结算。"))
    assert d.cycle() == [("case_closed", ["sales@hengda.example.cn", "wu@corp.example.test"]),
                         ("command_receipt", ["qian@corp.example.test"])]
    case = d.case(number)
    assert (case["step"], case["status"]) == ("acceptance", "archived") and case["closed_at"]
    delays = [e["text"] for e in case["timeline"] if e["kind"] == "delay"]  # type: ignore
    assert delays == ["2026-12-28 原材料短缺"]
    assert sorted(a["output"] for a in case["attachments"]) == [  # type: ignore
        "供应商资质文件及报价", "供应商资质文件及报价", "发票"]
    names = [o["name"] for o in case["outputs"]]  # type: ignore[union-attr]
    for output in ("供应商资质文件及报价", "供应商评估报告", "供应商排期计划", "延期说明",
                   "验收报告", "发票"):
        assert output in names
    assert d.db("select count(*) from timers where state = 'pending'") == [(0,)]
    sent = [email.message_from_bytes(m.raw, policy=email.policy.default)
            for m in d.sink.messages]
    assert all(m["Auto-Submitted"] == "auto-replied" for m in sent)
    assert all(f"[{number}]" in str(m["Subject"]) for m in sent)
