"""Intake benchmark: N generated mails in a real Dovecot, timed through ``maild run --once``.

    .venv/bin/python bench/intake.py --n 1000 --n 5000 [--keep DIR] [--repeat K]
        [--profile [cprofile|pyinstrument|py-spy]] [--seed S] [--batch-size B] [--db-url URL]

For each N a fresh Dovecot and SMTP sink (``tests/servers.py``) start in their own folder;
N realistic mails are generated deterministically (seeded) and APPENDed to INBOX: senders
spread over known customers, suppliers, staff and unknown senders; Chinese subjects and
bodies in utf-8, gbk, gb2312 (carrying GBK-only characters, as real clients send them),
gb18030 and big5; a few English, robots and replies threading to earlier mails; ~15% with
an attachment of 20-200 KB. Then ``python -m maild run -c CFG --once`` drains the mailbox
as a child process whose wall time and peak RSS (``wait4`` rusage) are reported, and the
outcome is checked: INBOX empty, Processed + Quarantine (+ Triage) == N, one
acknowledgement per new case. Needs root (Dovecot runs mail as uid 5000).

The child runs this checkout's maild (PYTHONPATH), so a clone can be measured against
another. Other work on the machine only ever slows a run down: ``--repeat`` keeps the best.
``--profile py-spy`` samples every thread holding the GIL (IMAP and SQLite threads too);
cProfile and pyinstrument see the main thread only.
"""

from __future__ import annotations

import argparse
import base64
import email
import email.policy
import os
import pstats
import random
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from servers import DovecotServer, SmtpSink, tree_rss_kb  # noqa: E402

TARGET_RATE = 200.0  # msgs/s on 2 cores, SQLite
TARGET_RSS_MB = 150.0

ORG = "service@example.test"
STAFF_DOMAIN = "corp.example.test"
CONFIG = """\
[organisation]
name = "示例科技有限公司"
address = "{org}"

[database]
url = "{db_url}"

[mailbox]
url = "{imap_url}"
{batch}
[smtp]
url = "smtp://{smtp_host}:{smtp_port}"

[routing]
staff_domains = ["{staff}"]

[[directory.departments]]
name = "技术部"
short = "技"
head = "zhang@{staff}"
members = ["li@{staff}", "zhao@{staff}"]

[[directory.departments]]
name = "市场部"
short = "市"
head = "wang@{staff}"
members = ["chen@{staff}"]

[[directory.departments]]
name = "采购部"
short = "采"
head = "sun@{staff}"

[[directory.customers]]
name = "华信集团"
domains = ["huaxin.example.cn"]

[[directory.customers]]
name = "东方电子"
domains = ["dongfang.example.cn"]

[[directory.customers]]
name = "金桥科技（台湾）"
domains = ["jinqiao.example.com.tw"]

[[directory.customers]]
name = "Northwind Ltd"
domains = ["northwind.example.com"]
language = "en"

[[directory.suppliers]]
name = "恒达材料"
addresses = ["sales@hengda.example.cn"]
domains = ["hengda.example.cn"]

[[directory.suppliers]]
name = "宏远物流"
domains = ["hongyuan.example.cn"]
"""

# -- the mail generator ----------------------------------------------------------------------

SURNAMES = ("王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢"
            "宋唐许韩冯邓曹彭曾萧田董袁潘蒋蔡余杜叶程苏魏吕丁任沈姚卢")
GIVEN = ["伟", "芳", "娜", "敏", "静", "丽", "强", "磊", "军", "洋", "勇", "艳", "杰", "涛", "明",
         "超", "秀英", "霞", "平", "刚", "桂英", "喆", "镕", "志强", "海燕"]
PINYIN = ["wang", "li", "zhang", "liu", "chen", "yang", "huang", "zhao", "wu", "zhou", "xu",
          "sun", "ma", "zhu", "hu", "guo", "he", "gao", "lin", "luo", "zheng", "liang", "xie",
          "song", "tang", "han", "feng", "deng", "cao", "peng"]
PRODUCTS = ["定制工控主板", "铝合金外壳", "嵌入式控制器", "工业交换机", "锂电池模组", "散热模组",
            "电源适配器", "触摸显示屏", "传感器套件", "镕铭系列主板", "线束组件", "精密齿轮"]
