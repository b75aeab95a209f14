"""Stopping ``maild run`` under load, for real: Dovecot with a backlog, an SMTP sink that
takes its time, and the daemon stopped at random moments and started again.

A graceful stop (SIGTERM) lets the letter in flight finish and be marked, gives back the
letters it had not tried and exits within seconds: no letter is sent twice. A kill (SIGKILL)
can leave only the letter between the server's answer and its line in the delivery journal:
at most one letter sent again per kill, always with its own Message-ID.
"""

from __future__ import annotations

import email
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from servers import DovecotServer, SmtpSink
from support import mail
from test_e2e import Deployment

pytestmark = pytest.mark.slow

BACKLOG = 150


class Stack(Deployment):
    """``maild run`` against the test Dovecot and a slow SMTP sink."""

    def __init__(self, base: Path, dovecot: DovecotServer, sink: SmtpSink) -> None:
        super().__init__(base, dovecot, sink)
        # each letter takes the sink 15 ms: a stop or kill lands while letters are in flight
        sink.on_accept = lambda: time.sleep(0.015)

    def start(self) -> subprocess.Popen[str]:
        return subprocess.Popen([sys.executable, "-m", "maild", "run", "-c", str(self.config)],
                                env=self.env(), cwd=self.base, stderr=subprocess.PIPE,
                                text=True)

    def finish(self) -> None:
        """One last cycle, on a clock past any lease a killed daemon left."""
        later = (datetime.now(UTC) + timedelta(seconds=5)).isoformat()
        p = subprocess.run([sys.executable, "-m", "maild", "run", "-c", str(self.config),
                            "--once", "--now", later], env=self.env(), cwd=self.base,
                           capture_output=True, text=True, timeout=120)
        assert p.returncode == 0, p.stderr

    def ids(self) -> Counter[str]:
        return Counter(email.message_from_bytes(m.raw)["Message-ID"]
                       for m in self.sink.messages)


def _storm(stack: Stack, sig: signal.Signals, rounds: int, seed: int) -> list[float]:
    """Start the daemon ``rounds`` times on the backlog, each time stopping it with ``sig``
    once the sink has taken a few more letters; then let a last cycle send the rest.
    Returns how long each stop took."""
    rng = random.Random(seed)
    stack.dovecot.append_many(mail(f"buyer{i}@huaxin.example.cn", f"询价 {i}")
                              for i in range(BACKLOG))
    took = []
    for _ in range(rounds):
        target = len(stack.sink.messages) + rng.randint(1, 12)
        p = stack.start()
        try:
            deadline = time.monotonic() + 60
            while len(stack.sink.messages) < target and time.monotonic() < deadline:
                if p.poll() is not None:
                    _, err = p.communicate()
                    raise AssertionError(f"maild exited {p.returncode}: {err}")
                time.sleep(0.005)
            time.sleep(rng.uniform(0, 0.05))  # anywhere in the letter in flight
            at = time.monotonic()
            p.send_signal(sig)
            _, err = p.communicate(timeout=30)
            took.append(time.monotonic() - at)
        finally:
            if p.poll() is None:
                p.kill()
                p.wait()
        if sig == signal.SIGTERM:
            assert p.returncode == 0, err
            assert "exit: " in err
        else:
            assert p.returncode == -signal.SIGKILL
    stack.finish()
    return took


def _delivered_all(stack: Stack) -> Counter[str]:
    ids = stack.ids()
    queued = {str(r[0]) for r in stack.db("select message_id from outbox")}
    assert len(queued) >= BACKLOG  # an acknowledgement for each mail at least
    assert stack.db("select state, count(*) from outbox group by state") == [
        ("sent", len(queued))]
    assert set(ids) == queued  # each one went out, with its own Message-ID
    assert stack.dovecot.count("INBOX") == 0
    return ids


def test_sigterm_under_load_sends_no_letter_twice(tmp_path: Path, dovecot: DovecotServer,
                                                  smtp_sink: SmtpSink) -> None:
    stack = Stack(tmp_path, dovecot, smtp_sink)
    took = _storm(stack, signal.SIGTERM, rounds=8, seed=8)
    ids = _delivered_all(stack)
    assert [i for i, n in ids.items() if n > 1] == []
    assert max(took) < 10, took  # the letter in flight and the mail in hand, not the backlog


def test_sigkill_under_load_sends_at_most_one_letter_again_per_kill(
        tmp_path: Path, dovecot: DovecotServer, smtp_sink: SmtpSink) -> None:
    stack = Stack(tmp_path, dovecot, smtp_sink)
    _storm(stack, signal.SIGKILL, rounds=10, seed=10)
    ids = _delivered_all(stack)
    again = sum(n - 1 for n in ids.values())
    assert again <= 10, f"{again} letters sent again over 10 kills"
