"""Telling systemd how the daemon is (``Type=notify``): the sd_notify protocol, spoken
directly — one datagram of ``KEY=value`` lines to the socket in ``$NOTIFY_SOCKET`` (a path,
or ``@name`` in the abstract namespace).

The daemon says ``READY=1`` once the database and the mailbox answered (the first good
poll), ``STATUS=`` with the backlog after every cycle, ``RELOADING=1`` and ``READY=1``
around a reload (SIGHUP), ``STOPPING=1`` when it stops, and ``WATCHDOG=1`` every half
``$WATCHDOG_USEC`` from a task on its own event loop: a loop that hangs stops the pings and
systemd restarts the service. Without ``$NOTIFY_SOCKET`` every call does nothing.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from maild.runners.daemon import Daemon

log = logging.getLogger("maild.systemd")


class Notifier:
    def __init__(self, address: str | None, watchdog_usec: int | None = None) -> None:
        self.address = address
        #: seconds between two WATCHDOG=1, or None when systemd watches nothing
        self.watchdog_every = watchdog_usec / 2e6 if watchdog_usec else None
        self.ready = False
        self._status = ""
        self._failed = False

    @classmethod
    def from_env(cls) -> Notifier:
        address = os.environ.get("NOTIFY_SOCKET") or None
        usec: int | None = None
        pid = os.environ.get("WATCHDOG_PID")
        if pid is None or pid == str(os.getpid()):  # a watchdog meant for us, not a parent
            try:
                usec = int(os.environ.get("WATCHDOG_USEC", "")) or None
            except ValueError:
                usec = None
        return cls(address, usec)

    @property
    def enabled(self) -> bool:
        return self.address is not None

    def send(self, *lines: str) -> bool:
        """One notification; False (logged once) when it could not be sent."""
        if self.address is None:
            return False
        addr = self.address
        if addr.startswith("@"):
            addr = "\0" + addr[1:]  # the abstract namespace
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as s:
                s.connect(addr)
                s.sendall("\n".join(lines).encode("utf-8"))
        except OSError as e:
            if not self._failed:
                log.warning("cannot notify systemd at %s: %s", self.address, e)
                self._failed = True
            return False
        self._failed = False
        return True

    def mark_ready(self, status: str) -> None:
        if self.ready:
            self.status(status)
            return
        self._status = status
        self.ready = True
        self.send("READY=1", f"STATUS={status}", f"MAINPID={os.getpid()}")

    def status(self, text: str) -> None:
        if text != self._status:
            self._status = text
            self.send(f"STATUS={text}")

    def reloading(self) -> None:
        # MONOTONIC_USEC: what Type=notify-reload (systemd 253+) asks for; older ones ignore it
        self.send("RELOADING=1", "STATUS=reloading the configuration",
                  f"MONOTONIC_USEC={time.monotonic_ns() // 1000}")

    def reloaded(self) -> None:
        self.send("READY=1", f"STATUS={self._status}")

    def stopping(self) -> None:
        self.send("STOPPING=1", "STATUS=stopping: finishing the message in hand")

    async def watchdog(self, stopping: asyncio.Event) -> None:
        """``WATCHDOG=1`` every half interval until ``stopping``; runs on the daemon's loop."""
        if self.watchdog_every is None or self.address is None:
            return
        while not stopping.is_set():
            self.send("WATCHDOG=1")
            try:
                await asyncio.wait_for(stopping.wait(), self.watchdog_every)
            except TimeoutError:
                pass


async def backlog(daemon: Daemon) -> str:
    """The ``STATUS=`` line: the intake's state and the letters waiting to go out."""
    fault = daemon.fault.fault
    try:
        pending = await daemon.app.store.pending_letters()
        letters = f"{pending} pending letter{'s' if pending != 1 else ''}"
    except Exception as e:  # noqa: BLE001 - the database away: say so, do not fail the cycle
        letters = f"pending letters unknown ({type(e).__name__})"
    if fault is not None:
        return f"intake failing since {daemon.fault.since:%H:%M:%S}: {fault}; {letters}"[:400]
    return f"idle; {daemon.app.intake.counters.processed} mails decided; {letters}"


async def after_cycle(daemon: Daemon) -> None:
    """Called after each cycle: READY on the first good poll, the status always."""
    n = daemon.systemd
    if not n.enabled:
        return
    text = await backlog(daemon)
    if daemon.fault.fault is None and daemon.polled:
        n.mark_ready(text)
    else:
        n.status(("starting: " if not n.ready else "") + text)
