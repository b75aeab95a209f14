"""A backlog of large mails drains within a memory budget (``mailbox.batch_bytes``).

30 mails of about 20 MB each (a random attachment) sit in a real Dovecot; ``maild run --once``
drains them as a subprocess. The peak RSS of the daemon with its parser processes stays under
300 MB, and under an address-space cap of 600 MB every mail is still processed. A mail over
``limits.max_message_bytes`` is quarantined unparsed, its raw bytes kept up to
``limits.max_raw_bytes``.
"""

from __future__ import annotations

import base64
import os
import resource
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path

import pytest
from servers import DovecotServer, SmtpSink, tree_rss_kb

from maild.adapters.sources.base import MailSource
from maild.adapters.sources.imap import ImapSource
from maild.adapters.sources.maildir import MaildirSource, deliver

N = 30
ATTACHMENT = 15 * 1024 * 1024  # base64: about 20 MB a mail
ROOT = Path(__file__).resolve().parents[2]

CONFIG = """\
[organisation]
name = "示例科技有限公司"
address = "shared@example.test"

[database]
url = "sqlite://var/maild.db"

[mailbox]
url = "{imap_url}"

[smtp]
url = "smtp://{smtp_host}:{smtp_port}"

[limits]
max_attachment_bytes = 104857600

[routing]
staff_domains = ["corp.example.cn"]

[[directory.departments]]
name = "市场部"
short = "市"
head = "wang@corp.example.cn"

[[directory.customers]]
name = "华信集团"
domains = ["huaxin.example.cn"]
contact = "wang@corp.example.cn"
"""


def big_mail(i: int, blob: bytes) -> bytes:
    head = (f"From: buyer{i}@huaxin.example.cn\r\nTo: shared@example.test\r\n"
            f"Subject: 询价 {i}\r\nMessage-ID: <big{i}@huaxin.example.cn>\r\n"
            "Date: Mon, 30 Nov 2026 09:00:00 +0800\r\nMIME-Version: 1.0\r\n"
            'Content-Type: multipart/mixed; boundary="b"\r\n\r\n')
    body = ("--b\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n"
            f"您好，请报价，附件是需求说明 {i}。\r\n"
            "--b\r\nContent-Type: application/octet-stream\r\n"
            f'Content-Disposition: attachment; filename="spec{i}.bin"\r\n'
            "Content-Transfer-Encoding: base64\r\n\r\n")
    return (head + body).encode() + blob + f"\r\n--b--\r\n{i}\r\n".encode()


def _high_water_kb(pid: int) -> int:
    """The peak RSS of ``pid``'s own memory since its exec (VmHWM), in KiB."""
    try:
        with open(f"/proc/{pid}/status", encoding="ascii", errors="replace") as f:
            return next((int(ln.split()[1]) for ln in f if ln.startswith("VmHWM:")), 0)
    except (FileNotFoundError, ProcessLookupError):
        return 0