SUBJECTS = ["产品询价：{p}", "关于{p}的报价请求", "{p}交期确认", "{p}样品测试结果",
            "询问{p}技术参数", "{p}订单变更通知", "{p}质量问题反馈", "请提供{p}的规格书",
            "{p}年度框架协议", "{p}发货安排"]
BODY_LINES = ["您好：", "我司计划采购{p} {n} 套，要求宽温工作，期望下月交付。",
              "请提供含税单价、最小起订量以及付款方式。",
              "附件是我们的技术要求，请查收。",
              "如有疑问请随时与我联系，电话 0755-8{n:04d}。",
              "上次的样品已经测试完毕，整体表现良好。",
              "另外，包装需要按照出口标准，请确认能否满足。",
              "烦请于本周五前回复，谢谢！", "此致\n敬礼",
              "我们对贵司的产品很感兴趣，希望能够建立长期合作关系。"]
BIG5_SUBJECTS = ["產品詢價：工業電腦 {n} 台", "關於觸控螢幕的報價請求", "請確認交貨日期",
                 "樣品測試結果回報", "詢問規格書與認證文件"]
BIG5_BODY = ["您好：", "敝公司計劃採購工業電腦 {n} 台，請提供報價。", "請附上含稅單價與交貨時間。",
             "如有任何問題，歡迎隨時與我聯繫。", "謝謝！", "順頌商祺"]
BIG5_NAMES = ["陳志明", "林怡君", "黃國華", "張淑芬", "李建宏", "王美玲", "吳宗憲"]
EN_SUBJECTS = ["Request for quotation: industrial PC x{n}", "Delivery schedule for PO-{n}",
               "Question about your datasheet", "Sample evaluation feedback"]
EN_BODY = ["Dear team,", "We would like a quotation for {n} units, delivery next month.",
           "Please include unit price, MOQ and payment terms.", "Best regards,"]
STAFF_DEPTS = ["技术部", "市场部", "采购部", "技", "市"]
STAFF_NAMES = ["li", "zhang", "wang", "chen", "zhao", "sun", "qian", "zhou", "wu", "zheng"]
ATTACHMENT_NAMES = ["报价单.pdf", "技术要求.docx", "规格书.pdf", "测试报告.xlsx", "图纸.dwg",
                    "合同草案.pdf", "photo.jpg"]
BIG5_ATTACHMENTS = ["報價單.pdf", "規格書.pdf", "測試報告.xlsx"]
LIST_SENDERS = ["news@lists.example.org", "weekly@industry.example.net"]

# (weight, MIME label, Python codec); gb2312-labelled mail routinely carries GBK bytes
CHARSETS = [(35, "utf-8", "utf-8"), (20, "gbk", "gbk"), (18, "gb2312", "gbk"),
            (8, "gb18030", "gb18030"), (7, "big5", "big5"), (12, "us-ascii", "ascii")]


@dataclass
class Plan:
    """What the generator expects maild to do, for the checks afterwards."""

    new_cases: int = 0
    need_department: int = 0
    replies: int = 0
    robots: int = 0
    attachments: int = 0
    bytes: int = 0
    charsets: Counter[str] = field(default_factory=Counter)
    kinds: Counter[str] = field(default_factory=Counter)


def _words(text: str, label: str, codec: str) -> str:
    """RFC 2047 B-encoded words, a few characters each so no line runs long."""
    if text.isascii():
        return text
    out = []
    for i in range(0, len(text), 12):
        chunk = base64.b64encode(text[i : i + 12].encode(codec)).decode()
        out.append(f"=?{label}?B?{chunk}?=")
    return "\r\n ".join(out)


def _wrap(data: bytes, width: int = 76) -> bytes:
    encoded = base64.b64encode(data)
    return b"\r\n".join(encoded[i : i + width] for i in range(0, len(encoded), width))


def _qp(data: bytes) -> bytes:
    import binascii

    return binascii.b2a_qp(data, istext=True).replace(b"\n", b"\r\n")


