"""Every letter that can be folded into a summary has a label there: a summary never shows
an internal letter name to the person who reads it."""

from __future__ import annotations

import pytest

from maild.adapters.letters import Letters
from maild.data import templates_dir
from maild.store.limits import KINDS, NEVER_FOLDED


@pytest.mark.parametrize("language", sorted(KINDS))
def test_every_shipped_letter_has_a_summary_label(language: str) -> None:
    names = {n.rsplit(".", 1)[0] for n in Letters(templates_dir()).names()} - NEVER_FOLDED
    missing = sorted(n for n in names if not KINDS[language].get(n))
    assert not missing, f"no {language} label for {missing} in maild.store.limits.KINDS"
