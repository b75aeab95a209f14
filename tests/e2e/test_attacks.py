"""The attack table, on the real stack: ``maild run --once`` as a real process against a real
Dovecot and a real SMTP sink. Each forged or tricked mail must run no command (the cases do
not change), send nothing about a case to an address that is not proven, and leave its
refusal (or the reason it was not a command) on the timeline. The genuine rows show that
a proven sender's commands do run. docs/SECURITY.md summarises the table.
"""

from __future__ import annotations

import base64
import email
import email.policy
import json
import os
import sqlite3
import subprocess
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path

import dkim
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from servers import DovecotServer, SmtpSink
from support import AUTHSERV, DIRECTORY_TOML, mail

pytestmark = pytest.mark.slow

LI = "li@corp.example.test"  # initiator of the internal case: may #close it
WANG = "wang@corp.example.test"  # 市场部's head: owns the internal step, contact of 华信
BUYER = "buyer@huaxin.example.cn"
EVIL = "evil@x.example"
THIEF = "thief@x.example"
ATTACKERS = {EVIL, THIEF}
REQUEST = ("发起部门/人：技术部 李\n接收部门/人：市场部\n沟通目标：讲解\n"
           "核心内容：讲解新品参数\n需协助事项：安排讲师\n期望完成时间：2026-12-10\n"
           "紧急程度：一般\n")

#: the tests' directory, its customer with the account manager who hears of its mail
DIRECTORY = DIRECTORY_TOML.replace('domains = ["huaxin.example.cn"]\n',
                                   'domains = ["huaxin.example.cn"]\n'
                                   'contact = "wang@corp.example.test"\n', 1)


def _keypair() -> tuple[bytes, str]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    der = key.public_key().public_bytes(serialization.Encoding.DER,
                                        serialization.PublicFormat.SubjectPublicKeyInfo)
    return pem, "v=DKIM1; k=rsa; p=" + base64.b64encode(der).decode("ascii")


class Site:
    def __init__(self, base: Path, dovecot: DovecotServer, sink: SmtpSink) -> None:
        self.base, self.dovecot, self.sink = base, dovecot, sink
        self.pem, record = _keypair()
        self.config = base / "maild.toml"
        self.config.write_text(f"""
[database]
url = "sqlite://var/maild.db"
[mailbox]
url = "{dovecot.imap_url}"
batch_size = 50
[smtp]
url = "smtp://{sink.host}:{sink.port}"
lease_seconds = 1
""" + DIRECTORY + f"""
[security.dkim_keys]
"s1._domainkey.corp.example.test" = "{record}"
""", encoding="utf-8")

    def once(self) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("MAILD_")}
        env["MAILD_IMAP_PASSWORD"] = self.dovecot.password
        p = subprocess.run([sys.executable, "-m", "maild", "run", "-c", str(self.config),
                            "--once"], env=env, capture_output=True, text=True, timeout=180,
                           cwd=self.base)
        assert p.returncode == 0, p.stderr

    def db(self, sql: str, *args: object) -> list[tuple[object, ...]]:
        with sqlite3.connect(self.base / "var" / "maild.db") as conn:
            return conn.execute(sql, args).fetchall()

    def state(self, number: str) -> tuple[object, ...]:
        [row] = self.db("SELECT status, step, owner, data FROM cases WHERE number = ?", number)
        return row

    def timeline(self, msgid: str) -> list[tuple[str, str]]:
        return [(str(k), str(t)) for k, t in self.db(
            "SELECT kind, text FROM timeline WHERE message_id = ? ORDER BY id", msgid)]

    def sent(self, start: int = 0) -> list[tuple[tuple[str, ...], email.message.Message]]:
        return [(tuple(m.rcpt_tos), email.message_from_bytes(m.raw, policy=email.policy.default))
                for m in self.sink.messages[start:]]

    def sign(self, raw: bytes) -> bytes:
        return dkim.sign(raw, b"s1", b"corp.example.test", self.pem,
                         include_headers=[b"from", b"to", b"subject", b"date",
                                          b"message-id", b"in-reply-to"]) + raw


@dataclass
class Row:
    name: str
    raw: bytes
    msgid: str
    #: what the timeline must show for the mail: "refused" (an unproven command),
    #: "ignored" (an outsider's commands or a repeated tag), "robot" (not a person)
    outcome: str


def _id() -> str:
    return f"<{uuid.uuid4().hex}@mua.example>"


def _raw(head: str, body: str = "#close\r\n") -> bytes:
    """A mail written byte by byte: the ``email`` package would not write these headers."""
    return (head.replace("\n", "\r\n") + "\r\nMIME-Version: 1.0\r\n"
            "Content-Type: text/plain; charset=utf-8\r\n"
            "Date: Tue, 01 Dec 2026 10:00:00 +0800\r\n\r\n").encode("utf-8") + \
        body.encode("utf-8")


