"""The administrator's tools as commands on a real site (Maildir mailbox, SQLite, letters to
a folder): a quarantined mail reprocessed after its template is fixed, a triaged mail opened
as a case, case actions on the timeline, the export of a finished case read offline, and a
backup restored into an empty folder."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from support import mail

from maild.adapters.sources.maildir import deliver

ROOT = Path(__file__).resolve().parents[2]
NOW = "2026-12-01T10:00+08:00"
#: the admin who runs the commands, as the timeline names them
ENV = {**{k: v for k, v in os.environ.items() if k != "SUDO_USER"}, "USER": "alice"}


def maild(*args: str, cwd: Path, ok: bool = True) -> subprocess.CompletedProcess[str]:
    p = subprocess.run([sys.executable, "-m", "maild", *args], cwd=cwd, capture_output=True,
                       text=True, timeout=120, env=ENV)
    if ok:
        assert p.returncode == 0, p.stderr
    return p


def js(*args: str, cwd: Path) -> Any:
    return json.loads(maild(*args, "--json", cwd=cwd).stdout)


def make_site(tmp: Path) -> Path:
    """A site whose unknown senders go to triage, with a broken acknowledgement."""
    maild("init", "site", cwd=tmp)
    config = tmp / "site" / "maild.toml"
    text = config.read_text(encoding="utf-8")
    text = text.replace('default_process = "customer"', 'default_process = "triage"')
    text = text.replace('templates = ""', 'templates = "tpl"')
    config.write_text(text, encoding="utf-8")
    shutil.copytree(ROOT / "templates" / "email", tmp / "site" / "tpl")
    (tmp / "site" / "tpl" / "ack.zh.txt.j2").write_text("Subject: {{ subjekt }}\n\nx\n",
                                                       encoding="utf-8")
    return config


def test_reprocess_triage_case_actions_export_backup(tmp_path: Path) -> None:
    config = make_site(tmp_path)
    c = ("-c", str(config))
    box = tmp_path / "site" / "var" / "mail"
    deliver(box, mail("王经理 <wang@huaxin.example.cn>", "产品询价", "需要100台样机",
                      msgid="<q1@huaxin.example.cn>",
                      attachments=(("规格.pdf", b"%PDF-1.4 spec"),)))
    deliver(box, mail("someone@unknown.example.org", "合作咨询", "想了解合作方式",
                      msgid="<t1@unknown.example.org>"))
    maild("run", *c, "--once", "--now", NOW, cwd=tmp_path)

    # the customer's mail is quarantined: its acknowledgement cannot be rendered
    [bad] = js("triage", "list", *c, "--quarantined", cwd=tmp_path)
    assert bad["message_id"] == "<q1@huaxin.example.cn>" and "subjekt" in bad["reason"]
    dry = maild("reprocess", *c, "q1@huaxin.example.cn", "--dry-run", cwd=tmp_path)
    assert "route:   new customer" in dry.stdout and "subjekt" in dry.stdout
    assert "nothing was written" in dry.stdout
    still = maild("reprocess", *c, str(bad["id"]), cwd=tmp_path, ok=False)
    assert still.returncode == 1 and "stays quarantined" in still.stderr
    shutil.copy(ROOT / "templates" / "email" / "ack.zh.txt.j2",
                tmp_path / "site" / "tpl" / "ack.zh.txt.j2")  # the cause, fixed
    done = js("reprocess", *c, str(bad["id"]), "--now", "2026-12-01T11:00+08:00",
              cwd=tmp_path)
    assert done["case"] == "2026-客-001" and done["folder"] == "Quarantine"
    assert "ack" in done["letters"]
    again = maild("reprocess", *c, str(bad["id"]), cwd=tmp_path, ok=False)
    assert again.returncode == 1 and "already filed on 2026-客-001" in again.stderr
    assert js("triage", "list", *c, "--quarantined", cwd=tmp_path) == []

    # the unknown sender's mail waits in triage; the admin opens a customer case from it
    [triaged] = js("triage", "list", *c, cwd=tmp_path)
    shown = maild("triage", "show", *c, triaged["message_id"], cwd=tmp_path).stdout
    assert "想了解合作方式" in shown and "route:   triage" in shown
    opened = maild("triage", "open", *c, str(triaged["id"]), "--process", "customer",
                   "--now", "2026-12-01T11:30+08:00", cwd=tmp_path).stdout
    assert "case 2026-客-002" in opened and "stays in Triage" in opened
    assert js("triage", "list", *c, cwd=tmp_path) == []

    # case actions, each an admin action on the timeline
    at = ("--now", "2026-12-01T14:00+08:00")
    maild("cases", "assign", *c, "2026-客-001", "技术部", *at, cwd=tmp_path)
    maild("cases", "note", *c, "2026-客-001", "客户来电，样机需求确认", *at, cwd=tmp_path)
    maild("cases", "close", *c, "2026-客-002", "--reason", "与 2026-客-001 重复", *at,
          cwd=tmp_path)
    maild("cases", "reopen", *c, "2026-客-002", *at, cwd=tmp_path)
    maild("cases", "close", *c, "2026-客-001", "--reason", "交付完成", *at, cwd=tmp_path)
    refused = maild("cases", "close", *c, "2026-客-001", cwd=tmp_path, ok=False)
    assert refused.returncode == 1 and "is closed" in refused.stderr
    maild("run", *c, "--once", "--now", "2026-12-01T14:05+08:00", cwd=tmp_path)  # sends

    case = js("cases", "show", *c, "2026-客-001", cwd=tmp_path)
    assert case["status"] == "closed"
    admin = [(t["actor"], t["text"]) for t in case["timeline"] if t["kind"] == "admin"]
    assert admin == [
        ("alice", "管理员重新处理（原为已隔离: cannot store: "
                  + bad["reason"][len("cannot store: "):] + "）"),
        ("alice", "管理员指派给 zhang.wei@example.com"),
        ("alice", "客户来电，样机需求确认"),
        ("alice", "管理员关闭: 交付完成")]
    other = js("cases", "show", *c, "2026-客-002", cwd=tmp_path)
    assert other["status"] == "open"
    assert [t["text"] for t in other["timeline"] if t["kind"] == "admin"][-1] \
        == "管理员重新打开"

    # the finished case's export reads offline: every mail and file, linked from the index
    maild("cases", "export", *c, "2026-客-001", "--out", str(tmp_path / "export"),
          cwd=tmp_path)
    with zipfile.ZipFile(tmp_path / "export" / "2026-客-001.zip") as z:
        names = set(z.namelist())
        index = z.read("index.html").decode()
        assert json.loads(z.read("case.json"))["timeline"] == case["timeline"]
        mails = sorted(n for n in names if n.startswith("mail/"))
        letters = [t for t in case["timeline"] if t["kind"] == "letter"]
        assert len(mails) == 1 + len(letters)
        assert z.read(mails[0]) == next(box.glob(".Quarantine/cur/*")).read_bytes()
        assert z.read("attachments/规格.pdf") == b"%PDF-1.4 spec"
        links = {unquote(h) for h in re.findall(r'href="([^"]+)"', index)}
        assert links == names - {"case.json", "index.html"}
        assert "需要100台样机" in index and "交付完成" in index
    every = maild("cases", "export", *c, "--all", "--since", "2026-12-01",
                  "--out", str(tmp_path / "all"), cwd=tmp_path).stdout.split()
    assert [Path(p).name for p in every] == ["2026-客-001.zip", "2026-客-002.zip"]

    # backup, then restore into an empty folder: the same cases
    maild("backup", *c, str(tmp_path / "bk"), cwd=tmp_path)
    assert (tmp_path / "bk" / "maild.db").exists() and (tmp_path / "bk" / "site" / "tpl").is_dir()
    # the reply-token key goes with it (private): letters sent stay able to prove replies
    key = tmp_path / "bk" / "reply-token.key"
    assert key.read_bytes() == (tmp_path / "site" / "var" / "reply-token.key").read_bytes()
    assert key.stat().st_mode & 0o777 == 0o600
    restored = tmp_path / "restored" / "maild.toml"
    maild("backup", "--restore", str(tmp_path / "bk"), "-c", str(restored), cwd=tmp_path)
    assert (tmp_path / "restored" / "var" / "reply-token.key").read_bytes() == key.read_bytes()
    before = maild("cases", "list", *c, "--json", cwd=tmp_path).stdout
    after = maild("cases", "list", "-c", str(restored), "--json", cwd=tmp_path).stdout
    assert after == before and len(json.loads(after)) == 2
    assert maild("cases", "show", "-c", str(restored), "2026-客-001", "--json",
                 cwd=tmp_path).stdout == maild("cases", "show", *c, "2026-客-001", "--json",
                                               cwd=tmp_path).stdout
    maild("config", "check", "-c", str(restored), cwd=tmp_path)  # with its templates
    maild("cases", "export", "-c", str(restored), "2026-客-001", "--out",
          str(tmp_path / "export2"), cwd=tmp_path)
    with zipfile.ZipFile(tmp_path / "export2" / "2026-客-001.zip") as z:
        assert set(z.namelist()) == names  # the raw mail and files came back too
    # a second restore over a site with data is refused
    again = maild("backup", "--restore", str(tmp_path / "bk"), "-c", str(restored),
                  cwd=tmp_path, ok=False)
    assert again.returncode == 1 and "already holds" in again.stderr
    into_used = maild("backup", *c, str(tmp_path / "bk"), cwd=tmp_path, ok=False)
    assert into_used.returncode == 1 and "not empty" in into_used.stderr
