"""``/metrics`` and ``/healthz`` of a running ``maild run``, for real: Dovecot, the SMTP sink
and the daemon as a process of its own, scraped over HTTP while mail arrives, letters go
out, and the mailbox goes away and comes back."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families
from servers import DovecotServer, SmtpSink, free_port
from support import DIRECTORY_TOML, mail

pytestmark = pytest.mark.slow

WAIT = 60.0  # seconds a step may take before the test gives up on it


class Running:
    """``maild run`` with ``[metrics] listen`` on a free port."""

    def __init__(self, base: Path, dovecot: DovecotServer, sink: SmtpSink) -> None:
        self.base, self.dovecot, self.sink = base, dovecot, sink
        self.port = free_port()
        self.config = base / "maild.toml"
        self.config.write_text(f"""
[database]
url = "sqlite://var/maild.db"
[mailbox]
url = "{dovecot.imap_url}"
poll_interval = 0.5
fault_backoff_max = 1
[smtp]
url = "smtp://{sink.host}:{sink.port}"
[limits]
max_message_bytes = 100000
[metrics]
listen = "127.0.0.1:{self.port}"
healthy_within = "5m"
""" + DIRECTORY_TOML, encoding="utf-8")
        self.proc: subprocess.Popen[str] | None = None

    def start(self) -> None:
        env = {"MAILD_IMAP_PASSWORD": self.dovecot.password, "PATH": "/usr/bin:/bin"}
        self.proc = subprocess.Popen([sys.executable, "-m", "maild", "run", "-c",
                                      str(self.config)], cwd=self.base, env=env,
                                     stderr=subprocess.PIPE, text=True)

    def stop(self) -> str:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        _, err = self.proc.communicate(timeout=30)
        return err

    def status(self) -> tuple[int, dict[str, Any]]:
        """``maild status --json`` on the running daemon's config."""
        p = subprocess.run([sys.executable, "-m", "maild", "status", "-c", str(self.config),
                            "--json"], cwd=self.base, capture_output=True, text=True,
                           timeout=60)
        return p.returncode, json.loads(p.stdout)

    def get(self, path: str) -> tuple[int, str]:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}",
                                        timeout=5) as r:
                return r.status, r.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode()

    def health(self) -> tuple[int, dict[str, Any]]:
        status, body = self.get("/healthz")
        return status, json.loads(body)

    def metrics(self) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
        status, body = self.get("/metrics")
        assert status == 200, body
        return {(s.name, tuple(sorted(s.labels.items()))): s.value
                for family in text_string_to_metric_families(body) for s in family.samples}

    def until(self, what: str, check: Callable[[], bool]) -> None:
        deadline = time.monotonic() + WAIT
        while not check():
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise AssertionError(f"maild exited {self.proc.returncode}: "
                                     f"{self.proc.stderr.read() if self.proc.stderr else ''}")
            if time.monotonic() > deadline:
                raise AssertionError(f"waited {WAIT:.0f} s for {what}; /healthz: "
                                     f"{self.health()}")
            time.sleep(0.1)

    def answers(self) -> bool:
        try:
            self.get("/healthz")
        except OSError:
            return False
        return True


def value(m: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str,
          **labels: str) -> float | None:
    return m.get((name, tuple(sorted(labels.items()))))


@pytest.fixture
def running(tmp_path: Path, dovecot: DovecotServer, smtp_sink: SmtpSink
            ) -> Iterator[Running]:
    r = Running(tmp_path, dovecot, smtp_sink)
    r.start()
    try:
        yield r
    finally:
        if r.proc is not None and r.proc.poll() is None:
            r.proc.kill()
            r.proc.wait()


