"""``Inbox.same_message_id`` on SQLite and PostgreSQL: an inbound mail decided before with
the same Message-ID, from the same sender (a copy) or from others (a collision)."""

from __future__ import annotations

from pathlib import Path

from deciding import Deciding
from support import NOW, mail

from maild.adapters.sources.base import Fetched
from maild.mail.parse import parse_mail
from maild.store import Store

MSGID = "<dup-1@huaxin.example.cn>"


async def test_same_message_id_tells_copies_from_collisions(store: Store,
                                                            tmp_path: Path) -> None:
    d = Deciding(store, tmp_path)
    first, _ = await d.feed(mail("Wang@huaxin.example.cn", "询价", msgid=MSGID))
    other, _ = await d.feed(mail("li@other.example.org", "另一封", msgid=MSGID))
    raw = mail("wang@huaxin.example.cn", "询价", msgid=MSGID)
    [row] = await store.record_fetched("test", 1, store.keep_raw([Fetched(99, raw)]), NOW)
    assert await store.same_message_id(parse_mail(raw), row.id) == (first.id, [other.id])
    stranger = mail("x@else.example.org", "询价", msgid=MSGID)
    assert await store.same_message_id(parse_mail(stranger), row.id) == (None, [first.id,
                                                                              other.id])
    fresh = mail("wang@huaxin.example.cn", "询价", msgid="<new@huaxin.example.cn>")
    assert await store.same_message_id(parse_mail(fresh), row.id) == (None, [])
    await store.finish_copy(row, parse_mail(raw), first.id, "Processed")
    await row.refresh_from_db()
    assert (row.state, row.message_id) == ("duplicate", MSGID)
    # a duplicate row is not itself taken for the first copy
    assert await store.same_message_id(parse_mail(raw), row.id) == (first.id, [other.id])
