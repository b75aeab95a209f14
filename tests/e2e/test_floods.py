"""Floods on the real stack (Dovecot, the SMTP sink, ``maild run`` as a process): the
manager's notices stop at ``limits.notices_per_staff_per_hour`` and the rest arrive folded
into summary letters that list every case; the count survives a restart."""

from __future__ import annotations

import email
import email.policy
import os
import re
import sqlite3
import subprocess
import sys
from email.message import EmailMessage
from pathlib import Path

import pytest
from servers import DovecotServer, SmtpSink
from support import DIRECTORY_TOML, mail

pytestmark = pytest.mark.slow

BOSS = "boss@corp.example.test"
NUMBER = re.compile(r"\d{4}-客-\d{3,}")


class Deployment:
    def __init__(self, base: Path, dovecot: DovecotServer, sink: SmtpSink,
                 per_hour: int) -> None:
        self.base, self.dovecot, self.sink = base, dovecot, sink
        self.config = base / "maild.toml"
        self.config.write_text(f"""
[database]
url = "sqlite://var/maild.db"
[mailbox]
url = "{dovecot.imap_url}"
batch_size = 50
[smtp]
url = "smtp://{sink.host}:{sink.port}"
[limits]
notices_per_staff_per_hour = {per_hour}
""" + DIRECTORY_TOML + f"""
[[directory.managers]]
name = "陈总"
address = "{BOSS}"
""", encoding="utf-8")

    def once(self) -> subprocess.CompletedProcess[str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("MAILD_")}
        env["MAILD_IMAP_PASSWORD"] = self.dovecot.password
        p = subprocess.run([sys.executable, "-m", "maild", "run", "-c", str(self.config),
                            "--once"], env=env, capture_output=True, text=True, timeout=300,
                           cwd=self.base)
        assert p.returncode == 0, p.stderr
        return p

    def db(self, sql: str) -> list[tuple[object, ...]]:
        with sqlite3.connect(self.base / "var" / "maild.db") as conn:
            return conn.execute(sql).fetchall()

    def to_boss(self) -> list[EmailMessage]:
        """The manager's letters but the weekly digest (due on Mondays, also in a test)."""
        letters = [email.message_from_bytes(m.raw, policy=email.policy.default)
                   for m in self.sink.messages if BOSS in m.rcpt_tos]
        return [m for m in letters  # type: ignore[misc]
                if not str(m["Subject"]).startswith("管理周报")]


def flood(n: int, start: int = 0) -> list[bytes]:
    return [mail(f"客户{i} <buyer{i}@unknown{i}.example.org>", f"询价 第{i}号",
                 f"您好，请报价第 {i} 号产品。") for i in range(start, start + n)]


def text(m: EmailMessage) -> str:
    return m.get_body(("plain",)).get_content()  # type: ignore[union-attr]


def split(letters: list[EmailMessage]) -> tuple[list[EmailMessage], list[EmailMessage]]:
    summaries = [m for m in letters if str(m["Subject"]).startswith("通知汇总")]
    return [m for m in letters if m not in summaries], summaries


def test_300_new_cases_give_the_manager_the_limit_and_summaries_listing_all(
        tmp_path: Path, dovecot: DovecotServer, smtp_sink: SmtpSink) -> None:
    d = Deployment(tmp_path, dovecot, smtp_sink, per_hour=20)
    dovecot.append_many(flood(300))
    run = d.once()

    numbers = {str(n) for (n,) in d.db("SELECT number FROM cases")}
    assert len(numbers) == 300
    notices, summaries = split(d.to_boss())
    assert len(notices) == 20
    assert all("新案件待跟进" in str(m["Subject"]) for m in notices)
    assert 1 <= len(summaries) <= 2  # at most 200 notices a letter
    noticed = {NUMBER.search(str(m["Subject"])).group(0) for m in notices}  # type: ignore[union-attr]
    listed = [n for m in summaries for n in NUMBER.findall(text(m))]
    assert len(listed) == len(set(listed)) == 280  # each folded case listed once
    assert noticed | set(listed) == numbers and not noticed & set(listed)
    # nothing silent: each folded case says so on its timeline, and the log says it too
    folded = {str(n) for (n,) in d.db(
        "SELECT c.number FROM timeline t JOIN cases c ON c.id = t.case_id "
        "WHERE t.kind = 'folded'")}
    assert folded == set(listed)
    assert d.db("SELECT COUNT(*) FROM timeline WHERE kind = 'summary'") == [(280,)]
    assert run.stderr.count("folded into the next summary") == 280
    assert "summary of" in run.stderr
    # the strangers each got their own acknowledgement: their limit is per address
    assert sum(1 for m in smtp_sink.messages if BOSS not in m.rcpt_tos) == 300

    d.once()  # nothing new: no further letter to the manager
    assert len(d.to_boss()) == 20 + len(summaries)
    assert d.db("SELECT COUNT(*) FROM letter_counts WHERE state = 'folded'") == [(0,)]


def test_the_hourly_count_survives_a_restart(tmp_path: Path, dovecot: DovecotServer,
                                             smtp_sink: SmtpSink) -> None:
    d = Deployment(tmp_path, dovecot, smtp_sink, per_hour=5)
    dovecot.append_many(flood(4))
    d.once()
    notices, summaries = split(d.to_boss())
    assert (len(notices), len(summaries)) == (4, 0)

    dovecot.append_many(flood(4, start=4))
    d.once()  # a new process: what it knows of the hour is in the database
    notices, summaries = split(d.to_boss())
    assert len(notices) == 5
    [summary] = summaries
    listed = set(NUMBER.findall(text(summary)))
    noticed = {NUMBER.search(str(m["Subject"])).group(0) for m in notices}  # type: ignore[union-attr]
    assert len(listed) == 3 and not listed & noticed
    assert listed | noticed == {str(n) for (n,) in d.db("SELECT number FROM cases")}

    dovecot.append_many(flood(2, start=8))
    d.once()  # a third run in the same hour: folded again, but no second summary yet
    notices, summaries = split(d.to_boss())
    assert (len(notices), len(summaries)) == (5, 1)
    assert d.db("SELECT COUNT(*) FROM letter_counts WHERE state = 'folded'") == [(2,)]
