"""The command line as a user meets it: init, config check, explain, cases, demo, systemd."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from support import mail

ROOT = Path(__file__).resolve().parents[1]


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
    assert p.returncode == 1
    assert f"{cfg}:5: mailbox.url: Value error, must start with imap://" in p.stderr
    assert f"{cfg}:6: mailbox.batch_sise: unknown key" in p.stderr


def test_config_check_catches_a_broken_template(tmp_path: Path) -> None:
    tpl = tmp_path / "tpl"
    shutil.copytree(ROOT / "templates" / "email", tpl)
    (tpl / "ack.zh.txt.j2").write_text("Subject: {{ subjekt }}\n\nx\n", encoding="utf-8")
    cfg = tmp_path / "maild.toml"
    cfg.write_text(f'[letters]\ntemplates = "{tpl}"\n', encoding="utf-8")
    p = maild("config", "check", "-c", str(cfg))
    assert p.returncode == 1
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
    # request for the internal form's missing fields; then the cases move on by replies
    assert len(list((tmp_path / "demo" / "var" / "sent" / "new").iterdir())) == 18
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
    assert "step: contract 合同/协议签订" in shown.stdout and "legal_review" in shown.stdout
    assert "command_refused" in out


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
