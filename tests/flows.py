"""The mails real people send to carry each process from its first mail to a given step.

Each flow is a list of (step reached, actions); replaying the actions on a ``Sim`` brings a
fresh case to that step. The table tests start from these states; the e2e tests send the
same kind of mail through Dovecot.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from functools import cache

from sim import Sim

INITIATOR = "王芳 <wang@corp.example.test>"
REQUEST_FORM = """发起部门/人：市场部/王芳
接收部门/人：技术部/张伟
沟通目标：新品推广会技术讲解
核心内容：12 月 10 日推广会需要技术部讲解新品的宽温设计
期望完成时间：2026-12-10
紧急程度：一般
"""
MINUTES = """#advance
#action 准备宽温设计讲解材料 | li@corp.example.test | 2026-12-09 | 市场部提供产品资料
会议纪要：
1. 技术部李娜讲解宽温设计 30 分钟。
2. 分歧：演示样机数量，会后由市场部确认。
"""
INQUIRY = """您好：

我司计划采购一批定制工控主板，需求如下：
1. 定制工控主板 200 套
2. 支持宽温 -20℃~70℃
3. 两路 RS-485 接口
期望交付时间：2027-01-15

华信集团 采购部 王经理
"""
SOLUTION = "#advance\n方案要点：K7 宽温主板，板载两路隔离 RS-485，分两批交付。\n"
INTENT = """供应商：sales@hengda.example.cn
合作范围：铝合金外壳 500 件
资质要求：ISO 9001 认证
交付标准：按图纸 HX-201，公差 ±0.05
回复期限：2026-12-08
"""
ORDER = """#advance
评估结论：资质齐全，产能满足，价格合理。
规格：铝合金外壳 HX-201，阳极氧化黑色
数量：500 件
交货日期：2026-12-20
验收标准：按图纸 HX-201 全检
单价：86 元
"""

Step = Callable[[Sim, str], object]


def _open_internal(s: Sim) -> str:
    s.send(INITIATOR, "[跨部门][技术部] 新品推广技术支持", REQUEST_FORM)
    return s.only_case()


def _open_customer(s: Sim) -> str:
    s.send("王经理 <wang@huaxin.example.cn>", "定制工控主板询价", INQUIRY)
    return s.only_case()


def _open_supplier(s: Sim) -> str:
    s.send("吴采购 <wu@corp.example.test>", "[供应商] 铝合金外壳采购", INTENT)
    return s.only_case()


FLOWS: dict[str, tuple[Callable[[Sim], str], list[tuple[str, Step]]]] = {
    "internal": (_open_internal, [
        ("request", lambda s, n: None),
        ("confirm", lambda s, n: s.reply(n, INITIATOR, "需协助事项：派一名工程师讲解 30 分钟\n")),
        ("meeting", lambda s, n: s.reply(n, "zhang@corp.example.test", "#确认\n")),
        ("minutes", lambda s, n: s.reply(n, INITIATOR, MINUTES)),
        ("track", lambda s, n: (s.reply(n, "zhang@corp.example.test", "#确认"),
                                s.reply(n, INITIATOR, "#确认"))),
    ]),
    "customer": (_open_customer, [
        ("requirements", lambda s, n: None),
        ("solution", lambda s, n: s.reply(n, "ma@corp.example.test", SOLUTION)),
        ("contract", lambda s, n: s.reply(n, "wang@huaxin.example.cn", "确认。\n\n> 原邮件")),
        ("execution", lambda s, n: (s.reply(n, "sun@corp.example.test", "#确认 条款无误"),
                                    s.reply(n, "ma@corp.example.test", "#advance\n合同已签订"))),
        ("aftersales", lambda s, n: s.reply(n, "ma@corp.example.test", "#advance")),
    ]),
    "supplier": (_open_supplier, [
        ("intent", lambda s, n: None),
        ("evaluation", lambda s, n: (
            s.reply(n, "sales@hengda.example.cn", "附上资质文件和报价：单价 86 元。",
                    attachments=(("报价单.pdf", b"%PDF-1.4 quote"),)),
            s.reply(n, "wu@corp.example.test", "#advance"))),
        ("order", lambda s, n: s.reply(n, "wu@corp.example.test", ORDER)),
        ("fulfilment", lambda s, n: s.reply(n, "sales@hengda.example.cn",
                                            "确认订单。排期：12-05 原材料到货，12-18 发货。")),
        ("acceptance", lambda s, n: s.reply(n, "wu@corp.example.test", "#advance")),
    ]),
}
EXTERNAL = {"internal": "stranger@other.example", "customer": "wang@huaxin.example.cn",
            "supplier": "sales@hengda.example.cn"}


@cache
def _state(process: str, step: str) -> tuple[dict, dict, dict, str]:
    s = Sim()
    opener, steps = FLOWS[process]
    number = opener(s)
    for name, act in steps:
        act(s, number)
        if name == step:
            assert s.case(number).step == step, (process, step, s.case(number).step)
            return copy.deepcopy((s.cases, s.counters, s.msgids)) + (number,)  # type: ignore
    raise KeyError(step)


def at_step(process: str, step: str) -> tuple[Sim, str]:
    """A fresh Sim with one case of ``process`` at ``step``, reached by real mails."""
    cases, counters, msgids, number = _state(process, step)
    s = Sim()
    s.cases, s.counters, s.msgids = copy.deepcopy((cases, counters, msgids))
    return s, number
