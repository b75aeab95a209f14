"""Golden tests: each process letter rendered from its sample, text and HTML, zh and en.

The goldens under ``tests/golden/`` change only deliberately: after editing a template,
look at the diff, then regenerate with ``MAILD_REGEN_GOLDEN=1 scripts/test -k golden``.
Every sample holds exactly the variables the code provides (``maild.engine.letter_context``).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from flows import at_step
from support import mail

from maild.adapters.letters import DEFAULT_TEMPLATES, Letters
from maild.classify.rules import Classification
from maild.engine.letter_context import case_context
from maild.engine.workflow import Work
from maild.handlers import HOOKS, load_definitions
from maild.mail.parse import parse_mail

GOLDEN = Path(__file__).resolve().parents[1] / "golden"
REGEN = os.environ.get("MAILD_REGEN_GOLDEN") == "1"
PROCS = load_definitions(None)
#: every shipped letter with a sample context (the digest has its own golden test)
LETTERS = sorted(p.name[: -len(".sample.toml")] for p in DEFAULT_TEMPLATES.glob("*.sample.toml")
                 if p.name != "digest.sample.toml")
letters = Letters()


def _check(path: Path, text: str) -> None:
    if REGEN or not path.exists():
        path.write_text(text, encoding="utf-8")
        if not REGEN:
            pytest.fail(f"{path.name} did not exist; written now, check it in")
    assert text == path.read_text(encoding="utf-8"), f"{path.name} differs from its golden"


@pytest.mark.parametrize("language", ["zh", "en"])
@pytest.mark.parametrize("letter", LETTERS)
def test_letter_matches_its_golden(letter: str, language: str) -> None:
    r = letters.render(letter, language, letters.sample(letter))
    _check(GOLDEN / f"{letter}.{language}.txt", f"Subject: {r.subject}\n\n{r.text}")
    _check(GOLDEN / f"{letter}.{language}.html", r.html)
    assert "{{" not in r.text and "{%" not in r.html


def test_every_letter_has_both_languages_and_both_parts() -> None:
    for letter in LETTERS:
        for language in ("zh", "en"):
            for part in ("txt", "html"):
                assert (DEFAULT_TEMPLATES / f"{letter}.{language}.{part}.j2").exists()
        assert (DEFAULT_TEMPLATES / f"{letter}.sample.toml").exists()


@pytest.mark.parametrize("letter", sorted(n for p in PROCS.values() for n in p.letter_names()))
def test_the_sample_holds_exactly_what_the_code_provides(letter: str) -> None:
    s, number = at_step("internal", "minutes")
    m = parse_mail(mail("wang@corp.example.test", "x", "y"))
    work = Work(PROCS["internal"], HOOKS["internal"], m, Classification(), s.ctx(),
                s.case(number))
    provided = set(case_context(work, work.step_def, "zh", {}, "wang@corp.example.test"))
    assert set(letters.sample(letter)) == provided | {"number"}  # the store adds the number
