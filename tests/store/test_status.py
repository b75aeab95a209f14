"""The backlog a monitor reads (``maild.runners.health.read_backlog``) and ``maild status``
against a real database, on SQLite and PostgreSQL: pending letters and the oldest one's age,
letters given up, quarantine, triage, timer lag, the last mail in and letter out; and the
exit status when the daemon or the database does not answer."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from dataclasses import replace
from datetime import datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from deciding import Deciding
from servers import free_port
from support import NOW, mail

from maild.adapters.sources.base import Fetched
from maild.cli.status import ask_daemon, verdict
from maild.config import parse_config
from maild.runners.health import read_backlog
from maild.store import Store
from maild.store.models import Case, Timer

LATER = NOW + timedelta(minutes=1)


async def _seed(store: Store, tmp_path: Path) -> None:
    """Three new cases (three acknowledgements), one sent, one given up; one quarantined
    mail; one triaged mail."""
    d = Deciding(store, tmp_path)
    for i in range(3):
        await d.feed(mail(f"buyer{i}@huaxin.example.cn", f"询价 {i}"))
    first, second, third = await store.claim(LATER, 10, timedelta(minutes=2))
    await store.sent([(first, None)], LATER)
    assert await store.failed(second, LATER, "550: no such user", permanent=True)
    await store.release([third])
    [row] = await store.record_fetched("test", 1, store.keep_raw(
        [Fetched(99, mail("x@huaxin.example.cn", "坏邮件"))]), NOW)
    await store.finish(row, "quarantined", "Quarantine", "cannot parse")
    d.site = replace(d.site, cfg=d.cfg.model_copy(update={"routing": d.cfg.routing.model_copy(
        update={"default_process": "triage"})}))
    triaged, _ = await d.feed(mail("someone@unknown.example.org", "合作咨询"))
    await store.finish(triaged, "processed", "Triage", None)  # where the intake files it


async def test_backlog_counts_what_waits(store: Store, tmp_path: Path) -> None:
    empty = await read_backlog(NOW, triage_folder="Triage", quarantine_folder="Quarantine")
    assert (empty.letters_pending, empty.letters_given_up, empty.quarantined, empty.triage,
            empty.timers_due) == (0, 0, 0, 0, 0)
    assert empty.oldest_pending is None and empty.last_received is None
    assert empty.letter_age(NOW) == 0 and empty.timer_lag(NOW) == 0

    await _seed(store, tmp_path)
    hour = NOW + timedelta(hours=1)
    b = await read_backlog(hour, triage_folder="Triage", quarantine_folder="Quarantine")
    assert (b.letters_pending, b.letters_given_up, b.quarantined, b.triage) == (1, 1, 1, 1)
    assert b.oldest_pending == NOW and b.letter_age(hour) == 3600
    assert b.last_received == NOW and b.last_sent == LATER
    assert b.timers_due == 0 and b.oldest_due_timer is None  # deadlines lie days ahead

    case = await Case.first()
    for hours, state in ((2, "pending"), (3, "pending"), (1, "fired"), (1, "cancelled"),
                         (9, "pending")):
        await Timer.create(case=case, kind="deadline", due_at=NOW + timedelta(hours=hours),
                           state=state, created_at=NOW)
    late = NOW + timedelta(hours=4)  # two pending timers due, the oldest two hours ago
    b = await read_backlog(late, triage_folder="Triage", quarantine_folder="Quarantine")
    assert b.timers_due == 2
    assert b.oldest_due_timer == NOW + timedelta(hours=2)
    assert b.timer_lag(late) == 7200
    assert b.as_dict(late)["timer_lag_seconds"] == 7200


def _status(tmp_path: Path, db: str, *extra: str, listen: str = "") -> tuple[int, str]:
    cfg = tmp_path / "status.toml"
    metrics = f'[metrics]\nlisten = "{listen}"\n' if listen else ""
    cfg.write_text(f'[database]\nurl = "{db}"\nraw_dir = "{tmp_path}/raw"\n{metrics}',
                   encoding="utf-8")
    p = subprocess.run([sys.executable, "-m", "maild", "status", "-c", str(cfg), *extra],
                       capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert p.stderr == "" or "Traceback" not in p.stderr, p.stderr
    return p.returncode, p.stdout


async def test_status_reads_the_database_and_says_whether_it_can_tell(
        store: Store, tmp_path: Path) -> None:
    await _seed(store, tmp_path)
    # no daemon to ask: the facts, and "cannot tell"
    code, out = _status(tmp_path, store.url, "--json")
    report = json.loads(out)
    assert (code, report["exit"], report["status"]) == (2, 2, "unknown")
    assert "[metrics] listen is off" in report["reasons"][0]
    db = report["database"]
    assert db["answered"] is True
    assert (db["letters_pending"], db["letters_given_up"], db["quarantined"],
            db["triage"]) == (1, 1, 1, 1)
    assert datetime.fromisoformat(db["oldest_pending"]) == NOW
    assert datetime.fromisoformat(db["last_sent"]) == LATER
    checked = datetime.fromisoformat(report["checked_at"])
    # checked_at is cut to the second
    assert abs(db["oldest_pending_age_seconds"] - max(0, (checked - NOW).total_seconds())) < 1

    code, out = _status(tmp_path, store.url)
    assert code == 2
    assert out.startswith("maild status: unknown (exit 2)")
    [pending] = [line for line in out.splitlines() if line.startswith("letters pending")]
    assert pending.split()[2] == "1" and "oldest queued 2026-12-01 10:00:00" in pending

    # the daemon's endpoint is configured but nothing answers there: not running
    code, out = _status(tmp_path, store.url, "--json", listen=f"127.0.0.1:{free_port()}")
    report = json.loads(out)
    assert code == 1 and report["status"] == "unhealthy"
    assert report["daemon"]["asked"] is True and report["daemon"]["health"] is None
    assert "no answer from http://127.0.0.1:" in report["reasons"][0]
    assert report["database"]["letters_pending"] == 1  # the facts all the same


def test_status_cannot_tell_when_the_database_does_not_answer(tmp_path: Path) -> None:
    code, out = _status(tmp_path, f"postgres://postgres@127.0.0.1:{free_port()}/none",
                        "--json")
    report = json.loads(out)
    assert code == 2 and report["database"]["answered"] is False
    assert report["reasons"][0].startswith("database: ")
    code, out = _status(tmp_path, "sqlite://var/none.db", "--json")
    report = json.loads(out)
    assert code == 2 and "no database file" in report["database"]["error"]
    assert not (tmp_path / "var" / "none.db").exists()  # status created nothing


def test_status_refuses_an_answer_that_is_not_maild_s(tmp_path: Path) -> None:
    """Something else on the port (another service, a proxy's error page): not healthy."""
    class Other(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802
            body = b'{"healthy": true}'  # looks a little like ours, but is not
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Other)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        cfg = parse_config(f'[metrics]\nlisten = "127.0.0.1:{server.server_address[1]}"\n',
                           "t.toml", str(tmp_path))
        asked = ask_daemon(cfg)
    finally:
        server.shutdown()
        server.server_close()
    assert asked["asked"] is True and asked["health"] is None
    assert "did not answer as maild's /healthz does" in asked["error"]
    code, reasons = verdict(asked, {"answered": True})
    assert code == 1 and "did not answer as maild's" in reasons[0]
