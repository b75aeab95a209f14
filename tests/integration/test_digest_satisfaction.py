"""Satisfaction in the weekly digest: the customer's survey answer, read through the real
intake into SQLite and PostgreSQL, averaged per period and scoped like the rest."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest
from flows import INQUIRY, SOLUTION
from sim import PROCESS_DIRECTORY
from support import mail, open_store, with_security
from timing import sh

from maild.adapters.sources.maildir import MaildirSource, deliver
from maild.config import parse_config
from maild.runners.intake import Intake
from maild.runners.sweeper import Sweeper
from maild.site import Site
from maild.store.models import Case, TimelineEntry

MANAGERS = """
[[directory.managers]]
name = "刘经理"
address = "liu@corp.example.test"
departments = ["市场部"]

[[directory.managers]]
name = "赵工"
address = "zhaogong@corp.example.test"
departments = ["技术部"]
"""
CUSTOMERS = (("王经理 <wang@huaxin.example.cn>", "定制工控主板询价"),
             ("李总 <li@huaxin.example.cn>", "边缘网关定制"),
             ("陈工 <chen@huaxin.example.cn>", "传感器模组询价"))


class Desk:
    def __init__(self, site: Site, intake: Intake, inbox: Path, store: object) -> None:
        self.site, self.intake, self.inbox = site, intake, inbox
        self.clock = sh("2026-11-30 10:00")
        self.sweeper = Sweeper(site, store)  # type: ignore[arg-type]

    async def send(self, sender: str, subject: str, body: str) -> None:
        deliver(self.inbox, mail(sender, subject, body))
        self.clock += timedelta(minutes=5)
        await self.intake.poll()

    async def to_aftersales(self, sender: str, subject: str) -> Case:
        await self.send(sender, subject, INQUIRY)
        case = await Case.filter(subject=subject).get()
        re = f"Re: [{case.number}] {subject}"
        addr = sender.split("<")[1].rstrip(">")
        for who, body in (("ma@corp.example.test", SOLUTION), (addr, "确认。"),
                          ("sun@corp.example.test", "#确认 条款无误"),
                          ("ma@corp.example.test", "#advance\n合同已签订"),
                          ("ma@corp.example.test", "#advance")):
            await self.send(who, re, body)
        case = await Case.get(id=case.id)
        assert case.step == "aftersales", (case.number, case.step)
        return case


@pytest.fixture(params=["sqlite", "postgres"])
async def desk(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Desk]:
    async with open_store(request.param, tmp_path) as store:
        cfg = parse_config(with_security(PROCESS_DIRECTORY + MANAGERS), "sat.toml",
                           str(tmp_path))
        site = Site.build(cfg)
        inbox = tmp_path / "mail"
        holder: list[Desk] = []
        intake = Intake(site, MaildirSource(inbox), store, lambda: holder[0].clock)
        holder.append(Desk(site, intake, inbox, store))
        yield holder[0]


async def _answer(desk: Desk, case: Case, sender: str, body: str) -> None:
    await desk.send(sender, f"Re: [{case.number}] {case.subject}", body)


async def test_the_digest_averages_the_periods_scores_and_lists_the_low_ones(
        desk: Desk) -> None:
    cases = [await desk.to_aftersales(s, subj) for s, subj in CUSTOMERS]
    answers = ("确认，非常满意，打5分。", "交付晚了两周，不满意，只能给2分。", "收到，谢谢。")
    for case, (sender, _), body in zip(cases, CUSTOMERS, answers, strict=True):
        await _answer(desk, case, sender, body + "\n\n> 1. 总体满意度（1-5 分）：")
    stored = {c.number: c.data["satisfaction"] for c in await Case.filter(process="customer")}
    assert [stored[c.number]["score"] for c in cases] == [5, 2, None]
    notes = [n.text for n in await TimelineEntry.filter(kind="satisfaction").order_by("id")]
    assert notes[0].startswith("满意度：5/5") and notes[1].startswith("满意度：2/5")
    assert notes[2] == "满意度：未能识别评分，回复中没有评分"

    monday = sh("2026-12-07 09:00")  # the period 11-30 – 12-06 holds the three answers
    liu = (await desk.sweeper.digest_context(monday, ("市场部",), "刘经理"))["satisfaction"]
    assert (liu["answers"], liu["scored"], liu["unsure"], liu["average"]) == (3, 2, 1, "3.5")
    [low] = liu["low"]
    assert (low["number"], low["score"], low["party"]) == (cases[1].number, 2, "华信集团")
    # 技术部 has none of these customers: no answers in its scope
    tech = (await desk.sweeper.digest_context(monday, ("技术部",), "赵工"))["satisfaction"]
    assert tech["answers"] == 0 and tech["average"] == ""
    # the next period has no answers
    later = (await desk.sweeper.digest_context(sh("2026-12-14 09:00"), (), ""))["satisfaction"]
    assert later["answers"] == 0


async def test_the_digest_letter_shows_the_section(desk: Desk) -> None:
    [(sender, subject)] = CUSTOMERS[1:2]
    case = await desk.to_aftersales(sender, subject)
    await _answer(desk, case, sender, "1. 总体满意度（1-5 分）：1\n2. 交付质量：差")
    ctx = await desk.sweeper.digest_context(sh("2026-12-07 09:00"), (), "陈总")
    text = desk.site.letters.render("digest", "zh", ctx)
    body = str(text)
    assert "八、客户满意度（本期回复 1 份）" in body
    assert "平均 1.0 / 5" in body and f"低分 1/5  {case.number}" in body
