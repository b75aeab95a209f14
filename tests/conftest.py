"""Shared pytest fixtures; the real-server factories live in ``tests/servers.py``."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))  # make `servers` importable

from servers import DovecotServer, SmtpSink  # noqa: E402


@pytest.fixture
def dovecot(tmp_path: Path) -> Iterator[DovecotServer]:
    """A fresh Dovecot (IMAP + LMTP) with user shared@example.test / secret, in tmp_path."""
    server = DovecotServer(tmp_path / "dovecot").start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def smtp_sink() -> Iterator[SmtpSink]:
    """An SMTP server on 127.0.0.1 that records what it receives (``.messages``)."""
    sink = SmtpSink().start()
    try:
        yield sink
    finally:
        sink.stop()
