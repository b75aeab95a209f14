"""SIGHUP for real: ``maild run`` on Dovecot and an SMTP sink reloads its config, directory
and templates; new mail uses the new ones. A broken config changes nothing: the daemon goes
on with the old one and says why."""

from __future__ import annotations

import email
import email.policy
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from email.message import EmailMessage
from pathlib import Path

import pytest
from servers import DovecotServer, SmtpSink
from support import mail
from test_e2e import Deployment
from test_systemd import NotifySocket

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
MARK = "【本通知由新模板生成】"

REQUEST = ("张经理好，申请如下：\n\n发起部门/人：市场部/王芳\n接收部门/人：技术部\n"
           "沟通目标：新品推广会技术讲解\n核心内容：12 月 10 日推广会讲解宽温设计\n"
           "需协助事项：派一名工程师讲解 30 分钟\n期望完成时间：2026-12-10\n"
           "紧急程度：一般\n\n王芳\n")


class Running(Deployment):
    def __init__(self, base: Path, dovecot: DovecotServer, sink: SmtpSink) -> None:
        super().__init__(base, dovecot, sink)
        self.templates = base / "tpl"
        shutil.copytree(ROOT / "templates" / "email", self.templates)
        self.config.write_text(self.config.read_text(encoding="utf-8")
                               + '\n[letters]\ntemplates = "tpl"\n', encoding="utf-8")
        self.log = base / "maild.log"
        self.notify = NotifySocket(f"@maild-test-{uuid.uuid4().hex}")
        self.proc: subprocess.Popen[str] | None = None

    def start(self) -> None:
        with self.log.open("w", encoding="utf-8") as err:  # the child keeps its own copy
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "maild", "run", "-c", str(self.config)],
                env=self.env(NOTIFY_SOCKET=self.notify.address), cwd=self.base,
                stderr=err, text=True)
        self.notify.wait_for(lambda m: m.get("READY") == "1", proc=self.proc)

    def reload(self) -> None:
        """SIGHUP, and wait until the daemon is ready again (reloaded or refused)."""
        assert self.proc is not None
        n = len(self.notify.received)
        self.proc.send_signal(signal.SIGHUP)
        self.notify.wait_for(lambda m: m.get("RELOADING") == "1", proc=self.proc, after=n)
        self.notify.wait_for(lambda m: m.get("READY") == "1", proc=self.proc, after=n + 1)

    def stop(self) -> int:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.notify.close()
        return self.proc.returncode

    def text(self) -> str:
        return self.log.read_text(encoding="utf-8")

    def request(self, subject: str) -> EmailMessage:
        """An internal request for 技术部; returns the notice its head was sent."""
        before = len(self.sink.messages)
        self.dovecot.append(mail("王芳 <wang@corp.example.test>", f"[跨部门][技术部] {subject}",
                                 REQUEST))
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            for m in self.sink.messages[before:]:
                msg = email.message_from_bytes(m.raw, policy=email.policy.default)
                if subject in str(msg["Subject"]) and "待确认" in str(msg["Subject"]):
                    assert isinstance(msg, EmailMessage)
                    return msg
            time.sleep(0.05)
        raise AssertionError(f"no notice for {subject!r}:\n{self.text()}")


def _body(msg: EmailMessage) -> str:
    part = msg.get_body(("plain",))
    assert part is not None
    return str(part.get_content())  # type: ignore[attr-defined]


def test_sighup_reloads_templates_and_directory_and_refuses_a_broken_config(
        tmp_path: Path, dovecot: DovecotServer, smtp_sink: SmtpSink) -> None:
    d = Running(tmp_path, dovecot, smtp_sink)
    d.start()
    try:
        before = d.request("推广会 A")
        assert "zhang@corp.example.test" in str(before["To"]) + str(before["Cc"])
        assert MARK not in _body(before)

        # a new head for 技术部, a changed template, and a setting that needs a restart
        tpl = d.templates / "request_notice.zh.txt.j2"
        subject, blank, rest = tpl.read_text(encoding="utf-8").partition("\n\n")
        tpl.write_text(subject + blank + MARK + "\n" + rest, encoding="utf-8")
        cfg = d.config.read_text(encoding="utf-8")
        assert cfg.count('head = "zhang@corp.example.test"') == 1
        cfg = cfg.replace('head = "zhang@corp.example.test"', 'head = "zhao@corp.example.test"')
        cfg = cfg.replace("poll_interval = 0.5", "poll_interval = 0.7")
        d.config.write_text(cfg, encoding="utf-8")
        unchanged = d.request("推广会 A2")  # edited, not reloaded: nothing changes yet
        assert "zhang@corp.example.test" in str(unchanged["To"]) + str(unchanged["Cc"])
        assert MARK not in _body(unchanged)
        d.reload()
        after = d.request("推广会 B")
        rcpt = str(after["To"]) + str(after["Cc"])
        assert "zhao@corp.example.test" in rcpt and "zhang@corp.example.test" not in rcpt
        assert MARK in _body(after)
        text = d.text()
        assert "changed directory.departments, letter templates" in text
        assert "mailbox.poll_interval changed but takes effect only after a restart" in text

        # a broken config: refused, the daemon goes on with the one in force
        good = d.config.read_text(encoding="utf-8")
        broken = good.replace('head = "zhao@corp.example.test"',
                              'head = "zhao@corp.example.test"\nheed = "typo"')
        d.config.write_text(broken, encoding="utf-8")
        line = broken.splitlines().index('heed = "typo"') + 1
        d.reload()
        third = d.request("推广会 C")
        assert "zhao@corp.example.test" in str(third["To"]) + str(third["Cc"])
        assert MARK in _body(third)
        text = d.text()
        assert "reload refused, still running on the previous configuration" in text
        assert f"{d.config}:{line}: directory.departments.0.heed: unknown key" in text

        # a template that no longer renders is refused the same way
        d.config.write_text(good, encoding="utf-8")
        tpl.write_text(subject + blank + "{{ no_such_variable }}\n" + rest, encoding="utf-8")
        d.reload()
        assert "no_such_variable" in d.text().rpartition("reload refused")[2]
        fourth = d.request("推广会 D")
        assert MARK in _body(fourth)
        assert d.proc is not None and d.proc.poll() is None  # still running
    finally:
        code = d.stop()
    assert code == 0, d.text()
    assert os.path.exists(d.log) and "exit: " in d.text()


def test_settings_bound_to_open_connections_are_kept_and_named() -> None:
    from maild.config import parse_config
    from maild.runners.reload import changes, kept

    old = parse_config('[database]\nurl = "sqlite://a.db"\n[mailbox]\nurl = "maildir://m"\n'
                       '[metrics]\nlisten = "127.0.0.1:9101"\n', base_dir="/srv/a")
    new = parse_config('[database]\nurl = "postgres://db/x"\n'
                       '[mailbox]\nurl = "imaps://u@h/INBOX"\nprocessed_folder = "Done"\n'
                       '[metrics]\nlisten = "127.0.0.1:9102"\n'
                       '[organisation]\nname = "新名称"\n', base_dir="/srv/b")
    cfg, differ = kept(old, new)
    assert sorted(differ) == ["database.url", "mailbox.url", "metrics.listen"]
    assert cfg.database.url == "sqlite://a.db" and cfg.mailbox.url == "maildir://m"
    assert cfg.metrics.listen == "127.0.0.1:9101" and cfg.base_dir == "/srv/a"
    assert cfg.mailbox.processed_folder == "Done" and cfg.organisation.name == "新名称"
    assert changes(old, cfg) == ["organisation.name", "mailbox.processed_folder"]
