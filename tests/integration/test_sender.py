"""The outbox drain against a real SMTP server: one connection, retries, refusals."""

from __future__ import annotations

import sqlite3
import threading
from datetime import timedelta
from pathlib import Path

import pytest
from deciding import Deciding
from servers import SmtpSink, free_port
from support import NOW, mail, make_config

from maild.adapters.senders import SendError, SendThread, SmtpSender
from maild.adapters.sources.maildir import deliver
from maild.app import build as build_app
from maild.runners.daemon import Daemon
from maild.runners.intake import COMMIT_EVERY
from maild.runners.outbox import drain
from maild.store import Store
from maild.store.models import Outbox, TimelineEntry


async def queue(store: Store, base: Path, n: int) -> None:
    d = Deciding(store, base)
    for i in range(n):
        await d.feed(mail(f"buyer{i}@huaxin.example.cn", f"询价 {i}"))


async def test_drain_sends_everything_over_one_connection(store: Store, tmp_path: Path,
                                                          smtp_sink: SmtpSink) -> None:
    await queue(store, tmp_path, 5)
    sender = SmtpSender(f"smtp://{smtp_sink.host}:{smtp_sink.port}")
    try:
        assert await drain(store, sender, lambda: NOW) == (5, 0)
        first = sender._smtp
        assert first is not None and first.is_connected
    finally:
        await sender.close()
    got = smtp_sink.messages
    assert sorted(m.rcpt_tos[0] for m in got) == sorted(f"buyer{i}@huaxin.example.cn"
                                                        for i in range(5))
    assert {m.mail_from for m in got} == {"service@example.test"}
    assert await Outbox.filter(state="sent").count() == 5
    assert await drain(store, sender, lambda: NOW) == (0, 0)  # nothing sent twice


async def test_transient_refusal_is_retried_later(store: Store, tmp_path: Path,
                                                  smtp_sink: SmtpSink) -> None:
    await queue(store, tmp_path, 2)
    smtp_sink.refuse_next(1, 451)
    sender = SmtpSender(f"smtp://{smtp_sink.host}:{smtp_sink.port}")
    try:
        # the first attempt is refused: the drain stops and leaves the rest for later
        assert await drain(store, sender, lambda: NOW) == (0, 1)
        assert await drain(store, sender, lambda: NOW) == (1, 0)  # the second letter
        assert await drain(store, sender, lambda: NOW + timedelta(seconds=31)) == (1, 0)
    finally:
        await sender.close()
    assert len(smtp_sink.messages) == 2
    assert await Outbox.filter(state="sent").count() == 2


async def test_a_policy_refusal_is_retried_not_given_up(store: Store, tmp_path: Path,
                                                         smtp_sink: SmtpSink) -> None:
    # 550 5.7.1 at DATA is the server's policy (spam filter, relay rules), which changes:
    # only a recipient refused for good fails a letter (tests/integration/test_delivery.py)
    await queue(store, tmp_path, 1)
    smtp_sink.refuse_next(1, 550)
    sender = SmtpSender(f"smtp://{smtp_sink.host}:{smtp_sink.port}")
    try:
        assert await drain(store, sender, lambda: NOW) == (0, 1)
        row = await Outbox.get()
        assert row.state == "pending" and "550 5.7.1" in (row.last_error or "")
        assert (row.last_error or "").startswith("policy: ")
        assert await TimelineEntry.filter(kind="send_failed").count() == 0
        assert await drain(store, sender, lambda: NOW + timedelta(seconds=31)) == (1, 0)
    finally:
        await sender.close()
    assert (await Outbox.get()).state == "sent" and len(smtp_sink.messages) == 1


async def test_unreachable_server_is_a_transient_error(store: Store, tmp_path: Path) -> None:
    await queue(store, tmp_path, 1)
    sender = SmtpSender(f"smtp://127.0.0.1:{free_port()}", timeout=2)
    with pytest.raises(SendError) as err:
        await sender.send("a@b.c", ["d@e.f"], b"Subject: x\r\n\r\nx\r\n")
    assert not err.value.permanent
    assert await drain(store, sender, lambda: NOW) == (0, 1)
    assert (await Outbox.get()).state == "pending"


async def test_partially_refused_recipients_are_reported(smtp_sink: SmtpSink) -> None:
    smtp_sink.refuse_recipient("gone@huaxin.example.cn", 550)
    sender = SmtpSender(f"smtp://{smtp_sink.host}:{smtp_sink.port}")
    try:
        note = await sender.send("service@example.test",
                                 ["ok@huaxin.example.cn", "gone@huaxin.example.cn"],
                                 b"Subject: x\r\n\r\nx\r\n")
    finally:
        await sender.close()
    assert note is not None and "gone@huaxin.example.cn" in note and "550" in note
    assert list(smtp_sink.messages[0].rcpt_tos) == ["ok@huaxin.example.cn"]


