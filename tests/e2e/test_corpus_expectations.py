"""The public mail corpus in ``tests/corpus/mail-parser`` against its expectation files.

Each sample has ``NAME.expected.toml`` beside it (see ``tests/corpus/README.md``). The outcome,
route and subject are read through the command line, ``maild explain --json``, run
in-process; the attachment names come from the parser itself.
"""

from __future__ import annotations

import json
import tomllib
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
CORPUS = ROOT / "tests" / "corpus" / "mail-parser"
NOT_SAMPLES = {"LICENSE.txt", "NOTICE.txt", "README.md"}
EXPECTED = ".expected.toml"


def samples() -> list[Path]:
    return sorted(p for p in CORPUS.iterdir()
                  if p.is_file() and p.name not in NOT_SAMPLES and not p.name.endswith(EXPECTED))


def expectation_path(sample: Path) -> Path:
    return sample.with_name(sample.stem + EXPECTED)


def cli() -> Callable[[Sequence[str]], int]:
    """The function behind the ``maild`` command."""
    from maild.cli.main import main

    return main


def parsed_attachment_names(raw: bytes) -> list[str]:
    """The attachment file names maild's parser reports, in order."""
    from maild.mail.parse import parse_mail

    return [a.filename for a in parse_mail(raw).attachments]


@pytest.fixture(scope="module")
def config(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The configuration ``maild init`` writes, with its (empty) database."""
    site = tmp_path_factory.mktemp("site")
    assert cli()(["init", str(site)]) == 0
    return site / "maild.toml"


def explain(config: Path, sample: Path, capsys: pytest.CaptureFixture[str]) -> dict[str, Any]:
    capsys.readouterr()  # drop what init or an earlier call printed
    assert cli()(["explain", "-c", str(config), str(sample), "--json"]) == 0
    result: dict[str, Any] = json.loads(capsys.readouterr().out)
    return result


def test_the_corpus_is_in_the_repository() -> None:
    assert (CORPUS / "LICENSE.txt").is_file() and (CORPUS / "NOTICE.txt").is_file()
    assert len(samples()) >= 23


def test_every_expectation_file_belongs_to_a_sample() -> None:
    stems = {p.stem for p in samples()}
    orphans = [p.name for p in CORPUS.glob("*" + EXPECTED)
               if p.name.removesuffix(EXPECTED) not in stems]
    assert not orphans


@pytest.mark.parametrize("sample", samples(), ids=lambda p: p.name)
def test_sample_meets_its_expectation(sample: Path, config: Path,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    exp_file = expectation_path(sample)
    assert exp_file.is_file(), f"{sample.name} has no {exp_file.name}"
    exp = tomllib.loads(exp_file.read_text(encoding="utf-8"))

    got = explain(config, sample, capsys)
    assert got["outcome"] == exp["outcome"]
    if exp["outcome"] == "quarantine":
        assert exp["reason"] and exp["reason"] in got["reason"]
        return

    assert exp["outcome"] == "process"
    assert got["classification"]["route"] == exp["route"]
    assert got["subject"] == exp["subject"]
    if "from" in exp:
        assert got["from"] == exp["from"]
    # either the names are pinned, or the file says why maild's current result is not
    assert ("attachments" in exp) != ("known_issue" in exp), exp_file.name
    if "attachments" in exp:
        assert parsed_attachment_names(sample.read_bytes()) == exp["attachments"]
