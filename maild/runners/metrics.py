"""``[metrics] listen``: Prometheus ``/metrics`` and ``/healthz`` served by ``maild run``.

A small HTTP server (stdlib ``http.server``) in threads of its own. A request reads only what
the daemon keeps in memory — its counters, its ``Watch`` and the backlog it read from the
database after a cycle (``maild.runners.health``) — so a scrape never waits for the event
loop or the database, and still answers when they hang: ``/healthz`` then turns unhealthy
as the last poll grows old. Metrics come from a collector on a registry of our own (not
prometheus_client's global one). docs/operations/monitoring.md lists each metric.
"""

from __future__ import annotations

import json
import logging
import socket
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from prometheus_client import CollectorRegistry
from prometheus_client.exposition import choose_encoder
from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric

from maild.runners.health import DOWN, UP, facts, judge, on_mailbox

if TYPE_CHECKING:
    from maild.runners.daemon import Daemon

log = logging.getLogger("maild.metrics")

#: a client that keeps a connection open without a full request is dropped after this long
REQUEST_TIMEOUT = 10.0


def _version() -> str:
    try:
        return version("maild")
    except PackageNotFoundError:
        return "unknown"


def _iso(at: float | datetime | None) -> str | None:
    if at is None:
        return None
    when = at if isinstance(at, datetime) else datetime.fromtimestamp(at, UTC)
    return when.isoformat(timespec="seconds")


def health_report(daemon: Daemon, now: float | None = None) -> tuple[int, dict[str, Any]]:
    """``/healthz``: (200 or 503, the facts as JSON-ready data)."""
    now = time.time() if now is None else now
    watch, cfg = daemon.watch, daemon.app.cfg
    f = facts(watch, daemon.fault, cfg.metrics.healthy_seconds, daemon.outage.since, now)
    v = judge(f)
    c = daemon.app.intake.counters
    backlog = watch.backlog
    report: dict[str, Any] = {
        "status": v.status, "healthy": v.healthy,
        "reasons": list(v.reasons), "warnings": list(v.warnings),
        "checked_at": _iso(now), "started_at": _iso(watch.started),
        "healthy_within_seconds": f.within, "version": _version(),
        "mailbox": {"state": v.mailbox, "last_poll": _iso(watch.last_poll)},
        "database": {"state": v.database, "last_answer": _iso(watch.last_db),
                     "error": watch.db_error},
        "smtp": {"state": v.smtp, "last_send": _iso(watch.last_send),
                 "failing_since": _iso(daemon.outage.since)},
        "fault": daemon.fault.as_dict(),
        "counters": {"fetched": c.fetched, "processed": c.processed,
                     "quarantined": c.quarantined, "duplicates": c.duplicates,
                     "routes": dict(c.routes), "letters_sent": daemon.sent,
                     "send_failures": daemon.send_failures, "timers_fired": daemon.fired,
                     "digests": daemon.digests},
        "backlog": backlog.as_dict(datetime.fromtimestamp(now, UTC)) if backlog else None,
    }
    return (200 if v.healthy else 503), report


class DaemonCollector:
    """The daemon's metrics, read from memory at each scrape."""

    def __init__(self, daemon: Daemon) -> None:
        self.daemon = daemon

    def collect(self) -> Iterator[Metric]:
        d = self.daemon
        now = time.time()
        yield from _counters(d)
        yield from _backlog(d, now)
        yield from _state(d, now)


def _counter(name: str, doc: str, value: float) -> CounterMetricFamily:
    return CounterMetricFamily(name, doc, value=value)


def _gauge(name: str, doc: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, doc, value=value)