class FailsAt:
    """A sender that delivers through ``inner`` until its ``n``-th letter, which raises."""

    def __init__(self, inner: SmtpSender, n: int, exc: BaseException) -> None:
        self.inner, self.n, self.exc, self.calls = inner, n, exc, 0

    async def send(self, mail_from: str, rcpt: list[str], raw: bytes) -> str | None:
        self.calls += 1
        if self.calls == self.n:
            raise self.exc
        return await self.inner.send(mail_from, rcpt, raw)

    async def close(self) -> None:
        await self.inner.close()


async def test_letters_sent_before_an_unexpected_error_are_marked_sent(
        store: Store, tmp_path: Path, smtp_sink: SmtpSink) -> None:
    # marks are written in groups; an error in the middle of a group must not lose the
    # marks of the letters that did go out (they would be sent a second time)
    await queue(store, tmp_path, 6)
    sender = FailsAt(SmtpSender(f"smtp://{smtp_sink.host}:{smtp_sink.port}"), 4,
                     RuntimeError("boom"))
    try:
        with pytest.raises(RuntimeError):
            await drain(store, sender, lambda: NOW)  # type: ignore[arg-type]
    finally:
        await sender.close()
    assert len(smtp_sink.messages) == 3
    sent = await Outbox.filter(state="sent").values_list("message_id", flat=True)
    got = {m.raw.split(b"Message-ID: ", 1)[1].split(b"\r\n", 1)[0].decode()
           for m in smtp_sink.messages}
    assert set(sent) == got


async def test_marks_written_together_keep_each_letters_note(store: Store,
                                                             tmp_path: Path) -> None:
    await queue(store, tmp_path, 3)
    a, b, c = await store.claim(NOW, 10, timedelta(seconds=60))
    await store.sent([(a, None), (b, "refused: gone@huaxin.example.cn (550 no)"), (c, None)],
                     NOW)
    rows = {r.id: r for r in await Outbox.all()}
    assert [rows[o.id].last_error for o in (a, b, c)] == [
        None, "refused: gone@huaxin.example.cn (550 no)", None]
    assert all(r.state == "sent" and r.attempts == 1 and r.lease_owner is None
               for r in rows.values())


async def test_a_send_thread_sends_over_one_connection_and_stops_on_close(
        store: Store, tmp_path: Path, smtp_sink: SmtpSink) -> None:
    await queue(store, tmp_path, 30)  # more than one chunk
    smtp = SmtpSender(f"smtp://{smtp_sink.host}:{smtp_sink.port}")
    sender = SendThread(smtp)
    try:
        assert await drain(store, sender, lambda: NOW) == (30, 0)
        thread = sender._thread
        assert thread is not None and thread.is_alive() and thread is not threading.current_thread()
        assert smtp._smtp is not None and smtp._smtp.is_connected
    finally:
        await sender.close()
    assert not thread.is_alive()
    assert len(smtp_sink.messages) == 30
    assert await Outbox.filter(state="sent").count() == 30


async def test_an_error_in_the_send_thread_reaches_the_drain_after_the_marks(
        store: Store, tmp_path: Path, smtp_sink: SmtpSink) -> None:
    await queue(store, tmp_path, 6)
    sender = SendThread(FailsAt(SmtpSender(f"smtp://{smtp_sink.host}:{smtp_sink.port}"), 4,
                                RuntimeError("boom")))  # type: ignore[arg-type]
    try:
        with pytest.raises(RuntimeError, match="boom"):
            await drain(store, sender, lambda: NOW)
    finally:
        await sender.close()
    assert await Outbox.filter(state="sent").count() == len(smtp_sink.messages) == 3
    # the two after the failing one were given back, not left leased
    assert await Outbox.filter(state="pending", lease_owner__isnull=True).count() == 2


async def test_the_daemon_sends_while_the_intake_is_still_deciding(
        tmp_path: Path, smtp_sink: SmtpSink) -> None:
    cfg = make_config(tmp_path, f'[smtp]\nurl = "smtp://{smtp_sink.host}:{smtp_sink.port}"\n')
    app = build_app(cfg, NOW)
    inbox = tmp_path / "var" / "mail"
    n = 3 * COMMIT_EVERY
    for i in range(n):
        deliver(inbox, mail(f"buyer{i}@huaxin.example.cn", f"询价 {i}"))
    decided_at_first_letter: list[int] = []

    def look() -> None:  # in the sink's thread, as the first letter arrives
        if not decided_at_first_letter:
            with sqlite3.connect(tmp_path / "var" / "maild.db") as db:
                decided_at_first_letter.append(db.execute(
                    "select count(*) from messages where direction = 'in' "
                    "and state = 'processed'").fetchone()[0])

    smtp_sink.on_accept = look
    await app.store.open()
    daemon = Daemon(app)
    try:
        await daemon.cycle()
        assert await Outbox.filter(state="sent").count() == n
    finally:
        await app.sender.close()
        app.intake.close()
        await app.store.close()
    assert len(smtp_sink.messages) == n
    # letters of the first commits went out while later mail was still to be decided
    assert decided_at_first_letter and 0 < decided_at_first_letter[0] < n
