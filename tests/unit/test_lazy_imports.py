"""The daemon's memory budget (bench/intake.py: under 150 MB with its parser process):
libraries only some sites or some letters need are imported when they are needed, not by
every ``maild run``."""

from __future__ import annotations

import subprocess
import sys

#: each costs 7-17 MB of modules: holidays (all its ~300 countries), prometheus_client
#: ([metrics] only), icalendar (letters with an event), python-docx and lxml (generated
#: documents), msal (Microsoft OAuth), dkim (staff mail with a signature)
HEAVY = ("holidays", "prometheus_client", "icalendar", "docx", "lxml", "msal", "dkim")


def test_starting_the_daemon_imports_no_optional_library() -> None:
    code = ("import sys\n"
            "import maild.app, maild.runners.daemon, maild.cli.main, maild.cli.run\n"
            f"print(sorted({{m.split('.')[0] for m in sys.modules}} & set({HEAVY!r})))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == "[]"
