"""``maild demo``: the whole flow on embedded defaults (Maildir in, SQLite, letters to a folder).

Five realistic mails arrive (a GBK-encoded customer inquiry, a supplier quote, an internal
request with two fields missing, an English inquiry and an out-of-office auto-reply). Then,
round by round, the people who got letters answer them the way they would from their mail
client (replies threaded by In-Reply-To, commands on the first lines), and each round runs
one daemon cycle: the customer case goes to the contract review, the internal request to
its meeting, the supplier case to fulfilment. Tables at the end show what happened.
"""

from __future__ import annotations

import argparse
import asyncio
import email.parser
import email.policy
import logging
import tempfile
from datetime import datetime
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from pathlib import Path

from maild import config as cfgmod
from maild.adapters.sources.maildir import deliver
from maild.app import App
from maild.app import build as build_app
from maild.cli.output import table
from maild.data import example_config
from maild.runners.daemon import Daemon

NOW = datetime.fromisoformat("2026-12-01T10:00:00+08:00")
#: the demo's mail server: it stamps Authentication-Results, which the demo config trusts
#: (docs/SECURITY.md: staff commands run only from a proven sender)
AUTHSERV = "mx.demo.example.com"


def _mail(sender: str, subject: str, body: str, charset: str = "utf-8",
          **headers: str) -> bytes:
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = "示例科技 客服 <service@example.com>"
    msg["Subject"] = subject
    msg["Date"] = format_datetime(NOW)
    msg["Message-ID"] = make_msgid(domain=sender.rpartition("@")[2].rstrip(">"))
    msg["Authentication-Results"] = (f"{AUTHSERV}; dmarc=pass "
                                     f"header.from={sender.rpartition('@')[2].rstrip('>')}")
    for k, v in headers.items():
        msg[k.replace("_", "-")] = v
    msg.set_content(body, charset=charset)
    return msg.as_bytes()


def sample_mails() -> list[bytes]:
    return [
        _mail("王经理 <wang@huaxin.example.cn>", "产品询价：定制工控主板 200 套",
              "您好：\n\n我司计划采购定制工控主板，需求如下：\n1. 定制工控主板 200 套\n"
              "2. 支持宽温（-20℃~70℃）\n期望交付时间：2027-01-15\n请报价并提供方案。\n\n"
              "华信集团 采购部 王经理\n", charset="gbk"),
        _mail("恒达销售 <sales@hengda.example.cn>", "关于铝合金外壳的报价",
              "贵司好，附上铝合金外壳报价：单价 86 元，起订量 500 件，交期 15 个工作日。\n"),
        _mail("王芳 <wang.fang@example.com>", "[跨部门][技术部] 新品推广技术支持",
              "发起部门/人：市场部/王芳\n接收部门/人：技术部/张伟\n沟通目标：新品推广会技术讲解\n"
              "期望完成时间：2026-12-10\n紧急程度：一般\n"),
        _mail("Alice Brown <alice@globex.example.org>", "Inquiry about industrial boards",
              "Hello,\n\nCould you send us a quote for 50 industrial boards?\n\nAlice\n"),
        _mail("李总 <li@huaxin.example.cn>", "自动回复: 产品询价",
              "我正在休假，12 月 8 日返回。", Auto_Submitted="auto-replied"),
    ]


#: (who answers, the letter they answer: its recipient and a piece of its subject, text)
ROUNDS: list[tuple[str, list[tuple[str, str, str, str]]]] = [
    ("the customer adds a requirement; the account manager proposes a solution; the "
     "initiator completes her form; the buyer moves the quote on to evaluation", [
         ("王经理 <wang@huaxin.example.cn>", "wang@huaxin.example.cn", "已受理",
          "补充一点：需要 RS-485 接口两路。"),
         ("王芳 <wang.fang@example.com>", "wang.fang@example.com", "新案件",
          "#advance\n方案要点：K7 宽温工控主板，板载两路隔离 RS-485，首批 200 套分两批交付。"),
         ("王芳 <wang.fang@example.com>", "wang.fang@example.com", "请补充",
          "核心内容：推广会需要讲解新品的宽温设计\n需协助事项：派一名工程师讲解 30 分钟"),
         ("周杰 <zhou.jie@example.com>", "zhou.jie@example.com", "新案件",
          "#推进\n资质齐全，进入评估。"),
     ]),
    ("the customer confirms; the receiving head adds 财务部 and confirms; the buyer issues "
     "the purchase order; a member who may not tries to move the request on", [
         ("王经理 <wang@huaxin.example.cn>", "wang@huaxin.example.cn", "客户需求确认函",
          "确认。"),
         ("张伟 <zhang.wei@example.com>", "zhang.wei@example.com", "待确认",
          "#assign 财务部\n#确认"),
         ("周杰 <zhou.jie@example.com>", "zhou.jie@example.com", "新案件",
          "#advance\n评估结论：资质齐全，价格合理。\n规格：铝合金外壳 HX-201\n数量：500 件\n"
          "交货日期：2026-12-20\n验收标准：按图纸全检\n"),
         ("李娜 <li.na@example.com>", "zhang.wei@example.com", "待确认", "#推进"),
     ]),
    ("legal approves the contract; the supplier confirms the order with its schedule", [
         ("赵磊 <zhao.lei@example.com>", "zhao.lei@example.com", "法务审核", "#确认\n条款无误。"),
         ("恒达销售 <sales@hengda.example.cn>", "sales@hengda.example.cn", "采购订单",
          "确认订单。排期：12-05 原材料到货，12-18 发货。"),
     ]),
]


