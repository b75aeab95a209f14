"""An IMAP mailbox as a MailSource, built on imap-tools (blocking; call it from a thread).

URL form: ``imap://USER@HOST[:PORT]/FOLDER`` or ``imaps://...``, the user percent-encoded
(``shared%40example.test``), default ports 143 / 993, default folder ``INBOX``. A password
in the userinfo (``user:pass@host``) is accepted but the ``password`` argument wins, and
``name`` never contains it. ``imaps://`` verifies the certificate with the system trust
store unless an ``ssl_context`` is given; ``starttls=True`` upgrades an ``imap://`` link.

Sizes are fetched first (``UID FETCH ... (UID RFC822.SIZE)``, cheap), so that a byte budget
is kept before any body is read; raw bytes then with ``UID FETCH ... (UID BODY.PEEK[])`` in
chunks of ``batch`` UIDs: exact bytes, never ``\\Seen``. Moves use ``UID MOVE`` or
``UID COPY`` + ``\\Deleted`` + ``UID EXPUNGE`` of just those UIDs: never a folder-wide
EXPUNGE, so messages another client flagged ``\\Deleted`` stay. A dropped connection is
re-established once per call; any other failure (bad password, unreachable host, refused
command) raises ``MailSourceError``.
"""

from __future__ import annotations

import imaplib
import logging
import re
import ssl
import threading
from collections.abc import Callable, Sequence
from typing import TypeVar
from urllib.parse import quote, unquote, urlsplit

from imap_tools import BaseMailBox, MailBox, MailBoxStartTls, MailBoxUnencrypted
from imap_tools.errors import ImapToolsError, MailboxLoginError
from imap_tools.utils import encode_folder

from maild.adapters.sources.base import Fetched, MailSourceError, within

log = logging.getLogger("maild.intake")

T = TypeVar("T")
DEFAULT_PORTS = {"imap": 143, "imaps": 993}
_UID_RE = re.compile(rb"\bUID (\d+)")
_SIZE_RE = re.compile(rb"\bRFC822\.SIZE (\d+)")


