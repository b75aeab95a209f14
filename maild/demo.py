"""``maild demo``: the whole flow on embedded defaults (Maildir in, SQLite, letters to a folder).

Five realistic mails arrive (a GBK-encoded customer inquiry, a supplier quote, an internal
request, an English inquiry and an out-of-office auto-reply); one cycle runs; the customer
then answers the acknowledgement, and a second cycle files the answer on the same case.
"""

from __future__ import annotations

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
from maild.app import App
from maild.daemon import Daemon
from maild.sources.maildir import deliver
from maild.subcommands import EXAMPLE_CONFIG, table

NOW = datetime.fromisoformat("2026-12-01T10:00:00+08:00")


def _mail(sender: str, subject: str, body: str, charset: str = "utf-8",
          **headers: str) -> bytes:
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = "示例科技 客服 <service@example.com>"
    msg["Subject"] = subject
    msg["Date"] = format_datetime(NOW)
    msg["Message-ID"] = make_msgid(domain=sender.rpartition("@")[2].rstrip(">"))
    for k, v in headers.items():
        msg[k.replace("_", "-")] = v
    msg.set_content(body, charset=charset)
    return msg.as_bytes()


def sample_mails() -> list[bytes]:
    return [
        _mail("王经理 <wang@huaxin.example.cn>", "产品询价：定制工控主板 200 套",
              "您好：\n\n我司计划采购定制工控主板 200 套，要求支持宽温（-20℃~70℃），"
              "期望 2027 年 1 月交付。\n请报价并提供方案。\n\n华信集团 采购部 王经理\n",
              charset="gbk"),
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


def _reply_to_first_ack(sent: Path) -> bytes | None:
    """The customer answers the acknowledgement they got (threaded by In-Reply-To only)."""
    parser = email.parser.BytesParser(policy=email.policy.default)
    for f in sorted((sent / "new").iterdir()):
        ack = parser.parsebytes(f.read_bytes())
        if "wang@huaxin.example.cn" in str(ack["To"]):
            return _mail("王经理 <wang@huaxin.example.cn>", "Re: " + str(ack["Subject"]),
                         "补充一点：需要 RS-485 接口两路。\n\n> 原邮件……\n", charset="gbk",
                         In_Reply_To=str(ack["Message-ID"]))
    return None


async def _cycle(app: App) -> None:
    await Daemon(app).run(once=True)


def demo(directory: Path | None) -> int:
    logging.getLogger().setLevel(logging.WARNING)  # the tables below tell the story
    root = directory or Path(tempfile.mkdtemp(prefix="maild-demo-"))
    root.mkdir(parents=True, exist_ok=True)
    (root / "maild.toml").write_text(EXAMPLE_CONFIG.read_text(encoding="utf-8"),
                                     encoding="utf-8")
    cfg = cfgmod.load(root / "maild.toml")
    inbox = cfg.path("var/mail")
    for raw in sample_mails():
        deliver(inbox, raw)
    print(f"demo folder: {root}\n5 mails delivered to {inbox}\n")
    asyncio.run(_cycle(App.build(cfg, NOW)))
    reply = _reply_to_first_ack(cfg.path("var/sent"))
    if reply:
        deliver(inbox, reply)
        print("the customer replied to the acknowledgement; second cycle\n")
        asyncio.run(_cycle(App.build(cfg, NOW)))
    asyncio.run(_report(cfg))
    print(f"\nletters were written to {cfg.path('var/sent/new')} (one .eml file each)")
    print(f"try: maild cases show -c {root / 'maild.toml'} <number>")
    return 0


async def _report(cfg: cfgmod.Config) -> None:
    app = App.build(cfg)
    await app.store.open()
    try:
        print("inbound mail:")
        print(table(await app.store.inbound(), ("uid", "from", "subject", "route", "case",
                                                 "state"), limit=36))
        print("\nletters sent:")
        print(table(await app.store.letters(), ("case", "letter", "to", "subject", "state"),
                    limit=40))
        print("\ncases:")
        print(table(await app.store.cases(), ("number", "process", "step", "status",
                                              "subject"), limit=36))
    finally:
        await app.store.close()
