"""Delivery that never gives up silently, against a real SMTP relay on loopback: outages and a
refused login are retried on the schedule and reported once; a recipient refused for good
fails its letter at once, on its case, and its owner is told; ``maild outbox retry --to``
sends it again; the delivery journal keeps a stopped sender from sending twice."""

from __future__ import annotations

import asyncio
import email
import email.policy
import logging
import os
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult
from deciding import Deciding
from servers import SmtpSink, _Handler, free_port
from support import NOW, mail, make_config

from maild.adapters.senders import SmtpSender, recipient_refused
from maild.adapters.sources.maildir import deliver
from maild.app import build as build_app
from maild.runners.daemon import Daemon
from maild.runners.intake import COMMIT_EVERY
from maild.runners.outbox import FAILURE_LETTER, Outage, drain, owner_notice, told
from maild.store import Store
from maild.store.cases import view
from maild.store.models import Case, Outbox, TimelineEntry
from maild.store.outbox import DeliveryJournal, readdress


class _RelayHandler(_Handler):
    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):  # noqa: N802
        if address.lower() in self.sink.unknown:  # type: ignore[attr-defined]
            return f"550 5.1.1 <{address}>: Recipient address rejected: User unknown"
        return await super().handle_RCPT(server, session, envelope, address, rcpt_options)


class Relay(SmtpSink):
    """The sink as a relay can be: down (``stop``, then ``start(port)`` again), refusing our
    login (``login_ok``), not knowing a mailbox (``unknown``: 550 5.1.1 at RCPT)."""

    user, password = "service@example.test", "secret"

    def __init__(self) -> None:
        super().__init__()
        self.login_ok = True
        self.unknown: set[str] = set()

    def start(self, port: int | None = None) -> Relay:
        self.port = port or free_port()
        controller = Controller(_RelayHandler(self), hostname=self.host, port=self.port,
                                authenticator=self._auth, auth_require_tls=False)
        controller.start()
        self._controller = controller
        return self

    def _auth(self, server, session, envelope, mechanism, auth_data) -> AuthResult:  # noqa: ANN001
        ok = (self.login_ok and auth_data.login.decode() == self.user
              and auth_data.password.decode() == self.password)
        return AuthResult(success=ok, handled=False)  # the server answers 535 5.7.8

    def sender(self) -> SmtpSender:
        return SmtpSender(f"smtp://{self.host}:{self.port}", username=self.user,
                          password=self.password, timeout=5)

    def ids(self) -> Counter[str]:
        return Counter(email.message_from_bytes(m.raw)["Message-ID"] for m in self.messages)


@pytest.fixture
def relay() -> Iterator[Relay]:
    r = Relay().start()
    try:
        yield r
    finally:
        r.stop()


async def inquiry(store: Store, base: Path, sender: str = "wang@huaxin.example.cn"
                  ) -> Deciding:
    d = Deciding(store, base)
    await d.feed(mail(sender, "产品询价：工控主板"))
    return d


def _warnings(caplog: pytest.LogCaptureFixture, text: str) -> int:
    return sum(1 for r in caplog.records if r.levelno >= logging.WARNING and text in r.message)


# -- what is permanent ---------------------------------------------------------------------

@pytest.mark.parametrize(("code", "message", "at_rcpt", "permanent"), [
    (550, "5.1.1 <x@y>: Recipient address rejected: User unknown", True, True),
    (550, "5.1.1 User unknown", False, True),  # a server that checks mailboxes at DATA
    (551, "User not local", True, True),
    (553, "mailbox name not allowed", True, True),
    (550, "No such user", True, True),
    (550, "5.2.1 Mailbox disabled", True, True),
    (550, "No such user", False, False),  # 550 at DATA without a status: policy, content
    (550, "5.7.1 Relaying denied", True, False),
    (554, "5.7.1 Rejected by policy", False, False),
    (553, "5.1.8 Sender address rejected", True, False),  # our address, not theirs
    (535, "5.7.8 Authentication credentials invalid", False, False),
    (452, "4.2.2 Mailbox full", True, False),
    (450, "4.1.1 Recipient unverified, try later", True, False),
])
def test_only_a_recipient_refused_for_good_is_permanent(code: int, message: str,
                                                        at_rcpt: bool, permanent: bool) -> None:
    assert recipient_refused(code, message, at_rcpt=at_rcpt) is permanent


