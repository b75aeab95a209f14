"""``Type=notify`` for real: ``maild run`` as a process talking to a notify socket the test
binds the way systemd does, and the unit file checked by ``systemd-analyze verify``."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest
from servers import DovecotServer
from support import DIRECTORY_TOML, mail

from maild.adapters.sources.maildir import deliver
from maild.cli.exits import EXIT_CONFIG
from maild.runners.systemd import Notifier

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
UNIT = ROOT / "systemd" / "maild.service"


class NotifySocket:
    """What systemd listens on: a datagram socket at ``$NOTIFY_SOCKET``."""

    def __init__(self, address: str) -> None:
        self.address = address
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind("\0" + address[1:] if address.startswith("@") else address)
        self.received: list[dict[str, str]] = []

    def close(self) -> None:
        self.sock.close()

    def drain(self) -> list[dict[str, str]]:
        """What arrived and was not read yet (e.g. after the process exited)."""
        self.sock.settimeout(0)
        while True:
            try:
                data = self.sock.recv(4096)
            except BlockingIOError:
                return self.received
            self.received.append(_fields(data))

    def wait_for(self, pred: Callable[[dict[str, str]], bool], timeout: float = 30.0,
                 proc: subprocess.Popen[str] | None = None, after: int = 0
                 ) -> dict[str, str]:
        """The first message from the ``after``-th on (received before or arriving now)
        for which ``pred`` holds."""
        for m in self.received[after:]:
            if pred(m):
                return m
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if proc is not None and proc.poll() is not None:
                raise AssertionError(f"maild exited {proc.returncode}: {proc.stderr.read()}"
                                     if proc.stderr else f"maild exited {proc.returncode}")
            self.sock.settimeout(0.2)
            try:
                data = self.sock.recv(4096)
            except TimeoutError:
                continue
            m = _fields(data)
            self.received.append(m)
            if pred(m):
                return m
        raise AssertionError(f"no such notification in {timeout} s: {self.received}")


def _fields(data: bytes) -> dict[str, str]:
    return dict(line.split("=", 1) for line in data.decode().splitlines())


class Site:
    """A maild site on a Maildir mailbox and a Maildir outbox: no servers needed."""

    def __init__(self, base: Path, mailbox: str = "maildir://var/mail",
                 extra: str = "") -> None:
        self.base = base
        self.config = base / "maild.toml"
        self.config.write_text(f"""
