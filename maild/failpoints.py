"""Named crash points for crash-safety tests.

``MAILD_FAILPOINT=after_commit`` makes the process kill itself with SIGKILL the first time
it reaches that point, exactly as a power cut or the OOM killer would. Unset, a failpoint
costs one dictionary lookup.
"""

from __future__ import annotations

import os
import signal

POINTS = ("after_fetch", "after_commit", "after_send", "before_move", "parser")
#: a message carrying this header line triggers a failpoint of ``hit_marked`` (one mail
#: of a batch can be made to kill the parser process, say)
MARK = b"\nX-Maild-Failpoint: "


def hit(name: str) -> None:
    if name not in POINTS:
        raise ValueError(f"unknown failpoint {name!r}")
    if os.environ.get("MAILD_FAILPOINT") == name:
        os.kill(os.getpid(), signal.SIGKILL)


def hit_marked(name: str, raw: bytes) -> None:
    """``hit(name)`` for a message that carries ``X-Maild-Failpoint: <name>``."""
    if os.environ.get("MAILD_FAILPOINT") == name and MARK + name.encode() in raw:
        hit(name)
