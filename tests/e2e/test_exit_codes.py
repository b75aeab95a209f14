"""The exit statuses a supervisor acts on (docs/operations/exit-codes.md), each from a real
``maild`` process: 78 for a configuration error (systemd does not restart on it), 69 for a
mailbox or database that does not answer under ``--once``, 130 after Ctrl-C, 0 after a
clean stop on SIGTERM."""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from servers import free_port
from support import mail
from test_systemd import NotifySocket, Site, stop

from maild.cli.exits import EXIT_CONFIG, EXIT_INTERRUPTED, EXIT_OK, EXIT_UNAVAILABLE

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]


def maild(site: Site, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "maild", *args], env=site.env(**env),
                          cwd=site.base, capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("command", [
    "run -c CFG --once", "run -c CFG", "config check -c CFG", "db upgrade -c CFG",
    "cases list -c CFG", "outbox list -c CFG", "digest -c CFG"])
def test_a_config_error_exits_78_from_every_command(tmp_path: Path, command: str) -> None:
    site = Site(tmp_path)
    site.config.write_text(site.config.read_text(encoding="utf-8")
                           + "\n[mailbox.extra]\nfoo = 1\n", encoding="utf-8")
    p = maild(site, *command.replace("CFG", str(site.config)).split())
    assert p.returncode == EXIT_CONFIG, (p.returncode, p.stderr)
    assert "mailbox.extra" in p.stderr and "Traceback" not in p.stderr


def test_a_missing_config_file_exits_78(tmp_path: Path) -> None:
    site = Site(tmp_path)
    p = maild(site, "run", "-c", str(tmp_path / "nowhere.toml"))
    assert p.returncode == EXIT_CONFIG
    assert "no such config file" in p.stderr


def test_a_template_that_cannot_render_stops_the_start_with_78(tmp_path: Path) -> None:
    tpl = tmp_path / "tpl"
    shutil.copytree(ROOT / "templates" / "email", tpl)
    (tpl / "ack.zh.txt.j2").write_text("Subject: {{ subjekt }}\n\nx\n", encoding="utf-8")
    site = Site(tmp_path, extra=f'[letters]\ntemplates = "{tpl}"\n')
    site.deliver(mail("buyer@huaxin.example.cn", "询价"))
    p = maild(site, "run", "-c", str(site.config))  # the daemon checks them all first
    assert p.returncode == EXIT_CONFIG, p.stderr
    assert "ack.zh" in p.stderr and "subjekt" in p.stderr
    assert list((tmp_path / "var" / "mail" / "new").iterdir())  # the mail was not touched


def test_once_exits_69_when_the_mailbox_refuses_the_connection(tmp_path: Path) -> None:
    site = Site(tmp_path, mailbox=f"imap://shared%40example.test@127.0.0.1:{free_port()}/INBOX")
    p = maild(site, "run", "-c", str(site.config), "--once", MAILD_IMAP_PASSWORD="x")
    assert p.returncode == EXIT_UNAVAILABLE, p.stderr
    assert "maild: intake failed: mailbox unavailable" in p.stderr


def test_once_exits_69_when_the_database_does_not_answer(tmp_path: Path) -> None:
    site = Site(tmp_path)
    text = site.config.read_text(encoding="utf-8").replace(
        'url = "sqlite://var/maild.db"', f'url = "postgres://maild@127.0.0.1:{free_port()}/x"')
    site.config.write_text(text, encoding="utf-8")
    p = maild(site, "run", "-c", str(site.config), "--once")
    assert p.returncode == EXIT_UNAVAILABLE, p.stderr
    assert "maild: database unusable" in p.stderr


def test_once_exits_0_after_a_good_cycle(tmp_path: Path) -> None:
    site = Site(tmp_path)
    site.deliver(mail("buyer@huaxin.example.cn", "询价"))
    p = maild(site, "run", "-c", str(site.config), "--once")
    assert p.returncode == EXIT_OK, p.stderr
    assert len(site.sent()) == 1


@pytest.mark.parametrize(("sig", "status"), [(signal.SIGINT, EXIT_INTERRUPTED),
                                             (signal.SIGTERM, EXIT_OK)])
def test_ctrl_c_exits_130_and_sigterm_0_after_a_clean_stop(
        tmp_path: Path, sig: signal.Signals, status: int) -> None:
    site = Site(tmp_path)
    ns = NotifySocket(f"@maild-test-{uuid.uuid4().hex}")
    p = site.start(NOTIFY_SOCKET=ns.address)
    try:
        ns.wait_for(lambda m: m.get("READY") == "1", proc=p)  # running, handlers in place
        code, err = stop(p, sig)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
        ns.close()
    assert code == status, err
    assert "stopping: finishing the message in hand" in err
    assert "exit: fetched=" in err  # the clean stop's last line
    assert "Traceback" not in err
