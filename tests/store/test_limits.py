"""Hourly limits per recipient (``maild.store.limits``): staff notices over the limit are
folded into one summary letter, automatic replies to outsiders over theirs are dropped, and
the count lives in the database (SQLite and PostgreSQL)."""

from __future__ import annotations

import email
import email.policy
import os
from datetime import timedelta
from pathlib import Path

import pytest
from deciding import Deciding
from support import NOW, mail, make_config
from timing import Desk, sh
from tortoise.transactions import in_transaction

from maild.adapters.letters import Letters
from maild.engine.effects import SendLetter, SetTimer
from maild.site import Site
from maild.store import ApplyEnv, Store
from maild.store.limits import SUMMARY, Budget, flush, summary_context
from maild.store.models import Case, LetterCount, Outbox, TimelineEntry

BOSS = "boss@corp.example.test"
EXTRA = f"""
[[directory.managers]]
name = "陈总"
address = "{BOSS}"

[limits]
notices_per_staff_per_hour = 5
replies_per_sender_per_hour = 2
"""


def body(row: Outbox) -> str:
    m = email.message_from_bytes(bytes(row.body), policy=email.policy.default)
    return m.get_body(("plain",)).get_content()  # type: ignore[union-attr]


async def to(addr: str, letter: str | None = None) -> list[Outbox]:
    rows = [r for r in await Outbox.all().order_by("id") if addr in r.rcpt]
    return [r for r in rows if letter is None or r.letter == letter]


async def test_staff_notices_over_the_limit_are_folded_into_one_summary(
        store: Store, tmp_path: Path) -> None:
    d = Deciding(store, tmp_path, extra=EXTRA)
    numbers = []
    async with in_transaction(store.conn):  # one commit group, as the intake decides them
        for i in range(12):
            _, number = await d.feed(mail(f"stranger{i}@outside{i}.example.org", f"询价 {i}"))
            numbers.append(number)
    assert len(await to(BOSS, "new_case_notice")) == 5
    # every stranger got an acknowledgement: outsiders have their own limit
    assert len(await Outbox.filter(letter="ack")) == 12
    folded = await TimelineEntry.filter(kind="folded").prefetch_related("case")
    assert sorted(t.case.number for t in folded) == sorted(numbers[5:])
    assert all(BOSS in t.text for t in folded)
    assert await LetterCount.filter(state="folded", addr=BOSS).count() == 7

    env = d.intake.apply_env(NOW)
    assert await flush(store, env) == 1
    [summary] = await to(BOSS, "notice_summary")
    text = body(summary)
    for number in numbers[5:]:
        assert number in text
    for number in numbers[:5]:
        assert number not in text  # those went out as notices of their own
    assert "另有 7 封" in text
    assert await LetterCount.filter(state="folded").count() == 0
    assert await LetterCount.filter(state="summarised", summary_id=summary.message_id
                                    ).count() == 7
    assert await TimelineEntry.filter(kind="summary").count() == 7

    # more in the same hour: folded, and no second summary within the hour
    _, late = await d.feed(mail("late@outside.example.org", "询价 晚"),
                           now=NOW + timedelta(minutes=10))
    assert await flush(store, d.intake.apply_env(NOW + timedelta(minutes=10))) == 0
    assert await LetterCount.filter(state="folded").count() == 1
    # an hour after the summary the next one goes out, with what waited
    assert await flush(store, d.intake.apply_env(NOW + timedelta(minutes=61))) == 1
    second = (await to(BOSS, "notice_summary"))[-1]
    assert late in body(second) and numbers[5] not in body(second)


async def test_a_new_hour_sends_notices_again(store: Store, tmp_path: Path) -> None:
    d = Deciding(store, tmp_path, extra=EXTRA)
    for i in range(6):
        await d.feed(mail(f"s{i}@outside{i}.example.org", f"询价 {i}"))
    assert len(await to(BOSS, "new_case_notice")) == 5
    await d.feed(mail("next@outside.example.org", "询价"), now=NOW + timedelta(hours=1, seconds=1))
    assert len(await to(BOSS, "new_case_notice")) == 6


async def test_every_recipient_is_counted_however_the_letter_is_split(
        store: Store, tmp_path: Path) -> None:
    d = Deciding(store, tmp_path, extra=EXTRA)
    env = d.intake.apply_env(NOW)
    case = await Case.create(number="2026-客-900", process="customer", step="requirements",
                             subject="测试", opened_at=NOW, updated_at=NOW)
    other = "zhang@corp.example.test"
    letter = SendLetter("reply_notice", (BOSS,), {}, "zh", cc=(other,), automatic=False)
    budget = Budget(env)
    for _ in range(5):
        assert budget.admit(letter, case) == letter
        budget.count(letter, case)
    await budget.save()
    assert await LetterCount.filter(addr=other, state="sent").count() == 5
    fresh = await Budget.load(store.conn, [BOSS.upper(), other], env)
    assert fresh.notices == {BOSS: 5, other: 5}
    assert fresh.admit(letter, case) is None  # both over: folded for each
    await fresh.save()
    assert await LetterCount.filter(state="folded").count() == 2
    # one of them still has room: the letter goes to that one alone
    third = SendLetter("reply_notice", (BOSS, "li@corp.example.test"), {}, "zh",
                       automatic=False)
    kept = (await Budget.load(store.conn, third.to, env)).admit(third, case)
    assert kept is not None and kept.to == ("li@corp.example.test",)
    # the digest and replies to a person's own mail are counted but never folded
    for name, auto in (("digest", False), ("command_help", True)):
        kept = fresh.admit(SendLetter(name, (BOSS,), {}, "zh", automatic=auto), None)
        assert kept is not None


