"""The database connection: tortoise over SQLite or PostgreSQL, and where raw mail lives."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tortoise import Tortoise
from tortoise.backends.base.config_generator import expand_db_url

from maild.store.attachments import ContentStore
from maild.store.casefacts import add_process_columns

MODELS = "maild.store.models"


def tortoise_url(url: str, base_dir: Path) -> str:
    """Resolve a relative ``sqlite://var/maild.db`` against the config's folder."""
    if url.startswith("sqlite://") and not url.startswith("sqlite://:memory:"):
        rest = url[len("sqlite://"):]
        path, _, query = rest.partition("?")
        p = Path(path) if path.startswith("/") else base_dir / path
        p.parent.mkdir(parents=True, exist_ok=True)
        return f"sqlite://{p}" + (f"?{query}" if query else "")
    if url.startswith("postgresql://"):
        return "postgres://" + url[len("postgresql://"):]
    return url


class Database:
    """Opens and closes the connection; the other parts of the store share it."""

    def __init__(self, url: str, raw_root: Path, base_dir: Path = Path(".")) -> None:
        self.url = tortoise_url(url, base_dir)
        # tortoise caches SQL per connection name: one name per backend (LIBRARY-NOTES 12)
        self.conn = "sqlite" if self.url.startswith("sqlite") else "postgres"
        self.raw = ContentStore(raw_root, ".eml")
        self.files = ContentStore(raw_root.parent / "attachments")

    async def open(self) -> None:
        conn: str | dict[str, Any] = self.url
        if self.conn == "sqlite":  # statements on the loop's thread (see sqlite_inline)
            conn = {**expand_db_url(self.url), "engine": "maild.store.sqlite_inline"}
        await Tortoise.init(config={
            "connections": {self.conn: conn},
            "apps": {"maild": {"models": [MODELS], "default_connection": self.conn}},
            "use_tz": True, "timezone": "UTC",
        })
        await Tortoise.generate_schemas(safe=True)
        await add_process_columns(self.conn)

    async def close(self) -> None:
        await Tortoise.close_connections()
