"""The command line as a user meets it: init, config check, explain, cases, digest, db
upgrade, demo, --version, systemd; and its table printer."""

from __future__ import annotations

import argparse
import email
import email.policy
import importlib
import json
import shutil
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from support import mail
from wcwidth import wcswidth

from maild.cli.main import _parser
from maild.cli.output import table

ROOT = Path(__file__).resolve().parents[2]
SCHEMA_0_1_0 = ROOT / "tests" / "fixtures" / "schema-0.1.0.sqlite.sql"


def maild(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "maild", *args], capture_output=True,
                          text=True, timeout=120, cwd=cwd)


def test_init_writes_a_config_that_checks_clean(tmp_path: Path) -> None:
    p = maild("init", str(tmp_path / "site"))
    assert p.returncode == 0, p.stderr
    cfg = tmp_path / "site" / "maild.toml"
    assert (tmp_path / "site" / "var" / "maild.db").exists()
    check = maild("config", "check", "-c", str(cfg))
    assert check.returncode == 0, check.stderr
    assert "ok" in check.stdout
    again = maild("init", str(tmp_path / "site"))
    assert again.returncode == 1 and "exists" in again.stderr


def test_config_errors_name_file_key_and_line(tmp_path: Path) -> None:
    cfg = tmp_path / "maild.toml"
    cfg.write_text('[organisation]\nname = "x"\n\n[mailbox]\nurl = "pop3://host"\n'
                   'batch_sise = 10\n', encoding="utf-8")
    p = maild("config", "check", "-c", str(cfg))
    assert p.returncode == 78
    assert f"{cfg}:5: mailbox.url: Value error, must start with imap://" in p.stderr
    assert f"{cfg}:6: mailbox.batch_sise: unknown key" in p.stderr


def test_config_check_catches_a_broken_template(tmp_path: Path) -> None:
    tpl = tmp_path / "tpl"
    shutil.copytree(ROOT / "templates" / "email", tpl)
    (tpl / "ack.zh.txt.j2").write_text("Subject: {{ subjekt }}\n\nx\n", encoding="utf-8")
    cfg = tmp_path / "maild.toml"
    cfg.write_text(f'[letters]\ntemplates = "{tpl}"\n', encoding="utf-8")
    p = maild("config", "check", "-c", str(cfg))
    assert p.returncode == 78
    assert "ack.zh" in p.stderr and "subjekt" in p.stderr


def test_config_check_warns_about_a_password_in_the_url(tmp_path: Path) -> None:
    cfg = tmp_path / "maild.toml"
    cfg.write_text('[mailbox]\nurl = "imap://u:pw@127.0.0.1/INBOX"\n', encoding="utf-8")
    p = maild("config", "check", "-c", str(cfg))
    assert p.returncode == 0
    assert "mailbox.url contains a password" in p.stdout


def test_explain_shows_rules_route_and_letter_without_side_effects(tmp_path: Path) -> None:
    maild("init", str(tmp_path))
    cfg = tmp_path / "maild.toml"
    eml = tmp_path / "in.eml"
    eml.write_bytes(mail("张三 <zhang@huaxin.example.cn>", "[紧急] 样品需求", charset="gbk"))
    before = (tmp_path / "var" / "maild.db").read_bytes()
    p = maild("explain", "-c", str(cfg), str(eml), "--json")
    assert p.returncode == 0, p.stderr
    r = json.loads(p.stdout)
    assert r["classification"]["route"] == "new customer"
    assert r["classification"]["urgent"] is True
    hits = {h["rule"]: h["outcome"] for h in r["classification"]["hits"]}
    assert hits["known_party"] == "hit" and hits["auto_submitted"] == "miss"
    letter, notice = r["letters"]  # the acknowledgement, and the account manager's notice
    assert letter["to"] == ["zhang@huaxin.example.cn"] and "样品需求" in letter["subject"]
    assert notice["letter"] == "new_case_notice" and notice["to"] == ["wang.fang@example.com"]
    assert (tmp_path / "var" / "maild.db").read_bytes() == before
    text = maild("explain", "-c", str(cfg), str(eml))
    assert "route:   new customer" in text.stdout and "✔ route  known_party" in text.stdout


