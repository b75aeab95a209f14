"""The weekly digest: when it is due, its content (goldens), once per week and manager."""

from __future__ import annotations

import asyncio
import email
import email.policy
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from digest_seed import DIGEST_AT, seed, seed_sqlite, write_config
from support import open_store
from timing import Desk, sh

from maild import config as cfgmod
from maild.adapters.letters import Letters
from maild.engine.effects import CancelTimers
from maild.schedule.digest import Schedule, period
from maild.store.models import DigestSent, Outbox

GOLDEN = Path(__file__).resolve().parents[1] / "golden" / "digest"
UPDATE = os.environ.get("MAILD_UPDATE_GOLDENS") == "1"
SH = ZoneInfo("Asia/Shanghai")
CHEN = "chen@corp.example.test"  # every department
LIU = "liu@corp.example.test"  # 市场部 only


def golden(name: str, text: str) -> None:
    path = GOLDEN / name
    if UPDATE:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    assert path.exists(), f"{path} missing: run with MAILD_UPDATE_GOLDENS=1 and review it"
    assert text == path.read_text(encoding="utf-8"), f"{name} differs from its golden"


@pytest.fixture(params=["sqlite", "postgres"])
async def desk(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Desk]:
    async with open_store(request.param, tmp_path) as store:
        yield Desk(store, tmp_path)


@pytest.fixture
async def seeded(desk: Desk) -> Desk:
    await seed(desk)
    return desk


# -- when ----------------------------------------------------------------------------------

@pytest.mark.parametrize(("now", "week"), [
    ("2026-12-07 08:59", None),  # Monday, before 09:00; last week's slot is a week old
    ("2026-12-07 09:00", "2026-W50"),
    ("2026-12-07 17:00", "2026-W50"),
    ("2026-12-08 08:59", "2026-W50"),  # still within the 24 h catch-up window
    ("2026-12-08 09:00", None),
    ("2026-12-11 12:00", None),
    ("2027-01-04 09:00", "2027-W01"),
    ("2026-12-28 09:30", "2026-W53"),  # ISO 2026 has 53 weeks
])
def test_when_the_digest_is_due(now: str, week: str | None) -> None:
    schedule = Schedule.from_config(cfgmod.DigestConfig(), "Asia/Shanghai")
    assert schedule.due_week(sh(now)) == week


def test_the_schedule_is_configurable() -> None:
    d = cfgmod.DigestConfig(weekday="fri", time="17:30", catch_up_hours=2)
    schedule = Schedule.from_config(d, "Asia/Shanghai")
    assert schedule.last_slot(sh("2026-12-07 09:00")) == sh("2026-12-04 17:30")
    assert schedule.due_week(sh("2026-12-04 19:29")) == "2026-W49"
    assert schedule.due_week(sh("2026-12-04 19:30")) is None


def test_the_period_is_the_seven_days_before_today() -> None:
    p = period(DIGEST_AT, SH)
    assert (p.start, p.end, p.ahead) == (sh("2026-11-30 00:00"), sh("2026-12-07 00:00"),
                                         sh("2026-12-14 00:00"))
    assert p.coming == (sh("2026-12-07 00:00").date(), sh("2026-12-14 00:00").date())
    midweek = period(sh("2026-12-09 15:00"), SH)
    assert midweek.days[0].isoformat() == "2026-12-02"


# -- what: goldens for the seeded fortnight ------------------------------------------------

async def test_digest_content_for_every_department(seeded: Desk) -> None:
    ctx = await seeded.sweeper.digest_context(DIGEST_AT, (), "陈总")
    r = Letters().render("digest", "zh", ctx)
    golden("chen.zh.txt", f"Subject: {r.subject}\n\n{r.text}")
    golden("chen.zh.html", r.html)
    assert ctx["kpi"] == {"open": 19, "waiting": 1, "opened": 23, "closed": 7, "overdue": 2,
                          "at_risk": 1, "delays": 2}


async def test_digest_content_scoped_to_a_managers_departments(seeded: Desk) -> None:
    ctx = await seeded.sweeper.digest_context(DIGEST_AT, ("市场部",), "刘经理")
    r = Letters().render("digest", "zh", ctx)
    golden("liu.zh.txt", f"Subject: {r.subject}\n\n{r.text}")
    assert ctx["scope"] == "市场部"
    assert {d["number"] for d in ctx["at_risk"]} == {"2026-市-005"}
    assert ctx["overdue"] == [] and ctx["delays"] == []


