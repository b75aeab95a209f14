"""Letters that did not arrive are listed in the weekly digest (SQLite and PostgreSQL): an
address a delivery report marked on its case, a letter the sender gave up, a letter held
because its address bounced; scoped to the manager's departments like the rest."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from support import open_store
from timing import Desk, sh
from tortoise.transactions import in_transaction

from maild.adapters.letters import Letters
from maild.engine.bounce import bounce_decision
from maild.engine.effects import SendLetter
from maild.mail.dsn import Dsn, Recipient
from maild.store.models import Case, Outbox

DIGEST_AT = sh("2026-12-07 09:00")
CUSTOMER = "buyer@huaxin.example.cn"


@pytest.fixture(params=["sqlite", "postgres"])
async def desk(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Desk]:
    async with open_store(request.param, tmp_path) as store:
        yield Desk(store, tmp_path)


async def bounce(desk: Desk, number: str, addr: str, status: str, at: datetime) -> None:
    view = await desk.store.case_view(number)
    assert view is not None
    dsn = Dsn("<gone@example.test>", (Recipient(addr, "failed", status, "User unknown"),),
              True)
    decision = bounce_decision(view, dsn, "mailer-daemon@mx.example.cn",
                               desk.sweeper.site.context(at))
    assert decision is not None
    await desk.decide(number, decision.effects, at)


async def test_bounced_given_up_and_held_letters_are_listed(desk: Desk) -> None:
    tech = await desk.open(sh("2026-12-02 10:00"), subject="讲解支持")
    market = await desk.open(sh("2026-12-02 10:00"), department="市场部", subject="年度预算")
    old = await desk.open(sh("2026-11-20 10:00"), subject="上月的事")
    await bounce(desk, tech, CUSTOMER, "5.1.1", sh("2026-12-03 14:05"))
    await bounce(desk, old, "old@huaxin.example.cn", "5.1.1", sh("2026-11-21 10:00"))
    # a letter to the bounced address is held ...
    env = desk.sweeper.apply_env(sh("2026-12-04 09:30").astimezone(UTC))
    case = await Case.get(number=tech)
    async with in_transaction(desk.store.conn):
        await desk.store.enqueue(SendLetter("case_closed", (CUSTOMER,),
                                            Letters().sample("case_closed"), "zh", automatic=False),
                                 case, env)
    assert await Outbox.filter(state="held").count() == 1
    # ... and one of the 市场部 case's letters is refused for good by the server
    async with in_transaction(desk.store.conn):
        await desk.store.enqueue(SendLetter("case_closed", ("nobody@example.org",),
                                            Letters().sample("case_closed"), "zh", automatic=False),
                                 await Case.get(number=market), env)
    now = sh("2026-12-05 11:00").astimezone(UTC)
    outs = [o for o in await desk.store.claim(now, 10, timedelta(minutes=5))
            if "nobody@example.org" in o.rcpt]
    assert outs
    for o in outs:
        assert await desk.store.failed(o, now, "550 5.1.1 <nobody@example.org>: no such user",
                                       permanent=True)

    ctx = await desk.sweeper.digest_context(DIGEST_AT, (), "陈总")
    rows = {(b["number"], b["address"]): b for b in ctx["bounces"]}
    # the marked address and the letter held for it are both the tech case's
    assert set(rows) == {(tech, CUSTOMER), (market, "nobody@example.org")}
    statuses = sorted(b["status"] for b in ctx["bounces"])
    assert len(ctx["bounces"]) == 3 and ctx["bounces_more"] == 0
    assert any(s == "退信 5.1.1" for s in statuses)
    assert any(s.startswith("投递失败，已放弃 550 5.1.1") for s in statuses)
    assert any(s.startswith("暂停发送") for s in statuses)
    assert all(old != b["number"] for b in ctx["bounces"])  # before the period
    assert ctx["bounces"][0]["when"] == "12-05 11:00"  # newest first, in the calendar's zone

    r = Letters().render("digest", "zh", ctx)
    assert "七、退信与未送达（3）" in r.text and CUSTOMER in r.text and tech in r.html
    en = Letters().render("digest", "en", ctx)
    assert "Bounced and undelivered letters (3)" in en.text

    # a manager of 市场部 sees only that department's
    scoped = await desk.sweeper.digest_context(DIGEST_AT, ("市场部",), "刘经理")
    assert [(b["number"], b["address"]) for b in scoped["bounces"]] == [
        (market, "nobody@example.org")]


async def test_the_list_is_limited_and_absent_when_empty(desk: Desk) -> None:
    ctx = await desk.sweeper.digest_context(DIGEST_AT, (), "")
    assert ctx["bounces"] == [] and ctx["bounces_more"] == 0
    assert "退信与未送达" not in Letters().render("digest", "zh", ctx).text
    numbers = [await desk.open(sh("2026-12-02 10:00"), subject=f"事项 {i}") for i in range(12)]
    for i, n in enumerate(numbers):
        await bounce(desk, n, f"a{i}@huaxin.example.cn", "5.1.1",
                     sh("2026-12-03 10:00") + timedelta(minutes=i))
    ctx = await desk.sweeper.digest_context(DIGEST_AT, (), "")
    limit = desk.cfg.digest.list_limit
    assert len(ctx["bounces"]) == limit and ctx["bounces_more"] == 12 - limit
    assert ctx["bounces"][0]["address"] == "a11@huaxin.example.cn"
