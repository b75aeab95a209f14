"""How maild logs: text or JSON lines on stderr, journald's way when systemd runs it, levels
per logger, and a fault that repeats logged once with a count.

``setup`` runs first (``maild.cli.main``), before any config is read; ``apply`` puts a
config's ``[logging]`` in force (``maild run`` at start and on every reload).

Under journald (``JOURNAL_STREAM`` names our stderr) a line carries no timestamp of its own
(the journal stamps it), starts with the syslog priority (``<3>`` for an error) so that
``journalctl -p err`` works, and a record is always one line: a traceback is folded into it
(``\\n`` written as the two characters backslash and n).

The repeat filter folds warnings and errors: the first of a kind (same logger, same message
template, same level) is written in full; the same kind again within ``repeat_window``
seconds is only counted, and when the window has passed one line says how often it
repeated. Information lines are never folded (each mail has its own), nor is a record
logged with ``extra={"fold": False}`` (each one a different answer to a person's action,
such as a refused reload).
"""

from __future__ import annotations

import json
import logging
import os
import sys
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TextIO
from urllib.parse import urlsplit, urlunsplit

from maild.config import Config, LoggingConfig

#: loggers that say too much at INFO; a ``[logging.channels]`` entry overrides them
QUIET = {"mailparser": logging.ERROR,  # warns about every part type it does not handle
         "tortoise": logging.WARNING,
         # two lines per scheduled run (cycle, timers) would drown the log
         "apscheduler.executors.default": logging.WARNING}

#: syslog priorities by level, for journald
_PRIORITY = ((logging.CRITICAL, 2), (logging.ERROR, 3), (logging.WARNING, 4),
             (logging.INFO, 6), (logging.DEBUG, 7))

_TEXT = "%(asctime)s %(levelname)s %(name)s %(message)s"
_JOURNAL_TEXT = "%(levelname)s %(name)s %(message)s"


def priority(levelno: int) -> int:
    return next((p for level, p in _PRIORITY if levelno >= level), 7)


def under_journald(stream: TextIO | None = None) -> bool:
    """True when ``stream`` (stderr) is the journal's stream: systemd sets
    ``JOURNAL_STREAM=device:inode`` of it, and a child that inherited the variable but
    writes elsewhere must not think so."""
    value = os.environ.get("JOURNAL_STREAM", "")
    dev, sep, ino = value.partition(":")
    if not sep:
        return False
    try:
        st = os.fstat((stream or sys.stderr).fileno())
        return (st.st_dev, st.st_ino) == (int(dev), int(ino))
    except (OSError, ValueError, AttributeError):
        return False


