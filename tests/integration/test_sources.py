"""MailSource implementations against a real Dovecot (``dovecot`` fixture) and a real Maildir."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from servers import DovecotServer, free_port

from maild.adapters.sources.base import Fetched, MailSourceError
from maild.adapters.sources.imap import ImapSource, parse_imap_url
from maild.adapters.sources.maildir import UIDLIST, MaildirSource, deliver

GBK_SUBJECT = "报销 朱镕基 陶喆".encode("gbk")


def message(i: int, extra: bytes = b"") -> bytes:
    """A CRLF message (Dovecot serves CRLF, so only CRLF input can come back identical)."""
    return (
        b"From: a@example.test\r\nTo: shared@example.test\r\n"
        b"Message-ID: <m%d@example.test>\r\nSubject: message %d\r\n\r\nbody %d\r\n"
        % (i, i, i)
        + extra
    )


GBK_MESSAGE = (
    b"From: =?gbk?b?1uzpVbv5?= <zhu@example.test>\r\nSubject: " + GBK_SUBJECT + b"\r\n"
    b"Content-Type: text/plain; charset=gb2312\r\nContent-Transfer-Encoding: 8bit\r\n\r\n"
    + "镕喆 一二三\r\n".encode("gbk")
    + b".leading dot\r\n\r\n"
    + b"x" * 3000
    + b"\r\n\tindented \xff\xfe\x80\r\n"
)


@pytest.fixture
def source(dovecot: DovecotServer) -> Iterator[ImapSource]:
    src = ImapSource(dovecot.imap_url, dovecot.password, batch=64)
    try:
        yield src
    finally:
        src.close()


# -- URL -------------------------------------------------------------------------------------


def test_parse_imap_url() -> None:
    assert parse_imap_url("imap://shared%40example.test@127.0.0.1:1430/INBOX") == (
        "imap",
        "shared@example.test",
        None,
        "127.0.0.1",
        1430,
        "INBOX",
    )
    assert parse_imap_url("imaps://bob:p%40ss@mail.example.test") == (
        "imaps",
        "bob",
        "p@ss",
        "mail.example.test",
        993,
        "INBOX",
    )
    assert parse_imap_url("imap://bob@host/Shared%20Box")[4:] == (143, "Shared Box")
    for bad in ("http://bob@host/", "imap://host/INBOX", "imap://bob@host:99999/"):
        with pytest.raises(ValueError):
            parse_imap_url(bad)


def test_name_has_no_password(dovecot: DovecotServer) -> None:
    url = f"imap://shared%40example.test:secret@127.0.0.1:{dovecot.port}"
    src = ImapSource(url)
    assert src.name == f"imap://shared%40example.test@127.0.0.1:{dovecot.port}/INBOX"
    with src:
        assert src.count() == 0  # the URL password was used


# -- IMAP ------------------------------------------------------------------------------------


def test_raw_bytes_are_exact_and_nothing_gets_seen(dovecot, source) -> None:
    raws = [message(1), GBK_MESSAGE, message(3, b"\r\n-- \r\nsig\r\n")]
    uids = dovecot.append_many(raws)
    got = source.fetch_after(0, 10)
    assert [f.uid for f in got] == uids
    assert [f.raw for f in got] == raws
    assert got[1].raw.count(GBK_SUBJECT) == 1
    assert all("\\Seen" not in flags for flags in dovecot.flags().values())


def test_fetch_after_returns_only_newer(dovecot, source) -> None:
    uids = dovecot.append_many([message(i) for i in range(3)])
    assert [f.uid for f in source.fetch_after(uids[0], 10)] == uids[1:]
    # pitfall 4: "UID n:*" matches the highest UID even when nothing is newer
    assert source.fetch_after(uids[-1], 10) == []
    assert source.fetch_after(uids[-1] + 50, 10) == []
    assert source.fetch_after(0, 0) == []
    late = dovecot.append(message(99))  # arrives on another connection
    assert source.fetch_after(uids[-1], 10) == [Fetched(late, message(99))]


def test_limit_and_batching_over_250(dovecot, source, monkeypatch) -> None:
    raws = [message(i) for i in range(250)]
    uids = dovecot.append_many(raws)
    source.open()
    client = source._mb.client  # count the FETCH commands actually sent
    commands: list[str] = []
    real_uid = client.uid
    monkeypatch.setattr(client, "uid", lambda cmd, *a: commands.append(cmd) or real_uid(cmd, *a))

    first = source.fetch_after(0, 100)
    assert [f.uid for f in first] == uids[:100]
    assert commands.count("FETCH") == 2  # 100 messages in chunks of batch=64

    got = list(first)
    while batch := source.fetch_after(got[-1].uid, 100):
        got.extend(batch)
    assert [f.uid for f in got] == uids
    assert [f.raw for f in got] == raws
    assert source.count() == 250


def _setup_move(dovecot: DovecotServer) -> tuple[list[int], int]:
    uids = dovecot.append_many([message(i) for i in range(5)])
    other = dovecot.append(message(42))
    dovecot.add_flags([other], r"\Deleted")  # another client's pending delete
    return uids, other


def _check_move(dovecot: DovecotServer, uids: list[int], other: int, folder: str) -> None:
    assert dovecot.uids() == [uids[0], uids[2], uids[4], other]
    assert "\\Deleted" in dovecot.flags()[other]
    assert dovecot.fetch_all(folder) == [message(1), message(3)]
    assert all("\\Seen" not in f for f in dovecot.flags(folder).values())


def test_move_with_uid_move(dovecot, source) -> None:
    uids, other = _setup_move(dovecot)
    source.open()
    assert "MOVE" in source._mb.client.capabilities  # refreshed after login (pitfall 3)
    source.move([uids[3], uids[1], 9999], "Processed")  # unknown UIDs are ignored
    _check_move(dovecot, uids, other, "Processed")
    source.move([], "Processed")
    assert source.count("Processed") == 2
    assert source.count("Missing") == 0


def test_move_fallback_expunges_only_those_uids(dovecot, source) -> None:
    uids, other = _setup_move(dovecot)
    source.open()
    caps = source._mb.client.capabilities
    source._mb.client.capabilities = tuple(c for c in caps if c != "MOVE")
    source.move([uids[1], uids[3]], "Quarantine")
    _check_move(dovecot, uids, other, "Quarantine")


def test_uidvalidity_stable_across_reconnects(dovecot, source) -> None:
    dovecot.append(message(1))
    first = source.uidvalidity()
    source.close()
    assert source.uidvalidity() == first  # reopened implicitly
    with ImapSource(dovecot.imap_url, dovecot.password) as other:
        assert other.uidvalidity() == first
    with dovecot.imap() as client:
        _, data = client.status("INBOX", "(UIDVALIDITY)")
    assert f"UIDVALIDITY {first}".encode() in data[0]


def test_reconnects_once_after_dropped_connection(dovecot, source) -> None:
    uid = dovecot.append(message(1))
    assert source.count() == 1
    dovecot.kick()  # the server drops our session
    assert source.fetch_after(0, 10) == [Fetched(uid, message(1))]


def test_wrong_password_is_a_clear_error(dovecot) -> None:
    src = ImapSource(dovecot.imap_url, "wrong")
    with pytest.raises(
        MailSourceError,
        match=r"login as 'shared@example.test'.*refused.*"
        r"Authentication failed",
    ):
        src.open()
    src.close()


def test_unreachable_host_is_a_clear_error() -> None:
    src = ImapSource(f"imap://bob@127.0.0.1:{free_port()}/INBOX", "x", timeout=2)
    with pytest.raises(MailSourceError, match="cannot connect to IMAP server 127.0.0.1"):
        src.fetch_after(0, 1)


def test_tls_verifies_certificates(tmp_path: Path) -> None:
    with DovecotServer(tmp_path / "tls", tls=True) as server:
        uid = server.append(message(1))
        with ImapSource(server.imaps_url, server.password, ssl_context=server.ssl_context()) as src:
            assert src.fetch_after(0, 5) == [Fetched(uid, message(1))]
        with ImapSource(
            server.imap_url, server.password, starttls=True, ssl_context=server.ssl_context()
        ) as src:
            assert src.count() == 1
        with pytest.raises(MailSourceError, match="CERTIFICATE_VERIFY_FAILED"):
            ImapSource(server.imaps_url, server.password).open()  # system trust store


# -- Maildir ---------------------------------------------------------------------------------


def test_maildir_raw_bytes_uids_and_nothing_new(tmp_path: Path) -> None:
    raws = [message(1), GBK_MESSAGE, b"Subject: lf only\n\nbare \xa1\n"]
    for raw in raws:
        deliver(tmp_path / "md", raw)
    src = MaildirSource(tmp_path / "md")
    src.open()
    assert src.name == f"maildir://{(tmp_path / 'md').resolve()}"
    got = src.fetch_after(0, 10)
    assert [(f.uid, f.raw) for f in got] == [(1, raws[0]), (2, raws[1]), (3, raws[2])]
    assert [f.uid for f in src.fetch_after(1, 1)] == [2]
    assert src.fetch_after(3, 10) == []
    assert src.count() == 3


def test_maildir_uids_persist_and_follow_mtime(tmp_path: Path) -> None:
    md = tmp_path / "md"
    paths = [deliver(md, message(i)) for i in range(3)]
    for age, path in zip((10, 30, 20), paths, strict=True):  # mtime order: 1, 2, 0
        os.utime(path, ns=(0, 1_700_000_000_000_000_000 - age * 10**9))
    first = MaildirSource(md)
    assert [f.raw for f in first.fetch_after(0, 10)] == [message(1), message(2), message(0)]
    validity = first.uidvalidity()

    os.rename(paths[2], md / "cur" / (paths[2].name + ":2,S"))  # a MUA read it
    later = deliver(md, message(3))
    second = MaildirSource(md)
    assert second.uidvalidity() == validity
    assert [(f.uid, f.raw) for f in second.fetch_after(0, 10)] == [
        (1, message(1)),
        (2, message(2)),
        (3, message(0)),
        (4, message(3)),
    ]
    assert f"4 {later.name}" in (md / UIDLIST).read_text()

    (md / UIDLIST).write_text(f"maild-uidlist 1 V{validity} N9\nnot-a-uid x\n")
    rebuilt = MaildirSource(md)
    assert rebuilt.uidvalidity() > validity  # a damaged list starts a new UIDVALIDITY
    assert [f.uid for f in rebuilt.fetch_after(0, 10)] == [1, 2, 3, 4]


def test_maildir_move_to_subfolder(tmp_path: Path) -> None:
    md = tmp_path / "md"
    for i in range(4):
        deliver(md, message(i))
    src = MaildirSource(md)
    uids = [f.uid for f in src.fetch_after(0, 10)]
    src.move([uids[0], uids[2], 999], "Processed")
    assert [f.raw for f in src.fetch_after(0, 10)] == [message(1), message(3)]
    moved = sorted((md / ".Processed" / "cur").iterdir())
    assert sorted(p.read_bytes() for p in moved) == [message(0), message(2)]
    assert all(p.name.endswith(":2,") for p in moved)
    assert (md / ".Processed" / "maildirfolder").exists()
    assert src.count("Processed") == 2 and src.count() == 2 and src.count("Nope") == 0
    assert MaildirSource(md).fetch_after(uids[1], 10)[0].uid == uids[3]  # no renumbering
    with pytest.raises(MailSourceError):
        src.move([uids[1]], "../escape")


def test_maildir_concurrent_instances_never_share_uids(tmp_path: Path) -> None:
    md = tmp_path / "md"
    seen: list[list[int]] = []

    def worker(n: int) -> None:
        src = MaildirSource(md)
        for i in range(20):
            deliver(md, message(n * 100 + i))
            src.uidvalidity()  # forces a sync
        seen.append([f.uid for f in src.fetch_after(0, 1000)])

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    final = MaildirSource(md).fetch_after(0, 1000)
    assert [f.uid for f in final] == list(range(1, 61))
    assert len({f.raw for f in final}) == 60