# -- retried, reported once, delivered afterwards ------------------------------------------

async def _fail_for(store: Store, sender: SmtpSender, outage: Outage, until: datetime,
                    step: timedelta = timedelta(minutes=1)) -> int:
    """Drain every ``step`` from NOW until ``until``; every attempt fails. Returns them."""
    t, attempts = NOW, 0
    while t < until:
        sent, failed = await drain(store, sender, lambda at=t: at, outage=outage)
        assert sent == 0
        attempts += failed
        t += step
    return attempts


async def _deliver_when_due(store: Store, sender: SmtpSender, outage: Outage) -> None:
    row = await Outbox.get(letter="ack")
    assert row.state == "pending"
    due = row.next_attempt_at
    assert await drain(store, sender, lambda: due - timedelta(seconds=1), outage=outage) == (0, 0)
    assert await drain(store, sender, lambda: due, outage=outage) == (1, 0)


async def test_a_letter_failed_during_a_two_hour_outage_is_delivered_afterwards(
        store: Store, tmp_path: Path, relay: Relay, caplog: pytest.LogCaptureFixture) -> None:
    await inquiry(store, tmp_path)
    port = relay.port
    relay.stop()  # the relay is down: connections are refused
    sender, outage = relay.sender(), Outage()
    try:
        attempts = await _fail_for(store, sender, outage, NOW + timedelta(hours=2))
        # 0, 30s, 1m30, 6m30, 21m30, 51m30, 1h51m30: minutes at first, then hours
        assert attempts == 7
        row = await Outbox.get(letter="ack")
        assert row.state == "pending" and row.attempts == 7
        assert (row.last_error or "").startswith("connection: ")
        assert row.next_attempt_at == NOW + timedelta(hours=1, minutes=52) + timedelta(hours=2)
        relay.start(port)
        await _deliver_when_due(store, sender, outage)
    finally:
        await sender.close()
    assert list(relay.ids().values()) == [1]
    assert await TimelineEntry.filter(kind="send_failed").count() == 0
    # reported once when it began and once when it ended, not at each of 7 attempts
    assert _warnings(caplog, "delivery failing (connection)") == 1
    assert _warnings(caplog, "delivery resumed after 3:52:00, 7 failed attempt(s)") == 1


async def test_a_letter_refused_by_our_own_login_for_30_minutes_is_delivered_afterwards(
        store: Store, tmp_path: Path, relay: Relay, caplog: pytest.LogCaptureFixture) -> None:
    await inquiry(store, tmp_path)
    relay.login_ok = False  # 535 5.7.8 to our AUTH
    sender, outage = relay.sender(), Outage()
    try:
        attempts = await _fail_for(store, sender, outage, NOW + timedelta(minutes=30))
        assert attempts == 5
        row = await Outbox.get(letter="ack")
        assert row.state == "pending"
        assert (row.last_error or "").startswith("auth: SMTP 535")
        relay.login_ok = True  # the password is fixed
        await _deliver_when_due(store, sender, outage)
    finally:
        await sender.close()
    assert list(relay.ids().values()) == [1]
    assert _warnings(caplog, "delivery failing (auth): SMTP 535") == 1


# -- given up: on the case, the owner told, sent again by the admin -------------------------