def _letters(sent: Path) -> list[EmailMessage]:
    parser = email.parser.BytesParser(policy=email.policy.default)
    files = sorted((sent / "new").iterdir(), key=lambda p: p.stat().st_mtime_ns)
    return [parser.parsebytes(f.read_bytes()) for f in files]


def _answer(sent: Path, sender: str, to: str, subject: str, text: str) -> bytes | None:
    """A reply to the latest letter to ``to`` whose subject has ``subject``, quoted."""
    for letter in reversed(_letters(sent)):
        if to in f"{letter['To']},{letter.get('Cc', '')}" and subject in str(letter["Subject"]):
            body = letter.get_body(("plain",))
            quoted = "".join(f"> {ln}\n" for ln in
                             (body.get_content() if body else "").splitlines())
            return _mail(sender, "Re: " + str(letter["Subject"]),
                         f"{text}\n\n在 2026-12-01 10:00，示例科技有限公司 写道：\n{quoted}",
                         In_Reply_To=str(letter["Message-ID"]))
    return None


async def _cycle(app: App) -> None:
    await Daemon(app).run(once=True)


def demo(args: argparse.Namespace) -> int:
    return run_demo(args.dir)


def run_demo(directory: Path | None) -> int:
    logging.getLogger().setLevel(logging.ERROR)  # the tables below tell the story
    root = directory or Path(tempfile.mkdtemp(prefix="maild-demo-"))
    root.mkdir(parents=True, exist_ok=True)
    (root / "maild.toml").write_text(example_config().replace(
        "trusted_authserv_ids = []", f'trusted_authserv_ids = ["{AUTHSERV}"]', 1),
        encoding="utf-8")
    cfg = cfgmod.load(root / "maild.toml")
    inbox, sent = cfg.path("var/mail"), cfg.path("var/sent")
    for raw in sample_mails():
        deliver(inbox, raw)
    print(f"demo folder: {root}\n5 mails delivered to {inbox}; first cycle\n")
    asyncio.run(_cycle(build_app(cfg, NOW)))
    for n, (story, answers) in enumerate(ROUNDS, 2):
        for sender, to, subject, text in answers:
            answer = _answer(sent, sender, to, subject, text)
            if answer is not None:
                deliver(inbox, answer)
        print(f"cycle {n}: {story}")
        asyncio.run(_cycle(build_app(cfg, NOW)))
    asyncio.run(_report(cfg))
    print(f"\nletters were written to {sent / 'new'} (one .eml file each)")
    print(f"try: maild cases show -c {root / 'maild.toml'} 2026-客-001")
    return 0


async def _report(cfg: cfgmod.Config) -> None:
    app = build_app(cfg)
    await app.store.open()
    try:
        print("\ninbound mail:")
        print(table(await app.store.inbound(), ("uid", "from", "subject", "route", "case",
                                                 "state"), limit=36))
        print("\nletters sent:")
        print(table(await app.store.letters(), ("case", "letter", "to", "subject", "state"),
                    limit=40))
        print("\ncases:")
        rows = []
        for c in await app.store.cases():
            shown = await app.store.case(c["number"]) or {}
            rows.append({**c, "pending": "、".join(shown.get("pending_confirmations", [])),
                         "owner": ", ".join(shown.get("owner", []))})
        print(table(rows, ("number", "process", "step", "status", "owner", "pending",
                           "subject"), limit=36))
    finally:
        await app.store.close()
