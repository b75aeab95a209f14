"""Latency benchmark: mail arriving one by one → the acknowledgement at the SMTP sink.

    .venv/bin/python bench/latency.py [--n 200] [--mode idle --mode poll] [--gap-ms 100 300]
        [--seed S] [--keep DIR] [--poll-interval SECONDS]

The real stack: a Dovecot and an SMTP sink from ``tests/servers.py``, and ``maild run -c
CONFIG`` as a child process (this checkout's maild, as ``bench/intake.py`` runs it). For each
mode a fresh stack starts; a first mail is appended and acknowledged so that the daemon is
up (and, with IDLE, its IDLE connection is in place); then N mails, each a new case from its
own sender (known and unknown customers, Chinese in several charsets and English, in random
order), are APPENDed one by one over one IMAP connection, a random 100–300 ms apart. A
mail's latency runs from just before its APPEND is sent until the sink has accepted the
acknowledgement addressed to its sender. Prints p50, p95 and max per mode.

Modes: ``idle`` (``mailbox.idle = true``, the default) and ``poll`` (``mailbox.idle =
false``); both at the default ``mailbox.poll_interval`` (30 s) unless ``--poll-interval``.
Target: with IDLE, p50 < 1 s and p95 < 2 s. Needs root (Dovecot runs mail as uid 5000).
"""

from __future__ import annotations

import argparse
import imaplib
import os
import random
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from datetime import datetime
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime, make_msgid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from intake import CONFIG, ORG, PRODUCTS, STAFF_DOMAIN, SUBJECTS  # noqa: E402
from servers import DovecotServer, SmtpSink  # noqa: E402

TARGET_P50, TARGET_P95 = 1.0, 2.0
#: (domain, charset, language) of the senders; the unknown domains open cases too
SENDERS = [("huaxin.example.cn", "utf-8", "zh"), ("dongfang.example.cn", "gbk", "zh"),
           ("jinqiao.example.com.tw", "utf-8", "zh"), ("northwind.example.com", "utf-8", "en"),
           ("newbuyer.example.cn", "gb18030", "zh"), ("unknown.example.com", "utf-8", "en")]


def inquiry(i: int, rng: random.Random) -> tuple[str, bytes]:
    """A new customer inquiry from a sender of its own: (sender, raw)."""
    domain, charset, lang = rng.choice(SENDERS)
    sender = f"buyer{i}@{domain}"
    m = EmailMessage()
    m["From"] = sender
    m["To"] = ORG
    m["Date"] = format_datetime(datetime.now().astimezone())
    m["Message-ID"] = make_msgid(f"lat{i}", domain)
    product = rng.choice(PRODUCTS)
    if lang == "en":
        m["Subject"] = f"Request for quotation {i}: industrial PC x{rng.randint(2, 500)}"
        m.set_content("Dear team,\nPlease quote unit price and lead time.\nBest regards\n")
    else:
        m["Subject"] = rng.choice(SUBJECTS).format(p=product) + f" {i}"
        m.set_content(f"您好：\n我司计划采购{product} {rng.randint(2, 500)} 套，请报价。\n谢谢！\n",
                      charset=charset)
    return sender, m.as_bytes(policy=SMTP)


@dataclass
class Run:
    mode: str
    latencies: list[float]
    missing: int

    def line(self) -> str:
        lat = sorted(self.latencies)
        if not lat:
            return f"{self.mode}: no acknowledgement arrived"
        p50 = statistics.median(lat)
        p95 = lat[min(len(lat) - 1, round(0.95 * len(lat)) - 1)]
        text = (f"{self.mode}: n={len(lat)} p50={p50:.3f} s p95={p95:.3f} s "
                f"max={lat[-1]:.3f} s mean={statistics.fmean(lat):.3f} s")
        if self.missing:
            text += f", {self.missing} never acknowledged"
        if self.mode == "idle":
            ok = p50 < TARGET_P50 and p95 < TARGET_P95 and not self.missing
            text += f"  [{'meets' if ok else 'MISSES'} p50 < {TARGET_P50:g} s, " \
                    f"p95 < {TARGET_P95:g} s]"
        return text


