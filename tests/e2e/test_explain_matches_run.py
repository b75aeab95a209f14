"""``maild explain`` and ``maild run`` decide through the same site: same due time.

With a calendar outside Shanghai, explain once computed the deadline on the default
(Shanghai) calendar while the daemon used the configured one. Both run here as commands on
one site (a Maildir mailbox, SQLite, letters to a folder), at the same fixed ``--now``.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from datetime import datetime
from pathlib import Path

from support import mail

from maild.adapters.sources.maildir import deliver

NOW = "2026-12-01T14:00+01:00"  # Tuesday 14:00 in Berlin: 21:00 in Shanghai
REQUEST = ("发起部门/人：技术部 张伟\n接收部门/人：市场部\n沟通目标：新品推广会技术讲解\n"
           "核心内容：讲解新品参数\n需协助事项：安排讲师\n期望完成时间：2026-12-10\n"
           "紧急程度：一般\n")


def maild(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "maild", *args], cwd=cwd,
                          capture_output=True, text=True, check=True, timeout=120)


def test_explain_and_run_give_the_same_due_time_on_a_berlin_calendar(tmp_path: Path) -> None:
    maild("init", "site", cwd=tmp_path)
    config = tmp_path / "site" / "maild.toml"
    text = config.read_text(encoding="utf-8")
    assert 'timezone = "Asia/Shanghai"' in text
    config.write_text(text.replace('timezone = "Asia/Shanghai"', 'timezone = "Europe/Berlin"'),
                      encoding="utf-8")
    raw = mail("zhang.wei@example.com", "[跨部门] 新品推广会技术讲解支持", REQUEST,
               to="service@example.com")
    eml = tmp_path / "request.eml"
    eml.write_bytes(raw)

    explained = json.loads(maild("explain", "-c", str(config), str(eml), "--json",
                                 "--now", NOW, cwd=tmp_path).stdout)
    due_explained = explained["case"]["due_at"]
    assert due_explained, explained

    deliver(tmp_path / "site" / "var" / "mail", raw)
    maild("run", "-c", str(config), "--once", "--now", NOW, cwd=tmp_path)
    [case] = json.loads(maild("cases", "list", "-c", str(config), "--json", cwd=tmp_path).stdout)
    assert re.fullmatch(r"\d{4}-市-\d{3}|\d{4}-技-\d{3}", case["number"])
    assert datetime.fromisoformat(case["due_at"]) == datetime.fromisoformat(due_explained)
    # one working day after Tuesday 14:00 in Berlin is Wednesday 14:00 there (13:00 UTC),
    # not a moment computed on Shanghai's working hours
    assert datetime.fromisoformat(due_explained) == datetime.fromisoformat(
        "2026-12-02T14:00+01:00")