async def test_digest_in_english(tmp_path: Path) -> None:
    async with open_store("sqlite", tmp_path) as store:
        desk = Desk(store, tmp_path, '\n[digest]\nlanguage = "en"\n')
        await seed(desk)
        ctx = await desk.sweeper.digest_context(DIGEST_AT, (), "Chen")
        r = Letters().render("digest", "en", ctx)
        golden("chen.en.txt", f"Subject: {r.subject}\n\n{r.text}")


async def test_the_digest_mail_is_self_contained(seeded: Desk) -> None:
    assert await seeded.sweeper.digest(DIGEST_AT) == 2
    mails = [email.message_from_bytes(bytes(o.body), policy=email.policy.default)
             for o in await Outbox.filter(letter="digest").order_by("id")]
    assert sorted(m["To"] for m in mails) == [CHEN, LIU]
    for m in mails:
        html = m.get_body(("html",)).get_content()  # type: ignore[union-attr]
        text = m.get_body(("plain",)).get_content()  # type: ignore[union-attr]
        assert "<script" not in html.lower() and "<img" not in html.lower()
        assert "http://" not in html and "https://" not in html and "url(" not in html
        assert "管理周报" in str(m["Subject"]) and "本期新增" in text and m["Auto-Submitted"]
        assert m["X-Maild-Case"] is None


async def test_done_items_and_answered_suppliers_leave_the_digest(seeded: Desk) -> None:
    before = await seeded.sweeper.digest_context(DIGEST_AT, (), "")
    # the action item due Tuesday was reminded last week; it is done now
    await seeded.decide("2026-技-007", (CancelTimers(("action_reminder",), key="a1"),),
                        DIGEST_AT)
    # the fully escalated supplier finally answered: the chase is retired
    await seeded.decide("2026-供-001", (CancelTimers(("chase",), key="quote"),), DIGEST_AT)
    after = await seeded.sweeper.digest_context(DIGEST_AT, (), "")
    assert before["actions_more"] == after["actions_more"] == 0
    assert [a["number"] for a in before["actions"]] == ["2026-技-007", "2026-市-001",
                                                       "2026-市-001"]
    assert [a["number"] for a in after["actions"]] == ["2026-市-001", "2026-市-001"]
    assert [d["number"] for d in after["delays"]] == ["2026-供-002"]
    assert after["kpi"]["delays"] == before["kpi"]["delays"] - 1


# -- once per week and manager ---------------------------------------------------------------

async def test_sent_once_per_week_and_manager(desk: Desk) -> None:
    assert await desk.sweeper.digest(DIGEST_AT - timedelta(minutes=1)) == 0
    assert await desk.sweeper.digest(DIGEST_AT) == 2
    for later in (timedelta(0), timedelta(minutes=1), timedelta(hours=6)):
        assert await desk.sweeper.digest(DIGEST_AT + later) == 0
    assert await desk.sweeper.digest(DIGEST_AT + timedelta(days=7)) == 2
    keys = sorted(await DigestSent.all().values_list("key", flat=True))
    assert keys == [f"2026-W50 {CHEN}", f"2026-W50 {LIU}", f"2026-W51 {CHEN}",
                    f"2026-W51 {LIU}"]
    assert await Outbox.filter(letter="digest").count() == 4


async def test_sent_once_across_a_restart(tmp_path: Path) -> None:
    for _ in range(2):
        async with open_store("sqlite", tmp_path) as store:
            await Desk(store, tmp_path).sweeper.digest(DIGEST_AT + timedelta(minutes=5))
    async with open_store("sqlite", tmp_path) as store:
        assert await Outbox.filter(letter="digest").count() == 2


async def test_several_daemons_send_it_once(desk: Desk) -> None:
    results = await asyncio.gather(*(desk.sweeper.digest(DIGEST_AT) for _ in range(4)))
    assert sum(results) == 2
    assert await Outbox.filter(letter="digest").count() == 2


async def test_a_daemon_down_at_09_catches_up_within_the_window(tmp_path: Path) -> None:
    async with open_store("sqlite", tmp_path) as store:
        desk = Desk(store, tmp_path)
        assert await desk.sweeper.digest(sh("2026-12-08 09:30")) == 0  # too late: skipped
        assert await desk.sweeper.digest(sh("2026-12-08 08:30")) == 2  # (clock order aside)


