"""``maild status``: is maild healthy? The daemon's own answer (its ``/healthz``, when
``[metrics] listen`` is set) and the backlog in the database, as a table for a person or
``--json`` for a script.

Exit status: 0 healthy (the daemon answered 200 and the database answered); 1 unhealthy (the
daemon answered 503, or its endpoint is configured and does not answer: it is not running
or hangs); 2 cannot tell (the database cannot be read, or ``[metrics] listen`` is off, so
there is no daemon to ask). docs/operations/monitoring.md explains each fact.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import urllib.error
import urllib.request
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from maild import config as cfgmod
from maild.app import make_store
from maild.cli.output import clean, print_json, table
from maild.config import Config
from maild.runners import faults
from maild.runners.health import read_backlog
from maild.store import SchemaError

HEALTHY, UNHEALTHY, CANNOT_TELL = 0, 1, 2
#: seconds to wait for the daemon's answer, and for each step of reading the database
TIMEOUT = 5.0
_PEERS = ("mailbox", "database", "smtp")


def status(args: argparse.Namespace) -> int:
    cfg = cfgmod.load(args.config)
    now = datetime.now(UTC)
    report = gather(cfg, now)
    if args.json:
        print_json(report)
    else:
        print(render(report, ZoneInfo(cfg.calendar.timezone), now))
    return int(report["exit"])


def gather(cfg: Config, now: datetime) -> dict[str, Any]:
    """The daemon's answer, the database's facts and the verdict on both."""
    daemon = ask_daemon(cfg)
    database = asyncio.run(read_database(cfg, now))
    code, reasons = verdict(daemon, database)
    return {"status": {HEALTHY: "healthy", UNHEALTHY: "unhealthy"}.get(code, "unknown"),
            "exit": code, "reasons": reasons, "checked_at": now.isoformat(timespec="seconds"),
            "daemon": daemon, "database": database}


def verdict(daemon: dict[str, Any], database: dict[str, Any]) -> tuple[int, list[str]]:
    """(exit status, why): a daemon that says it is unhealthy, or does not answer, is
    unhealthy; otherwise what cannot be read leaves it open."""
    health = daemon.get("health")
    if health is not None and not health.get("healthy"):
        return UNHEALTHY, [f"daemon: {r}" for r in health.get("reasons", [])] or [
            "daemon: unhealthy"]
    if daemon["asked"] and health is None:
        return UNHEALTHY, [f"daemon: {daemon['error']}"]
    if not database["answered"]:
        return CANNOT_TELL, [f"database: {database['error']}"]
    if not daemon["asked"]:
        return CANNOT_TELL, [f"daemon: {daemon['error']}"]
    return HEALTHY, []


def ask_daemon(cfg: Config) -> dict[str, Any]:
    """``/healthz`` of the daemon serving ``[metrics] listen`` (through no proxy)."""
    listen = cfg.metrics.listen
    if not listen:
        return {"asked": False, "url": None, "health": None,
                "error": "not asked: [metrics] listen is off, so the daemon has no /healthz"}
    url = f"http://{listen}/healthz"
    out: dict[str, Any] = {"asked": True, "url": url, "health": None, "error": None}
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(url, timeout=TIMEOUT) as r:
            code, body = r.status, r.read(1 << 20)
    except urllib.error.HTTPError as e:
        code, body = e.code, e.read(1 << 20)
    except (OSError, ValueError) as e:  # refused, timed out, a broken answer
        reason = getattr(e, "reason", e)
        out["error"] = f"no answer from {url}: {reason} (is maild run running?)"
        return out
    try:
        health = json.loads(body)
        if code not in (200, 503) or not isinstance(health, dict) or "healthy" not in health \
                or not all(isinstance(health.get(k), dict) for k in _PEERS):
            raise ValueError(f"HTTP {code}")
    except ValueError as e:
        out["error"] = f"{url} did not answer as maild's /healthz does ({e})"
        return out
    out["health"] = health
    return out


async def read_database(cfg: Config, now: datetime) -> dict[str, Any]:
    """The backlog, read without changing the database (no migration, no new file)."""
    url = cfg.database.url
    if url.startswith("sqlite://") and not url.startswith("sqlite://:memory:"):
        path = cfg.path(url[len("sqlite://"):].partition("?")[0])
        if not path.exists():
            return {"answered": False, "error": f"no database file {path} (maild init?)"}
    store = make_store(cfg)
    try:
        async with asyncio.timeout(TIMEOUT):  # in this task: tortoise's context stays here
            await store.open(migrate=False)
    except SchemaError as e:
        return {"answered": False, "error": str(e)}
    except Exception as e:  # noqa: BLE001 - unreachable, refused, timed out: reported
        await _close(store)
        return {"answered": False, "error": _why(e)}
    try:
        async with asyncio.timeout(TIMEOUT):
            backlog = await read_backlog(now, triage_folder=cfg.mailbox.triage_folder,
                                         quarantine_folder=cfg.mailbox.quarantine_folder)
    except Exception as e:  # noqa: BLE001 - reported
        return {"answered": False, "error": _why(e)}
    finally:
        await _close(store)
    return {"answered": True, "error": None, **backlog.as_dict(now)}


def _why(e: BaseException) -> str:
    if isinstance(e, TimeoutError):
        return f"no answer within {TIMEOUT:.0f} s"
    return str(faults.environmental(e))


async def _close(store: Any) -> None:
    try:
        await store.close()
    except Exception:  # noqa: BLE001, S110 - closing what never quite opened
        pass


# -- for a person -----------------------------------------------------------------------------

def render(report: dict[str, Any], tz: ZoneInfo, now: datetime) -> str:
    def when(at: str | None) -> str:
        if not at:
            return "never"
        try:
            t = datetime.fromisoformat(str(at))
            t = t if t.tzinfo else t.replace(tzinfo=UTC)
        except ValueError:
            return clean(at)
        return f"{t.astimezone(tz):%Y-%m-%d %H:%M:%S} ({_ago((now - t).total_seconds())} ago)"

    lines = [f"maild status: {report['status']} (exit {report['exit']})"]
    lines += [f"  {clean(r)}" for r in report["reasons"]]
    rows: list[dict[str, Any]] = []
    d, h = report["daemon"], report["daemon"]["health"]
    if h is None:
        rows.append({"check": "daemon", "state": "not asked" if not d["asked"] else "no answer",
                     "detail": d["url"] or "[metrics] listen is off"})
    else:
        rows += [
            {"check": "daemon", "state": h.get("status"),
             "detail": f"{d['url']}, up since {when(h.get('started_at'))}"},
            {"check": "mailbox", "state": h["mailbox"].get("state"),
             "detail": f"last poll {when(h['mailbox'].get('last_poll'))}"},
            {"check": "database (daemon)", "state": h["database"].get("state"),
             "detail": h["database"].get("error")
             or f"last answer {when(h['database'].get('last_answer'))}"},
            {"check": "smtp", "state": h["smtp"].get("state"),
             "detail": f"last letter accepted {when(h['smtp'].get('last_send'))}"},
        ]
        rows += [{"check": "warning", "state": "", "detail": w} for w in h.get("warnings", [])]
    b = report["database"]
    if not b["answered"]:
        rows.append({"check": "database", "state": "no answer", "detail": b["error"]})
    else:
        rows += [
            {"check": "database", "state": "up", "detail": "read just now"},
            {"check": "letters pending", "state": b["letters_pending"],
             "detail": (f"oldest queued {when(b['oldest_pending'])}"
                        if b["oldest_pending"] else "none waiting")},
            {"check": "letters given up", "state": b["letters_given_up"],
             "detail": "maild outbox list --state failed"},
            {"check": "quarantine", "state": b["quarantined"],
             "detail": "maild triage list --quarantined"},
            {"check": "triage", "state": b["triage"], "detail": "maild triage list"},
            {"check": "timers due", "state": b["timers_due"],
             "detail": f"lag {_ago(b['timer_lag_seconds'])}" if b["timers_due"]
             else "none late"},
            {"check": "last mail received", "state": "", "detail": when(b["last_received"])},
            {"check": "last letter sent", "state": "", "detail": when(b["last_sent"])},
        ]
    return "\n".join(lines) + "\n\n" + table(rows, ("check", "state", "detail"), limit=90)


def _ago(seconds: float) -> str:
    s = max(0, int(seconds))
    if s < 120:
        return f"{s} s"
    if s < 7200:
        return f"{s // 60} min"
    if s < 172800:
        return f"{s // 3600} h {s % 3600 // 60} min"
    return f"{s // 86400} d {s % 86400 // 3600} h"
