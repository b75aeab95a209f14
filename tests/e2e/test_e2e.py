"""End to end: real Dovecot, a real SMTP sink, ``maild run`` as a real process."""

from __future__ import annotations

import email
import email.policy
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from servers import DovecotServer, SmtpSink
from support import DIRECTORY_TOML, find_corpus, mail

CORPUS = find_corpus()
pytestmark = pytest.mark.slow


class Deployment:
    """A maild config pointing at the test Dovecot and SMTP sink, and ways to run it."""

    def __init__(self, base: Path, dovecot: DovecotServer, sink: SmtpSink) -> None:
        self.base, self.dovecot, self.sink = base, dovecot, sink
        self.config = base / "maild.toml"
        self.config.write_text(f"""
[database]
url = "sqlite://var/maild.db"
[mailbox]
url = "{dovecot.imap_url}"
batch_size = 50
poll_interval = 0.5
[smtp]
url = "smtp://{sink.host}:{sink.port}"
lease_seconds = 1
""" + DIRECTORY_TOML, encoding="utf-8")

    def env(self, **extra: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("MAILD_")}
        return {**env, "MAILD_IMAP_PASSWORD": self.dovecot.password, **extra}

    def run(self, *args: str, failpoint: str | None = None,
            check: bool = True) -> subprocess.CompletedProcess[str]:
        extra = {"MAILD_FAILPOINT": failpoint} if failpoint else {}
        p = subprocess.run([sys.executable, "-m", "maild", *args], env=self.env(**extra),
                           capture_output=True, text=True, timeout=120, cwd=self.base)
        if check and p.returncode != 0:
            raise AssertionError(f"maild {' '.join(args)} exited {p.returncode}:\n{p.stderr}")
        return p

    def once(self, **kw: object) -> subprocess.CompletedProcess[str]:
        return self.run("run", "-c", str(self.config), "--once", **kw)  # type: ignore[arg-type]

    def cases(self) -> list[dict[str, object]]:
        return json.loads(self.run("cases", "list", "-c", str(self.config), "--json").stdout)

    def case(self, number: str) -> dict[str, object]:
        return json.loads(self.run("cases", "show", "-c", str(self.config), number,
                                   "--json").stdout)

    def db(self, sql: str) -> list[tuple[object, ...]]:
        with sqlite3.connect(self.base / "var" / "maild.db") as conn:
            return conn.execute(sql).fetchall()

    def letters(self) -> list[email.message.EmailMessage]:
        return [email.message_from_bytes(m.raw, policy=email.policy.default)  # type: ignore
                for m in self.sink.messages]


@pytest.fixture
def deployment(tmp_path: Path, dovecot: DovecotServer, smtp_sink: SmtpSink) -> Deployment:
    return Deployment(tmp_path, dovecot, smtp_sink)


GBK_INQUIRY = dict(
    sender="王经理 <wang@huaxin.example.cn>",
    subject="产品询价：定制工控主板（镕铭系列）",
    body="您好：\n我司计划采购定制工控主板 200 套，要求宽温，期望 1 月交付。\n王喆\n",
    charset="gbk")


def test_gbk_inquiry_becomes_one_case_and_one_acknowledgement(deployment: Deployment) -> None:
    d = deployment
    raw = mail(**GBK_INQUIRY)
    assert b"charset=\"gbk\"" in raw
    d.dovecot.append(raw)
    d.once()

    [case] = d.cases()
    number = str(case["number"])
    assert case["process"] == "customer" and case["status"] == "open"
    assert case["subject"] == "产品询价：定制工控主板（镕铭系列）"
    [ack] = d.letters()
    assert ack["Subject"].startswith(f"[{number}] ")
    assert "镕铭系列" in ack["Subject"]
    assert ack["To"] == "wang@huaxin.example.cn"
    assert ack["Auto-Submitted"] == "auto-replied"
    assert ack["In-Reply-To"] == email.message_from_bytes(raw)["Message-ID"]
    text = ack.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    assert "王经理" in text and number in text and "镕铭系列" in text
    html = ack.get_body(("html",)).get_content()  # type: ignore[union-attr]
    assert number in html
    assert d.dovecot.count("INBOX") == 0 and d.dovecot.count("Processed") == 1
    assert d.dovecot.fetch_all("Processed") == [raw]

    d.once()  # a second cycle changes nothing
    assert len(d.sink.messages) == 1
    assert d.cases() == [case]
    assert d.dovecot.count("Processed") == 1


