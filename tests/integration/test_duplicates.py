"""Duplicates by Message-ID and sender, through the intake on a real Maildir and SQLite: a
relayed copy with one more ``Received:`` line is a duplicate; the same Message-ID from
another sender is decided on its own and the collision is recorded."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from support import DIRECTORY_TOML, NOW, mail, make_config

from maild.adapters.sources.maildir import MaildirSource, deliver
from maild.runners.intake import Intake
from maild.site import Site
from maild.store import Store
from maild.store.models import Case, Message, Outbox, TimelineEntry

MSGID = "<quote-2026-0042@huaxin.example.cn>"


class Box:
    def __init__(self, base: Path) -> None:
        self.base = base
        self.inbox = base / "mail"
        self.store = Store(f"sqlite://{base}/maild.db", base / "raw", base)
        self.intake = Intake(Site.build(make_config(base)), MaildirSource(self.inbox),
                             self.store, lambda: NOW)

    def explain(self, raw: bytes) -> dict[str, object]:
        """``maild explain --json`` on the same database, as an administrator runs it."""
        config = self.base / "maild.toml"
        config.write_text(f'[database]\nurl = "sqlite://{self.base}/maild.db"\n'
                          + DIRECTORY_TOML, encoding="utf-8")
        eml = self.base / "mail.eml"
        eml.write_bytes(raw)
        p = subprocess.run([sys.executable, "-m", "maild", "explain", "-c", str(config),
                            str(eml), "--json"], capture_output=True, text=True, timeout=60)
        assert p.returncode == 0, p.stderr
        return json.loads(p.stdout)  # type: ignore[no-any-return]

    def folder(self, name: str) -> list[Path]:
        d = self.inbox / f".{name}" / "cur"
        return sorted(d.iterdir()) if d.is_dir() else []


@pytest.fixture
async def box(tmp_path: Path) -> AsyncIterator[Box]:
    b = Box(tmp_path)
    await b.store.open()
    try:
        yield b
    finally:
        b.intake.close()
        await b.store.close()


def relayed(raw: bytes) -> bytes:
    return b"Received: from relay.example.net by mx.example.test; Tue, 1 Dec 2026\r\n" + raw


async def test_a_relayed_copy_is_a_duplicate(box: Box, caplog: pytest.LogCaptureFixture
                                             ) -> None:
    raw = mail("王经理 <wang@huaxin.example.cn>", "询价：定制主板", msgid=MSGID)
    deliver(box.inbox, raw)
    await box.intake.poll()
    deliver(box.inbox, relayed(raw))  # one more Received: line: other bytes, same mail
    with caplog.at_level(logging.INFO, logger="maild.decision"):
        counters = await box.intake.poll()
    assert counters.duplicates == 1
    assert await Case.all().count() == 1
    assert await Outbox.filter(letter="ack").count() == 1
    first, again = await Message.filter(direction="in").order_by("uid")
    assert first.sha256 != again.sha256
    assert (first.state, again.state) == ("processed", "duplicate")
    assert again.reason == f"same Message-ID and sender as message #{first.id}"
    assert again.message_id == MSGID and again.case_id is None  # type: ignore[attr-defined]
    assert "duplicate of message" in caplog.text and MSGID in caplog.text
    assert len(box.folder("Processed")) == 2
    # maild explain says what the intake did with it
    explained = box.explain(relayed(raw))
    assert explained["outcome"] == "duplicate"
    assert explained["reason"] == f"same Message-ID and sender as message #{first.id}"
    other = box.explain(mail("li@other.example.org", "另一项询价", msgid=MSGID))
    assert other["outcome"] == "process"


async def test_copies_in_one_batch_and_case_of_the_address(box: Box) -> None:
    raw = mail("wang@huaxin.example.cn", "询价", msgid=MSGID)
    deliver(box.inbox, raw)
    deliver(box.inbox, relayed(raw.replace(b"wang@huaxin", b"WANG@huaxin")))
    counters = await box.intake.poll()
    assert (counters.processed, counters.duplicates) == (1, 1)
    assert await Case.all().count() == 1


async def test_the_same_message_id_from_another_sender_is_not_merged(
        box: Box, caplog: pytest.LogCaptureFixture) -> None:
    deliver(box.inbox, mail("wang@huaxin.example.cn", "询价：定制主板", msgid=MSGID))
    await box.intake.poll()
    # someone else reuses the known id: it must not suppress their (or a genuine) mail
    deliver(box.inbox, mail("li@other.example.org", "另一项询价", msgid=MSGID))
    with caplog.at_level(logging.WARNING, logger="maild.intake"):
        counters = await box.intake.poll()
    assert (counters.processed, counters.duplicates) == (2, 0)  # counted since the start
    first, second = await Message.filter(direction="in").order_by("uid")
    assert second.state == "processed"
    assert second.reason and f"#{first.id}" in second.reason
    assert "already used by message" in caplog.text
    assert await Case.all().count() == 2
    [note] = await TimelineEntry.filter(kind="msgid_collision")
    assert note.case_id == second.case_id  # type: ignore[attr-defined]


async def test_a_quarantined_earlier_copy_does_not_make_a_duplicate(box: Box) -> None:
    deliver(box.inbox, mail("wang@huaxin.example.cn", "询价", msgid=MSGID))
    await box.intake.poll()
    await Message.filter(direction="in").update(state="quarantined")
    deliver(box.inbox, relayed(mail("wang@huaxin.example.cn", "询价", msgid=MSGID)))
    counters = await box.intake.poll()
    assert (counters.processed, counters.duplicates) == (2, 0)  # counted since the start
