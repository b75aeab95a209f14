"""Golden tests for the letters timers send (``maild.schedule.firing``): each rendered from
its sample, text and HTML, zh and en, like ``test_letters_golden.py`` for the process
letters. Regenerate deliberately with ``MAILD_REGEN_GOLDEN=1``."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from maild.adapters.letters import Letters

GOLDEN = Path(__file__).resolve().parents[1] / "golden"
REGEN = os.environ.get("MAILD_REGEN_GOLDEN") == "1"
TIMER_LETTERS = ("deadline_warning", "deadline_reminder", "escalation", "supplier_chase",
                 "action_reminder")
letters = Letters()


def _check(path: Path, text: str) -> None:
    if REGEN or not path.exists():
        path.write_text(text, encoding="utf-8")
        if not REGEN:
            pytest.fail(f"{path.name} did not exist; written now, check it in")
    assert text == path.read_text(encoding="utf-8"), f"{path.name} differs from its golden"


@pytest.mark.parametrize("language", ["zh", "en"])
@pytest.mark.parametrize("letter", TIMER_LETTERS)
def test_timer_letter_matches_its_golden(letter: str, language: str) -> None:
    r = letters.render(letter, language, letters.sample(letter))
    _check(GOLDEN / f"{letter}.{language}.txt", f"Subject: {r.subject}\n\n{r.text}")
    _check(GOLDEN / f"{letter}.{language}.html", r.html)
    assert "{{" not in r.text and "{%" not in r.html


def test_the_overdue_action_letter_to_the_head_differs_from_the_reminder() -> None:
    sample = letters.sample("action_reminder")
    before = letters.render("action_reminder", "zh", sample)
    late = letters.render("action_reminder", "zh", {**sample, "overdue": True})
    head = letters.render("action_reminder", "zh", {**sample, "overdue": True,
                                                    "audience": "head", "department": "技术部"})
    assert before.subject.startswith("待办提醒") and "即将到期" in before.text
    assert late.subject.startswith("待办已逾期") and "#done" in late.text
    assert head.text.startswith("部门负责人，您好") and "（技术部）" in head.text