def _ar(domain: str, result: str = "dmarc=pass", server: str = AUTHSERV) -> str:
    return f"{server}; {result} header.from={domain}"


@pytest.fixture
def site(tmp_path: Path, dovecot: DovecotServer, smtp_sink: SmtpSink) -> Site:
    return Site(tmp_path, dovecot, smtp_sink)


def _setup(s: Site) -> dict[str, str]:
    """An internal case (li asks 市场部) and a customer case whose subject plants tags."""
    first = _id()
    s.dovecot.append(mail(LI, "[跨部门] 讲解支持", REQUEST, msgid=first))
    planted = _id()
    s.dovecot.append(mail(BUYER, "［关闭］ [关[关闭]闭] 报价", "请报价 200 套。", msgid=planted))
    s.once()
    cases = {str(p): str(n) for n, p in s.db("SELECT number, process FROM cases")}
    a, b = cases["internal"], cases["customer"]
    ids: dict[str, str] = {"A": a, "B": b, "first": first, "planted": planted}
    for letter, number, rcpt in (("request_notice", a, WANG), ("request_notice", a, LI),
                                 ("ack", b, BUYER), ("new_case_notice", b, WANG)):
        [(mid,)] = s.db("SELECT message_id FROM outbox WHERE letter = ? AND rcpt_key = ? "
                        "AND case_id = (SELECT id FROM cases WHERE number = ?)",
                        letter, rcpt, number)
        ids[f"{letter}:{rcpt}"] = str(mid)
    return ids


def _attacks(ids: dict[str, str]) -> list[Row]:
    a, b = ids["A"], ids["B"]
    rows: list[Row] = []

    def add(name: str, outcome: str, sender: str = LI, subject: str = "",
            body: str = "#close", **kw: object) -> None:
        msgid = _id()
        raw = mail(sender, subject or f"Re: [{a}] 讲解支持", body, msgid=msgid, **kw)  # type: ignore[arg-type]
        rows.append(Row(name, raw, msgid, outcome))

    def add_raw(name: str, outcome: str, head: str, body: str = "#close\r\n") -> None:
        msgid = _id()
        rows.append(Row(name, _raw(f"Message-ID: {msgid}\n" + head, body), msgid, outcome))

    add("forged From, dmarc=fail", "refused", auth="dmarc=fail")
    add("forged From, no Authentication-Results", "refused", auth=None)
    add("A-R from an untrusted authserv-id", "refused", auth=None,
        Authentication_Results=_ar("corp.example.test", server="mx.evil.example"))
    add("look-alike domain examp1e", "ignored", sender="li@corp.examp1e.test")
    homoglyph = "corp.ex\u0430mple.test"  # a Cyrillic а
    add_raw("IDN homoglyph domain", "ignored",
            f"From: li@{homoglyph}\nTo: service@example.test\n"
            f"Subject: Re: [{a}] 讲解支持\nAuthentication-Results: {_ar(homoglyph)}")
    add("display-name trick", "ignored", sender=f'"{LI}" <{EVIL}>')
    add_raw("two From addresses", "refused",
            f"From: {LI}, {EVIL}\nTo: service@example.test\nSubject: Re: [{a}] 讲解支持\n"
            f"Authentication-Results: {_ar('corp.example.test')}")
    add_raw("two From headers", "refused",
            f"From: {LI}\nFrom: {EVIL}\nTo: service@example.test\n"
            f"Subject: Re: [{a}] 讲解支持\n"
            f"Authentication-Results: {_ar('corp.example.test')}")
    add("Sender of another domain", "refused", Sender=EVIL)
    add("Reply-To redirecting #help", "refused", body="#help", auth=None, Reply_To=THIEF)
    add("guessed case number with a [关闭] tag", "refused", subject=f"[{a}] [关闭]", body="",
        auth=None)
    add("a token made for another recipient", "refused", sender=WANG, body="#advance",
        auth=None, In_Reply_To=ids[f"request_notice:{LI}"])
    add("a token for another case", "refused", sender=WANG, body="#advance", auth=None,
        In_Reply_To=ids["first"], References=ids[f"new_case_notice:{WANG}"])
    add("a stolen Message-ID of a letter to the customer", "refused", sender=WANG,
        subject=f"Re: [{b}] 报价", auth=None, In_Reply_To=ids[f"ack:{BUYER}"])
    # the planted tags: the contact (proven) answers the customer's mail, subject and all
    add("full-width planted tag ［关闭］", "ignored", sender=WANG,
        subject="Re: ［关闭］ 报价", body="收到，我看一下。", In_Reply_To=ids["planted"])
    add("nested planted tag [关[关闭]闭]", "ignored", sender=WANG,
        subject="Re: [关[关闭]闭] 报价", body="收到。", In_Reply_To=ids["planted"])
    add("staff auto-responder answering a planted tag", "robot", sender=WANG,
        subject="自动回复: ［关闭］ [关[关闭]闭] 报价", body="我正在休假。",
        In_Reply_To=ids["planted"], Auto_Submitted="auto-replied")
    add("the customer's own valid token", "ignored", sender=BUYER,
        subject=f"Re: [{b}] 报价", In_Reply_To=ids[f"ack:{BUYER}"])
    return rows


