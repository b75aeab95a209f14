"""``parse_mail(raw, diagnose=False)``, the intake's parse: same mail, fewer diagnostics."""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

import pytest
from support import find_corpus, mail

from maild.parse import MAX_DEPTH, ParseError, parse_mail

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
from intake import Generator, Plan  # noqa: E402  (the benchmark's realistic mail mix)

CORPUS = find_corpus()


def _samples() -> list[bytes]:
    gen = Generator(11, Plan())
    own = [mail("王经理 <wang@huaxin.example.cn>", "询价（镕铭系列）", "王喆\n", charset="gbk"),
           mail("a@x.example", "附件", attachments=(("报价单.pdf", b"%PDF" * 100),))]
    corpus = sorted(p for p in CORPUS.rglob("*") if p.is_file()) if CORPUS.is_dir() else []
    return own + [next(gen) for _ in range(300)] + [p.read_bytes() for p in corpus]


def _outcome(raw: bytes, diagnose: bool) -> object:
    try:
        return parse_mail(raw, diagnose=diagnose)
    except ParseError:
        return ParseError


def test_same_mail_as_the_diagnosing_parse_apart_from_header_diagnostics() -> None:
    for raw in _samples():
        full, fast = _outcome(raw, True), _outcome(raw, False)
        if full is ParseError or fast is ParseError:
            assert full is fast
            continue
        assert dataclasses.replace(fast, defects=()) == dataclasses.replace(full, defects=())
        assert set(fast.defects) <= set(full.defects)


def test_structure_defects_are_still_reported() -> None:
    broken = (b"From: a@example.com\r\nMIME-Version: 1.0\r\n"
              b'Content-Type: multipart/mixed; boundary="B"\r\n\r\n'
              b"--B\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nok\r\n")
    defects = parse_mail(broken, diagnose=False).defects
    assert any("CloseBoundaryNotFoundDefect" in d for d in defects)


@pytest.mark.parametrize("depth", [MAX_DEPTH + 5, 2000])
def test_deep_nesting_is_a_parse_error(depth: int) -> None:
    head = b"From: x@spam.example\r\nSubject: nested\r\nMIME-Version: 1.0\r\n"
    parts = b"".join(f'Content-Type: multipart/mixed; boundary="b{i}"\r\n\r\n--b{i}\r\n'.encode()
                     for i in range(depth))
    with pytest.raises(ParseError, match="nested"):
        parse_mail(head + parts + b"Content-Type: text/plain\r\n\r\nx\r\n", diagnose=False)


def test_empty_input_is_a_parse_error() -> None:
    with pytest.raises(ParseError, match="empty"):
        parse_mail(b"\r\n", diagnose=False)
