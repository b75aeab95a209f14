"""The letters timers send (``maild.schedule.firing``) say what their audience needs; their
golden files are checked with every other letter's in ``test_letters_golden.py``."""

from __future__ import annotations

from maild.adapters.letters import Letters

letters = Letters()


def test_the_overdue_action_letter_to_the_head_differs_from_the_reminder() -> None:
    sample = letters.sample("action_reminder")
    before = letters.render("action_reminder", "zh", sample)
    late = letters.render("action_reminder", "zh", {**sample, "overdue": True})
    head = letters.render("action_reminder", "zh", {**sample, "overdue": True,
                                                    "audience": "head", "department": "技术部"})
    assert before.subject.startswith("待办提醒") and "即将到期" in before.text
    assert late.subject.startswith("待办已逾期") and "#done" in late.text
    assert head.text.startswith("部门负责人，您好") and "（技术部）" in head.text