def _cli(base: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAILD_")}
    return subprocess.run([sys.executable, "-m", "maild", *args], capture_output=True,
                          text=True, env=env, cwd=base, timeout=60)


async def test_a_recipient_refused_for_good_is_on_its_case_its_owner_told_and_retried(
        store: Store, tmp_path: Path, relay: Relay) -> None:
    d = await inquiry(store, tmp_path, "wrong@huaxin.example.cn")
    relay.unknown.add("wrong@huaxin.example.cn")
    sender = relay.sender()
    tell = owner_notice(d.site)
    try:
        # the ack is refused at RCPT (5.1.1), and the owner's letter about it goes out
        assert await drain(store, sender, lambda: NOW, tell=tell) == (1, 1)
    finally:
        await sender.close()
    ack = await Outbox.get(letter="ack")
    assert ack.state == "failed" and ack.attempts == 1
    assert (ack.last_error or "").startswith("recipient: all recipients refused")
    case = await Case.get()
    [failed] = await TimelineEntry.filter(case=case, kind="send_failed")
    assert failed.message_id == ack.message_id and "5.1.1" in failed.text
    notice_row = await Outbox.get(letter=FAILURE_LETTER)
    assert notice_row.state == "sent" and not notice_row.automatic
    owners = told(d.site, view(case), ["wrong@huaxin.example.cn"])
    assert list(notice_row.rcpt) == owners and "wrong@huaxin.example.cn" not in owners
    [got] = [m for m in relay.messages if list(m.rcpt_tos) == owners]
    notice = email.message_from_bytes(got.raw, policy=email.policy.default)
    text = notice.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    assert case.number in str(notice["Subject"]) and "5.1.1" in text
    assert f"maild outbox retry -c CONFIG {ack.id} --to" in text

    # the admin fixes the address: the same letter, Message-ID and all, goes to the new one
    config = tmp_path / "maild.toml"
    config.write_text('[database]\nurl = "sqlite://maild.db"\nraw_dir = "raw"\n',
                      encoding="utf-8")
    listed = _cli(tmp_path, "outbox", "list", "-c", str(config), "--json")
    assert listed.returncode == 0, listed.stderr
    assert '"state": "failed"' in listed.stdout and "wrong@huaxin.example.cn" in listed.stdout
    fixed = _cli(tmp_path, "outbox", "retry", "-c", str(config), str(ack.id), "--to",
                 "wang@huaxin.example.cn", "--now", NOW.isoformat())
    assert fixed.returncode == 0, fixed.stderr
    later = NOW + timedelta(minutes=5)
    sender = relay.sender()
    try:
        assert await drain(store, sender, lambda: later, tell=tell) == (1, 0)
    finally:
        await sender.close()
    [resent] = [m for m in relay.messages if list(m.rcpt_tos) == ["wang@huaxin.example.cn"]]
    again = email.message_from_bytes(resent.raw)
    assert again["Message-ID"] == ack.message_id and again["To"] == "wang@huaxin.example.cn"
    assert (await Outbox.get(id=ack.id)).state == "sent"
    [admin] = await TimelineEntry.filter(case=case, kind="admin")
    assert admin.actor == "admin" and "wang@huaxin.example.cn" in admin.text
    assert await Outbox.filter(letter=FAILURE_LETTER).count() == 1


async def test_no_letter_about_a_failed_failure_letter(store: Store, tmp_path: Path,
                                                       relay: Relay) -> None:
    d = await inquiry(store, tmp_path, "wrong@huaxin.example.cn")
    case = await Case.get()
    owners = told(d.site, view(case), ["wrong@huaxin.example.cn"])
    relay.unknown |= {"wrong@huaxin.example.cn", *(a.lower() for a in owners)}
    sender = relay.sender()
    try:
        assert await drain(store, sender, lambda: NOW, tell=owner_notice(d.site)) == (0, 2)
        assert await drain(store, sender, lambda: NOW, tell=owner_notice(d.site)) == (0, 0)
    finally:
        await sender.close()
    assert await Outbox.filter(state="failed").count() == 2  # the ack and the notice
    assert await Outbox.filter(letter=FAILURE_LETTER).count() == 1
    assert await TimelineEntry.filter(kind="send_failed").count() == 2


async def test_a_letter_is_given_up_after_five_days_of_failures_and_the_owner_told(
        store: Store, tmp_path: Path, relay: Relay) -> None:
    d = await inquiry(store, tmp_path)
    relay.stop()
    sender = relay.sender()
    tell = owner_notice(d.site)
    try:
        assert await drain(store, sender, lambda: NOW, tell=tell) == (0, 1)
        day4 = NOW + timedelta(days=4)
        assert await drain(store, sender, lambda: day4, tell=tell) == (0, 1)
        assert (await Outbox.get(letter="ack")).state == "pending"
        day5 = NOW + timedelta(days=5)
        assert await drain(store, sender, lambda: day5, tell=tell) == (0, 1)
    finally:
        await sender.close()
    ack = await Outbox.get(letter="ack")
    assert ack.state == "failed" and ack.attempts == 3
    notice = await Outbox.get(letter=FAILURE_LETTER)
    assert notice.state == "pending"  # the relay is still down: it waits like any letter
    text = email.message_from_bytes(bytes(notice.body), policy=email.policy.default
                                    ).get_body(("plain",)).get_content()  # type: ignore[union-attr]
    assert "自 2026-12-01 10:00 起多次尝试均未成功" in text and "尝试次数：3" in text
    assert await TimelineEntry.filter(kind="send_failed").count() == 1


async def test_outbox_cancel_stops_a_letter_and_notes_the_case(store: Store,
                                                               tmp_path: Path) -> None:
    await inquiry(store, tmp_path)
    ack = await Outbox.get(letter="ack")
    assert await store.cancel([ack.id, 999], NOW) == [
        f"#{ack.id}: ack → wang@huaxin.example.cn: cancelled", "#999: no such letter"]
    assert await store.claim(NOW, 10, timedelta(minutes=1)) == []
    [admin] = await TimelineEntry.filter(kind="admin")
    assert admin.actor == "admin" and admin.text.startswith(f"outbox cancel #{ack.id}")
    assert [r["state"] for r in await store.outbox(("cancelled",))] == ["cancelled"]
    assert (await store.retry([ack.id], NOW))[0].endswith("pending, due now")


def test_readdress_replaces_only_the_to_field() -> None:
    raw = (b"From: =?utf-8?b?56S6?= <service@example.test>\r\nTo: wrong@huaxin.example.cn,\r\n"
           b" other@huaxin.example.cn\r\nCc: li@corp.example.test\r\nMessage-ID: <a@b>\r\n"
           b"Subject: x\r\n\r\nTo: not a header\r\n")
    out, cc = readdress(raw, "wang@huaxin.example.cn")
    assert out == (b"From: =?utf-8?b?56S6?= <service@example.test>\r\n"
                   b"To: wang@huaxin.example.cn\r\nCc: li@corp.example.test\r\n"
                   b"Message-ID: <a@b>\r\nSubject: x\r\n\r\nTo: not a header\r\n")
    assert cc == ["li@corp.example.test"]


# -- the delivery journal: a stopped sender sends nothing twice -----------------------------

class Stalls:
    """Delivers through ``inner`` until its ``n``-th letter, where it hangs (a kill there)."""

    def __init__(self, inner: SmtpSender, n: int) -> None:
        self.inner, self.n, self.calls = inner, n, 0
        self.hung = asyncio.Event()

    async def send(self, mail_from: str, rcpt: list[str], raw: bytes) -> str | None:
        self.calls += 1
        if self.calls == self.n:
            self.hung.set()
            await asyncio.Event().wait()
        return await self.inner.send(mail_from, rcpt, raw)

    async def close(self) -> None:
        await self.inner.close()


async def test_letters_delivered_by_a_cancelled_drain_are_marked_not_resent(
        store: Store, tmp_path: Path, relay: Relay) -> None:
    d = Deciding(store, tmp_path)
    for i in range(8):
        await d.feed(mail(f"buyer{i}@huaxin.example.cn", f"询价 {i}"))
    stalls = Stalls(relay.sender(), 4)
    task = asyncio.create_task(drain(store, stalls, lambda: NOW))  # type: ignore[arg-type]
    await stalls.hung.wait()
    task.cancel()  # three letters went out; their marks were to come with the chunk's end
    with pytest.raises(asyncio.CancelledError):
        await task
    await stalls.close()
    assert len(relay.messages) == 3
    assert await Outbox.filter(state="sent").count() == 0
    sender = relay.sender()
    try:  # after the lease: the journal's three are marked sent, the other five go out
        assert await drain(store, sender, lambda: NOW + timedelta(minutes=3)) == (5, 0)
    finally:
        await sender.close()
    assert set(relay.ids().values()) == {1} and len(relay.ids()) == 8
    assert await Outbox.filter(state="sent").count() == 8
    assert store.journal.path is not None and store.journal.path.read_bytes().strip(b"\0") == b""


async def test_a_dead_senders_journal_is_folded_and_a_live_ones_left_alone(
        store: Store, tmp_path: Path, relay: Relay) -> None:
    d = Deciding(store, tmp_path)
    for i in range(3):
        await d.feed(mail(f"buyer{i}@huaxin.example.cn", f"询价 {i}"))
    a, b = await store.claim(NOW, 2, timedelta(minutes=5))
    [c] = await Outbox.filter(state="pending", lease_owner__isnull=True)
    live, dead = DeliveryJournal(store.journal.folder), DeliveryJournal(store.journal.folder)
    live.record(a)  # a daemon that is still running (it holds its file's lock)
    dead.record(b)  # a daemon killed after b was accepted
    dead_path = dead.path
    assert dead_path is not None and dead._fd is not None
    os.close(dead._fd)  # ...its lock goes with it
    sender = relay.sender()
    try:
        assert await drain(store, sender, lambda: NOW + timedelta(minutes=1)) == (1, 0)
    finally:
        await sender.close()
    assert [list(m.rcpt_tos) for m in relay.messages] == [list(c.rcpt)]
    states = dict(await Outbox.all().values_list("id", "state"))
    # a: still leased to the live sender, which marks it itself; b: marked from the dead
    # one's journal, not sent again; c: sent
    assert states == {a.id: "pending", b.id: "sent", c.id: "sent"}
    assert not dead_path.exists() and live.path is not None and live.path.exists()
    live.close()


# -- a graceful stop in the daemon ----------------------------------------------------------

async def test_a_stop_lets_the_letter_in_flight_finish_and_gives_back_the_rest(
        tmp_path: Path, relay: Relay) -> None:
    cfg = make_config(tmp_path, f'[smtp]\nurl = "smtp://{relay.host}:{relay.port}"\n')
    app = build_app(cfg, NOW)
    inbox = tmp_path / "var" / "mail"
    n = 2 * COMMIT_EVERY
    for i in range(n):
        deliver(inbox, mail(f"buyer{i}@huaxin.example.cn", f"询价 {i}"))
    await app.store.open()
    daemon = Daemon(app)
    loop = asyncio.get_running_loop()

    def stop_at_the_fifth() -> None:  # in the relay's thread, as a letter is accepted
        if len(relay.messages) == 5:
            loop.call_soon_threadsafe(daemon.stop)

    relay.on_accept = stop_at_the_fifth
    try:
        await daemon.cycle()
        sent = await Outbox.filter(state="sent").count()
        assert sent == len(relay.messages) and 5 <= sent < n
        # nothing left leased: the next run (or another daemon) may send the rest at once
        assert await Outbox.filter(state="pending", lease_owner__isnull=False).count() == 0
        relay.on_accept = None
        daemon.stopping.clear()
        await daemon.cycle()
        assert await Outbox.filter(state="sent").count() == n
    finally:
        await app.sender.close()
        app.intake.close()
        await app.store.close()
        app.store.journal.close()
    assert len(relay.ids()) == n and set(relay.ids().values()) == {1}
