"""The digest's scope and its day: customer and supplier cases count for their owner's
(contact's) department, and the weekly digest moves off statutory holidays."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path

import pytest
from flows import INQUIRY, INTENT, REQUEST_FORM
from sim import PROCESS_DIRECTORY
from support import mail, open_store, with_security
from timing import Desk, sh

from maild.adapters.sources.maildir import MaildirSource, deliver
from maild.config import parse_config
from maild.runners.intake import Intake
from maild.runners.sweeper import Sweeper
from maild.site import Site
from maild.store.models import Case, DigestSent

MANAGERS = """
[[directory.managers]]
name = "刘经理"
address = "liu@corp.example.test"
departments = ["采购部", "市场部"]

[[directory.managers]]
name = "赵工"
address = "zhaogong@corp.example.test"
departments = ["技术部"]
"""
NOW = sh("2026-12-03 09:00")


@pytest.fixture(params=["sqlite", "postgres"])
async def sweeper(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Sweeper]:
    async with open_store(request.param, tmp_path) as store:
        cfg = parse_config(with_security(PROCESS_DIRECTORY + MANAGERS), "scope.toml",
                           str(tmp_path))
        site = Site.build(cfg)
        clock: list[datetime] = [sh("2026-12-01 10:00")]
        inbox = tmp_path / "mail"
        intake = Intake(site, MaildirSource(inbox), store, lambda: clock[0])
        for sender, subject, body in (
                ("吴采购 <wu@corp.example.test>", "[供应商] 铝合金外壳采购", INTENT),
                ("王经理 <wang@huaxin.example.cn>", "定制工控主板询价", INQUIRY),
                ("王芳 <wang@corp.example.test>", "[跨部门][技术部] 新品推广技术支持",
                 REQUEST_FORM)):
            deliver(inbox, mail(sender, subject, body))
            await intake.poll()
        yield Sweeper(site, store)


async def test_a_manager_of_purchasing_and_marketing_sees_their_buyers_cases(
        sweeper: Sweeper) -> None:
    cases = {c.process: c for c in await Case.all()}
    assert set(cases) == {"supplier", "customer", "internal"}
    assert cases["supplier"].department is None and cases["customer"].department is None
    assert cases["customer"].data["contact"] == "ma@corp.example.test"  # 市场部
    await sweeper.timers(sh("2026-12-08 18:00"))  # the supplier is chased
    liu = await sweeper.digest_context(NOW, ("采购部", "市场部"), "刘经理")
    assert liu["kpi"]["open"] == 2  # the supplier (buyer in 采购部) and the customer (市场部)
    assert [p["label"] for p in liu["processes"]] == ["外部客户对接", "外部供应商协同"]
    later = await sweeper.digest_context(sh("2026-12-14 09:00"), ("采购部",), "刘经理")
    [row] = later["delays"]
    assert (row["number"], row["step"]) == (cases["supplier"].number, "报价及资质文件")
    tech = await sweeper.digest_context(NOW, ("技术部",), "赵工")
    assert tech["kpi"]["open"] == 1  # only the internal request to 技术部
    assert tech["delays"] == [] and (await sweeper.digest_context(
        sh("2026-12-14 09:00"), ("技术部",), ""))["delays"] == []
    everyone = await sweeper.digest_context(NOW, (), "陈总")
    assert everyone["kpi"]["open"] == 3


async def test_reassigning_the_contact_moves_the_case_between_scopes(sweeper: Sweeper) -> None:
    case = await Case.get(process="customer")
    case.data = {**case.data, "contact": "li@corp.example.test"}  # now 技术部's
    await case.save(update_fields=["data"])
    assert (await sweeper.digest_context(NOW, ("市场部",), ""))["kpi"]["open"] == 0
    assert (await sweeper.digest_context(NOW, ("技术部",), ""))["kpi"]["open"] == 2


# -- the digest's day ----------------------------------------------------------------------

HOLIDAY = sh("2026-10-05 09:00")  # Monday of the National Day week
AFTER = sh("2026-10-08 09:00")  # Thursday: the first working day after it


@pytest.mark.parametrize(("on_holiday", "sent_on_monday", "sent_on_thursday"), [
    ("next_working_day", 0, 2), ("skip", 0, 0), ("send", 2, 0)])
async def test_the_digest_moves_off_a_statutory_holiday(tmp_path: Path, on_holiday: str,
                                                        sent_on_monday: int,
                                                        sent_on_thursday: int) -> None:
    extra = f'\n[digest]\non_holiday = "{on_holiday}"\n'
    async with open_store("sqlite", tmp_path) as store:
        desk = Desk(store, tmp_path, extra)
        cal = desk.calendar
        assert not cal.is_working_day(HOLIDAY.date()) and cal.is_working_day(AFTER.date())
        assert await desk.sweeper.digest(HOLIDAY) == sent_on_monday
        assert await desk.sweeper.digest(sh("2026-10-07 09:00")) == 0
        assert await desk.sweeper.digest(sh("2026-10-08 08:59")) == 0
        assert await desk.sweeper.digest(AFTER) == sent_on_thursday
        assert await desk.sweeper.digest(sh("2026-10-08 12:00")) == 0  # once a week
        weeks = {d.week for d in await DigestSent.all()}
        assert weeks == ({"2026-W41"} if sent_on_monday or sent_on_thursday else set())
        # an ordinary Monday is untouched by the setting
        assert await desk.sweeper.digest(sh("2026-10-12 09:00")) == 2