[database]
url = "sqlite://var/maild.db"
[mailbox]
url = "{mailbox}"
poll_interval = 0.2
[smtp]
url = "maildir://var/sent"
{extra}
""" + DIRECTORY_TOML, encoding="utf-8")

    def env(self, **extra: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("MAILD_", "NOTIFY_", "WATCHDOG_", "JOURNAL_"))}
        return {**env, **extra}

    def start(self, *args: str, **env: str) -> subprocess.Popen[str]:
        return subprocess.Popen([sys.executable, "-m", "maild", "run", "-c", str(self.config),
                                 *args], env=self.env(**env), cwd=self.base,
                                stderr=subprocess.PIPE, text=True)

    def deliver(self, raw: bytes) -> None:
        deliver(self.base / "var" / "mail", raw)

    def sent(self) -> list[Path]:
        folder = self.base / "var" / "sent" / "new"
        return sorted(folder.iterdir()) if folder.exists() else []


def stop(p: subprocess.Popen[str], sig: int = signal.SIGTERM) -> tuple[int, str]:
    p.send_signal(sig)
    try:
        _, err = p.communicate(timeout=60)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    return p.returncode, err


def test_ready_status_watchdog_reload_and_stopping(tmp_path: Path) -> None:
    site = Site(tmp_path)
    ns = NotifySocket(f"@maild-test-{uuid.uuid4().hex}")  # the abstract namespace
    p = site.start(NOTIFY_SOCKET=ns.address, WATCHDOG_USEC="400000")
    try:
        ready = ns.wait_for(lambda m: m.get("READY") == "1", proc=p)
        assert ready["STATUS"] == "idle; 0 mails decided; 0 pending letters"
        assert ready["MAINPID"] == str(p.pid)
        for _ in range(3):  # pings keep coming from the running loop
            ns.wait_for(lambda m: m.get("WATCHDOG") == "1", proc=p, after=len(ns.received))
        site.deliver(mail("buyer@huaxin.example.cn", "询价：工控主板"))
        ns.wait_for(lambda m: m.get("STATUS", "").startswith("idle; 1 mails decided"), proc=p)
        assert site.sent()  # the acknowledgement
        p.send_signal(signal.SIGHUP)
        reloading = ns.wait_for(lambda m: m.get("RELOADING") == "1", proc=p)
        assert int(reloading["MONOTONIC_USEC"]) > 0
        n = next(i for i, m in enumerate(ns.received) if m is reloading)
        ns.wait_for(lambda m: m.get("READY") == "1", proc=p, after=n + 1)
        code, err = stop(p)
        assert any(m.get("STOPPING") == "1" for m in ns.drain())
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
        ns.close()
    assert code == 0, err
    assert "reloaded" in err and "exit: " in err


def test_without_a_notify_socket_nothing_is_sent_and_it_runs(tmp_path: Path) -> None:
    site = Site(tmp_path)
    site.deliver(mail("buyer@huaxin.example.cn", "询价"))
    p = subprocess.run([sys.executable, "-m", "maild", "run", "-c", str(site.config),
                        "--once"], env=site.env(), cwd=tmp_path, capture_output=True,
                       text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    assert "systemd" not in p.stderr and len(site.sent()) == 1


def test_ready_waits_for_the_mailbox_and_the_status_says_why(
        tmp_path: Path, dovecot: DovecotServer) -> None:
    (tmp_path / "site").mkdir()
    site = Site(tmp_path / "site", mailbox=dovecot.imap_url)
    dovecot.stop()
    ns = NotifySocket(str(tmp_path / "notify.sock"))  # a path, as systemd uses
    p = site.start(NOTIFY_SOCKET=ns.address, MAILD_IMAP_PASSWORD=dovecot.password)
    try:
        failing = ns.wait_for(lambda m: "intake failing" in m.get("STATUS", ""), proc=p)
        assert failing["STATUS"].startswith("starting: intake failing since ")
        assert "mailbox unavailable" in failing["STATUS"]
        assert not any("READY" in m for m in ns.received)
        dovecot.start_again()
        dovecot.append(mail("buyer@huaxin.example.cn", "询价"))
        ready = ns.wait_for(lambda m: m.get("READY") == "1", proc=p)
        assert ready["STATUS"].startswith("idle; ")
        code, err = stop(p)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
        ns.close()
    assert code == 0, err
    assert err.count("intake stopped: mailbox unavailable") == 1  # logged once
    assert "intake resumed after" in err


def _unit_for_check(tmp_path: Path) -> Path:
    """The unit as shipped, its ExecStart pointing at a maild that exists here."""
    exe = shutil.which("maild", path=str(Path(sys.executable).parent)) or sys.executable
    text = UNIT.read_text(encoding="utf-8").replace("/opt/maild/.venv/bin/maild", exe)
    unit = tmp_path / "maild.service"
    unit.write_text(text, encoding="utf-8")
    return unit


def test_the_unit_verifies_cleanly(tmp_path: Path) -> None:
    if shutil.which("systemd-analyze") is None:
        pytest.skip("systemd-analyze is not installed")
    unit = _unit_for_check(tmp_path)
    p = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True,
                       text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip() == "" and p.stderr.strip() == "", p.stdout + p.stderr
    # and it does check: a typo in the type is reported
    bad = tmp_path / "bad.service"
    bad.write_text(unit.read_text(encoding="utf-8").replace("Type=notify", "Type=notfy"),
                   encoding="utf-8")
    p = subprocess.run(["systemd-analyze", "verify", str(bad)], capture_output=True,
                       text=True, timeout=60)
    assert "Failed to parse service type" in p.stderr


def test_the_unit_matches_what_maild_does() -> None:
    settings = dict(re.findall(r"^(\w+)=(.*)$", UNIT.read_text(encoding="utf-8"), re.M))
    assert settings["Type"] == "notify" and settings["NotifyAccess"] == "main"
    assert int(settings["WatchdogSec"]) > 0
    assert settings["ExecReload"] == "/bin/kill -HUP $MAINPID"
    assert settings["RestartPreventExitStatus"] == str(EXIT_CONFIG)
    assert settings["ExecStart"].endswith("maild run -c /etc/maild/maild.toml")


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_under_journald_each_record_is_one_line_with_a_priority(tmp_path: Path,
                                                               fmt: str) -> None:
    site = Site(tmp_path, extra=f'[logging]\nformat = "{fmt}"\n')
    site.deliver(mail("buyer@huaxin.example.cn", "询价"))
    log = tmp_path / "journal.txt"
    with log.open("w", encoding="utf-8") as err:
        st = os.fstat(err.fileno())
        p = subprocess.run([sys.executable, "-m", "maild", "run", "-c", str(site.config),
                            "--once"], env=site.env(JOURNAL_STREAM=f"{st.st_dev}:{st.st_ino}"),
                           cwd=tmp_path, stderr=err, text=True, timeout=120)
    assert p.returncode == 0
    lines = log.read_text(encoding="utf-8").splitlines()
    assert lines and all(re.match(r"<[0-7]>", line) for line in lines), lines
    start = next(line for line in lines if "starting: config" in line)
    assert start.startswith("<6>") and "(journald)" in start
    if fmt == "json":
        objs = [json.loads(line[3:]) for line in lines]
        assert {"time", "level", "logger", "message"} <= set(objs[0])
        assert any(o["message"].startswith("exit: fetched=1 processed=1") for o in objs)
    else:
        assert not re.search(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", start)  # journald stamps it
        assert any(line.startswith("<6>INFO maild.daemon exit: fetched=1") for line in lines)


def test_the_watchdog_is_ours_only_when_systemd_meant_this_process(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NOTIFY_SOCKET", "@nowhere")
    monkeypatch.setenv("WATCHDOG_USEC", "400000")
    monkeypatch.setenv("WATCHDOG_PID", str(os.getpid()))
    assert Notifier.from_env().watchdog_every == 0.2
    monkeypatch.setenv("WATCHDOG_PID", "1")  # a parent's watchdog, inherited
    assert Notifier.from_env().watchdog_every is None
    monkeypatch.delenv("NOTIFY_SOCKET")
    assert not Notifier.from_env().enabled


def test_a_notify_socket_that_is_gone_is_reported_once(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    n = Notifier(str(tmp_path / "gone.sock"))
    assert not n.send("STATUS=x") and not n.send("STATUS=y")
    assert [r.getMessage() for r in caplog.records].count(
        f"cannot notify systemd at {tmp_path / 'gone.sock'}: [Errno 2] No such file or "
        "directory") == 1
    ns = NotifySocket(str(tmp_path / "here.sock"))
    try:
        n = Notifier(ns.address)
        n.mark_ready("idle; 0 mails decided; 0 pending letters")
        n.mark_ready("idle; 0 mails decided; 0 pending letters")  # once READY, only STATUS
        n.mark_ready("idle; 1 mails decided; 0 pending letters")
        got = [ns.wait_for(lambda m: True, after=i) for i in range(2)]
        assert got[0]["READY"] == "1" and got[0]["MAINPID"] == str(os.getpid())
        assert got[1] == {"STATUS": "idle; 1 mails decided; 0 pending letters"}
        assert ns.drain() == got  # nothing more: an unchanged status is not sent again
    finally:
        ns.close()
