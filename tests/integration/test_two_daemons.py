"""Two daemons on one mailbox and one PostgreSQL database decide each mail once."""

from __future__ import annotations

import asyncio
from pathlib import Path

from servers import DovecotServer
from support import NOW, mail, make_config, pg_database

from maild.adapters.sources.imap import ImapSource
from maild.runners.intake import Intake
from maild.site import Site
from maild.store import Store
from maild.store.models import Case, Message, Outbox


async def test_two_intakes_racing_on_one_mailbox_decide_each_mail_once(
        tmp_path: Path, dovecot: DovecotServer) -> None:
    raws = [mail(f"buyer{i}@huaxin.example.cn", f"询价 {i}") for i in range(40)]
    dovecot.append_many(raws)
    async with pg_database() as url:
        cfg = make_config(tmp_path, "[mailbox]\nbatch_size = 10\n")
        store = Store(url, tmp_path / "raw", tmp_path)
        await store.open()
        try:
            site = Site.build(cfg)
            intakes = [Intake(site, ImapSource(dovecot.imap_url, dovecot.password), store,
                              lambda: NOW) for _ in range(2)]
            await asyncio.gather(*(i.poll() for i in intakes))
            assert await Case.all().count() == 40
            assert await Outbox.filter(letter="ack").count() == 40
            assert await Message.filter(direction="in").count() == 40
            assert sum(i.counters.processed for i in intakes) == 40
        finally:
            for i in intakes:
                i.source.close()
            await store.close()
    assert dovecot.count("INBOX") == 0
    # Two sessions MOVEing one message at the same moment may both copy it (RFC 6851 lets
    # a server do so): Processed can hold a second copy, but every mail is there.
    assert set(dovecot.fetch_all("Processed")) == set(raws)
