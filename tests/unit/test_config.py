"""Config loading: validation messages with file, key and line; secrets; defaults."""

from __future__ import annotations

from pathlib import Path

import pytest

from maild import config as cfgmod
from maild.config import ConfigError, parse_config


def test_defaults_are_the_embedded_setup() -> None:
    cfg = parse_config("")
    assert cfg.database.url == "sqlite://var/maild.db"
    assert cfg.mailbox.url == "maildir://var/mail"
    assert cfg.organisation.language == "zh"
    assert cfg.calendar.settings().timezone == "Asia/Shanghai"


@pytest.mark.parametrize("text, expected", [
    ('[mailbox]\nurl = "pop3://x"\n', "maild.toml:2: mailbox.url: Value error, must start with"),
    ('[smtp]\n\nmax_attempts = 0\n', "maild.toml:3: smtp.max_attempts: Input should be greater"),
    ('[organisation]\naddress = "nobody"\n', "maild.toml:2: organisation.address: Value error"),
    ('[calendar]\nworking_hours = ["9-12"]\n', "maild.toml:2: calendar.working_hours"),
    ('[calendar]\nworking_hours = ["12:00-09:00"]\n', "maild.toml:1: calendar"),
    ('[routing]\ndefault_process = "sales"\n', "maild.toml:2: routing.default_process"),
    ('[[directory.departments]]\nname = "技术部"\nshort = "技"\nhead = "a@b"\nboss = "x"\n',
     "maild.toml:5: directory.departments.0.boss: unknown key"),
    ('[[directory.departments]]\nname = "技术部"\nshort = "技"\nhead = "a@b"\n'
     '[[directory.departments]]\nname = "技术二部"\nshort = "技"\nhead = "c@d"\n',
     "used twice"),
    ("[mailbox\n", "not valid TOML"),
])
def test_errors_name_the_key_and_line(text: str, expected: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse_config(text)
    assert expected in str(err.value)


def test_secret_from_env_then_file_then_url(tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "pw").write_text("from-file\n")
    cfg = parse_config('[mailbox]\nurl = "imap://u:from-url@h/INBOX"\npassword_file = "pw"\n',
                       base_dir=str(tmp_path))
    monkeypatch.setenv("MAILD_IMAP_PASSWORD", "from-env")
    assert cfgmod.secret(cfg, "imap") == "from-env"
    monkeypatch.delenv("MAILD_IMAP_PASSWORD")
    assert cfgmod.secret(cfg, "imap") == "from-file"
    cfg = parse_config('[mailbox]\nurl = "imap://u:from%20url@h/INBOX"\n')
    assert cfgmod.secret(cfg, "imap") == "from url"
    assert any("contains a password" in w for w in cfgmod.warnings(cfg))


def test_missing_password_file_is_a_clear_error(tmp_path: Path) -> None:
    cfg = parse_config('[smtp]\nurl = "smtp://h:25"\npassword_file = "nope"\n',
                       base_dir=str(tmp_path))
    with pytest.raises(ConfigError, match="smtp password_file .*nope"):
        cfgmod.secret(cfg, "smtp")


def test_missing_file_says_how_to_make_one(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="maild init"):
        cfgmod.load(tmp_path / "absent.toml")


def test_relative_paths_resolve_against_the_config_folder(tmp_path: Path) -> None:
    (tmp_path / "maild.toml").write_text("")
    cfg = cfgmod.load(tmp_path / "maild.toml")
    assert cfg.raw_dir == tmp_path.resolve() / "var" / "raw"


def test_the_shipped_example_config_loads() -> None:
    example = Path(__file__).resolve().parents[2] / "config" / "maild.example.toml"
    cfg = cfgmod.load(example)
    assert [d.short for d in cfg.directory.departments] == ["技", "市", "法", "采", "质", "财"]