def parse_imap_url(url: str) -> tuple[str, str, str | None, str, int, str]:
    """Split an IMAP URL into ``(scheme, user, password_or_None, host, port, folder)``."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in DEFAULT_PORTS:
        raise ValueError(f"not an imap:// or imaps:// URL: {url!r}")
    if not parts.hostname or parts.username is None:
        raise ValueError(f"IMAP URL needs user@host: {url!r}")
    try:
        port = parts.port or DEFAULT_PORTS[scheme]
    except ValueError as exc:
        raise ValueError(f"bad port in IMAP URL {url!r}") from exc
    password = unquote(parts.password) if parts.password is not None else None
    folder = unquote(parts.path.lstrip("/")) or "INBOX"
    return scheme, unquote(parts.username), password, parts.hostname, port, folder


class ImapSource:
    """One folder of an IMAP mailbox (see the module docstring)."""

    def __init__(
        self,
        url: str,
        password: str | None = None,
        *,
        starttls: bool = False,
        ssl_context: ssl.SSLContext | None = None,
        processed: str = "Processed",
        batch: int = 200,
        timeout: float = 30.0,
    ) -> None:
        scheme, user, url_password, host, port, folder = parse_imap_url(url)
        if scheme == "imaps" and starttls:
            raise ValueError("starttls applies to imap://, not imaps://")
        if password is None and url_password is None:
            raise ValueError(f"no password for {user} (argument or URL userinfo)")
        self.scheme, self.user, self.host, self.port = scheme, user, host, port
        self.folder = folder
        self._password = password if password is not None else url_password or ""
        self.starttls = starttls
        self.processed = processed
        self.batch = max(1, batch)
        self.timeout = timeout
        self._ssl_context = ssl_context
        host_part = f"[{host}]" if ":" in host else host
        self.name = f"{scheme}://{quote(user, safe='')}@{host_part}:{port}/{quote(folder)}"
        self._mb: BaseMailBox | None = None
        self._known_folders: set[str] = set()
        self._lock = threading.RLock()

    # -- connection ------------------------------------------------------------------------

    def open(self) -> None:
        with self._lock:
            if self._mb is None:
                self._mb = self._connect()

    def close(self) -> None:
        with self._lock:
            mb, self._mb = self._mb, None
            if mb is not None:
                _disconnect(mb)

    def __enter__(self) -> ImapSource:
        self.open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _connect(self) -> BaseMailBox:
        where = f"{self.host}:{self.port}"
        try:
            if self.scheme == "imaps":
                ctx = self._ssl_context or ssl.create_default_context()
                mb: BaseMailBox = MailBox(
                    self.host, self.port, timeout=self.timeout, ssl_context=ctx
                )
            elif self.starttls:
                ctx = self._ssl_context or ssl.create_default_context()
                mb = MailBoxStartTls(self.host, self.port, timeout=self.timeout, ssl_context=ctx)
            else:
                mb = MailBoxUnencrypted(self.host, self.port, timeout=self.timeout)
        except (OSError, imaplib.IMAP4.error, ImapToolsError) as exc:
            raise MailSourceError(f"cannot connect to IMAP server {where}: {exc}") from exc
        try:
            mb.login(self.user, self._password, initial_folder=None)
            # imaplib cached the pre-login capabilities; Dovecot adds MOVE only after login
            caps = mb.client.capability()[1][0].decode().upper().split()
            mb.client.capabilities = tuple(caps)
            mb.folder.set(self.folder)
        except MailboxLoginError as exc:
            _disconnect(mb)
            reason = _server_text(exc.command_result)
            raise MailSourceError(
                f"IMAP login as {self.user!r} at {where} refused: {reason}"
            ) from exc
        except (OSError, imaplib.IMAP4.error, ImapToolsError) as exc:
            _disconnect(mb)
            raise MailSourceError(f"cannot open {self.name}: {exc}") from exc
        log.info("connected to %s", self.name)
        return mb

    def _run(self, what: str, op: Callable[[BaseMailBox], T]) -> T:
        """Run ``op`` on the connection; reconnect once if the link dropped."""
        with self._lock:
            for attempt in (1, 2):
                if self._mb is None:
                    self._mb = self._connect()
                try:
                    result = op(self._mb)
                    # drop piled-up unsolicited responses (EXPUNGE, FETCH flags...) we never read
                    self._mb.client.untagged_responses.clear()
                    return result
                except (imaplib.IMAP4.abort, OSError) as exc:
                    self.close()
                    if attempt == 2:
                        raise MailSourceError(
                            f"{what} on {self.name} failed: connection lost ({exc})"
                        ) from exc
                    log.warning(
                        "%s on %s: connection lost (%s), reconnecting", what, self.name, exc
                    )
                except (imaplib.IMAP4.error, ImapToolsError) as exc:
                    raise MailSourceError(f"{what} on {self.name} failed: {exc}") from exc
            raise AssertionError("unreachable")

    # -- the MailSource port ---------------------------------------------------------------

    def uidvalidity(self) -> int:
        return self._run(
            "STATUS", lambda mb: mb.folder.status(self.folder, ["UIDVALIDITY"])["UIDVALIDITY"]
        )

    def fetch_after(self, last_uid: int, limit: int, max_bytes: int | None = None,
                    cap: int | None = None, first_alone: bool = True) -> list[Fetched]:
        if limit <= 0:
            return []

        def op(mb: BaseMailBox) -> list[Fetched]:
            # a selected session learns about mail added by others only at a sync point
            _check(*mb.client.noop(), "NOOP")
            typ, data = mb.client.uid("SEARCH", f"UID {last_uid + 1}:*")
            _check(typ, data, "UID SEARCH")
            found = {int(x) for line in data if line for x in line.split()}
            # "n:*" always matches the highest UID, even when it is <= last_uid
            uids = sorted(u for u in found if u > last_uid)[:limit]
            if not uids:
                return []
            if max_bytes is None and cap is None:  # no budget: no need of the sizes
                return self._fetch_all(mb, uids)
            sizes = within(self._sizes(mb, uids), max_bytes, first_alone)
            whole = [u for u, size in sizes if cap is None or size <= cap]
            out = self._fetch_all(mb, whole)
            for uid, size in sizes:
                if cap is not None and size > cap:  # only its first ``cap`` bytes
                    out.extend(self._fetch_chunk(mb, [uid], cap))
            size_of = dict(sizes)
            out.sort(key=lambda f: f.uid)
            return [Fetched(f.uid, f.raw, max(size_of[f.uid], len(f.raw))) for f in out]

        return self._run("fetch", op)

    def _fetch_all(self, mb: BaseMailBox, uids: list[int]) -> list[Fetched]:
        out: list[Fetched] = []
        for i in range(0, len(uids), self.batch):
            out.extend(self._fetch_chunk(mb, uids[i : i + self.batch]))
        return out

    @staticmethod
    def _sizes(mb: BaseMailBox, uids: list[int]) -> list[tuple[int, int]]:
        """``(uid, RFC822.SIZE)`` of those of ``uids`` still there, in order."""
        typ, data = mb.client.uid("FETCH", ",".join(map(str, uids)), "(UID RFC822.SIZE)")
        _check(typ, data, "UID FETCH")
        size_of: dict[int, int] = {}
        for item in data:
            line = item[0] if isinstance(item, tuple) else item
            if not isinstance(line, bytes):
                continue
            uid, size = _UID_RE.search(line), _SIZE_RE.search(line)
            if uid is not None and size is not None:
                size_of[int(uid.group(1))] = int(size.group(1))
        return [(u, size_of[u]) for u in uids if u in size_of]

    def move(self, uids: Sequence[int], folder: str) -> None:
        wanted = sorted({int(u) for u in uids})
        if not wanted:
            return

        def op(mb: BaseMailBox) -> None:
            self._ensure_folder(mb, folder)
            target = encode_folder(folder)
            use_move = "MOVE" in mb.client.capabilities
            for i in range(0, len(wanted), self.batch):
                uidset = ",".join(map(str, wanted[i : i + self.batch]))
                if use_move:
                    typ, data = mb.client.uid("MOVE", uidset, target)  # type: ignore[arg-type]
                    if typ != "OK" and b"EXPUNGEISSUED" in b"".join(_as_bytes(data)):
                        # another client (a second daemon) moved some first: move the rest
                        uidset = _still_there(mb, uidset)
                        if not uidset:
                            continue
                        typ, data = mb.client.uid("MOVE", uidset, target)  # type: ignore[arg-type]
                    _check(typ, data, "UID MOVE")
                else:
                    self._copy_delete(mb, uidset, target)
            log.info("moved %d message(s) from %s to %s", len(wanted), self.name, folder)

        self._run(f"move to {folder}", op)

    def count(self, folder: str | None = None) -> int:
        name = folder or self.folder

        def op(mb: BaseMailBox) -> int:
            if name != self.folder and not mb.folder.exists(name):
                return 0
            return mb.folder.status(name, ["MESSAGES"])["MESSAGES"]

        return self._run("STATUS", op)

    # -- helpers ---------------------------------------------------------------------------

    @staticmethod
    def _fetch_chunk(mb: BaseMailBox, uids: list[int], cap: int | None = None
                     ) -> list[Fetched]:
        part = "BODY.PEEK[]" if cap is None else f"BODY.PEEK[]<0.{cap}>"
        typ, data = mb.client.uid("FETCH", ",".join(map(str, uids)), f"(UID {part})")
        _check(typ, data, "UID FETCH")
        raw_by_uid: dict[int, bytes] = {}
        for i, item in enumerate(data):
            # a message is (b'7 (UID 42 BODY[] {123}', raw) followed by b')' or b' UID 42)'
            # (``BODY[]<0>`` for a partial fetch);
            # plain bytes items are unsolicited FETCH updates (flags) and are skipped
            if not isinstance(item, tuple) or b"BODY[]" not in item[0]:
                continue
            match = _UID_RE.search(item[0])
            if match is None and i + 1 < len(data) and isinstance(data[i + 1], bytes):
                match = _UID_RE.search(data[i + 1])
            if match is not None:
                raw_by_uid[int(match.group(1))] = item[1]
        # a UID expunged meanwhile by another client simply has no entry
        return [Fetched(uid, raw_by_uid[uid]) for uid in uids if uid in raw_by_uid]

    def _copy_delete(self, mb: BaseMailBox, uidset: str, target: bytes) -> None:
        _check(*mb.client.uid("COPY", uidset, target),  # type: ignore[arg-type]
               "UID COPY")
        _check(*mb.client.uid("STORE", uidset, "+FLAGS.SILENT", r"(\Deleted)"), "UID STORE")
        if "UIDPLUS" in mb.client.capabilities:
            _check(*mb.client.uid("EXPUNGE", uidset), "UID EXPUNGE")
        else:
            # a plain EXPUNGE would also remove what other clients flagged \Deleted
            log.warning("%s has no UIDPLUS: copied messages left flagged \\Deleted", self.name)

    def _ensure_folder(self, mb: BaseMailBox, folder: str) -> None:
        if folder in self._known_folders:
            return
        if not mb.folder.exists(folder):
            typ, data = mb.client._simple_command("CREATE", encode_folder(folder))
            if typ != "OK" and b"ALREADYEXISTS" not in b" ".join(_as_bytes(data)):
                _check(typ, data, f"CREATE {folder}")
            mb.client._simple_command("SUBSCRIBE", encode_folder(folder))
            log.info("created folder %s on %s", folder, self.name)
        self._known_folders.add(folder)


def _as_bytes(data: list) -> list[bytes]:
    return [x if isinstance(x, bytes) else b"" for x in data or []]


def _still_there(mb: BaseMailBox, uidset: str) -> str:
    """The UIDs of ``uidset`` that still exist in the selected folder."""
    typ, data = mb.client.uid("SEARCH", "UID", uidset)
    _check(typ, data, "UID SEARCH")
    wanted = {int(u) for u in uidset.split(",")}
    found = [int(u) for u in b" ".join(_as_bytes(data)).split()]
    return ",".join(str(u) for u in found if u in wanted)


def _check(typ: str, data: list, what: str) -> None:
    if typ != "OK":
        raise imaplib.IMAP4.error(f"{what}: {typ} {_server_text((typ, data))}")


def _server_text(result: tuple) -> str:
    data = result[1] if len(result) > 1 else None
    parts = data if isinstance(data, list) else [data]
    texts = [p.decode(errors="replace") if isinstance(p, bytes) else str(p) for p in parts]
    return " ".join(t for t in texts if t and t != "None") or "no reason given"


def _disconnect(mb: BaseMailBox) -> None:
    """Log out, or at least close the socket; never raises."""
    try:
        mb.client.logout()
    except Exception:  # noqa: BLE001 - the link may already be gone
        try:
            mb.client.shutdown()
        except Exception:  # noqa: BLE001
            pass
