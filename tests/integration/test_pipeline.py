"""The intake in-process on a real Maildir and SQLite: routes, folders, duplicates, letters."""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from support import NOW, mail, make_config

from maild.adapters.senders import MaildirSender
from maild.adapters.sources.maildir import UIDLIST, MaildirSource, deliver
from maild.runners.intake import Intake
from maild.runners.outbox import drain
from maild.site import Site as ConfiguredSite
from maild.store import Store
from maild.store.models import Case, Message, Outbox


class Site:
    def __init__(self, base: Path, default_process: str = "customer") -> None:
        self.base = base
        self.inbox = base / "mail"
        self.cfg = make_config(base, default_process=default_process)
        self.source = MaildirSource(self.inbox)
        self.store = Store(f"sqlite://{base}/maild.db", base / "raw", base)
        self.intake = Intake(ConfiguredSite.build(self.cfg), self.source, self.store,
                             lambda: NOW)

    def folder(self, name: str) -> list[Path]:
        d = self.inbox / f".{name}" / "cur"
        return sorted(d.iterdir()) if d.is_dir() else []


@pytest.fixture
async def site(tmp_path: Path) -> AsyncIterator[Site]:
    s = Site(tmp_path)
    await s.store.open()
    try:
        yield s
    finally:
        s.intake.close()
        await s.store.close()


async def test_uidvalidity_reset_does_not_process_mail_twice(site: Site) -> None:
    raws = [mail("a@huaxin.example.cn", "询价一"), mail("b@huaxin.example.cn", "询价二")]
    for raw in raws:
        deliver(site.inbox, raw)
    await site.intake.poll()
    assert await Case.all().count() == 2
    # the server renumbers the folder (new UIDVALIDITY) and still shows the same two mails
    for f in site.folder("Processed"):
        shutil.copy(f, site.inbox / "new" / f.name.split(":")[0])
    (site.inbox / UIDLIST).unlink()
    site.intake.source = MaildirSource(site.inbox)  # a restart sees the new numbering
    counters = await site.intake.poll()
    assert counters.duplicates == 2
    assert await Case.all().count() == 2
    assert await Outbox.all().count() == 2
    assert list((site.inbox / "new").iterdir()) == []


async def test_same_bytes_twice_in_one_batch_is_handled_once(site: Site) -> None:
    raw = mail("a@huaxin.example.cn", "询价")
    deliver(site.inbox, raw)
    deliver(site.inbox, mail("b@huaxin.example.cn", "另一封"))
    deliver(site.inbox, raw)  # a client sent it again: same bytes, new UID
    counters = await site.intake.poll()
    assert (counters.processed, counters.duplicates) == (2, 1)
    first, _, again = await Message.filter(direction="in").order_by("uid")
    assert (first.state, again.state) == ("processed", "duplicate")
    assert again.reason == f"same bytes as message #{first.id}"
    assert await Case.all().count() == 2
    assert len(site.folder("Processed")) == 3


async def test_unknown_sender_goes_to_triage_when_configured(tmp_path: Path) -> None:
    s = Site(tmp_path, default_process="triage")
    await s.store.open()
    try:
        deliver(s.inbox, mail("x@unknown.example", "你好"))
        await s.intake.poll()
        assert len(s.folder("Triage")) == 1 and s.folder("Processed") == []
        assert await Case.all().count() == 0
        assert await Outbox.all().count() == 0
    finally:
        await s.store.close()


async def test_internal_request_without_department_asks_which_one(site: Site) -> None:
    deliver(site.inbox, mail("nobody@corp.example.test", "[跨部门] 需要支持", "请协助。"))
    await site.intake.poll()
    assert await Case.all().count() == 0
    [out] = await Outbox.all()
    assert out.letter == "need_department" and out.rcpt == ["nobody@corp.example.test"]
    sender = MaildirSender(site.base / "sent")
    assert await drain(site.store, sender, lambda: NOW) == (1, 0)
    [letter] = list((site.base / "sent" / "new").iterdir())
    text = letter.read_bytes()
    assert b"X-Envelope-To: nobody@corp.example.test" in text


async def test_staff_reply_is_recorded_not_acknowledged(site: Site) -> None:
    deliver(site.inbox, mail("a@huaxin.example.cn", "询价"))
    await site.intake.poll()
    ack = await Outbox.get()
    deliver(site.inbox, mail("zhang@corp.example.test", "Re: 询价", "我来跟进。\n\n> 原文",
                             In_Reply_To=ack.message_id))
    await site.intake.poll()
    assert await Outbox.all().count() == 1
    kinds = [m.state for m in await Message.filter(direction="in")]
    assert kinds == ["processed", "processed"]
    case = await Case.get()
    assert case.parties == ["a@huaxin.example.cn"]  # staff do not become parties


async def test_mail_fetched_ahead_of_a_stop_is_decided_by_the_next_poll(tmp_path: Path) -> None:
    # the intake fetches (and writes the raw bytes of) the next batch while deciding one;
    # stopping after the first batch must leave the batch fetched ahead in the mailbox,
    # undecided, for the next poll
    s = Site(tmp_path)
    s.cfg = make_config(tmp_path, "[mailbox]\nbatch_size = 4\n")
    s.intake = Intake(ConfiguredSite.build(s.cfg), s.source, s.store, lambda: NOW)
    await s.store.open()
    try:
        for i in range(10):
            deliver(s.inbox, mail(f"buyer{i}@huaxin.example.cn", f"询价 {i}"))

        def after_first_batch() -> bool:  # asked before each batch and each mail
            return s.intake.counters.processed >= 4

        counters = await s.intake.poll(after_first_batch)
        assert (counters.fetched, counters.processed) == (8, 4)  # a batch was fetched ahead
        assert len(list((tmp_path / "raw").rglob("*.eml"))) == 8  # and its raw bytes kept
        assert await Message.filter(direction="in").count() == 4  # but none of it recorded
        assert len(s.folder("Processed")) == 4
        assert len(list((s.inbox / "new").iterdir()) + list((s.inbox / "cur").iterdir())) == 6
        await s.intake.poll()  # a restart, say
        assert await Case.all().count() == 10
        assert len(s.folder("Processed")) == 10
        assert sorted(m.uid for m in await Message.filter(direction="in")) == list(range(1, 11))
    finally:
        s.intake.close()
        await s.store.close()
