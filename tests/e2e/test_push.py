"""Push intake for real: ``maild run`` against the test Dovecot, taking mail in through IMAP
IDLE, and riding out a Dovecot outage without a restart.

The outage lasts 60 s, as an admin restarting or upgrading Dovecot would cause, with
``mailbox.fault_backoff_max = 2`` (instead of 60), so that the daemon tries about thirty
times during it and must still log the outage once.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from servers import DovecotServer, SmtpSink
from support import mail
from test_e2e import Deployment

from maild.adapters.sources.maildir import deliver

pytestmark = pytest.mark.slow

OUTAGE = 60.0  # seconds Dovecot is down


class Daemon:
    """``maild run`` as a child process, its log in a file."""

    def __init__(self, dep: Deployment) -> None:
        self.dep = dep
        self.log_path = dep.base / "maild.log"
        with self.log_path.open("wb") as err:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "maild", "run", "-c", str(dep.config)], env=dep.env(),
                cwd=dep.base, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err)

    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def wait(self, what: str, pred: Callable[[], bool], timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while not pred():
            if self.proc.poll() is not None:
                raise AssertionError(f"maild exited {self.proc.returncode}:\n{self.log()}")
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what}:\n{self.log()}")
            time.sleep(0.05)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                raise AssertionError(f"maild did not stop on SIGTERM:\n{self.log()}") from None


def deployment(base: Path, dovecot: DovecotServer, sink: SmtpSink, **mailbox: object
               ) -> Deployment:
    dep = Deployment(base, dovecot, sink)
    knobs = "".join(f"{k} = {str(v).lower() if isinstance(v, bool) else v}\n"
                    for k, v in mailbox.items())
    dep.config.write_text(dep.config.read_text(encoding="utf-8").replace(
        "poll_interval = 0.5\n", knobs), encoding="utf-8")
    return dep


def start_is_over(d: Daemon) -> None:
    """Wait until the cycles the start ran are over: a poll takes in mail that arrives
    while it runs, so a mail appended before would prove nothing."""
    d.wait("the first mail moved", lambda: "moved 1 message(s)" in d.log())
    time.sleep(1)


def acked(sink: SmtpSink, who: str) -> bool:
    return any(who in m.rcpt_tos for m in sink.messages)


@pytest.fixture
def running() -> Iterator[list[Daemon]]:
    started: list[Daemon] = []
    yield started
    for d in started:
        d.stop()


def test_idle_takes_mail_in_though_the_poll_interval_is_an_hour(
        tmp_path: Path, dovecot: DovecotServer, smtp_sink: SmtpSink,
        running: list[Daemon]) -> None:
    dep = deployment(tmp_path, dovecot, smtp_sink, poll_interval=3600)
    dovecot.append(mail("first@huaxin.example.cn", "询价：工控主板"))  # the start's cycle
    d = Daemon(dep)
    running.append(d)
    d.wait("the first acknowledgement and IDLE",
           lambda: acked(smtp_sink, "first@huaxin.example.cn") and "IDLE on" in d.log())
    start_is_over(d)  # the next poll is an hour away
    dovecot.append(mail("second@huaxin.example.cn", "询价：铝合金外壳"))
    d.wait("the acknowledgement of the mail that arrived while idling",
           lambda: acked(smtp_sink, "second@huaxin.example.cn"))
    assert dovecot.count("INBOX") == 0
    d.stop()
    assert "Traceback" not in d.log()


def test_without_idle_the_mail_waits_for_the_poll(
        tmp_path: Path, dovecot: DovecotServer, smtp_sink: SmtpSink,
        running: list[Daemon]) -> None:
    """The control of the test above: with ``mailbox.idle = false`` only the poll (an hour
    away) would take the second mail in."""
    dep = deployment(tmp_path, dovecot, smtp_sink, poll_interval=3600, idle=False)
    dovecot.append(mail("first@huaxin.example.cn", "询价：工控主板"))
    d = Daemon(dep)
    running.append(d)
    d.wait("the first acknowledgement", lambda: acked(smtp_sink, "first@huaxin.example.cn"))
    start_is_over(d)
    dovecot.append(mail("second@huaxin.example.cn", "询价：铝合金外壳"))
    time.sleep(3)
    assert not acked(smtp_sink, "second@huaxin.example.cn")
    assert dovecot.count("INBOX") == 1
    assert "mailbox.idle is off" in d.log() and "IDLE on" not in d.log()


def test_a_server_without_idle_is_polled(tmp_path: Path, dovecot: DovecotServer,
                                         smtp_sink: SmtpSink, running: list[Daemon]) -> None:
    dovecot.stop()
    with dovecot.conf.open("a") as conf:  # what the server announces, IDLE left out
        conf.write("imap_capability = IMAP4rev1 LITERAL+ SASL-IR UIDPLUS MOVE\n")
    dovecot.start_again()
    dep = deployment(tmp_path, dovecot, smtp_sink, poll_interval=1)
    d = Daemon(dep)
    running.append(d)
    d.wait("the fallback to polling", lambda: "does not offer IDLE" in d.log())
    dovecot.append(mail("buyer@huaxin.example.cn", "询价：工控主板"))
    d.wait("the acknowledgement", lambda: acked(smtp_sink, "buyer@huaxin.example.cn"))
    d.stop()
    log = d.log()
    assert log.count("does not offer IDLE; polling every 1 s") == 1, log
    assert "IDLE on" not in log and "Traceback" not in log


def test_a_maildir_is_watched_too(tmp_path: Path, dovecot: DovecotServer,
                                  smtp_sink: SmtpSink, running: list[Daemon]) -> None:
    dep = deployment(tmp_path, dovecot, smtp_sink, poll_interval=3600)
    dep.config.write_text(dep.config.read_text(encoding="utf-8").replace(
        f'url = "{dovecot.imap_url}"', 'url = "maildir://var/mail"'), encoding="utf-8")
    maildir = tmp_path / "var" / "mail"
    deliver(maildir, mail("first@huaxin.example.cn", "询价：工控主板"))
    d = Daemon(dep)
    running.append(d)
    d.wait("the first acknowledgement", lambda: acked(smtp_sink, "first@huaxin.example.cn"))
    assert "taking new mail in as it arrives in maildir://" in d.log()
    start_is_over(d)
    deliver(maildir, mail("second@huaxin.example.cn", "询价：铝合金外壳"))
    d.wait("the acknowledgement of the mail delivered while watching",
           lambda: acked(smtp_sink, "second@huaxin.example.cn"))
    assert not list((maildir / "new").iterdir())


@pytest.mark.timeout(300)
def test_dovecot_outage_is_ridden_out_and_logged_once(
        tmp_path: Path, dovecot: DovecotServer, smtp_sink: SmtpSink,
        running: list[Daemon]) -> None:
    # an hour between polls: finding the outage and its end is the watch's doing
    dep = deployment(tmp_path, dovecot, smtp_sink, poll_interval=3600, fault_backoff_max=2)
    dovecot.append(mail("first@huaxin.example.cn", "询价：工控主板"))
    d = Daemon(dep)
    running.append(d)
    d.wait("the first acknowledgement and IDLE",
           lambda: acked(smtp_sink, "first@huaxin.example.cn") and "IDLE on" in d.log())
    dovecot.append(mail("before@huaxin.example.cn", "询价：停机之前"))
    dovecot.stop()
    time.sleep(OUTAGE)
    assert d.proc.poll() is None, d.log()
    dovecot.start_again()
    dovecot.append(mail("after@dongfang.example.cn", "询价：恢复之后"))
    d.wait("the acknowledgements of the mail around the outage",
           lambda: acked(smtp_sink, "before@huaxin.example.cn")
           and acked(smtp_sink, "after@dongfang.example.cn"))
    d.wait("the intake to resume", lambda: "intake resumed after" in d.log())
    assert d.proc.poll() is None  # the same process all along
    d.stop()
    log = d.log()
    # the outage once: one line when it started and one when it ended; the IDLE
    # connection's own trouble is not logged again beside it
    assert log.count("intake stopped: mailbox unavailable") == 1, log
    assert log.count("intake resumed after") == 1, log
    assert "not pushed any more" not in log and "pushed again" not in log, log
    assert log.count("IDLE on") == 2, log  # connected at the start and after the outage
    assert "Traceback" not in log
    assert dovecot.count("INBOX") == 0
    letters = [m for m in smtp_sink.messages
               if {"before@huaxin.example.cn", "after@dongfang.example.cn"} & set(m.rcpt_tos)]
    assert len(letters) == 2  # each acknowledged once
