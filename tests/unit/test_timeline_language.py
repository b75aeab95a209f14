"""One language on the timeline: the three processes run in the simulator from first mail
to the end, and no entry they write speaks English or names a step by its internal key
when the organisation's language is Chinese (letters and the parties' own words aside)."""

from __future__ import annotations

import re
from dataclasses import replace

import pytest
from flows import FLOWS, at_step
from sim import Sim

from maild.engine.effects import Decision, Note, UpdateCase
from maild.handlers import load_definitions
from maild.site import Site

PROCS = load_definitions(None)
STEP_KEYS = {sid for p in PROCS.values() for sid in p.steps}
#: entries that quote people's own words (the mail, a command line, a document's text)
QUOTING = {"opened", "reply", "staff_reply", "command", "output", "note"}
_ADDRESS = re.compile(r"[\w.+-]+@[\w.-]+")
_COMMAND = re.compile(r"#\w+")
_PROOF = re.compile(r"authentication-results:.*|dkim=\S+|dmarc=\S+|spf=\S+", re.IGNORECASE)
_ENGLISH = re.compile(r"\b[a-z]{3,}\b", re.IGNORECASE)

#: what the parties write after the flows' last step: the survey, an invoice, a late #确认
AFTER = {
    "customer": ("wang@huaxin.example.cn", "确认，非常满意，打5分"),
    "supplier": ("sales@hengda.example.cn", "附件为发票，请查收。"),
    "internal": ("wang@corp.example.test", "#确认"),
}


def _words(text: str) -> str:
    return _PROOF.sub(" ", _COMMAND.sub(" ", _ADDRESS.sub(" ", text)))


def _offending(notes: list[Note]) -> list[tuple[str, str]]:
    bad = []
    for n in notes:
        if n.kind in QUOTING or n.kind == "letter":  # letters: the store's own entry
            continue
        words = _words(n.text)
        keys = STEP_KEYS & set(re.findall(r"[a-z_]+", words))
        if keys or _ENGLISH.search(words):
            bad.append((n.kind, n.text))
    return bad


def _run(process: str) -> tuple[Sim, str]:
    s = Sim()
    opener, steps = FLOWS[process]
    number = opener(s)
    for _, act in steps:
        act(s, number)
    s.reply(number, *AFTER[process])
    return s, number


@pytest.mark.parametrize("process", sorted(FLOWS))
def test_every_timeline_entry_of_a_process_is_chinese(process: str) -> None:
    s, number = _run(process)
    timeline = s.cases[number].timeline
    assert len(timeline) > 10  # the flow really ran
    assert _offending(timeline) == []


def test_the_check_catches_english_and_step_keys() -> None:
    assert _offending([Note("timer", "deadline confirm paused while waiting", "maild")])
    assert _offending([Note("step", "minutes → track", "maild")])
    assert not _offending([Note("step", "会议/沟通执行 → 共识与待办明确", "maild")])


def test_a_paused_and_resumed_deadline_says_so_with_the_step_label() -> None:
    s, number = at_step("internal", "confirm")  # a deadline of 1 working day
    assert s.case(number).status == "open"
    s.apply(Decision((UpdateCase(status="waiting"),), "wait"), number, "<w@t>")
    s.later(hours=2)
    s.apply(Decision((UpdateCase(status="open"),), "go"), number, "<g@t>")
    notes = [n for n in s.cases[number].timeline if n.kind == "timer"]
    texts = [n.text for n in notes]
    paused = "等待对方回复，步骤「沟通对象确认」的截止时间暂停计时"
    resumed = "对方已回复，步骤「沟通对象确认」的截止时间恢复计时"
    assert any(t.startswith(paused) for t in texts), texts
    assert any(t.startswith(resumed) for t in texts), texts
    assert _offending(notes) == []


def test_in_english_the_same_entries_are_english() -> None:
    s = Sim()
    org = s.cfg.organisation.model_copy(update={"language": "en"})
    s.cfg = s.cfg.model_copy(update={"organisation": org})
    s.site = replace(Site.build(s.cfg), secret=s.site.secret)
    opener, steps = FLOWS["internal"]
    number = opener(s)
    steps[1][1](s, number)
    s.apply(Decision((UpdateCase(status="waiting"),), "wait"), number, "<w@t>")
    texts = [n.text for n in s.cases[number].timeline if n.kind in ("step", "timer")]
    assert any("paused while waiting on the other party" in t for t in texts), texts
    assert any(t.startswith('deadline of step "Confirm the parties"') for t in texts), texts
    assert not any("暂停" in t or "截止时间" in t for t in texts)