class Acks:
    """When the sink accepted the first letter to each recipient (perf_counter)."""

    def __init__(self, sink: SmtpSink) -> None:
        self.sink = sink
        self.at: dict[str, float] = {}
        self._seen = 0
        self.changed = threading.Condition()
        sink.on_accept = self._accepted

    def _accepted(self) -> None:
        now = time.perf_counter()
        msgs = self.sink.messages
        with self.changed:
            for m in msgs[self._seen:]:
                for rcpt in m.rcpt_tos:
                    self.at.setdefault(rcpt.lower(), now)
            self._seen = len(msgs)
            self.changed.notify_all()

    def wait(self, who: list[str], timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        with self.changed:
            while not all(w in self.at for w in who):
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self.changed.wait(left)
        return True


def start_daemon(base: Path, cfg: Path, password: str) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAILD_")}
    env["MAILD_IMAP_PASSWORD"] = password
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    log = (base / "maild.log").open("wb")
    return subprocess.Popen([sys.executable, "-m", "maild", "run", "-c", str(cfg)], cwd=base,
                            env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=log)


def run_mode(mode: str, base: Path, args: argparse.Namespace) -> Run:
    base.mkdir(parents=True, exist_ok=True)
    rng = random.Random(f"{args.seed}-{mode}")
    extra = "idle = false\n" if mode == "poll" else ""
    if args.poll_interval is not None:
        extra += f"poll_interval = {args.poll_interval}\n"
    with DovecotServer(base / "dovecot") as dovecot, SmtpSink() as sink:
        cfg = base / "maild.toml"
        cfg.write_text(CONFIG.format(org=ORG, db_url="sqlite://var/maild.db",
                                     imap_url=dovecot.imap_url, batch=extra,
                                     smtp_host=sink.host, smtp_port=sink.port,
                                     staff=STAFF_DOMAIN), encoding="utf-8")
        acks = Acks(sink)
        warm, raw = inquiry(0, rng)
        dovecot.append(raw)
        proc = start_daemon(base, cfg, dovecot.password)
        try:
            if not acks.wait([warm], 120):
                raise SystemExit(f"{mode}: the daemon did not start; see {base}/maild.log")
            log = base / "maild.log"
            deadline = time.monotonic() + 30
            while mode == "idle" and "IDLE on" not in log.read_text(errors="replace"):
                if time.monotonic() > deadline:
                    raise SystemExit(f"{mode}: no IDLE connection; see {log}")
                time.sleep(0.05)
            sent: dict[str, float] = {}
            client = imaplib.IMAP4(dovecot.host, dovecot.port, timeout=30)
            client.login(dovecot.user, dovecot.password)
            try:
                for i in range(1, args.n + 1):
                    sender, raw = inquiry(i, rng)
                    sent[sender] = time.perf_counter()
                    typ, data = client.append("INBOX", None, None, raw)
                    if typ != "OK":
                        raise SystemExit(f"APPEND failed: {data!r}")
                    time.sleep(rng.uniform(args.gap_ms[0], args.gap_ms[1]) / 1000)
            finally:
                client.logout()
            acks.wait(list(sent), args.settle + (args.poll_interval or 30.0))
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        lat = [acks.at[s] - t for s, t in sent.items() if s in acks.at]
        return Run(mode, lat, len(sent) - len(lat))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=200)
    ap.add_argument("--mode", action="append", choices=("idle", "poll"))
    ap.add_argument("--gap-ms", type=float, nargs=2, default=(100.0, 300.0))
    ap.add_argument("--poll-interval", type=float, default=None,
                    help="mailbox.poll_interval (default: the config's default, 30 s)")
    ap.add_argument("--settle", type=float, default=30.0,
                    help="seconds to wait for the last acknowledgements beyond the interval")
    ap.add_argument("--seed", default="20261130")
    ap.add_argument("--keep", type=Path, default=None, help="keep the runs' files here")
    args = ap.parse_args(argv)
    modes = args.mode or ["idle", "poll"]
    top = args.keep or Path(tempfile.mkdtemp(prefix="maild-latency-"))
    runs = []
    try:
        for mode in modes:
            run = run_mode(mode, top / mode, args)
            print(run.line(), flush=True)
            runs.append(run)
    finally:
        if args.keep is None:
            shutil.rmtree(top, ignore_errors=True)
    idle = next((r for r in runs if r.mode == "idle"), None)
    if idle is not None and "MISSES" in idle.line():
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
