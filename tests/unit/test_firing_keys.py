"""No internal key in what a person reads: every letter the three processes send in the
simulator (their mails, then every timer they arm fired up its whole ladder) and every digest,
in Chinese and in English, is searched for step ids, chase keys, roles and conditions."""

from __future__ import annotations

import re
from dataclasses import replace

import pytest
import sim as simmod
from flows import FLOWS
from sim import Sim
from timing import SH, sh

from maild.adapters.letters import Rendered
from maild.engine.definitions import CHASES, CONDITIONS, ROLES
from maild.handlers import load_definitions
from maild.schedule.digest import Dated, Deadline, DigestData, context, period
from maild.schedule.firing import Escalate, TimerView, fire

PROCS = load_definitions(None)
STEP_IDS = {sid for p in PROCS.values() for sid in p.steps}
KEYS = sorted(STEP_IDS | set(CHASES) | set(ROLES) | set(CONDITIONS) | {"dept:"},
              key=len, reverse=True)


def leaks(r: Rendered, language: str) -> list[str]:
    """Internal keys in the subject, the text and the HTML's words (tags dropped)."""
    words = "\n".join((r.subject, r.text, re.sub(r"<[^>]+>", " ", r.html)))
    found = []
    for key in KEYS:
        if language == "en" and "_" not in key and ":" not in key:
            # English words ("order", "contract") are fine; a quoted key is not
            pattern = rf"[\"“「'‘]{re.escape(key)}[\"”」'’]"
        else:  # a command ("#confirm") or an address is not a key
            pattern = rf"(?<![#\w@./-]){re.escape(key)}(?![\w@-])"
        if re.search(pattern, words):
            found.append(key)
    return found


def fire_all(s: Sim, number: str) -> list[tuple[str, str, Rendered]]:
    """Every pending timer of the case, fired up its whole ladder, rendered."""
    out = []
    sc = s.cases[number]
    for t in sc.pending_timers():
        view = TimerView(t.id or 0, t.kind, t.key, t.due_at, 0, dict(t.data))
        case = replace(sc.view, status="open")  # as if the other side stays silent
        for _ in range(4):
            now = max(view.due_at, s.now)
            f = fire(view, case, replace(s.site.fire_context(now)))
            for e in f.letters:
                ctx = {**e.context, "number": number}
                out.append((e.letter, e.language, s.letters.render(e.letter, e.language, ctx)))
            if not isinstance(f.outcome, Escalate):
                break
            view = replace(view, level=f.outcome.level, due_at=f.outcome.due_at,
                           data=f.outcome.data)
    return out


def extra_steps(process: str, s: Sim, n: str, step: str) -> None:
    """What the flows do not send: a delay, a milestone, an action item."""
    if process == "supplier" and step == "fulfilment":
        s.reply(n, "wu@corp.example.test", "#delay 2026-12-28 原材料晚到")
    if process == "customer" and step == "execution":
        s.reply(n, "ma@corp.example.test", "#milestone 2026-12-18 样机交付")
    if process == "internal" and step == "track":
        s.reply(n, "王芳 <wang@corp.example.test>",
                "#action 复核讲解材料 | li@corp.example.test | 2026-12-09 | 无")


def run(process: str) -> tuple[Sim, list[tuple[str, str, Rendered]]]:
    s = Sim()
    opener, steps = FLOWS[process]
    number = opener(s)
    fired: list[tuple[str, str, Rendered]] = []
    for step, act in steps:
        act(s, number)
        extra_steps(process, s, number, step)
        fired += fire_all(s, number)
    return s, fired


@pytest.fixture(params=["zh", "en"])
def language(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    if request.param == "en":  # the organisation writes English: staff letters in English
        monkeypatch.setattr(simmod, "PROCESS_DIRECTORY", simmod.PROCESS_DIRECTORY.replace(
            'address = "service@example.test"\n',
            'address = "service@example.test"\nlanguage = "en"\n', 1))
    return str(request.param)


@pytest.mark.parametrize("process", ["internal", "customer", "supplier"])
def test_no_letter_shows_an_internal_key(process: str, language: str) -> None:
    s, fired = run(process)
    letters = [(x.letter, x.language, x.rendered) for x in s.sent] + fired
    names = {name for name, _, _ in letters}
    expected = {"internal": {"deadline_reminder", "deadline_warning", "escalation",
                             "action_reminder"},
                "customer": {"deadline_reminder", "escalation", "progress_request",
                             "milestone_notice"},
                "supplier": {"supplier_chase", "escalation", "deadline_reminder",
                             "deadline_warning"}}[process]
    assert expected <= names, expected - names  # the ladders really ran
    bad = [(name, lang, leaks(r, lang)) for name, lang, r in letters if leaks(r, lang)]
    assert bad == []
    if process == "supplier":
        chasers = [(lang, r) for name, lang, r in letters if name == "supplier_chase"]
        for what in CHASES:  # each chaser names what is owed by its label
            assert any(PROCS["supplier"].chase_label(what, lang) in r.subject
                       for lang, r in chasers), what


def test_the_leak_check_finds_what_it_looks_for() -> None:
    r = Rendered("催办：quote（铝合金外壳）", "贵司的「order_confirmation」", "<p>#confirm ok</p>")
    assert leaks(r, "zh") == ["order_confirmation", "quote"]
    assert leaks(Rendered("Your order", 'the "quote"', ""), "en") == ["quote"]


@pytest.mark.parametrize("lang", ["zh", "en"])
def test_no_digest_shows_an_internal_key(lang: str) -> None:
    s = Sim()
    labels = s.site.labels(lang)
    now = sh("2026-12-07 09:00")
    chased = [Deadline(f"2026-供-00{i}", "外壳", "supplier", step, "", sh("2026-12-03 09:00"),
                       level, False, "wu@corp.example.test", "chase", what,
                       "2026-12-01T09:00:00+08:00")
              for i, (step, what, level) in enumerate((("intent", "quote", 1),
                                                      ("order", "order_confirmation", 2),
                                                      ("fulfilment", "delay_explanation", 0)))]
    overdue = [Deadline("2026-技-001", "讲解", p, step, "技术部", sh("2026-12-04 10:00"), 1,
                        False, "li@corp.example.test")
               for p, proc in PROCS.items() for step in proc.steps]
    data = DigestData([(p, step, "open", 1) for p, proc in PROCS.items()
                       for step in proc.steps], len(overdue), overdue, 0, (), 0, (), 1,
                      [Dated("2026-12-02", "2026-技-001", "讲解", "准备材料", "li@x.example")],
                      len(chased), chased)
    ctx = context(data, per=period(now, SH), now=now, tz=SH, language=lang, org_name="示例",
                  manager_name="陈总", departments=(), labels=labels, limit=50)
    r = s.letters.render("digest", lang, ctx)
    assert leaks(r, lang) == []
    assert ctx["actions"][0]["overdue"] is True
    assert ("已逾期" if lang == "zh" else "overdue") in r.text
    labels_shown = [d["step"] for d in ctx["delays"]]
    assert labels_shown == [PROCS["supplier"].chase_label(w, lang) for w in CHASES]
