"""Attachments: stored once by content beside the raw store, linked to cases as outputs."""

from __future__ import annotations

import os
from datetime import datetime
from pathlib import Path

import pytest
from deciding import Deciding
from support import NOW, mail

from maild.store import Store
from maild.store.attachments import ContentStore, safe_name
from maild.store.models import Attachment, TimelineEntry

SITE = """
[limits]
max_attachment_bytes = 1000
[[directory.departments]]
name = "采购部"
short = "采"
head = "zhou@corp.example.test"
"""
INTENT = "供应商：sales@hengda.example.cn\n合作范围：铝合金外壳 500 件\n"


class Feeder(Deciding):
    """The shared test site with a 采购部 and a 1000-byte attachment limit."""

    def __init__(self, store: Store, base: Path) -> None:
        super().__init__(store, base, extra=SITE)

    async def number(self, raw: bytes, now: datetime = NOW) -> str | None:
        return (await self.feed(raw, now))[1]


async def test_attachments_are_stored_once_and_linked_as_outputs(store: Store,
                                                                  tmp_path: Path) -> None:
    f = Feeder(store, tmp_path)
    number = await f.number(mail("zhou@corp.example.test", "[供应商] 外壳采购", INTENT))
    quote = b"%PDF-1.4 quote " * 10
    licence = b"%PDF-1.4 licence"
    reply = mail("sales@hengda.example.cn", f"Re: [{number}] 外壳采购", "附上资质和报价。",
                 attachments=(("报价单.pdf", quote), ("../../营业执照.pdf", licence)))
    assert await f.number(reply) == number
    again = mail("sales@hengda.example.cn", f"Re: [{number}] 外壳采购", "再发一次报价。",
                 attachments=(("报价单(1).pdf", quote),))
    await f.number(again)
    rows = await Attachment.filter(case__number=number).order_by("id")
    assert [(a.filename, a.output, a.size) for a in rows] == [
        ("报价单.pdf", "供应商资质文件及报价", len(quote)),
        ("营业执照.pdf", "供应商资质文件及报价", len(licence))]
    root = tmp_path / "attachments"  # beside the raw store (tmp_path / "raw")
    files = sorted(p for p in root.rglob("*") if p.is_file())
    assert len(files) == 2
    assert (root / rows[0].path).read_bytes() == quote
    shown = await store.case(number)  # type: ignore[arg-type]
    assert [a["filename"] for a in shown["attachments"]] == ["报价单.pdf", "营业执照.pdf"]
    kinds = [t.kind for t in await TimelineEntry.filter(case__number=number)]
    assert kinds.count("attachment") == 2


async def test_an_attachment_over_the_limit_is_not_kept_and_the_case_says_so(
        store: Store, tmp_path: Path) -> None:
    f = Feeder(store, tmp_path)
    number = await f.number(mail("zhou@corp.example.test", "[供应商] 外壳采购", INTENT))
    await f.number(mail("sales@hengda.example.cn", f"Re: [{number}] 外壳采购", "大文件。",
                      attachments=(("图纸.dwg", b"x" * 5000),)))
    assert await Attachment.filter(case__number=number).count() == 0
    [note] = await TimelineEntry.filter(case__number=number, kind="attachment_refused")
    assert "图纸.dwg (5000 bytes) not kept" in note.text


@pytest.mark.parametrize("name, safe", [
    ("报价单.pdf", "报价单.pdf"),
    ("../../etc/passwd", "passwd"),
    ("C:\\Users\\x\\合同.docx", "合同.docx"),
    ('a<b>c:d"e|f?g*.txt', "a_b_c_d_e_f_g_.txt"),
    ("bad\x00name\r\n.pdf", "bad_name_.pdf"),
    ("   ", "attachment.bin"),
    ("..", "attachment.bin"),
    ("长" * 200 + ".pdf", "长" * 116 + ".pdf"),  # 120 characters in all
])
def test_safe_names(name: str, safe: str) -> None:
    assert safe_name(name) == safe


async def test_an_older_database_gets_the_owner_column(store: Store, tmp_path: Path) -> None:
    """A database made before cases had an owner (and before migrations) gets the column
    when it is upgraded (``maild.store.schema``)."""
    from tortoise import Tortoise

    db = Tortoise.get_connection(store.conn)
    await db.execute_script("ALTER TABLE cases DROP COLUMN owner")
    await db.execute_script("DROP TABLE tortoise_migrations")
    await db.execute_script("DROP INDEX idx_outbox_lease_o_a70e2f")  # 0002's: 0.1.0 had none
    await db.execute_script("DROP TABLE letter_counts")  # 0003's
    await store.close()
    assert await store.upgrade() == ["0002_outbox_lease_owner_index", "0003_letter_counts"]
    await store.open()  # again: nothing to do
    f = Feeder(store, tmp_path)
    number = await f.number(mail("zhou@corp.example.test", "[供应商] 外壳采购", INTENT))
    assert (await store.case(number))["owner"] == ["zhou@corp.example.test"]  # type: ignore


def test_raw_mail_is_flushed_to_disk_before_its_row_can_point_at_it(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    flushed: list[str] = []
    real_fsync = os.fsync

    def fsync(fd: int) -> None:
        flushed.append(os.readlink(f"/proc/self/fd/{fd}"))
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    store = ContentStore(tmp_path / "raw", ".eml")
    datas = [b"one", b"two", b"one"]  # the same bytes twice: one file
    kept = store.put_durably(datas)
    assert [store.get(rel) for _, rel in kept] == datas
    files = [str(store.path(rel)) for _, rel in kept[:2]]
    folders = {str(store.path(rel).parent) for _, rel in kept} | {str(tmp_path / "raw")}
    # each file's data before its rename (flushed under its temporary name), then each
    # folder whose entries changed, once
    assert len(flushed) == 2 + len(folders)
    assert all(".tmp" in f for f in flushed[:2])
    assert sorted(flushed[2:]) == sorted(folders)
    assert not any(p.name.count(".tmp") for p in (tmp_path / "raw").rglob("*"))
    assert all(Path(f).exists() for f in files)
    flushed.clear()
    store.put_durably([b"one"])  # already kept: nothing to write or flush
    assert flushed == []
