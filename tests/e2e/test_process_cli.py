"""The command line around processes: explain shows the commands a mail carries."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from support import mail


def maild(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "maild", *args], capture_output=True,
                          text=True, timeout=120)


def test_explain_lists_commands_from_body_and_subject(tmp_path: Path) -> None:
    assert maild("init", str(tmp_path)).returncode == 0
    eml = tmp_path / "in.eml"
    eml.write_bytes(mail("zhang.wei@example.com", "Re: 新品推广 [确认]",
                         "#assign 财务部\n#frobnicate\n\n> #close\n"))
    p = maild("explain", "-c", str(tmp_path / "maild.toml"), str(eml), "--json")
    assert p.returncode == 0, p.stderr
    r = json.loads(p.stdout)
    assert r["commands"] == [
        {"command": "assign", "line": "#assign 财务部", "source": "body"},
        {"command": None, "line": "#frobnicate", "source": "body"},
        {"command": "confirm", "line": "[确认]", "source": "subject"}]
    text = maild("explain", "-c", str(tmp_path / "maild.toml"), str(eml)).stdout
    assert "command: #frobnicate  (unknown, from the body)" in text