class Generator:
    """Deterministic realistic mail: ``next()`` returns one message's CRLF bytes."""

    def __init__(self, seed: int, plan: Plan) -> None:
        self.rng = random.Random(seed)
        self.plan = plan
        self.opened: list[tuple[str, str, str]] = []  # (message-id, sender, subject) of new cases
        self.base = datetime(2026, 11, 30, 1, 0, tzinfo=UTC)
        self.i = 0

    def __iter__(self) -> Iterator[bytes]:
        return self

    def __next__(self) -> bytes:
        raw = self.make()
        self.plan.bytes += len(raw)
        return raw

    def make(self) -> bytes:
        rng, self.i = self.rng, self.i + 1
        roll = rng.random()
        if self.opened and roll < 0.10:
            return self._reply()
        if roll < 0.13:
            return self._robot()
        kind = rng.choices(["customer", "supplier", "staff", "unknown"], [40, 20, 15, 25])[0]
        label, codec = self._charset(simplified=kind == "staff")
        sender, name = self._sender(kind, label)
        subject, lines = self._content(label)
        headers: list[tuple[str, str]] = []
        if kind == "staff":
            if rng.random() < 0.9:
                subject = f"[跨部门][{rng.choice(STAFF_DEPTS)}] {subject}"
                self.plan.new_cases += 1
                opened = True
            else:  # no department anywhere: maild asks which one, opens nothing
                self.plan.need_department += 1
                opened = False
        else:
            self.plan.new_cases += 1
            opened = True
        if rng.random() < 0.05:
            subject = ("[紧急] " if label not in ("big5", "us-ascii") else "[URGENT] ") + subject
        mid = self._msgid(sender)
        if opened:
            self.opened.append((mid, sender, subject))
        self.plan.kinds[kind] += 1
        return self._compose(sender, name, subject, lines, label, codec, mid, headers)

    # -- pieces ------------------------------------------------------------------------------

    def _charset(self, simplified: bool) -> tuple[str, str]:
        """A charset; staff write simplified Chinese (their tags must be encodable)."""
        _, label, codec = self.rng.choices(CHARSETS, [w for w, _, _ in CHARSETS])[0]
        if simplified and label in ("big5", "us-ascii"):
            label, codec = "utf-8", "utf-8"
        self.plan.charsets[label] += 1
        return label, codec

    def _sender(self, kind: str, label: str) -> tuple[str, str]:
        rng = self.rng
        local = f"{rng.choice(PINYIN)}.{rng.choice(PINYIN)}{rng.randint(1, 999)}"
        name = rng.choice(SURNAMES) + rng.choice(GIVEN)
        if kind == "customer":
            domain = ("jinqiao.example.com.tw" if label == "big5" else
                      "northwind.example.com" if label == "us-ascii" else
                      rng.choice(["huaxin.example.cn", "dongfang.example.cn"]))
        elif kind == "supplier":
            domain = rng.choice(["hengda.example.cn", "hongyuan.example.cn"])
        elif kind == "staff":
            local = rng.choice(STAFF_NAMES) + str(rng.randint(1, 99))
            domain = STAFF_DOMAIN
        else:
            tld = rng.choice(["cn", "com"])
            domain = f"{rng.choice(PINYIN)}{rng.randint(1, 500)}.example.{tld}"
        if label == "us-ascii":
            name = local.split(".")[0].title()
        elif label == "big5":
            name = rng.choice(BIG5_NAMES)
        return f"{local}@{domain}", name

    def _content(self, label: str) -> tuple[str, list[str]]:
        rng = self.rng
        n = rng.randint(2, 9999)
        if label == "big5":
            return (rng.choice(BIG5_SUBJECTS).format(n=n),
                    [line.format(n=n) for line in rng.sample(BIG5_BODY, 5)])
        if label == "us-ascii":
            return (rng.choice(EN_SUBJECTS).format(n=n),
                    [line.format(n=n) for line in EN_BODY])
        p = rng.choice(PRODUCTS)
        if label == "gb2312" and rng.random() < 0.5:
            p = "镕铭系列主板"  # GBK-only: outside GB2312, common under a gb2312 label
        body = ["您好："] + [line.format(p=p, n=n) for line in rng.sample(BODY_LINES[1:], 6)]
        body.append(rng.choice(SURNAMES) + rng.choice(GIVEN))
        return rng.choice(SUBJECTS).format(p=p), body

    def _msgid(self, sender: str) -> str:
        return f"<{self.i:06d}.{self.rng.getrandbits(48):012x}@{sender.rpartition('@')[2]}>"

    def _reply(self) -> bytes:
        rng = self.rng
        parent, sender, subject = rng.choice(self.opened)
        label, codec = ("utf-8", "utf-8") if not subject.isascii() else ("us-ascii", "ascii")
        self.plan.charsets[label] += 1
        self.plan.replies += 1
        self.plan.kinds["reply"] += 1
        lines = (["补充说明：需要两路 RS-485 接口，其余不变。", "", "> 原邮件"]
                 if label == "utf-8" else ["One more thing: we need two RS-485 ports.", "",
                                           "> original message"])
        prefix = "回复：" if label == "utf-8" else "Re: "
        headers = [("In-Reply-To", parent), ("References", parent)]
        return self._compose(sender, "", prefix + subject, lines, label, codec,
                             self._msgid(sender), headers)

    def _robot(self) -> bytes:
        rng = self.rng
        self.plan.robots += 1
        self.plan.kinds["robot"] += 1
        self.plan.charsets["utf-8"] += 1
        if rng.random() < 0.5:
            sender = f"{rng.choice(PINYIN)}@huaxin.example.cn"
            subject, headers = "自动回复：产品询价", [("Auto-Submitted", "auto-replied")]
            lines = ["我正在休假，12 月 8 日返回。"]
        else:
            sender = rng.choice(LIST_SENDERS)
            subject = f"行业周报 第 {rng.randint(1, 52)} 期"
            headers = [("List-Id", "<weekly.lists.example.org>"), ("Precedence", "list")]
            lines = ["本周要闻……"] * 20
        return self._compose(sender, "", subject, lines, "utf-8", "utf-8",
                             self._msgid(sender), headers)

    def _compose(self, sender: str, name: str, subject: str, lines: list[str], label: str,
                 codec: str, mid: str, extra: list[tuple[str, str]]) -> bytes:
        rng = self.rng
        date = self.base + timedelta(seconds=37 * self.i)
        head = [("From", f"{_words(name, label, codec)} <{sender}>" if name else sender),
                ("To", ORG), ("Subject", _words(subject, label, codec)),
                ("Date", format_datetime(date)), ("Message-ID", mid), *extra,
                ("MIME-Version", "1.0"),
                ("X-Mailer", rng.choice(["Foxmail 7.2.25.254[cn]", "Microsoft Outlook 16.0",
                                         "Coremail Webmail Server", "iPhone Mail (21A360)"]))]
        text = "\r\n".join(lines) + "\r\n"
        body = self._text_part(text, label, codec)
        if rng.random() < 0.3:  # many Chinese clients send both text and HTML
            html = "<html><body>" + "".join(f"<p>{line}</p>" for line in lines) + "</body></html>"
            body = self._multipart("alternative", [body, self._text_part(html, label, codec,
                                                                         "html")])
        if rng.random() < 0.17 and not extra:  # ~15% of all mail
            self.plan.attachments += 1
            body = self._multipart("mixed", [body, self._attachment(label, codec)])
        return "".join(f"{k}: {v}\r\n" for k, v in head).encode("ascii") + body

    def _text_part(self, text: str, label: str, codec: str, sub: str = "plain") -> bytes:
        data = text.encode(codec)
        cte = "7bit" if label == "us-ascii" else self.rng.choice(["base64", "8bit",
                                                                  "quoted-printable"])
        payload = (_wrap(data) + b"\r\n" if cte == "base64" else
                   _qp(data) if cte == "quoted-printable" else data)
        return (f'Content-Type: text/{sub}; charset="{label}"\r\n'
                f"Content-Transfer-Encoding: {cte}\r\n\r\n").encode("ascii") + payload

    def _multipart(self, sub: str, parts: list[bytes]) -> bytes:
        boundary = f"----=_Part_{self.i}_{self.rng.getrandbits(32):08x}"
        out = [f'Content-Type: multipart/{sub};\r\n\tboundary="{boundary}"\r\n\r\n'
               f"This is a multi-part message in MIME format.\r\n".encode("ascii")]
        for part in parts:
            out.append(f"--{boundary}\r\n".encode("ascii") + part + b"\r\n")
        out.append(f"--{boundary}--\r\n".encode("ascii"))
        return b"".join(out)

    def _attachment(self, label: str, codec: str) -> bytes:
        rng = self.rng
        name = rng.choice(ATTACHMENT_NAMES if label != "big5" else BIG5_ATTACHMENTS)
        size = rng.randint(20_000, 200_000)
        if name.isascii() or label == "us-ascii":
            disp = f'filename="{name if name.isascii() else "file.bin"}"'
        elif rng.random() < 0.5:  # RFC 2047 in a parameter: invalid, but what many clients send
            disp = f'filename="{_words(name, label, codec)}"'
        else:
            quoted = "".join(f"%{b:02X}" for b in name.encode("utf-8"))
            disp = f"filename*=utf-8''{quoted}"
        return (f"Content-Type: application/octet-stream\r\n"
                f"Content-Transfer-Encoding: base64\r\n"
                f"Content-Disposition: attachment; {disp}\r\n\r\n").encode("ascii") + \
            _wrap(rng.randbytes(size)) + b"\r\n"


