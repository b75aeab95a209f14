"""Fixtures the integration tests share."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from support import open_store

from maild.store import Store


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    """A SQLite store in the test's folder."""
    async with open_store("sqlite", tmp_path) as s:
        yield s
