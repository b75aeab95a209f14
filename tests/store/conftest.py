"""Fixtures the store tests share: ``store`` runs each test on SQLite and on PostgreSQL
(a test module that needs only SQLite defines its own)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from support import open_store

from maild.store import Store


@pytest.fixture(params=["sqlite", "postgres"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    async with open_store(request.param, tmp_path) as s:
        yield s