def _counters(d: Daemon) -> Iterator[Metric]:
    c = d.app.intake.counters
    routes = CounterMetricFamily("maild_mails", "Mails decided since the start, by route: new "
                                 "(a case opened), case (filed on a case), triage, robot",
                                 labels=["route"])
    for route, n in sorted(dict(c.routes).items()):
        routes.add_metric([route], n)
    yield routes
    yield _counter("maild_mails_fetched", "Mails fetched from the mailbox since the start",
                   c.fetched)
    yield _counter("maild_mails_processed", "Mails decided since the start", c.processed)
    yield _counter("maild_mails_quarantined", "Mails quarantined since the start",
                   c.quarantined)
    yield _counter("maild_mails_duplicate", "Mails already seen (same bytes) since the start",
                   c.duplicates)
    yield _counter("maild_letters_sent", "Letters the SMTP server accepted since the start",
                   d.sent)
    yield _counter("maild_letter_send_failures", "Failed attempts to send a letter since the "
                   "start (each is retried on [smtp] retry_schedule)", d.send_failures)
    yield _counter("maild_timers_fired", "Timers fired since the start", d.fired)
    yield _counter("maild_digests", "Weekly digests queued since the start", d.digests)


def _backlog(d: Daemon, now: float) -> Iterator[Metric]:
    b = d.watch.backlog
    if b is None:  # not read yet: no sample rather than a false zero
        return
    at = datetime.fromtimestamp(now, UTC)
    yield _gauge("maild_backlog_read_timestamp_seconds",
                 "When the daemon last read the backlog gauges from the database (unix time)",
                 b.read_at.timestamp())
    yield _gauge("maild_letters_pending", "Letters waiting to be sent (due or to be retried)",
                 b.letters_pending)
    yield _gauge("maild_oldest_pending_letter_age_seconds",
                 "How long the oldest pending letter has waited since it was queued "
                 "(0 when none waits)", b.letter_age(at))
    yield _gauge("maild_letters_given_up", "Letters given up (maild outbox list --state failed)",
                 b.letters_given_up)
    yield _gauge("maild_quarantine_mails", "Inbound mails in quarantine", b.quarantined)
    yield _gauge("maild_triage_mails", "Inbound mails waiting in triage for a person",
                 b.triage)
    yield _gauge("maild_timers_due", "Timers due and not fired yet", b.timers_due)
    yield _gauge("maild_timer_lag_seconds", "How late the oldest due, unfired timer is "
                 "(0 when none is)", b.timer_lag(at))
    if b.last_received is not None:
        yield _gauge("maild_last_mail_received_timestamp_seconds",
                     "When the latest mail was fetched (unix time, any daemon)",
                     b.last_received.timestamp())
    if b.last_sent is not None:
        yield _gauge("maild_last_letter_sent_timestamp_seconds",
                     "When the latest letter was sent (unix time, any daemon)",
                     b.last_sent.timestamp())