async def test_automatic_replies_to_outsiders_are_dropped_and_recorded(
        store: Store, tmp_path: Path) -> None:
    d = Deciding(store, tmp_path, extra=EXTRA)
    for i in range(4):
        await d.feed(mail("flood@outside.example.org", f"询价 {i}"))
    assert len(await to("flood@outside.example.org", "ack")) == 2
    limited = await TimelineEntry.filter(kind="rate_limited")
    assert len(limited) == 2 and all("flood@outside.example.org" in t.text for t in limited)
    assert await LetterCount.filter(state="dropped").count() == 2
    assert await flush(store, d.intake.apply_env(NOW)) == 0  # dropped is not folded


async def test_automatic_replies_to_a_staff_address_are_limited_too(
        store: Store, tmp_path: Path) -> None:
    """A forged From of staff asking for the blank form again and again: the staff member
    is not flooded from our address; the rest is dropped and said in the log and counts."""
    d = Deciding(store, tmp_path, extra=EXTRA)
    staff = "li@corp.example.test"
    for _ in range(4):
        await d.feed(mail(staff, "请发申请表模板", "", auth=None))
    assert len(await to(staff, "request_form")) == 2
    assert await LetterCount.filter(addr=staff, state="dropped").count() == 2


async def test_the_timer_sweep_folds_reminders_over_the_limit(store: Store,
                                                            tmp_path: Path) -> None:
    owner = "li@corp.example.test"
    desk = Desk(store, tmp_path, "\n[limits]\nnotices_per_staff_per_hour = 2\n")
    at = sh("2026-12-04 09:00")
    numbers = [await desk.open(sh("2026-12-01 10:00"), SetTimer(
        "action_reminder", at, key="a1", data={"action": f"准备材料 {i}", "owner": owner,
                                               "due": "2026-12-08", "support": ""}),
        subject=f"事项 {i}") for i in range(5)]
    counts = await desk.sweep(at)  # fires the five reminders, then writes the summary
    assert counts.fired == 5
    reminders = await to(owner, "action_reminder")
    assert len(reminders) == 2
    [summary] = await to(owner, "notice_summary")
    listed = [n for n in numbers if n in body(summary)]
    sent = {r.case_id for r in reminders}  # type: ignore[attr-defined]
    assert len(listed) == 3
    assert {c.id for c in await Case.filter(number__in=listed)}.isdisjoint(sent)
    assert await TimelineEntry.filter(kind="folded").count() == 3


GOLDEN = Path(__file__).resolve().parents[1] / "golden"


@pytest.mark.parametrize("language", ["zh", "en"])
def test_the_summary_letter_matches_its_golden(language: str) -> None:
    """Like ``tests/unit/test_letters_golden.py``: regenerate with MAILD_REGEN_GOLDEN=1."""
    letters = Letters()
    r = letters.render(SUMMARY, language, letters.sample(SUMMARY))
    for path, text in ((GOLDEN / f"{SUMMARY}.{language}.txt", f"Subject: {r.subject}\n\n{r.text}"),
                       (GOLDEN / f"{SUMMARY}.{language}.html", r.html)):
        if os.environ.get("MAILD_REGEN_GOLDEN") == "1":
            path.write_text(text, encoding="utf-8")
        assert path.exists(), f"{path.name} missing: run with MAILD_REGEN_GOLDEN=1, review it"
        assert text == path.read_text(encoding="utf-8"), f"{path.name} differs from its golden"


def test_the_summary_context_is_what_the_sample_declares(tmp_path: Path) -> None:
    """The sample holds exactly the keys ``summary_context`` provides (for config check)."""
    site = Site.build(make_config(tmp_path, EXTRA))
    env = ApplyEnv.for_site(site, NOW)
    row = LetterCount(addr=BOSS, at=NOW, state="folded", letter="new_case_notice",
                      number="2026-客-001", subject="询价", language="zh")
    ctx = summary_context([row], env, "zh")
    assert set(ctx) == set(Letters().sample(SUMMARY))
    assert ctx["items"] == [{"number": "2026-客-001", "subject": "询价", "what": "新案件",
                             "at": "12-01 10:00"}]
    assert ctx["limit"] == 5 and ctx["count"] == ctx["cases"] == 1
