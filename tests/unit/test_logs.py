"""Logging: text and JSON lines, journald's way (priority, no timestamp, one line per
record), levels per logger, and a repeating fault logged once with a count."""

from __future__ import annotations

import io
import json
import logging
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from maild import logs
from maild.config import ConfigError, LoggingConfig, parse_config


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _logger(name: str, handler: logging.Handler) -> logging.Logger:
    log = logging.getLogger(name)
    log.handlers[:] = [handler]
    log.propagate = False
    log.setLevel(logging.DEBUG)
    return log


def _disk_full() -> OSError:
    try:
        raise OSError(28, "No space left on device", "/var/lib/maild/raw/ab/cd")
    except OSError as e:
        return e


def test_a_full_disk_for_a_minute_gives_one_traceback_and_a_count() -> None:
    out, clock = io.StringIO(), FakeClock()
    handler = logs.Handler(out, window=60, clock=clock)
    handler.setFormatter(logs.TextFormatter())
    log = _logger("maild.test.repeat", handler)
    for i in range(160):  # a poll every ~0.4 s, each failing the same way
        clock.now += 0.37
        log.error("intake stopped: %s", f"disk full (attempt {i})", exc_info=_disk_full())
        log.info("mail %d decided", i)  # information is never folded
    text = out.getvalue()
    assert text.count("Traceback") == 1
    assert text.count("intake stopped:") == 1  # the rest is only counted so far
    assert text.count("decided") == 160
    clock.now += 1.7  # the window (60 s from the first) has passed
    log.warning("something else")  # any record lets the filter sum up
    text = out.getvalue()
    assert "disk full (attempt 159) (repeated 159 more times in 61 s" in text
    assert text.count("Traceback") == 1
    # after the summary the next one is shown in full again
    log.error("intake stopped: %s", "disk full again", exc_info=_disk_full())
    assert out.getvalue().count("Traceback") == 2


def test_repeats_are_summed_up_by_flush_and_on_close() -> None:
    out, clock = io.StringIO(), FakeClock()
    handler = logs.Handler(out, window=10, clock=clock)
    handler.setFormatter(logs.TextFormatter())
    log = _logger("maild.test.flush", handler)
    for _ in range(5):
        log.warning("mailbox unavailable: %s", "connection refused")
    handler.repeats.flush()  # the window has not passed yet
    assert "repeated" not in out.getvalue()
    clock.now += 11
    handler.repeats.flush()  # what the daemon does after each cycle
    assert "(repeated 4 more times in 11 s" in out.getvalue()
    log.error("database locked")
    log.error("database locked")
    handler.close()
    assert "database locked (repeated 1 more times" in out.getvalue()


def test_different_messages_and_loggers_are_not_folded_together() -> None:
    out = io.StringIO()
    handler = logs.Handler(out, window=60, clock=FakeClock())
    handler.setFormatter(logs.TextFormatter())
    a, b = _logger("maild.test.a", handler), _logger("maild.test.b", handler)
    a.error("sending failed: %s", "x")
    b.error("sending failed: %s", "x")
    a.error("timer sweep failed: %s", "x")
    a.warning("sending failed: %s", "x")
    assert out.getvalue().count("failed") == 4


def test_a_zero_window_folds_nothing() -> None:
    out = io.StringIO()
    handler = logs.Handler(out, window=0, clock=FakeClock())
    log = _logger("maild.test.zero", handler)
    for _ in range(3):
        log.error("same")
    assert out.getvalue().count("same") == 3


@pytest.fixture
def journal_stream() -> Iterator[io.TextIOWrapper]:
    """A file standing in for journald's stream, named by JOURNAL_STREAM as systemd does."""
    with tempfile.TemporaryFile("w+", encoding="utf-8") as f:
        st = os.fstat(f.fileno())
        old = os.environ.get("JOURNAL_STREAM")
        os.environ["JOURNAL_STREAM"] = f"{st.st_dev}:{st.st_ino}"
        try:
            yield f
        finally:
            if old is None:
                os.environ.pop("JOURNAL_STREAM")
            else:
                os.environ["JOURNAL_STREAM"] = old


def test_journald_is_recognised_only_on_its_own_stream(journal_stream: io.TextIOWrapper,
                                                       tmp_path: Path) -> None:
    assert logs.under_journald(journal_stream)
    with (tmp_path / "other.log").open("w") as other:  # inherited variable, other stream
        assert not logs.under_journald(other)


def test_under_journald_a_record_is_one_line_with_its_priority(
        journal_stream: io.TextIOWrapper) -> None:
    handler = logs.Handler(journal_stream, window=60)
    handler.setFormatter(logs.TextFormatter(logs.under_journald(journal_stream)))
    log = _logger("maild.test.journal", handler)
    log.error("intake stopped: %s", "disk full", exc_info=_disk_full())
    log.info("started")
    log.debug("details")
    journal_stream.seek(0)
    lines = journal_stream.read().splitlines()
    assert len(lines) == 3
    assert lines[0].startswith("<3>ERROR maild.test.journal intake stopped: disk full\\n")
    assert "Traceback (most recent call last):\\n" in lines[0]
    assert "No space left on device" in lines[0]
    assert lines[1] == "<6>INFO maild.test.journal started"  # no timestamp of our own
    assert lines[2].startswith("<7>")


