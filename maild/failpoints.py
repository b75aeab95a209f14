"""Named crash points for crash-safety tests.

``MAILD_FAILPOINT=after_commit`` makes the process kill itself with SIGKILL the first time
it reaches that point, exactly as a power cut or the OOM killer would. Unset, a failpoint
costs one dictionary lookup.
"""

from __future__ import annotations

import os
import signal

POINTS = ("after_fetch", "after_commit", "after_send", "before_move")


def hit(name: str) -> None:
    if name not in POINTS:
        raise ValueError(f"unknown failpoint {name!r}")
    if os.environ.get("MAILD_FAILPOINT") == name:
        os.kill(os.getpid(), signal.SIGKILL)
