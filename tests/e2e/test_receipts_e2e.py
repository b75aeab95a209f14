"""Receipts and change notices on the real stack: ``maild run --once`` against Dovecot and
the SMTP sink, with the replies staff would send. A staff ``#advance`` gets its receipt;
``#reopen`` tells the step's owner their deadline; legal's approval reaches the account
manager; a milestone notice reaches the account manager as a copy.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import test_processes_e2e
from servers import DovecotServer, SmtpSink
from support import mail
from test_processes_e2e import Site, body_of, reply

pytestmark = pytest.mark.slow
BUYER, MANAGER = "wu@corp.example.test", "chen@corp.example.test"
ACCOUNT, LEGAL, CUSTOMER = "ma@corp.example.test", "sun@corp.example.test", \
    "wang@huaxin.example.cn"


class Later(Site):
    def cycle_at(self, now: str) -> list[tuple[str, list[str]]]:
        """``cycle`` at another moment (timers due by then fire)."""
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(test_processes_e2e, "NOW", now)
            return self.cycle()


@pytest.fixture
def site(tmp_path: Path, dovecot: DovecotServer, smtp_sink: SmtpSink) -> Later:
    return Later(tmp_path, dovecot, smtp_sink)


def test_supplier_advance_receipt_and_reopen_notice(site: Later) -> None:
    d = site
    d.deliver(mail("吴采购 <wu@corp.example.test>", "[供应商] 铝合金外壳采购",
                   "供应商：sales@hengda.example.cn\n合作范围：铝合金外壳 500 件\n"))
    d.cycle()
    number = str(d.cases()[0]["number"])
    intent = d.letter("合作意向函", "sales@hengda.example.cn")
    d.deliver(reply(intent, "恒达销售 <sales@hengda.example.cn>", "附上资质文件与报价。"))
    assert d.cycle() == [("reply_notice", [BUYER])]
    answer = d.letter("对方回复", BUYER)

    # the quote's #advance without the order: moved to the evaluation, told what to send
    d.deliver(reply(answer, "吴采购 <wu@corp.example.test>", "#advance"))
    assert d.cycle() == [("command_receipt", [BUYER])]
    receipt = d.letter("已执行", BUYER)
    text = body_of(receipt)
    assert "已推进：供应商信息对接 → 评估与选定；截止 12月9日 10:00" in text
    assert "评估后回复 #advance，并每项一行写明采购订单的规格" in text
    assert f"[{number}]" in str(receipt["Subject"]) and receipt["To"] == BUYER
    assert d.state(number) == ("evaluation", "open")

    # the manager closes, then reopens: the buyer hears the case is theirs, and by when
    d.deliver(reply(answer, "陈总 <chen@corp.example.test>", "#close 暂缓"))
    assert d.cycle() == [("case_closed", [BUYER]), ("command_receipt", [MANAGER])]
    d.deliver(reply(answer, "陈总 <chen@corp.example.test>", "#reopen"))
    assert d.cycle() == [("change_notice", [BUYER]), ("command_receipt", [MANAGER])]
    told = d.letter("案件已重开", BUYER)
    assert "「评估与选定」由您负责，请在 12月9日 10:00 前完成" in body_of(told)
    assert "已重开：评估与选定" in body_of(d.letter("已执行", MANAGER))
    assert d.state(number) == ("evaluation", "open")

    # the order's fields: selection notice and order, then the buyer's receipt
    d.deliver(reply(told, "吴采购 <wu@corp.example.test>",
                    "#advance\n规格：铝合金外壳 HX-201\n数量：500 件\n交货日期：2026-12-20\n"
                    "验收标准：按图纸 HX-201 全检\n"))
    assert d.cycle() == [("selection_notice", ["sales@hengda.example.cn", BUYER]),
                         ("purchase_order", ["sales@hengda.example.cn", BUYER]),
                         ("command_receipt", [BUYER])]
    assert "已推进：评估与选定 → 订单与要求确认" in body_of(d.letter("已执行", BUYER))


def test_legal_approval_and_milestone_copy_reach_the_account_manager(site: Later) -> None:
    d = site
    d.deliver(mail("王经理 <wang@huaxin.example.cn>", "定制工控主板询价",
                   "您好：\n1. 定制工控主板 200 套\n期望交付时间：2027-01-15\n"))
    d.cycle()
    number = str(d.cases()[0]["number"])
    notice = d.letter("新案件", ACCOUNT)
    d.deliver(reply(notice, "马丽 <ma@corp.example.test>", "#advance\n方案要点：K7 宽温主板。"))
    assert d.cycle() == [("customer_confirmation", [ACCOUNT, CUSTOMER]),
                         ("command_receipt", [ACCOUNT])]
    v1 = d.letter("客户需求确认函", CUSTOMER)
    d.deliver(reply(v1, "王经理 <wang@huaxin.example.cn>", "确认。"))
    assert d.cycle() == [("reply_notice", [ACCOUNT]),
                         ("legal_review", [ACCOUNT, "zhao@corp.example.test"])]
    legal = d.letter("法务审核", "zhao@corp.example.test")

    d.deliver(reply(legal, "孙律师 <sun@corp.example.test>", "#确认\n条款无误。"))
    assert d.cycle() == [("change_notice", [ACCOUNT]), ("command_receipt", [LEGAL])]
    approved = d.letter("法务部已确认", ACCOUNT)
    assert "法务部（孙律师）已在「合同/协议签订」确认，可以继续：回复 #advance 进入下一步。" in \
        body_of(approved)
    assert d.state(number) == ("contract", "open")

    d.deliver(reply(approved, "ma@corp.example.test", "#advance\n合同已签订。"))
    assert d.cycle() == [("step_notice", [ACCOUNT]), ("command_receipt", [ACCOUNT])]
    d.deliver(reply(approved, "ma@corp.example.test", "#milestone 2026-12-10 样机交付"))
    assert d.cycle() == [("command_receipt", [ACCOUNT])]
    # three working days before: Monday 7 December, 09:00
    sent = d.cycle_at("2026-12-07T09:30:00+08:00")
    assert ("milestone_notice", [ACCOUNT, CUSTOMER]) in sent
    copy = d.letter("里程碑预告", ACCOUNT)
    assert copy["To"] == CUSTOMER and copy["Cc"] == ACCOUNT
    assert "样机交付" in body_of(copy)
    timeline = [e["text"] for e in d.case(number)["timeline"]  # type: ignore[union-attr]
                if e["kind"] == "milestone"]
    assert f"里程碑「样机交付」（2026-12-10）：已通知 {CUSTOMER}（抄送 {ACCOUNT}）" in timeline