def test_counters_move_as_mail_arrives_and_letters_go_out(running: Running) -> None:
    r = running
    r.until("the endpoint", r.answers)
    r.until("a healthy daemon", lambda: r.health()[0] == 200)
    status, report = r.health()
    assert report["status"] == "ok" and report["reasons"] == []
    assert report["mailbox"]["state"] == "up" and report["database"]["state"] == "up"
    before = r.metrics()
    assert value(before, "maild_mails_processed_total") == 0
    assert value(before, "maild_letters_sent_total") == 0
    assert value(before, "maild_healthy") == 1
    assert value(before, "maild_connection_up", peer="mailbox") == 1
    assert value(before, "maild_last_poll_timestamp_seconds") is not None

    r.dovecot.append_many([mail(f"buyer{i}@huaxin.example.cn", f"询价 {i}") for i in range(3)]
                          + [mail("big@huaxin.example.cn", "大附件", "x" * 200_000)])
    r.sink.wait_for(3, timeout=WAIT)

    def moved() -> bool:
        m = r.metrics()
        return (value(m, "maild_letters_sent_total") == 3
                and value(m, "maild_letters_pending") == 0
                and value(m, "maild_quarantine_mails") == 1)

    r.until("the counters and the backlog to move", moved)
    m = r.metrics()
    assert value(m, "maild_mails_processed_total") == 3
    assert value(m, "maild_mails_total", route="new") == 3
    assert value(m, "maild_mails_quarantined_total") == 1
    assert value(m, "maild_mails_fetched_total") == 4
    assert value(m, "maild_connection_up", peer="smtp") == 1
    assert value(m, "maild_last_send_timestamp_seconds") is not None
    assert value(m, "maild_last_letter_sent_timestamp_seconds") is not None
    assert value(m, "maild_last_mail_received_timestamp_seconds") is not None
    assert value(m, "maild_oldest_pending_letter_age_seconds") == 0
    assert value(m, "maild_fault_active") == 0
    status, report = r.health()
    assert status == 200
    assert report["counters"]["letters_sent"] == 3
    assert report["backlog"]["quarantined"] == 1

    assert r.get("/nothing")[0] == 404
    err = r.stop()
    assert r.proc is not None and r.proc.returncode == 0, err
    assert "metrics on http://127.0.0.1:" in err


def test_healthz_turns_unhealthy_while_the_mailbox_is_down_and_healthy_after(
        running: Running) -> None:
    r = running
    r.until("a healthy daemon", lambda: r.answers() and r.health()[0] == 200)
    code, report = r.status()
    assert (code, report["status"], report["reasons"]) == (0, "healthy", [])
    assert report["daemon"]["health"]["mailbox"]["state"] == "up"
    assert report["database"]["answered"] is True

    r.dovecot.stop()
    r.until("/healthz to turn 503", lambda: r.health()[0] == 503)
    _, report = r.health()
    assert report["status"] == "unhealthy"
    assert report["mailbox"]["state"] == "down"
    assert report["fault"]["ok"] is False
    assert any("intake failing" in reason and "mailbox unavailable" in reason
               for reason in report["reasons"]), report["reasons"]
    m = r.metrics()
    assert value(m, "maild_healthy") == 0
    assert value(m, "maild_connection_up", peer="mailbox") == 0
    assert value(m, "maild_fault_active") == 1
    assert value(m, "maild_fault_info", what="mailbox unavailable", peer="mailbox") == 1
    code, report = r.status()
    assert (code, report["status"]) == (1, "unhealthy")
    assert any("intake failing" in reason for reason in report["reasons"]), report["reasons"]

    r.dovecot.start_again()
    r.until("/healthz to turn 200 again", lambda: r.health()[0] == 200)
    _, report = r.health()
    assert report["mailbox"]["state"] == "up" and report["fault"] == {"ok": True}
    assert value(r.metrics(), "maild_fault_active") == 0

    r.dovecot.append(mail("late@huaxin.example.cn", "恢复后询价"))  # mail flows again
    r.sink.wait_for(1, timeout=WAIT)
    r.until("the mail after the outage to count",
            lambda: value(r.metrics(), "maild_mails_processed_total") == 1)
    err = r.stop()
    code, report = r.status()  # the daemon is gone: nothing answers
    assert (code, report["daemon"]["health"]) == (1, None)
    assert "intake stopped: mailbox unavailable" in err
    assert "intake resumed after" in err


def test_healthz_says_the_database_is_down_while_the_daemon_waits_for_it(
        tmp_path: Path, dovecot: DovecotServer, smtp_sink: SmtpSink) -> None:
    r = Running(tmp_path, dovecot, smtp_sink)
    nowhere = f"postgres://postgres@127.0.0.1:{free_port()}/maild"  # nothing listens there
    r.config.write_text(r.config.read_text(encoding="utf-8").replace(
        'url = "sqlite://var/maild.db"', f'url = "{nowhere}"'), encoding="utf-8")
    r.start()
    try:
        r.until("the endpoint", r.answers)
        r.until("the outage to show", lambda: r.health()[1]["fault"]["ok"] is False)
        status, report = r.health()
        assert status == 503 and report["status"] == "unhealthy"
        assert report["database"]["state"] == "down"
        assert report["mailbox"]["state"] == "unknown"  # not tried before the database
        assert any("intake failing" in reason for reason in report["reasons"])
        assert value(r.metrics(), "maild_connection_up", peer="database") == 0
        code, out = r.status()
        assert code == 1 and out["database"]["answered"] is False  # the daemon said so
    finally:
        err = r.stop()
    assert "database unusable" in err
