"""The mailbox watches against real servers: IMAP IDLE on a Dovecot (``ImapWatch``) and a
Maildir's ``new/`` (``MaildirWatch``)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from servers import DovecotServer

from maild.adapters.sources.base import MailSourceError, PushUnavailable
from maild.adapters.sources.imap import ImapSource, ImapWatch
from maild.adapters.sources.maildir import MaildirSource, deliver


def message(i: int) -> bytes:
    return (b"From: a@example.test\r\nTo: shared@example.test\r\n"
            b"Message-ID: <idle%d@example.test>\r\nSubject: idle %d\r\n\r\nbody\r\n" % (i, i))


def news_within(wait: Callable[[float], bool], tries: int = 40) -> bool:
    """Did ``wait`` report news within ``tries`` calls of half a second?"""
    return any(wait(0.5) for _ in range(tries))


@pytest.fixture
def source(dovecot: DovecotServer) -> Iterator[ImapSource]:
    src = ImapSource(dovecot.imap_url, dovecot.password)
    try:
        yield src
    finally:
        src.close()


@pytest.fixture
def watch(source: ImapSource) -> Iterator[ImapWatch]:
    w = source.watch(600)
    try:
        yield w
    finally:
        w.close()


def settle(w: ImapWatch) -> None:
    """Connect, then let the news of connecting pass."""
    assert w.wait(0.5) is True  # right after connecting: mail may have come meanwhile
    assert not any(w.wait(0.2) for _ in range(3))


def test_idle_reports_appended_mail(dovecot: DovecotServer, watch: ImapWatch) -> None:
    settle(watch)
    dovecot.append(message(1))
    assert news_within(watch.wait)


def test_own_moves_are_no_news(dovecot: DovecotServer, source: ImapSource,
                               watch: ImapWatch) -> None:
    uid = dovecot.append(message(1))
    settle(watch)
    source.move([uid], "Processed")  # the intake's own move: EXPUNGE and "RECENT 0"
    assert not any(watch.wait(0.3) for _ in range(6))
    dovecot.append(message(2))
    assert news_within(watch.wait)


def test_idle_is_issued_again_and_still_reports(dovecot: DovecotServer,
                                                source: ImapSource) -> None:
    w = ImapWatch(source, idle_seconds=1)  # the config allows 10 s at least; 1 s here
    try:
        settle(w)
        tags = set()
        for _ in range(8):  # 4 s: IDLE ended with DONE and issued again several times
            w.wait(0.5)
            tags.add(w._tag)
        assert len(tags - {None}) >= 2
        dovecot.append(message(1))
        assert news_within(w.wait)
    finally:
        w.close()


def test_dropped_connection_raises_then_reconnects(dovecot: DovecotServer,
                                                   watch: ImapWatch) -> None:
    settle(watch)
    dovecot.kick()  # the server drops every connection of the user
    with pytest.raises(MailSourceError, match="connection lost"):
        for _ in range(20):
            watch.wait(0.5)
    assert watch.wait(0.5) is True  # connected again: the caller runs a cycle
    dovecot.append(message(1))
    assert news_within(watch.wait)


def test_server_down_then_back(dovecot: DovecotServer, watch: ImapWatch) -> None:
    settle(watch)
    dovecot.stop()
    with pytest.raises(MailSourceError):
        for _ in range(20):
            watch.wait(0.5)
    with pytest.raises(MailSourceError, match="cannot connect"):
        watch.wait(0.5)
    dovecot.start_again()
    assert watch.wait(0.5) is True
    dovecot.append(message(1))
    assert news_within(watch.wait)


def test_server_without_idle_is_push_unavailable(dovecot: DovecotServer,
                                                 source: ImapSource) -> None:
    dovecot.stop()
    with dovecot.conf.open("a") as conf:  # what the server announces, IDLE left out
        conf.write("imap_capability = IMAP4rev1 LITERAL+ SASL-IR UIDPLUS MOVE\n")
    dovecot.start_again()
    w = source.watch(600)
    with pytest.raises(PushUnavailable, match="does not offer IDLE"):
        w.wait(0.5)
    w.close()


def test_maildir_watch_sees_new_files(tmp_path: Path) -> None:
    src = MaildirSource(tmp_path / "Maildir")
    src.open()
    w = src.watch(600)
    assert w.wait(0.1) is True  # the first look
    assert not any(w.wait(0.1) for _ in range(3))
    deliver(src.root, message(1))
    assert news_within(w.wait, 10)
    # the intake's own move out of new/ is no news
    src.move([1], "Processed")
    assert not any(w.wait(0.1) for _ in range(25))
    deliver(src.root, message(2))
    deliver(src.root, message(3))
    assert news_within(w.wait, 10)


def test_maildir_watch_reports_a_vanished_maildir(tmp_path: Path) -> None:
    src = MaildirSource(tmp_path / "Maildir")
    src.open()
    w = src.watch(600)
    assert w.wait(0.1) is True
    (src.root / "new").rename(tmp_path / "gone")
    with pytest.raises(MailSourceError, match="watching"):
        w.wait(0.1)
    (tmp_path / "gone").rename(src.root / "new")
    assert w.wait(0.1) is True  # back: a cycle looks at what came meanwhile


def test_idle_over_imaps(tmp_path: Path) -> None:
    with DovecotServer(tmp_path / "tls", tls=True) as server:
        src = ImapSource(server.imaps_url, server.password, ssl_context=server.ssl_context())
        w = src.watch(600)
        try:
            settle(w)
            server.append(message(1))
            assert news_within(w.wait)
            server.append_many([message(2), message(3)])
            assert news_within(w.wait)
        finally:
            w.close()
            src.close()