async def test_disabled_or_without_managers_nothing_is_sent(tmp_path: Path) -> None:
    async with open_store("sqlite", tmp_path) as store:
        desk = Desk(store, tmp_path, "\n[digest]\nenabled = false\n")
        assert await desk.sweeper.digest(DIGEST_AT) == 0
        assert await Outbox.all().count() == 0


# -- the command line ------------------------------------------------------------------------

def maild(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "maild", *args], capture_output=True,
                          text=True, timeout=120, cwd=cwd)


def sent_letters(base: Path) -> list[email.message.EmailMessage]:
    new = base / "sent" / "new"
    return [email.message_from_bytes(f.read_bytes(), policy=email.policy.default)  # type: ignore[misc]
            for f in sorted(new.iterdir())] if new.exists() else []


def test_cli_preview_print_and_send(tmp_path: Path) -> None:
    asyncio.run(seed_sqlite(tmp_path))
    cfg = write_config(tmp_path)
    now = "2026-12-07T09:00+08:00"
    p = maild("digest", "-c", str(cfg), "--preview", "out.html", "--now", now, cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    assert "wrote out.html (陈总 <chen@corp.example.test>)" in p.stdout
    html = (tmp_path / "out.html").read_text(encoding="utf-8")
    assert "管理周报" in html and "2026-W50" in html
    p = maild("digest", "-c", str(cfg), "--manager", LIU, "--now", now, cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    assert p.stdout.startswith(f"To: 刘经理 <{LIU}>\nSubject: 管理周报 2026-W50")
    assert sent_letters(tmp_path) == []  # printing and previewing send nothing
    p = maild("digest", "-c", str(cfg), "--send", "--now", now, cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    assert "queued 2 digest(s)" in p.stdout  # the outbox is sent too, reminders and all
    digests = [m for m in sent_letters(tmp_path) if "管理周报" in str(m["Subject"])]
    assert sorted(m["To"] for m in digests) == [CHEN, LIU]


def test_run_once_at_monday_nine_sends_the_digest_once(tmp_path: Path) -> None:
    asyncio.run(seed_sqlite(tmp_path))
    cfg = write_config(tmp_path)
    for _ in range(2):
        p = maild("run", "-c", str(cfg), "--once", "--now", "2026-12-07T09:05+08:00",
                  cwd=tmp_path)
        assert p.returncode == 0, p.stderr
    digests = [m for m in sent_letters(tmp_path) if "管理周报" in str(m["Subject"])]
    assert sorted(m["To"] for m in digests) == [CHEN, LIU]
    assert "digests=2" in p.stderr or "digests=0" in p.stderr


def test_run_once_fires_due_timers(tmp_path: Path) -> None:
    asyncio.run(seed_sqlite(tmp_path))  # seeded up to Monday 09:00
    cfg = write_config(tmp_path, '\n[digest]\nenabled = false\n')
    # Monday 11:00: the urgent request reaches its head (2 working hours after Friday
    # 18:00) and the budget request, due now, reminds its owner
    p = maild("run", "-c", str(cfg), "--once", "--now", "2026-12-07T11:00+08:00",
              cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    assert "timers_fired=2" in p.stderr
    letters = sent_letters(tmp_path)
    [escalation] = [m for m in letters if "逾期上报：展会样机调试协助" in str(m["Subject"])]
    assert escalation["To"] == "zhang@corp.example.test"
    [reminder] = [m for m in letters if "到期提醒：年度预算数据核对" in str(m["Subject"])]
    assert reminder["To"] == "wang@corp.example.test"
    p = maild("run", "-c", str(cfg), "--once", "--now", "2026-12-07T11:00+08:00",
              cwd=tmp_path)
    assert "timers_fired=0" in p.stderr


def test_start_up_warns_about_years_without_holiday_data(tmp_path: Path) -> None:
    cfg = write_config(tmp_path)
    p = maild("run", "-c", str(cfg), "--once", "--now", "2027-03-01T10:00+08:00",
              cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    assert "WARNING maild.daemon calendar: no official holiday data for 2027" in p.stderr
    assert "no official holiday data for 2028" in p.stderr