def test_demo_runs_the_whole_flow(tmp_path: Path) -> None:
    p = maild("demo", "--dir", str(tmp_path / "demo"))
    assert p.returncode == 0, p.stderr
    out = p.stdout
    for number in ("2026-客-001", "2026-供-001", "2026-技-001", "2026-客-002"):
        assert number in out
    assert "robot" in out and "case 2026-客-001" in out
    # cycle 1: three acknowledgements and three notices to the people in charge, and the
    # request for the internal form's missing fields; then the cases move on by replies:
    # 18 letters in all, written as one copy per recipient (each with its own reply token);
    # and a receipt for each of the five staff mails whose commands ran, and the account
    # manager told of legal's approval
    copies = [email.message_from_bytes(f.read_bytes(), policy=email.policy.default)
              for f in (tmp_path / "demo" / "var" / "sent" / "new").iterdir()]
    assert len(copies) == 32 and len({str(m["Message-ID"]) for m in copies}) == 32
    # every copy of a letter has the same To and Cc: 22 kinds (two reply notices look alike,
    # and so do the buyer's two receipts)
    assert len({(str(m["Subject"]), str(m["To"]), str(m["Cc"])) for m in copies}) == 22
    receipts = [m for m in copies if "已执行" in str(m["Subject"])]
    assert sorted(m["To"].addresses[0].addr_spec for m in receipts) == [
        "wang.fang@example.com", "zhang.wei@example.com", "zhao.lei@example.com",
        "zhou.jie@example.com", "zhou.jie@example.com"]
    listed = json.loads(maild("cases", "list", "-c", str(tmp_path / "demo" / "maild.toml"),
                              "--json").stdout)
    assert [c["number"] for c in listed] == ["2026-客-001", "2026-供-001", "2026-技-001",
                                              "2026-客-002"]
    for key in ("number", "process", "step", "status", "subject", "opened_at", "due_at",
                "parties"):
        assert key in listed[0]
    assert [(c["number"], c["step"]) for c in listed] == [
        ("2026-客-001", "contract"), ("2026-供-001", "fulfilment"), ("2026-技-001", "meeting"),
        ("2026-客-002", "requirements")]
    shown = maild("cases", "show", "-c", str(tmp_path / "demo" / "maild.toml"), "2026-客-001")
    assert "补充一点" in shown.stdout  # the customer's threaded reply
    assert "step: contract 合同/协议签订" in shown.stdout and "合同审核 → " in shown.stdout
    assert "command_refused" in out
    preview = tmp_path / "digest.html"
    p = maild("digest", "-c", str(tmp_path / "demo" / "maild.toml"), "--preview", str(preview),
              "--now", "2026-12-07T09:00+08:00")
    assert p.returncode == 0, p.stderr
    assert p.stdout.startswith(f"wrote {preview}") and "2026-客-001" in preview.read_text()


def test_version() -> None:
    p = maild("--version")
    assert (p.returncode, p.stdout, p.stderr) == (0, "maild 0.1.0\n", "")


def _sub_commands(parser: argparse.ArgumentParser,
                  words: tuple[str, ...] = ()) -> Iterator[tuple[str, argparse.ArgumentParser]]:
    """Every leaf sub-command of ``parser`` ("cases show", ...) and its parser."""
    subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    if not subs:
        yield " ".join(words), parser
    for action in subs:
        for name, sub in action.choices.items():
            yield from _sub_commands(sub, (*words, name))


def test_every_sub_command_has_a_handler() -> None:
    """Each leaf sub-command sets ``func``, and the function it names exists (the handlers
    are imported only when their command runs, so a typo would otherwise show late)."""
    found = dict(_sub_commands(_parser()))
    assert sorted(found) == [
        "backup", "calendar show", "cases assign", "cases close", "cases export",
        "cases list", "cases note", "cases reopen", "cases show", "config check", "db upgrade",
        "demo", "digest", "explain",
        "init", "outbox cancel", "outbox list", "outbox retry", "reprocess", "run",
        "status", "triage list", "triage open", "triage show"]
    for words, parser in found.items():
        module, _, name = parser.get_default("func").__qualname__.partition(":")
        assert callable(getattr(importlib.import_module(module), name)), words