def test_reply_with_in_reply_to_only_lands_on_the_case(deployment: Deployment) -> None:
    d = deployment
    d.dovecot.append(mail(**GBK_INQUIRY))
    d.once()
    [ack] = d.letters()
    number = str(d.cases()[0]["number"])
    reply = mail("wang@huaxin.example.cn", "回复：询价", "补充：需要两路 RS-485 接口。\n\n> 原邮件",
                 charset="gbk", In_Reply_To=ack["Message-ID"])
    d.dovecot.append(reply)
    d.once()
    assert [c["number"] for c in d.cases()] == [number]
    timeline = d.case(number)["timeline"]
    assert [e["kind"] for e in timeline] == ["opened", "letter", "reply"]  # type: ignore
    assert "两路 RS-485" in timeline[-1]["text"]  # type: ignore[index]
    assert len(d.sink.messages) == 1  # a reply is filed, not acknowledged again


def _bounce() -> bytes:
    return (b"Return-Path: <>\r\nFrom: Mail Delivery Subsystem <MAILER-DAEMON@mx.huaxin.example.cn>"
            b"\r\nTo: service@example.test\r\nSubject: Undelivered Mail Returned to Sender\r\n"
            b"Message-ID: <bounce1@mx.huaxin.example.cn>\r\nMIME-Version: 1.0\r\n"
            b"Content-Type: multipart/report; report-type=delivery-status; boundary=\"b\"\r\n\r\n"
            b"--b\r\nContent-Type: text/plain\r\n\r\nThe mail could not be delivered.\r\n"
            b"--b\r\nContent-Type: message/delivery-status\r\n\r\nStatus: 5.1.1\r\n--b--\r\n")


def test_out_of_office_bounce_and_list_mail_get_no_answer(deployment: Deployment) -> None:
    d = deployment
    d.dovecot.append(mail("li@huaxin.example.cn", "自动回复：产品询价",
                          "我正在休假，12 月 8 日返回。", Auto_Submitted="auto-replied"))
    d.dovecot.append(mail("li@huaxin.example.cn", "Out of Office: inquiry", "I am away.",
                          X_Autoreply="yes"))
    d.dovecot.append(_bounce())
    d.dovecot.append(mail("news@lists.example.org", "行业周报 第 48 期", "本周要闻……",
                          List_Id="<weekly.lists.example.org>", Precedence="list"))
    d.once()
    assert d.sink.messages == []
    assert d.cases() == []
    assert d.dovecot.count("INBOX") == 0 and d.dovecot.count("Processed") == 4
    robots = [json.loads(r[0])["robot"] for r in d.db(
        "select rules from messages where direction = 'in' order by uid")]
    assert robots == ["auto-submitted", "auto-reply", "bounce (empty Return-Path)",
                      "precedence list"]


def _three_mails() -> list[bytes]:
    return [mail(**GBK_INQUIRY),
            mail("sales@hengda.example.cn", "铝合金外壳报价", "单价 86 元。", charset="gb2312"),
            mail("li@corp.example.test", "[跨部门][技术部] 新品推广支持", "接收部门：技术部\n")]


@pytest.mark.parametrize("failpoint", ["after_fetch", "after_commit", "before_move",
                                       "after_send"])
def test_crash_at_each_stage_loses_nothing_and_sends_once(deployment: Deployment,
                                                          failpoint: str) -> None:
    d = deployment
    raws = _three_mails()
    for raw in raws:
        d.dovecot.append(raw)
    crashed = d.once(failpoint=failpoint, check=False)
    assert crashed.returncode == -signal.SIGKILL, crashed.stderr
    # the restart, on a clock past the killed process's leases (smtp.lease_seconds = 1)
    later = (datetime.now(UTC) + timedelta(seconds=5)).isoformat()
    d.run("run", "-c", str(d.config), "--once", "--now", later)

    cases = d.cases()
    assert sorted(str(c["process"]) for c in cases) == ["customer", "internal", "supplier"]
    assert len({c["number"] for c in cases}) == 3
    ids = Counter(m["Message-ID"] for m in d.letters())
    assert len(ids) == 3  # one letter per case...
    if failpoint == "after_send":
        # ...where SMTP took the first one just before the kill, its resend has the same id
        assert sorted(ids.values()) == [1, 1, 2]
    else:
        assert sorted(ids.values()) == [1, 1, 1]
    assert {m["To"] for m in d.letters()} == {"wang@huaxin.example.cn",
                                              "sales@hengda.example.cn", "li@corp.example.test"}
    assert d.dovecot.count("INBOX") == 0
    assert sorted(d.dovecot.fetch_all("Processed")) == sorted(raws)
    assert d.db("select count(*) from messages where direction = 'in'") == [(3,)]
    assert d.db("select count(*) from outbox where state = 'sent'") == [(3,)]