# -- one run ----------------------------------------------------------------------------------


@dataclass
class Result:
    n: int
    seconds: float
    peak_rss_mb: float
    cpu: float  # maild's own user + system seconds
    letters: int
    exit_line: str

    @property
    def rate(self) -> float:
        return self.n / self.seconds

    def line(self) -> str:
        return (f"N={self.n}: {self.n} messages in {self.seconds:.2f} s = {self.rate:.0f} msgs/s, "
                f"peak RSS {self.peak_rss_mb:.1f} MB, {self.letters} letters sent, "
                f"maild CPU {self.cpu:.1f} s")


def write_config(base: Path, dovecot: DovecotServer, sink: SmtpSink, db_url: str,
                 batch: int | None) -> Path:
    cfg = base / "maild.toml"
    cfg.write_text(CONFIG.format(org=ORG, db_url=db_url, imap_url=dovecot.imap_url,
                                 batch=f"batch_size = {batch}\n" if batch else "",
                                 smtp_host=sink.host, smtp_port=sink.port, staff=STAFF_DOMAIN),
                   encoding="utf-8")
    return cfg


class TreeRss(threading.Thread):
    """Samples the process tree's total RSS every 50 ms while the drain runs."""

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.pid, self.peak_kb = pid, 0
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.wait(0.05):
            self.peak_kb = max(self.peak_kb, tree_rss_kb(self.pid))