class TextFormatter(logging.Formatter):
    """The classic line; under journald without a timestamp, one line per record and
    with the syslog priority in front."""

    def __init__(self, journald: bool = False) -> None:
        super().__init__(_JOURNAL_TEXT if journald else _TEXT)
        self.journald = journald

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        if not self.journald:
            return text
        return f"<{priority(record.levelno)}>" + text.replace("\n", "\\n")


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message and, if any, exc."""

    def __init__(self, journald: bool = False) -> None:
        super().__init__()
        self.journald = journald

    def format(self, record: logging.LogRecord) -> str:
        obj: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(
                timespec="milliseconds"),
            "level": record.levelname.lower(), "logger": record.name,
            "message": record.getMessage()}
        if record.exc_info:
            obj["exc"] = self.formatException(record.exc_info)
        elif record.exc_text:
            obj["exc"] = record.exc_text
        repeated = getattr(record, "repeated", None)
        if repeated is not None:
            obj["repeated"] = repeated
        line = json.dumps(obj, ensure_ascii=False, default=str)
        return f"<{priority(record.levelno)}>{line}" if self.journald else line


class RepeatFilter(logging.Filter):
    """Folds a warning or error that repeats (see the module's docstring). ``emit`` writes
    a summary line; ``clock`` is monotonic seconds."""

    def __init__(self, window: float, emit: Callable[[logging.LogRecord], None],
                 clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__()
        self.window = window
        self._emit = emit
        self._clock = clock
        self._lock = threading.Lock()
        #: kind -> (when its window started, repeats counted, the last repeat)
        self._seen: dict[tuple[str, str, int], tuple[float, int, logging.LogRecord]] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "repeated", None) is not None:
            return True  # our own summary
        self.flush()
        if record.levelno < logging.WARNING or self.window <= 0 or not getattr(
                record, "fold", True):  # extra={"fold": False}: each one matters
            return True
        key = (record.name, str(record.msg), record.levelno)
        with self._lock:
            seen = self._seen.get(key)
            if seen is None:
                self._seen[key] = (self._clock(), 0, record)
                return True
            self._seen[key] = (seen[0], seen[1] + 1, record)
            return False

    def flush(self, everything: bool = False) -> None:
        """Write the summary of every kind whose window has passed (or of all)."""
        now = self._clock()
        with self._lock:
            done = [(k, v) for k, v in self._seen.items()
                    if everything or now - v[0] >= self.window]
            for k, _ in done:
                del self._seen[k]
        for _, (started, count, last) in done:
            if count:
                self._emit(summary(last, count, now - started))


def summary(last: logging.LogRecord, count: int, seconds: float) -> logging.LogRecord:
    """The line that ends a run of repeats: the last one's text and how many there were."""
    text = last.getMessage()
    record = logging.LogRecord(last.name, last.levelno, last.pathname, last.lineno,
                               "%s (repeated %d more times in %.0f s; last shown above)",
                               (text, count, seconds), None)
    record.repeated = count
    return record


class Handler(logging.StreamHandler[TextIO]):
    """stderr, with the repeat filter; closing it writes the pending summaries."""

    def __init__(self, stream: TextIO, window: float,
                 clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__(stream)
        self.repeats = RepeatFilter(window, self._summary, clock)
        self.addFilter(self.repeats)

    def _summary(self, record: logging.LogRecord) -> None:
        if record.levelno >= self.level:
            self.handle(record)

    def close(self) -> None:
        self.repeats.flush(everything=True)
        super().close()


class _State:
    verbose = False  # -v: DEBUG whatever the config says
    channels: tuple[str, ...] = ()  # the loggers a config set a level on


_state = _State()


def _handler() -> Handler | None:
    return next((h for h in logging.getLogger().handlers if isinstance(h, Handler)), None)


def setup(verbose: bool = False, stream: TextIO | None = None) -> None:
    """The defaults, before any config is read: text (journald's way when under it), INFO
    (DEBUG with ``-v``), the noisy libraries quietened."""
    _state.verbose = verbose
    apply(LoggingConfig(), stream)


def apply(settings: LoggingConfig | Config, stream: TextIO | None = None) -> None:
    """Put ``[logging]`` in force: format, levels, the repeat window. Replaces our handler
    (others, e.g. pytest's, stay); ``-v`` still means DEBUG for the root."""
    if isinstance(settings, Config):
        settings = settings.logging
    root = logging.getLogger()
    old = _handler()
    out = stream or (old.stream if old is not None else sys.stderr)
    journald = under_journald(out)
    handler = Handler(out, settings.repeat_window)
    handler.setFormatter(JsonFormatter(journald) if settings.format == "json"
                         else TextFormatter(journald))
    if old is not None:
        old.repeats.flush(everything=True)
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(logging.DEBUG if _state.verbose else _level(settings.level))
    for name in _state.channels:
        logging.getLogger(name).setLevel(logging.NOTSET)
    for name, quiet in QUIET.items():
        logging.getLogger(name).setLevel(quiet)
    for name, level in settings.channels.items():
        logging.getLogger(name).setLevel(_level(level))
    _state.channels = tuple(settings.channels)


def flush_repeats() -> None:
    """Write the summaries whose window has passed (the daemon calls it each cycle, so a
    run of repeats is summed up even when nothing else is logged)."""
    h = _handler()
    if h is not None:
        h.repeats.flush()


def _level(name: str) -> int:
    return logging.getLevelNamesMapping()[name.upper()]


def mask_url(url: str) -> str:
    """``url`` with its password (if any) replaced by ``***``."""
    try:
        parts = urlsplit(url)
        if parts.password is None:
            return url
        host = parts.hostname or ""
        if ":" in host:
            host = f"[{host}]"
        netloc = f"{parts.username or ''}:***@{host}"
        if parts.port is not None:
            netloc += f":{parts.port}"
        return urlunsplit(parts._replace(netloc=netloc))
    except ValueError:
        return "(unparseable url)"


def start_line(cfg: Config, config_path: str, version: str) -> str:
    """What the daemon says first: version, config, mailbox, database (no secrets)."""
    return (f"maild {version} starting: config {config_path}; mailbox "
            f"{mask_url(cfg.mailbox.url)}; database {mask_url(cfg.database.url)}; smtp "
            f"{mask_url(cfg.smtp.url)}; logging {cfg.logging.format} at {cfg.logging.level}"
            + (" (journald)" if under_journald() else ""))
