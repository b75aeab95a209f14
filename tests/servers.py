"""Real mail servers on loopback for tests: a Dovecot IMAP/LMTP server and an SMTP sink.

These are plain factories, not pytest fixtures (``tests/conftest.py`` wraps them), so
benchmarks and scripts can use them too. Several instances can run at once: each one
lives in its own directory and listens on ports the kernel hands out.

``DovecotServer`` needs root and the Debian packages from ``scripts/install-test-deps``.
Its ``imap_url`` has the form ``imap://shared%40example.test@127.0.0.1:PORT/INBOX``: the
user is percent-encoded (``@`` -> ``%40``), the password is never in the URL.
"""

from __future__ import annotations

import atexit
import contextlib
import imaplib
import os
import re
import shutil
import signal
import smtplib
import socket
import ssl
import stat
import subprocess
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

from aiosmtpd.controller import Controller

MAIL_UID = 5000
_READY_TIMEOUT = 10.0


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that was free a moment ago (the kernel picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def _allow_traversal(path: Path) -> None:
    """Give 'others' +x on ``path`` and its parents (pytest tmp dirs are 0700)."""
    for p in (path, *path.parents):
        mode = p.stat().st_mode
        if not mode & stat.S_IXOTH:
            os.chmod(p, stat.S_IMODE(mode) | stat.S_IXOTH)


_CONF = """\
protocols = imap lmtp
listen = 127.0.0.1
base_dir = {d}/run
state_dir = {d}/state
log_path = {d}/dovecot.log
default_internal_user = dovecot
default_login_user = dovenull
{ssl}
disable_plaintext_auth = no
auth_mechanisms = plain login
auth_failure_delay = 0
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {d}/users
}}
userdb {{
  driver = passwd-file
  args = username_format=%u {d}/users
}}
first_valid_uid = 1000
mail_location = maildir:~/Maildir
service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {port}
  }}
  inet_listener imaps {{
    address = 127.0.0.1
    port = {imaps_port}
  }}
}}
service lmtp {{
  inet_listener lmtp {{
    address = 127.0.0.1
    port = {lmtp_port}
  }}
}}
"""


class DovecotServer:
    """A private Dovecot (IMAP + LMTP, one user, Maildir) running in ``directory``.

    With ``tls=True`` a self-signed certificate for 127.0.0.1 is made with openssl:
    STARTTLS is offered on ``port`` and IMAPS listens on ``imaps_port``; trust it
    with ``ssl_context()``.
    """

    host = "127.0.0.1"
    user = "shared@example.test"
    password = "secret"

    def __init__(self, directory: str | os.PathLike[str], *, tls: bool = False) -> None:
        self.dir = Path(directory).resolve()
        self.tls = tls
        self.port = 0
        self.lmtp_port = 0
        self.imaps_port = 0
        self.conf = self.dir / "dovecot.conf"
        self.cert_path = self.dir / "cert.pem"
        self._proc: subprocess.Popen[bytes] | None = None

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> DovecotServer:
        if os.geteuid() != 0:
            raise RuntimeError("DovecotServer needs root (it runs mail as uid 5000)")
        if shutil.which("dovecot") is None and not Path("/usr/sbin/dovecot").exists():
            raise RuntimeError("dovecot is not installed: run scripts/install-test-deps")
        self._prepare()
        for attempt in range(3):  # a port picked by free_port() may be taken meanwhile
            self._write_conf()
            if self._launch():
                atexit.register(self.stop)  # no orphaned servers if a run is interrupted
                return self
            if attempt == 2:
                raise RuntimeError(f"dovecot did not start:\n{self.log()}")
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the server (SIGTERM to the master, like ``doveadm stop``; SIGKILL if stuck).

        The master lingers ~1 s waiting for its log process after everything else has
        exited (``doveadm stop`` waits 2-3 s in all); once only the log process is left
        the group is killed, which keeps a per-test server cheap.
        """
        proc, self._proc = self._proc, None
        if proc is None:
            return
        atexit.unregister(self.stop)
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)
            deadline = time.monotonic() + timeout
            while proc.poll() is None and time.monotonic() < deadline:
                if not self._busy_children(proc.pid):
                    break
                time.sleep(0.02)
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout)

    def start_again(self) -> DovecotServer:
        """Start a server that ``stop`` stopped, on the same ports and with the same mail,
        as a restarted server looks to its clients."""
        if self._proc is not None:
            return self
        if not self._launch():
            raise RuntimeError(f"dovecot did not start again:\n{self.log()}")
        atexit.register(self.stop)
        return self

    def __enter__(self) -> DovecotServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def log(self) -> str:
        path = self.dir / "dovecot.log"
        return path.read_text(errors="replace") if path.exists() else ""

    # -- addresses -------------------------------------------------------------------------

    @property
    def imap_url(self) -> str:
        return self.url()

    @property
    def imaps_url(self) -> str:
        return self.url(scheme="imaps")

    def url(self, folder: str = "INBOX", scheme: str = "imap") -> str:
        port = self.imaps_port if scheme == "imaps" else self.port
        return f"{scheme}://{quote(self.user, safe='')}@{self.host}:{port}/{quote(folder)}"

    def ssl_context(self) -> ssl.SSLContext:
        """A verifying client context that trusts this server's self-signed certificate."""
        if not self.tls:
            raise RuntimeError("server was started without tls=True")
        return ssl.create_default_context(cafile=str(self.cert_path))

    # -- helpers acting as "another client" ------------------------------------------------

    @contextlib.contextmanager
    def imap(self) -> Iterator[imaplib.IMAP4]:
        """A fresh, logged-in plain IMAP connection (logged out afterwards)."""
        client = imaplib.IMAP4(self.host, self.port, timeout=10)
        try:
            client.login(self.user, self.password)
            yield client
        finally:
            try:
                client.logout()  # also closes the socket
            except Exception:
                with contextlib.suppress(OSError):
                    client.shutdown()

    def append(self, raw: bytes, folder: str = "INBOX", flags: str | None = None) -> int:
        """APPEND one message; returns its UID (from APPENDUID)."""
        return self.append_many([raw], folder, flags)[0]

    def append_many(
        self, raws: Iterable[bytes], folder: str = "INBOX", flags: str | None = None
    ) -> list[int]:
        """APPEND messages over one connection, creating ``folder`` when missing."""
        uids: list[int] = []
        with self.imap() as client:
            for raw in raws:
                typ, data = client.append(_q(folder), flags, None, raw)
                if typ != "OK" and b"TRYCREATE" in data[-1]:
                    client.create(_q(folder))
                    typ, data = client.append(_q(folder), flags, None, raw)
                if typ != "OK":
                    raise RuntimeError(f"APPEND to {folder} failed: {data!r}")
                match = re.search(rb"APPENDUID \d+ (\d+)", data[-1])
                if match is None:
                    raise RuntimeError(f"no APPENDUID in {data!r}")
                uids.append(int(match.group(1)))
        return uids

    def deliver(
        self, raw: bytes, rcpt: str | None = None, mail_from: str = "sender@example.test"
    ) -> None:
        """Deliver "from outside" over LMTP (Dovecot adds Return-Path/Delivered-To/Received)."""
        with smtplib.LMTP(self.host, self.lmtp_port, timeout=10) as lmtp:
            lmtp.sendmail(mail_from, [rcpt or self.user], raw)

    def count(self, folder: str = "INBOX") -> int:
        """Messages in ``folder`` (0 when the folder does not exist)."""
        with self.imap() as client:
            typ, data = client.status(_q(folder), "(MESSAGES)")
            if typ != "OK":
                return 0
            match = re.search(rb"MESSAGES (\d+)", data[0])
            return int(match.group(1)) if match else 0

    def fetch_all(self, folder: str = "INBOX") -> list[bytes]:
        """Raw bytes of every message in ``folder`` in UID order (read-only, no \\Seen)."""
        return [raw for _, raw in self._fetch(folder, "BODY.PEEK[]")]

    def uids(self, folder: str = "INBOX") -> list[int]:
        with self.imap() as client:
            client.select(_q(folder), readonly=True)
            typ, data = client.uid("SEARCH", "ALL")
            return [int(x) for x in data[0].split()] if typ == "OK" else []

    def flags(self, folder: str = "INBOX") -> dict[int, set[str]]:
        """UID -> set of flags, e.g. ``{1: {"\\\\Seen"}}``."""
        result: dict[int, set[str]] = {}
        with self.imap() as client:
            client.select(_q(folder), readonly=True)
            typ, data = client.uid("FETCH", "1:*", "(UID FLAGS)")
            for item in data if typ == "OK" else []:
                if not isinstance(item, bytes):
                    continue
                uid = re.search(rb"UID (\d+)", item)
                flags = re.search(rb"FLAGS \(([^)]*)\)", item)
                if uid and flags:
                    result[int(uid.group(1))] = set(flags.group(1).decode().split())
        return result

    def add_flags(self, uids: Sequence[int], flags: str, folder: str = "INBOX") -> None:
        """STORE +FLAGS without expunging, as another mail client would."""
        with self.imap() as client:
            client.select(_q(folder))
            typ, data = client.uid("STORE", ",".join(map(str, uids)), "+FLAGS.SILENT", flags)
            if typ != "OK":
                raise RuntimeError(f"STORE failed: {data!r}")

    def kick(self) -> None:
        """Drop every IMAP connection of the user (``doveadm kick``), as a server restart would."""
        subprocess.run(
            ["doveadm", "-c", str(self.conf), "kick", self.user],
            check=True,
            capture_output=True,
            timeout=10,
        )

    # -- internals -------------------------------------------------------------------------

    def _fetch(self, folder: str, item: str) -> list[tuple[int, bytes]]:
        out: list[tuple[int, bytes]] = []
        with self.imap() as client:
            typ, _ = client.select(_q(folder), readonly=True)
            if typ != "OK":
                return out
            typ, data = client.uid("FETCH", "1:*", f"(UID {item})")
            for entry in data if typ == "OK" else []:
                if isinstance(entry, tuple):
                    uid = re.search(rb"UID (\d+)", entry[0])
                    if uid:
                        out.append((int(uid.group(1)), entry[1]))
        return sorted(out)

    def _prepare(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        _allow_traversal(self.dir)
        mail = self.dir / "mail"
        mail.mkdir(exist_ok=True)
        os.chown(mail, MAIL_UID, MAIL_UID)
        users = self.dir / "users"
        users.write_text(
            f"{self.user}:{{PLAIN}}{self.password}:{MAIL_UID}:{MAIL_UID}::{mail}/shared::\n"
        )
        users.chmod(0o644)
        if self.tls and not self.cert_path.exists():
            subprocess.run(
                [
                    "openssl",
                    "req",
                    "-x509",
                    "-newkey",
                    "ec",
                    "-pkeyopt",
                    "ec_paramgen_curve:prime256v1",
                    "-nodes",
                    "-keyout",
                    str(self.dir / "key.pem"),
                    "-out",
                    str(self.cert_path),
                    "-days",
                    "2",
                    "-subj",
                    "/CN=127.0.0.1",
                    "-addext",
                    "subjectAltName=IP:127.0.0.1",
                ],
                check=True,
                capture_output=True,
            )

    def _write_conf(self) -> None:
        self.port, self.lmtp_port = free_port(), free_port()
        self.imaps_port = free_port() if self.tls else 0
        if self.tls:
            ssl_lines = f"ssl = yes\nssl_cert = <{self.cert_path}\nssl_key = <{self.dir}/key.pem"
        else:
            ssl_lines = "ssl = no"
        self.conf.write_text(
            _CONF.format(
                d=self.dir,
                ssl=ssl_lines,
                port=self.port,
                imaps_port=self.imaps_port,
                lmtp_port=self.lmtp_port,
            )
        )

    def _launch(self) -> bool:
        """Start the master and wait for the greeting; False if it died (e.g. port taken)."""
        proc = subprocess.Popen(
            ["dovecot", "-F", "-c", str(self.conf)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        self._proc = proc
        deadline = time.monotonic() + _READY_TIMEOUT
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                self._proc = None
                return False
            if _answers(self.host, self.port, b"* OK") and _answers(
                self.host, self.lmtp_port, b"220"
            ):
                return True
            time.sleep(0.01)
        self.stop()
        raise RuntimeError(f"dovecot did not answer within {_READY_TIMEOUT}s:\n{self.log()}")

    @staticmethod
    def _busy_children(pgid: int) -> bool:
        """Is any process of the group other than the master and its log process alive?"""
        with os.scandir("/proc") as entries:
            pids = [e.name for e in entries if e.name.isdigit() and int(e.name) != pgid]
        for pid in pids:
            try:
                text = Path("/proc", pid, "stat").read_text()
            except OSError:
                continue
            comm = text[text.index("(") + 1 : text.rindex(")")]
            fields = text[text.rindex(")") + 2 :].split()
            if int(fields[2]) == pgid and fields[0] != "Z" and comm != "log":
                return True
        return False


def _q(folder: str) -> str:
    return '"' + folder.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _answers(host: str, port: int, greeting: bytes) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1) as sock:
            return sock.recv(64).startswith(greeting)
    except OSError:
        return False


# -- SMTP ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Received:
    """One message the sink accepted."""

    mail_from: str
    rcpt_tos: tuple[str, ...]
    raw: bytes


class _Handler:
    def __init__(self, sink: SmtpSink) -> None:
        self.sink = sink

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):  # noqa: N802
        code = self.sink._rcpt_refusals.get(address.lower())
        if code is not None:
            return _reply(code)
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(rcpt_options)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):  # noqa: N802
        return self.sink._accept(envelope)


def _reply(code: int) -> str:
    if 400 <= code < 500:
        return f"{code} 4.3.0 Try again later (test sink)"
    return f"{code} 5.7.1 Rejected (test sink)"


class SmtpSink:
    """An aiosmtpd server on 127.0.0.1 that records every message it accepts.

    ``refuse_next(n, code)`` makes it answer the next ``n`` DATA commands with ``code``
    (451: transient, 550: permanent); ``refuse_recipient(addr, code)`` refuses one
    recipient at RCPT time (for partial-refusal handling).
    """

    host = "127.0.0.1"

    def __init__(self) -> None:
        self.port = 0
        self._lock = threading.Lock()
        self._messages: list[Received] = []
        self._refusals: list[int] = []
        self._rcpt_refusals: dict[str, int] = {}
        self.refused = 0
        self._controller: Controller | None = None
        #: called (in the sink's thread) as each message is accepted, e.g. to look around
        self.on_accept: Callable[[], None] | None = None

    def start(self) -> SmtpSink:
        for attempt in range(3):
            self.port = free_port()
            controller = Controller(_Handler(self), hostname=self.host, port=self.port)
            try:
                controller.start()
            except OSError:
                controller.loop.close()
                if attempt == 2:
                    raise
                continue
            self._controller = controller
            break
        return self

    def stop(self) -> None:
        controller, self._controller = self._controller, None
        if controller is not None:
            controller.stop()
            if not controller.loop.is_closed():
                controller.loop.close()

    def __enter__(self) -> SmtpSink:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def messages(self) -> list[Received]:
        with self._lock:
            return list(self._messages)

    def clear(self) -> None:
        with self._lock:
            self._messages.clear()

    def refuse_next(self, n: int = 1, code: int = 451) -> None:
        with self._lock:
            self._refusals.extend([code] * n)

    def refuse_recipient(self, address: str, code: int = 550) -> None:
        with self._lock:
            self._rcpt_refusals[address.lower()] = code

    def wait_for(self, n: int, timeout: float = 5.0) -> list[Received]:
        """Block until at least ``n`` messages arrived; raises TimeoutError otherwise."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            msgs = self.messages
            if len(msgs) >= n:
                return msgs
            time.sleep(0.01)
        raise TimeoutError(f"expected {n} messages, got {len(self.messages)}")

    def _accept(self, envelope) -> str:
        with self._lock:
            if self._refusals:
                self.refused += 1
                return _reply(self._refusals.pop(0))
            self._messages.append(
                Received(
                    mail_from=envelope.mail_from,
                    rcpt_tos=tuple(envelope.rcpt_tos),
                    raw=bytes(envelope.original_content or b""),
                )
            )
        if self.on_accept is not None:
            self.on_accept()
        return "250 OK"


def tree_rss_kb(pid: int) -> int:
    """Resident memory of ``pid`` and all its descendants (maild and its parser processes),
    in KiB: what the memory tests and bench/intake.py sample."""
    total, todo = 0, [pid]
    while todo:
        p = todo.pop()
        try:
            with open(f"/proc/{p}/status", encoding="ascii", errors="replace") as f:
                total += next((int(ln.split()[1]) for ln in f if ln.startswith("VmRSS:")), 0)
            for task in os.listdir(f"/proc/{p}/task"):
                with open(f"/proc/{p}/task/{task}/children", encoding="ascii") as f:
                    todo += [int(c) for c in f.read().split()]
        except (FileNotFoundError, ProcessLookupError):
            continue
    return total