def drain(base: Path, cfg: Path, password: str,
          profile: Path | None) -> tuple[float, float, float, str]:
    """Run ``maild run --once``: wall seconds, peak RSS MB, CPU seconds, its exit line.

    Peak RSS is the larger of maild's own exact peak and the sampled peak of maild with its
    parser processes together (every 50 ms); CPU counts the parser processes too."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAILD_")}
    env["MAILD_IMAP_PASSWORD"] = password
    # measure the maild of this checkout, whatever the venv's editable install points at
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    cmd = [sys.executable]
    if profile is not None and profile.suffix == ".prof":
        cmd += ["-m", "cProfile", "-o", str(profile)]
    elif profile is not None and profile.suffix == ".pyisession":
        cmd += ["-m", "pyinstrument", "-r", "pyisession", "-o", str(profile)]
    elif profile is not None:  # py-spy samples every thread: the IMAP and SQLite ones too
        cmd = [str(Path(sys.executable).with_name("py-spy")), "record", "--gil", "--format", "raw",
               "--rate", "250", "-o", str(profile), "--", sys.executable]
    cmd += ["-m", "maild", "run", "-c", str(cfg), "--once"]
    log = base / "maild.log"
    with log.open("wb") as err:
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, cwd=base, env=env, stdin=subprocess.DEVNULL,
                                stdout=subprocess.DEVNULL, stderr=err)
        sampler = TreeRss(proc.pid)
        sampler.start()
        # this child's rusage (with the parser processes it reaped), not all of ours
        _, status, usage = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - start
        sampler.done.set()
        sampler.join()
        proc.returncode = os.waitstatus_to_exitcode(status)
    text = log.read_text(encoding="utf-8", errors="replace")
    if proc.returncode != 0:
        raise SystemExit(f"maild exited {proc.returncode}; log {log}:\n{text[-3000:]}")
    exit_line = next((ln.partition(" exit: ")[2] for ln in reversed(text.splitlines())
                      if " exit: " in ln), "?")
    # ru_maxrss is in KiB on Linux
    rss_mb = max(usage.ru_maxrss, sampler.peak_kb) / 1024
    return seconds, rss_mb, usage.ru_utime + usage.ru_stime, exit_line


def check(n: int, plan: Plan, dovecot: DovecotServer, sink: SmtpSink, db: Path) -> int:
    """Print and assert the outcome; returns the number of letters the sink got."""
    inbox = dovecot.count("INBOX")
    folders = {f: dovecot.count(f) for f in ("Processed", "Quarantine", "Triage")}
    with sqlite3.connect(db) as conn:
        cases = conn.execute("select count(*) from cases").fetchone()[0]
        states = dict(conn.execute("select state, count(*) from messages where direction = 'in' "
                                   "group by state").fetchall())
        outbox = dict(conn.execute("select state, count(*) from outbox group by state"
                                   ).fetchall())
        limited = conn.execute("select count(*) from timeline where kind = 'rate_limited'"
                               ).fetchone()[0]
        replies = conn.execute("select count(*) from timeline where kind in "
                               "('reply', 'staff_reply')").fetchone()[0]
    letters = sink.wait_for(sum(outbox.values()), timeout=10) if outbox else sink.messages
    acks = Counter()
    for m in letters:
        msg = email.message_from_bytes(m.raw, policy=email.policy.default)
        acks[str(msg.get("X-Maild-Case", ""))] += 1
    need_dept = acks.pop("", 0)
    checks = [
        ("INBOX empty", inbox == 0, f"INBOX={inbox}"),
        ("Processed+Quarantine+Triage == N", sum(folders.values()) == n,
         " ".join(f"{k}={v}" for k, v in folders.items())),
        ("every message decided", sum(states.values()) == n and "received" not in states,
         str(states)),
        ("cases as planned", cases == plan.new_cases, f"cases={cases} planned={plan.new_cases}"),
        ("one ack per new case", len(acks) == cases - limited and set(acks.values()) <= {1},
         f"acks={sum(acks.values())} distinct={len(acks)} rate_limited={limited}"),
        ("need_department letters", need_dept == plan.need_department,
         f"{need_dept} planned={plan.need_department}"),
        ("replies threaded", replies == plan.replies, f"{replies} planned={plan.replies}"),
        ("outbox all sent", set(outbox) <= {"sent"}, str(outbox)),
    ]
    ok = True
    for name, passed, detail in checks:
        print(f"  [{'ok' if passed else 'FAIL'}] {name}: {detail}")
        ok &= passed
    if not ok:
        raise SystemExit(f"N={n}: checks failed")
    return len(letters)


def run_one(n: int, base: Path, args: argparse.Namespace) -> Result:
    base.mkdir(parents=True, exist_ok=True)
    plan = Plan()
    with DovecotServer(base / "dovecot") as dovecot, SmtpSink() as sink:
        t0 = time.perf_counter()
        gen = Generator(args.seed, plan)
        dovecot.append_many(next(gen) for _ in range(n))
        print(f"N={n}: appended in {time.perf_counter() - t0:.1f} s, "
              f"{plan.bytes / 1e6:.1f} MB, {plan.attachments} with attachments, "
              f"{plan.replies} replies, {plan.robots} robots; "
              f"charsets {dict(sorted(plan.charsets.items()))}; "
              f"senders {dict(sorted(plan.kinds.items()))}", flush=True)
        db = base / "var" / "maild.db"
        cfg = write_config(base, dovecot, sink, args.db_url, args.batch_size)
        suffix = {"cprofile": ".prof", "pyinstrument": ".pyisession", "py-spy": ".stacks"}
        prof = base / f"drain{suffix[args.profile]}" if args.profile else None
        seconds, rss, cpu, exit_line = drain(base, cfg, dovecot.password, prof)
        print(f"  maild: {exit_line}")
        letters = check(n, plan, dovecot, sink, db)
        if prof is not None:
            show_profile(prof, args.top)
    return Result(n, seconds, rss, cpu, letters, exit_line)


def show_profile(path: Path, top: int) -> None:
    if path.suffix == ".pyisession":
        subprocess.run([sys.executable, "-m", "pyinstrument", "--load", str(path),
                        "--no-color", "-p", "processor_options.filter_threshold=0.01"],
                       check=False)
        return
    if path.suffix == ".stacks":
        show_stacks(path, top)
        return
    stats = pstats.Stats(str(path))
    stats.strip_dirs()
    print(f"\n--- cProfile of the drain (main thread only; IMAP runs in a worker thread): "
          f"top {top} by own time")
    stats.sort_stats("tottime").print_stats(top)
    print(f"--- top {top} by cumulative time")
    stats.sort_stats("cumulative").print_stats(top)


def show_stacks(path: Path, top: int) -> None:
    """Summarise py-spy's collapsed stacks: CPU share by leaf function and by maild function."""
    own: Counter[str] = Counter()
    incl: Counter[str] = Counter()
    total = 0
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if not count.isdigit():
            continue
        n = int(count)
        total += n
        frames = stack.split(";")
        own[frames[-1]] += n
        for frame in dict.fromkeys(f for f in frames if "maild/" in f or "/maild" in f):
            incl[frame] += n
    print(f"\n--- py-spy: {total} samples of threads on CPU; top {top} by own samples")
    for frame, n in own.most_common(top):
        print(f"{100 * n / total:6.1f}%  {frame}")
    print("--- maild functions, inclusive (any thread)")
    for frame, n in incl.most_common(top):
        print(f"{100 * n / total:6.1f}%  {frame}")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--n", type=int, action="append", help="messages to drain (repeatable)")
    p.add_argument("--keep", type=Path, help="keep each run's folder (Dovecot, DB, logs) here")
    p.add_argument("--profile", nargs="?", const="cprofile",
                   choices=("cprofile", "pyinstrument", "py-spy"),
                   help="profile the drain (default cProfile; pyinstrument and py-spy must be "
                        "installed in the venv; py-spy also sees the IMAP and SQLite threads)")
    p.add_argument("--top", type=int, default=30, help="functions shown by --profile")
    p.add_argument("--seed", type=int, default=20261126)
    p.add_argument("--repeat", type=int, default=1,
                   help="runs per N; the best is reported (other work on the machine only "
                        "ever slows a run down)")
    p.add_argument("--batch-size", type=int, help="mailbox.batch_size (default: maild's)")
    p.add_argument("--db-url", default="sqlite://var/maild.db",
                   help="database URL in the config (SQLite; the checks read var/maild.db)")
    args = p.parse_args(argv)
    sizes = args.n or [1000]
    root = args.keep.resolve() if args.keep else Path(tempfile.mkdtemp(prefix="maild-bench-"))
    results = []
    try:
        for n in sizes:
            runs = []
            for _ in range(max(1, args.repeat)):
                base = root / f"n{n}"
                if base.exists():
                    shutil.rmtree(base)
                runs.append(run_one(n, base, args))
                print(runs[-1].line(), flush=True)
            results.append(min(runs, key=lambda r: r.seconds))
    finally:
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)
    print()
    for r in results:
        ok = r.rate >= TARGET_RATE and r.peak_rss_mb < TARGET_RSS_MB
        verdict = "ok" if ok else "BELOW TARGET"
        print(f"{r.line()}  [{verdict}: >= {TARGET_RATE:.0f}/s, < {TARGET_RSS_MB:.0f} MB]")
    return 0


if __name__ == "__main__":
    sys.exit(main())
