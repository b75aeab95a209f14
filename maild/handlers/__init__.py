"""Process handlers: what is specific to each process, behind one small interface.

``open(mail, cls, ctx)`` decides on a mail that starts a new case; ``reply(case, mail, cls,
ctx)`` on one that belongs to an existing case. Both are pure and return a Decision.
"""

from __future__ import annotations

from maild.handlers import customer, internal, supplier
from maild.handlers.base import Handler


def _registry(*modules: object) -> dict[str, Handler]:
    out: dict[str, Handler] = {}
    for m in modules:
        h: Handler = m.HANDLER
        if h.name in out:
            raise RuntimeError(f"process {h.name!r} registered twice")
        out[h.name] = h
    return out


HANDLERS: dict[str, Handler] = _registry(customer, supplier, internal)


def handler(process: str) -> Handler:
    try:
        return HANDLERS[process]
    except KeyError:
        raise KeyError(f"no handler for process {process!r}") from None