def test_db_upgrade_on_a_fresh_site_is_up_to_date(tmp_path: Path) -> None:
    assert maild("init", str(tmp_path)).returncode == 0
    p = maild("db", "upgrade", "-c", str(tmp_path / "maild.toml"))
    assert p.returncode == 0, p.stderr
    assert p.stdout == f"{tmp_path / 'maild.toml'}: database up to date\n"


def _site_with_database(tmp_path: Path, sql: str) -> Path:
    """A site from ``maild init`` whose database is replaced by one made from ``sql``."""
    assert maild("init", str(tmp_path)).returncode == 0
    db = tmp_path / "var" / "maild.db"
    db.unlink()
    with sqlite3.connect(db) as conn:
        conn.executescript(sql)
    conn.close()
    return tmp_path / "maild.toml"


def test_run_refuses_an_unmigrated_database_until_db_upgrade(tmp_path: Path) -> None:
    cfg = _site_with_database(tmp_path, SCHEMA_0_1_0.read_text(encoding="utf-8"))
    now = ("--now", "2026-12-07T09:00+08:00")
    p = maild("run", "-c", str(cfg), "--once", *now)
    assert p.returncode == 78
    last = p.stderr.splitlines()[-1]  # after the start-up line
    assert last.startswith("maild: ") and "maild db upgrade" in last
    assert "Traceback" not in p.stderr
    p = maild("db", "upgrade", "-c", str(cfg))
    assert p.returncode == 0, p.stderr
    assert p.stdout.startswith("applied 0")  # 0002_... and whatever came after it
    assert maild("db", "upgrade", "-c", str(cfg)).stdout.endswith("database up to date\n")
    p = maild("run", "-c", str(cfg), "--once", *now)
    assert p.returncode == 0, p.stderr


def test_db_upgrade_refuses_tables_that_are_not_maild_s(tmp_path: Path) -> None:
    cfg = _site_with_database(tmp_path, "CREATE TABLE cases (id INTEGER);")
    p = maild("db", "upgrade", "-c", str(cfg))
    assert (p.returncode, p.stdout) == (78, "")
    assert p.stderr.startswith("maild: ") and "table cases lacks columns" in p.stderr
    assert "Traceback" not in p.stderr


def test_table_aligns_wide_characters_and_drops_control_characters() -> None:
    rows = [{"number": "2026-客-001", "subject": "询价\x1b[31m：主板\x07\r", "state": "new"},
            {"number": "A-1", "subject": "ab\tc\x85", "state": "done"}]
    lines = table(rows, ("number", "subject", "state")).splitlines()
    assert lines == ["number       subject         state",
                     "-----------  --------------  -----",
                     "2026-客-001  询价[31m：主板  new",
                     "A-1          ab c            done"]
    for line, subject, state in [(lines[0], "subject", "state"), (lines[2], "询价", "new"),
                                 (lines[3], "ab", "done")]:
        # display columns: 11 (the widest number) + 2, then 14 (the widest subject) + 2
        assert wcswidth(line[:line.index(subject)]) == 13
        assert wcswidth(line[:line.rindex(state)]) == 29


def test_table_cuts_wide_text_to_the_limit() -> None:
    lines = table([{"s": "一二三四五六"}], ("s",), limit=7).splitlines()
    assert lines[2] == "一二三…" and wcswidth(lines[2]) == 7
    assert table([], ("a",)).splitlines() == ["a", "-", "(none)"]


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="no systemd-analyze")
def test_systemd_unit_verifies_clean(tmp_path: Path) -> None:
    unit = (ROOT / "systemd" / "maild.service").read_text()
    exe = Path(sys.executable).parent / "maild"
    assert exe.exists()
    local = tmp_path / "maild.service"
    local.write_text(unit.replace("/opt/maild/.venv/bin/maild", str(exe)))
    p = subprocess.run(["systemd-analyze", "verify", str(local)], capture_output=True,
                       text=True, timeout=60)
    assert p.returncode == 0 and p.stderr.strip() == "", p.stderr
    for key in ("DynamicUser=yes", "Restart=on-failure", "ProtectSystem=strict",
                "NoNewPrivileges=yes", "KillSignal=SIGTERM"):
        assert key in unit