def test_json_lines_carry_time_level_logger_message_and_exc() -> None:
    out = io.StringIO()
    handler = logs.Handler(out, window=60)
    handler.setFormatter(logs.JsonFormatter())
    log = _logger("maild.test.json", handler)
    log.info("案件 %s 已创建", "2026-客-001")
    log.error("send failed", exc_info=_disk_full())
    first, second = (json.loads(line) for line in out.getvalue().splitlines())
    assert first["level"] == "info" and first["logger"] == "maild.test.json"
    assert first["message"] == "案件 2026-客-001 已创建" and "exc" not in first
    assert first["time"].endswith("+00:00")
    assert second["level"] == "error" and "No space left on device" in second["exc"]


def test_apply_sets_levels_per_channel_and_a_new_config_resets_them() -> None:
    root = logging.getLogger()
    saved = (root.level, list(root.handlers))
    out = io.StringIO()
    try:
        logs.apply(LoggingConfig(level="warning",
                                 channels={"maild.test.chan": "debug"}), out)
        assert root.level == logging.WARNING
        assert logging.getLogger("maild.test.chan").level == logging.DEBUG
        assert logging.getLogger("tortoise").level == logging.WARNING  # still quiet
        logging.getLogger("maild.test.chan").debug("visible")
        logging.getLogger("maild.test.other").info("hidden")
        logs.apply(LoggingConfig(format="json"))  # a reload: same stream, new format
        assert logging.getLogger("maild.test.chan").level == logging.NOTSET
        logging.getLogger("maild.test.other").info("now json")
        lines = out.getvalue().splitlines()
        assert "visible" in lines[0] and not any("hidden" in line for line in lines)
        assert json.loads(lines[-1])["message"] == "now json"
        assert sum(isinstance(h, logs.Handler) for h in root.handlers) == 1
    finally:
        for h in root.handlers[:]:
            if isinstance(h, logs.Handler):
                root.removeHandler(h)
        root.setLevel(saved[0])
        for h in saved[1]:
            if h not in root.handlers:
                root.addHandler(h)


def test_the_logging_section_is_validated() -> None:
    cfg = parse_config('[logging]\nformat = "json"\nlevel = "DEBUG"\n'
                       '[logging.channels]\n"maild.intake" = "Warning"\n')
    assert cfg.logging.level == "debug"
    assert cfg.logging.channels == {"maild.intake": "warning"}
    with pytest.raises(ConfigError, match=r"maild.toml:2: logging.format"):
        parse_config('[logging]\nformat = "xml"\n')
    with pytest.raises(ConfigError, match="logging.channels"):
        parse_config('[logging.channels]\n"maild" = "loud"\n')


def test_urls_are_shown_without_their_password() -> None:
    assert logs.mask_url("postgres://maild:s3cr%40t@db.example:5432/maild") == (
        "postgres://maild:***@db.example:5432/maild")
    assert logs.mask_url("imaps://shared%40example.com:pw@[::1]/INBOX") == (
        "imaps://shared%40example.com:***@[::1]/INBOX")
    assert logs.mask_url("sqlite://var/maild.db") == "sqlite://var/maild.db"
    cfg = parse_config('[mailbox]\nurl = "imaps://u:hunter2@mail.example/INBOX"\n'
                       '[database]\nurl = "postgres://m:topsecret@db/m"\n')
    line = logs.start_line(cfg, "/etc/maild/maild.toml", "9.9")
    assert "hunter2" not in line and "topsecret" not in line
    assert "maild 9.9" in line and "/etc/maild/maild.toml" in line
    assert "imaps://u:***@mail.example/INBOX" in line


def test_a_record_marked_not_to_fold_is_always_written() -> None:
    out = io.StringIO()
    handler = logs.Handler(out, window=60, clock=FakeClock())
    log = _logger("maild.test.nofold", handler)
    log.error("reload refused: %s", "line 3: unknown key", extra={"fold": False})
    log.error("reload refused: %s", "template broken", extra={"fold": False})
    assert "line 3" in out.getvalue() and "template broken" in out.getvalue()


def test_verbose_keeps_debug_whatever_the_config_says() -> None:
    root = logging.getLogger()
    saved = (root.level, list(root.handlers))
    try:
        logs.setup(verbose=True, stream=io.StringIO())
        logs.apply(LoggingConfig(level="warning"))
        assert root.level == logging.DEBUG
        logs.setup(verbose=False, stream=io.StringIO())
        logs.apply(LoggingConfig(level="warning"))
        assert root.level == logging.WARNING
    finally:
        for h in root.handlers[:]:
            if isinstance(h, logs.Handler):
                root.removeHandler(h)
        root.setLevel(saved[0])
        logs.setup(verbose=False)  # back to the default for later tests
        for h in root.handlers[:]:
            if isinstance(h, logs.Handler):
                root.removeHandler(h)