def _outcome_shown(s: Site, row: Row) -> bool:
    timeline = s.timeline(row.msgid)
    kinds = [k for k, _ in timeline]
    if row.outcome == "refused":
        return any(k == "refused" and "发件人未经验证" in t for k, t in timeline) \
            and "unproven" in kinds
    if row.outcome == "ignored":
        return "ignored" in kinds or (not any(k in ("command", "refused") for k in kinds)
                                      and bool(kinds))
    [(route,)] = s.db("SELECT route FROM messages WHERE message_id = ?", row.msgid) or [("",)]
    return "command" not in kinds and route is not None


def test_the_attack_table(site: Site) -> None:
    s = site
    ids = _setup(s)
    a, b = ids["A"], ids["B"]
    before = {a: s.state(a), b: s.state(b)}
    assert before[a][0] == before[b][0] == "open"
    sent_before = len(s.sink.messages)

    rows = _attacks(ids)
    assert len(rows) >= 15
    s.dovecot.append_many([r.raw for r in rows])
    s.once()

    # no command ran: both cases exactly as they were
    assert {a: s.state(a), b: s.state(b)} == before
    assert s.db("SELECT COUNT(*) FROM timeline WHERE kind = 'command'") == [(0,)]
    failed = [r.name for r in rows if not _outcome_shown(s, r)]
    assert failed == []
    # nothing about a case went anywhere but to the people the mails claimed to be,
    # and to them only the once-an-hour notice
    new = s.sent(sent_before)
    for rcpt, m in new:  # the case's own people only: li (initiator), wang (owner, contact)
        assert set(rcpt) <= {LI, WANG}, (rcpt, m["Subject"])
    notices = sorted(r for rcpt, m in new for r in rcpt
                     if "以您名义发出的命令未执行" in str(m["Subject"]))
    assert notices == [LI, WANG]  # the people named in From, told once each
    # besides the notices, only the contact hears of the customer's own reply
    others = [(rcpt, str(m["Subject"])) for rcpt, m in new
              if "以您名义发出的命令未执行" not in str(m["Subject"])]
    assert others == [((WANG,), f"[{b}] 对方回复：报价")]
    everyone = {r for rcpt, _ in s.sent() for r in rcpt}
    assert not everyone & ATTACKERS
    assert not any("examp1e" in r or "\u0430" in r for r in everyone)

    # the genuine rows: a proven sender's commands run
    genuine = [
        ("DMARC pass from the trusted server", _id(), LI, "#note 真实的记录", {}),
        ("reply carrying a valid token", _id(), WANG, "#note 凭回复令牌",
         {"auth": None, "In_Reply_To": ids[f"request_notice:{WANG}"]}),
        ("Reply-To ignored for a proven #help", _id(), LI, "#help", {"Reply_To": THIEF}),
    ]
    raws = [mail(sender, f"Re: [{a}] 讲解支持", body, msgid=msgid, **kw)  # type: ignore[arg-type]
            for _, msgid, sender, body, kw in genuine]
    signed_id = _id()
    raws.append(s.sign(mail(LI, f"Re: [{a}] 讲解支持", "#note DKIM 签名的记录",
                            msgid=signed_id, auth=None)))
    close_id = _id()
    raws.append(mail(WANG, f"Re: [{b}] 报价", "#close 已报价", msgid=close_id,
                     In_Reply_To=ids[f"new_case_notice:{WANG}"], auth=None))
    s.dovecot.append_many(raws)
    s.once()

    notes = [str(t) for (t,) in s.db("SELECT text FROM timeline WHERE kind = 'note'")]
    assert {"真实的记录", "凭回复令牌", "DKIM 签名的记录"} <= set(notes)
    proofs = {str(m): str(t) for m, t in s.db(
        "SELECT message_id, text FROM timeline WHERE kind = 'proof'")}
    assert proofs[genuine[0][1]] == \
        f"发件人已验证：authentication-results: dmarc=pass ({AUTHSERV})"
    assert proofs[genuine[1][1]] == "发件人已验证：reply-token"
    assert proofs[signed_id] == "发件人已验证：dkim: corp.example.test"
    assert proofs[close_id] == "发件人已验证：reply-token"
    assert s.state(b)[0] == "closed"
    assert s.db("SELECT rcpt_key FROM outbox WHERE letter = 'command_help'") == [(LI,)]
    assert not {r for rcpt, _ in s.sent() for r in rcpt} & ATTACKERS
    show = subprocess.run([sys.executable, "-m", "maild", "cases", "show", "-c",
                           str(s.config), a, "--json"], capture_output=True, text=True,
                          timeout=60, cwd=s.base)
    assert "发件人未经验证" in json.dumps(json.loads(show.stdout), ensure_ascii=False)