def drain(base: Path, password: str, preexec: Callable[[], None] | None = None
          ) -> tuple[int, float, str]:
    """``maild run --once``: exit code, peak RSS of its process tree in MB, its log."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAILD_")}
    env["MAILD_IMAP_PASSWORD"] = password
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    log = base / "maild.log"
    peak = 0
    done = threading.Event()
    with log.open("wb") as err:
        proc = subprocess.Popen([sys.executable, "-m", "maild", "run", "-c", "maild.toml",
                                 "--once"], cwd=base, env=env, stdin=subprocess.DEVNULL,
                                stdout=subprocess.DEVNULL, stderr=err, preexec_fn=preexec)

        def sample() -> None:
            nonlocal peak
            while not done.wait(0.05):
                peak = max(peak, tree_rss_kb(proc.pid), _high_water_kb(proc.pid))

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        _, status, _ = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        done.set()
        sampler.join()
    text = log.read_text(encoding="utf-8", errors="replace")
    # not wait4's ru_maxrss: Linux carries the forking process's peak (this test run's)
    # over the exec into the child's, so it says how big pytest got, not maild
    return proc.returncode, peak / 1024, text


def _cap_address_space() -> None:
    cap = 600 * 1024 * 1024
    resource.setrlimit(resource.RLIMIT_AS, (cap, cap))


@pytest.fixture
def backlog(tmp_path: Path, dovecot: DovecotServer, smtp_sink: SmtpSink) -> Path:
    blob = base64.encodebytes(os.urandom(ATTACHMENT)).replace(b"\n", b"\r\n")
    dovecot.append_many(big_mail(i, blob) for i in range(N))
    base = tmp_path / "site"
    base.mkdir()
    (base / "maild.toml").write_text(
        CONFIG.format(imap_url=dovecot.imap_url, smtp_host=smtp_sink.host,
                      smtp_port=smtp_sink.port), encoding="utf-8")
    return base


def _assert_all_processed(dovecot: DovecotServer, code: int, log: str) -> None:
    assert code == 0, log[-3000:]
    assert (dovecot.count(), dovecot.count("Processed"), dovecot.count("Quarantine")) == (
        0, N, 0), log[-3000:]


@pytest.mark.slow
def test_large_backlog_drains_under_300_mb(backlog: Path, dovecot: DovecotServer) -> None:
    code, peak_mb, log = drain(backlog, dovecot.password)
    _assert_all_processed(dovecot, code, log)
    assert peak_mb < 300, f"peak RSS {peak_mb:.0f} MB"


@pytest.mark.slow
def test_large_backlog_drains_under_600_mb_address_space(backlog: Path,
                                                         dovecot: DovecotServer) -> None:
    code, _, log = drain(backlog, dovecot.password, _cap_address_space)
    _assert_all_processed(dovecot, code, log)


def _sources(tmp_path: Path, dovecot: DovecotServer) -> list[MailSource]:
    maildir = MaildirSource(tmp_path / "md")
    for size in (300, 500, 2000, 100):
        deliver(tmp_path / "md", b"Subject: x\r\n\r\n" + b"a" * (size - 14))
        dovecot.append(b"Subject: x\r\n\r\n" + b"a" * (size - 14))
    return [maildir, ImapSource(dovecot.imap_url, dovecot.password)]


def test_fetch_within_a_byte_budget(tmp_path: Path, dovecot: DovecotServer) -> None:
    for src in _sources(tmp_path, dovecot):
        with_sizes = [(f.uid, f.full_size) for f in src.fetch_after(0, 10, 800)]
        assert [size for _, size in with_sizes] == [300, 500], src.name
        uid = with_sizes[-1][0]
        assert [f.full_size for f in src.fetch_after(uid, 10, 800)] == [2000]  # alone
        assert src.fetch_after(uid, 10, 800, first_alone=False) == []
        [big] = src.fetch_after(uid, 1, None, 1000)  # only its first 1000 bytes
        assert (len(big.raw), big.full_size, big.truncated) == (1000, 2000, True)
        assert [len(f.raw) for f in src.fetch_after(0, 10)] == [300, 500, 2000, 100]
        src.close()


def test_too_large_mail_is_quarantined_unparsed(tmp_path: Path, smtp_sink: SmtpSink) -> None:
    base = tmp_path / "site"
    base.mkdir()
    config = CONFIG.format(imap_url="maildir://var/mail", smtp_host=smtp_sink.host,
                           smtp_port=smtp_sink.port)
    config = config.replace("max_attachment_bytes = 104857600\n", "max_attachment_bytes = "
                            "104857600\nmax_message_bytes = 100000\nmax_raw_bytes = 150000\n")
    (base / "maild.toml").write_text(config, encoding="utf-8")
    blob = base64.encodebytes(os.urandom(150_000)).replace(b"\n", b"\r\n")
    big = big_mail(1, blob)
    deliver(base / "var/mail", big)
    deliver(base / "var/mail", big_mail(2, blob[:50_000]))
    code, _, log = drain(base, "unused")
    assert code == 0, log[-3000:]
    db = sqlite3.connect(base / "var/maild.db")
    rows = db.execute("SELECT uid, state, reason, raw_size FROM messages "
                      "WHERE direction = 'in' ORDER BY uid").fetchall()
    assert rows[0] == (1, "quarantined", f"message too large: {len(big)} bytes (limit 100000)"
                       "; only its first 150000 bytes are kept", 150000)
    assert rows[1][1] == "processed"