def test_every_corpus_message_is_processed_or_quarantined(deployment: Deployment) -> None:
    files = sorted(p for p in CORPUS.rglob("*") if p.suffix in (".eml", ".msg"))
    assert files, "the corpus is empty"
    d = deployment
    d.dovecot.append_many(p.read_bytes() for p in files)
    assert d.dovecot.count("INBOX") == len(files)
    d.once()
    after = sum(d.dovecot.count(f) for f in ("Processed", "Quarantine", "Triage"))
    assert d.dovecot.count("INBOX") == 0
    assert after == len(files)
    rows = d.db("select state, reason from messages where direction = 'in'")
    assert len(rows) == len(files)
    assert {s for s, _ in rows} <= {"processed", "quarantined", "duplicate"}
    assert all(reason for state, reason in rows if state == "quarantined")
    assert d.dovecot.count("Quarantine") == sum(1 for s, _ in rows if s == "quarantined")


def _mime_bomb(depth: int = 200) -> bytes:
    head = (b"From: x@spam.example\r\nTo: service@example.test\r\nSubject: nested\r\n"
            b"MIME-Version: 1.0\r\n")
    parts = []
    for i in range(depth):
        parts.append(f'Content-Type: multipart/mixed; boundary="b{i}"\r\n\r\n--b{i}\r\n'.encode())
    tail = b"Content-Type: text/plain\r\n\r\nx\r\n" + b"".join(
        f"--b{i}--\r\n".encode() for i in reversed(range(depth)))
    return head + b"".join(parts) + tail


def test_bad_messages_are_quarantined_and_do_not_hold_up_the_batch(
        deployment: Deployment) -> None:
    d = deployment
    good = [mail(f"buyer{i}@huaxin.example.cn", f"询价 {i}", charset="gb18030") for i in range(4)]
    unparseable = _mime_bomb()
    # a broken mailer's runaway Message-ID: longer than any header line may be (RFC 5322)
    unstorable = mail("crm@huaxin.example.cn", "系统通知", msgid="<" + "a" * 1500 + "@crm>")
    batch = [good[0], good[1], unparseable, good[2], unstorable, good[3]]
    d.dovecot.append_many(batch)
    d.once()

    assert d.dovecot.count("INBOX") == 0
    assert sorted(d.dovecot.fetch_all("Quarantine")) == sorted([unparseable, unstorable])
    assert sorted(d.dovecot.fetch_all("Processed")) == sorted(good)
    reasons = dict(d.db("select uid, reason from messages where state = 'quarantined'"))
    assert "nested" in reasons[3]
    assert "message_id" in reasons[5] or "Length" in reasons[5]
    assert len(d.cases()) == 4 and len(d.sink.messages) == 4

    d.once()  # the next poll does not pick them up again
    assert d.db("select count(*) from messages") == [(6 + 4,)]  # 6 in, 4 letters out
    assert len(d.sink.messages) == 4


def test_daemon_stops_cleanly_on_sigterm(deployment: Deployment) -> None:
    d = deployment
    p = subprocess.Popen([sys.executable, "-m", "maild", "run", "-c", str(d.config)],
                         env=d.env(), cwd=d.base, stderr=subprocess.PIPE, text=True)
    try:
        d.dovecot.append(mail(**GBK_INQUIRY))
        deadline = time.monotonic() + 30
        while not d.sink.messages and time.monotonic() < deadline:
            time.sleep(0.1)
        assert len(d.sink.messages) == 1
        p.send_signal(signal.SIGTERM)
        _, err = p.communicate(timeout=20)
    finally:
        if p.poll() is None:
            p.kill()
    assert p.returncode == 0, err
    assert "exit: fetched=1 processed=1" in err
