"""The data maild ships with: letter templates, the three process definitions and the
example configuration, found with ``importlib.resources`` in a wheel and in a clone alike.

In the repository the top-level ``templates/`` and ``config/`` are links to these folders,
so the documented paths (``templates/email/``, ``config/processes/``) are where people edit.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path


def _folder(*parts: str) -> Path:
    """A packaged folder as a path (maild is installed as files, never from a zip)."""
    path = Path(str(files(__package__).joinpath(*parts)))
    if not path.is_dir():
        raise FileNotFoundError(f"maild's packaged data is missing: {path}")
    return path


def templates_dir() -> Path:
    """The shipped letter templates (``templates/email/``)."""
    return _folder("templates", "email")


def processes_dir() -> Path:
    """The shipped process definitions (``config/processes/``)."""
    return _folder("config", "processes")


def example_config() -> str:
    """The commented example ``maild.toml`` that ``maild init`` writes."""
    return (files(__package__) / "config" / "maild.example.toml").read_text(encoding="utf-8")


def statutory_holidays() -> Path:
    """China's statutory days off computed from the lunar calendar, per year (a JSON table
    written by ``scripts/gen-statutory-holidays``)."""
    return _folder("calendar") / "statutory-holidays.json"