def _state(d: Daemon, now: float) -> Iterator[Metric]:
    w = d.watch
    f = facts(w, d.fault, d.app.cfg.metrics.healthy_seconds, d.outage.since, now)
    v = judge(f)
    info = GaugeMetricFamily("maild_info", "The running maild", labels=["version"])
    info.add_metric([_version()], 1)
    yield info
    yield _gauge("maild_start_timestamp_seconds", "When the daemon started (unix time)",
                 w.started)
    yield _gauge("maild_healthy", "1 when /healthz answers 200, else 0", int(v.healthy))
    for name, doc, at in (
            ("maild_last_poll_timestamp_seconds", "When a poll last went through", w.last_poll),
            ("maild_last_send_timestamp_seconds", "When the SMTP server last accepted a letter",
             w.last_send),
            ("maild_last_database_answer_timestamp_seconds", "When the database last answered",
             w.last_db)):
        if at is not None:
            yield _gauge(name, doc + " (unix time)", at)
    up = GaugeMetricFamily("maild_connection_up", "1 when the peer answered last time, 0 when "
                           "it failed (no sample while unknown)", labels=["peer"])
    for peer, state in (("mailbox", v.mailbox), ("database", v.database), ("smtp", v.smtp)):
        if state in (UP, DOWN):
            up.add_metric([peer], int(state == UP))
    yield up
    fault = d.fault.fault
    yield _gauge("maild_fault_active", "1 while the intake is in an outage (mailbox, database, "
                 "disk), retried with backoff", int(fault is not None))
    if fault is not None:
        what = GaugeMetricFamily("maild_fault_info", "The intake's outage in hand",
                                 labels=["what", "peer"])
        what.add_metric([fault.what, "mailbox" if on_mailbox(fault) else "other"], 1)
        yield what
        yield _gauge("maild_fault_attempts", "Failed attempts in the outage in hand",
                     d.fault.attempts)
        if d.fault.since is not None:
            yield _gauge("maild_fault_since_timestamp_seconds", "When the outage in hand "
                         "started (unix time)", d.fault.since.timestamp())
    since = d.outage.since
    yield _gauge("maild_delivery_failing", "1 while sending letters fails (they stay queued)",
                 int(since is not None))
    if since is not None:
        yield _gauge("maild_delivery_failing_since_timestamp_seconds",
                     "When sending started to fail (unix time)", since.timestamp())


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    timeout = REQUEST_TIMEOUT
    server_version = "maild"

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        path = urlsplit(self.path).path.rstrip("/") or "/"
        try:
            if path == "/metrics":
                encode, ctype = choose_encoder(self.headers.get("Accept", ""))
                self._reply(200, encode(self.server.registry), ctype)
            elif path == "/healthz":
                status, report = health_report(self.server.daemon)
                body = json.dumps(report, ensure_ascii=False, indent=1).encode()
                self._reply(status, body + b"\n", "application/json; charset=utf-8")
            elif path == "/":
                self._reply(200, b"maild: /metrics /healthz\n", "text/plain; charset=utf-8")
            else:
                self._reply(404, b"not found: try /metrics or /healthz\n",
                            "text/plain; charset=utf-8")
        except Exception:  # noqa: BLE001 - a bug here must not take the daemon down
            log.exception("answering %s", path)
            self._reply(500, b"internal error, see the daemon's log\n",
                        "text/plain; charset=utf-8")

    def _reply(self, status: int, body: bytes, ctype: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base's name
        log.debug("%s %s", self.address_string(), format % args)


class _Server(ThreadingHTTPServer):
    daemon_threads = True  # a slow client never holds up the daemon's exit

    def __init__(self, address: tuple[str, int], daemon: Daemon) -> None:
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        self.daemon = daemon
        self.registry = CollectorRegistry()
        self.registry.register(DaemonCollector(daemon))
        super().__init__(address, _Handler)


class MetricsServer:
    """The running server, or none (``[metrics] listen`` off, ``--once``, or it could not
    listen): ``close`` stops it either way."""

    def __init__(self, server: _Server | None = None) -> None:
        self._server = server
        self._thread: threading.Thread | None = None
        if server is not None:
            self._thread = threading.Thread(target=server.serve_forever, name="maild-metrics",
                                            kwargs={"poll_interval": 0.25}, daemon=True)
            self._thread.start()

    @property
    def port(self) -> int | None:
        return self._server.server_address[1] if self._server is not None else None

    def close(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)


def serve(daemon: Daemon, once: bool = False) -> MetricsServer:
    """Start serving ``/metrics`` and ``/healthz`` when ``[metrics] listen`` is set (never
    under ``--once``). An address it cannot listen on is logged as an error and the daemon
    runs without them: the mail matters more, and the monitor sees the target down."""
    m = daemon.app.cfg.metrics
    if not m.listen or once:
        return MetricsServer()
    try:
        server = _Server(m.address, daemon)
    except OSError as e:
        log.error("[metrics] listen = %r: cannot listen there (%s); running without /metrics "
                  "and /healthz", m.listen, e)
        return MetricsServer()
    log.info("metrics on http://%s/metrics, health on /healthz", m.listen)
    daemon.watch.enabled = True  # the backlog is read after each cycle from now on
    return MetricsServer(server)


__all__ = ["DaemonCollector", "MetricsServer", "health_report", "serve"]
