"""The digest preview as a browser shows it: headless Chromium renders ``maild digest
--preview``, takes a screenshot, and the page logs no errors and loads nothing else."""

from __future__ import annotations

import asyncio
import struct
import subprocess
import sys
from pathlib import Path

import pytest
from chromium import chromium_binary, render
from digest_seed import seed_sqlite, write_config

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module", autouse=True)
def _chromium() -> None:
    if chromium_binary() is None:
        pytest.fail("chromium is not installed: run scripts/install-test-deps (as root)")


def png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def test_preview_renders_without_errors_in_chromium(tmp_path: Path) -> None:
    asyncio.run(seed_sqlite(tmp_path))
    cfg = write_config(tmp_path)
    p = subprocess.run([sys.executable, "-m", "maild", "digest", "-c", str(cfg),
                        "--preview", "digest.html", "--now", "2026-12-07T09:00+08:00"],
                       capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    page = tmp_path / "digest.html"

    report = render(page, width=720)

    assert report.errors == []
    assert report.console == []
    assert report.requests == [page.resolve().as_uri()]  # no images, fonts or scripts
    assert png_size(report.screenshot) == (720, report.height)
    assert report.height > 1200  # the whole digest, not just the first screen
    (tmp_path / "digest.png").write_bytes(report.screenshot)


def test_the_check_sees_errors_when_there_are_some(tmp_path: Path) -> None:
    bad = tmp_path / "bad.html"
    bad.write_text('<p>x</p><script>console.error("boom"); missing();</script>'
                   '<img src="http://127.0.0.1:9/pixel.png">', encoding="utf-8")
    report = render(bad)
    assert "console.error: boom" in report.errors
    assert any(e.startswith("exception:") for e in report.errors)
    assert "http://127.0.0.1:9/pixel.png" in report.requests
