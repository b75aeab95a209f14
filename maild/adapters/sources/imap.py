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
import select
import ssl
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any, TypeVar
from urllib.parse import quote, unquote, urlsplit

from imap_tools import BaseMailBox, MailBox, MailBoxStartTls, MailBoxUnencrypted
from imap_tools.errors import ImapToolsError, MailboxLoginError
from imap_tools.utils import encode_folder

from maild.adapters.oauth import OAuthError, OAuthLogin
from maild.adapters.sources.base import Fetched, MailSourceError, PushUnavailable, within

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
        oauth: OAuthLogin | None = None,
    ) -> None:
        scheme, user, url_password, host, port, folder = parse_imap_url(url)
        if scheme == "imaps" and starttls:
            raise ValueError("starttls applies to imap://, not imaps://")
        if password is None and url_password is None and oauth is None:
            raise ValueError(f"no password for {user} (argument or URL userinfo)")
        self.scheme, self.user, self.host, self.port = scheme, user, host, port
        self.folder = folder
        self._password = password if password is not None else url_password or ""
        self.starttls = starttls
        self.processed = processed
        self.batch = max(1, batch)
        self.timeout = timeout
        self._oauth = oauth  # XOAUTH2 / OAUTHBEARER instead of LOGIN (adapters/oauth.py)
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
            if self._oauth is not None:
                self._oauth.login_imap(mb.client, self.user)
            else:
                mb.login(self.user, self._password, initial_folder=None)
            # imaplib cached the pre-login capabilities; Dovecot adds MOVE only after login
            caps = mb.client.capability()[1][0].decode().upper().split()
            mb.client.capabilities = tuple(caps)
            mb.folder.set(self.folder)
        except OAuthError as exc:
            _disconnect(mb)
            raise MailSourceError(f"IMAP login at {where}: {exc}") from exc
        except MailboxLoginError as exc:
            _disconnect(mb)
            reason = _server_text(exc.command_result)
            raise MailSourceError(
                f"IMAP login as {self.user!r} at {where} refused: {reason}"
            ) from exc
        except (OSError, imaplib.IMAP4.error, ImapToolsError) as exc:
            _disconnect(mb)
            raise MailSourceError(f"cannot open {self.name}: {exc}") from exc
        log.debug("connected to %s", self.name)  # each poll connects: not news
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

    def watch(self, idle_seconds: float) -> ImapWatch:
        return ImapWatch(self, idle_seconds)

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


#: RFC 2177: a client re-issues IDLE at least every 29 minutes, or the server may log it out
IDLE_MAX_SECONDS = 29 * 60.0


class ImapWatch:
    """IMAP IDLE (RFC 2177) on a connection of its own, beside the intake's (a ``MailWatch``).

    ``wait`` returns True as soon as the server reports EXISTS or a non-zero RECENT, and
    right after connecting. After any report the IDLE is ended (``DONE``) and its answer
    read up to the tagged completion, so no report is left half-read in a buffer; the next
    ``wait`` issues IDLE again. It is also re-issued every ``idle_seconds`` (at most 29
    minutes), before the server's inactivity timeout. A server without IDLE in its
    CAPABILITY, or that refuses it on a fresh connection, raises ``PushUnavailable``; a
    dropped connection or another failure raises ``MailSourceError`` (the connection is
    closed; the next ``wait`` connects again)."""

    def __init__(self, source: ImapSource, idle_seconds: float) -> None:
        self.source = source
        self.idle_seconds = min(max(1.0, idle_seconds), IDLE_MAX_SECONDS)
        self._mb: BaseMailBox | None = None
        self._tag: bytes | None = None  # of the IDLE command in hand
        self._since = 0.0  # monotonic: when it was issued

    def wait(self, timeout: float) -> bool:
        try:
            if self._mb is None:
                self._open()
                return True  # mail may have come while there was no connection
            return self._wait(self._mb.client, timeout)
        except (imaplib.IMAP4.abort, OSError) as exc:
            self.close()
            raise MailSourceError(
                f"IDLE on {self.source.name}: connection lost ({exc})") from exc
        except (imaplib.IMAP4.error, ImapToolsError) as exc:
            self.close()
            raise MailSourceError(f"IDLE on {self.source.name} failed: {exc}") from exc

    def close(self) -> None:
        mb, self._mb = self._mb, None
        if mb is None:
            return
        if self._tag is not None:
            try:  # LOGOUT is not a valid line inside IDLE: end it first
                mb.client.sock.settimeout(2.0)
                self._done(mb.client)
            except Exception:  # noqa: BLE001 - the link may already be gone
                pass
        self._tag = None
        _disconnect(mb)

    def _open(self) -> None:
        mb = self.source._connect()  # the same login as the intake's connection
        if "IDLE" not in mb.client.capabilities:
            _disconnect(mb)
            raise PushUnavailable(
                f"{self.source.host}:{self.source.port} does not offer IDLE")
        mb.client.untagged_responses.clear()  # what SELECT said
        self._mb, self._tag = mb, None
        try:  # at once: a connection that cannot IDLE is no connection for us
            self._start(mb.client)
        except imaplib.IMAP4.abort:
            raise
        except imaplib.IMAP4.error as exc:
            self.close()
            raise PushUnavailable(f"{self.source.name}: {exc}") from exc
        log.info("IDLE on %s: new mail is taken in as it arrives", self.source.name)

    def _wait(self, client: imaplib.IMAP4, timeout: float) -> bool:
        if self._tag is None and self._start(client):
            return True
        left = self._since + self.idle_seconds - time.monotonic()
        if left <= 0:  # re-IDLE before the server's timeout
            return self._done(client)
        if not _pending(client) and not select.select([client.sock], [], [],
                                                      min(timeout, left))[0]:
            return False
        client._get_response()  # one report (or BYE)
        return self._done(client)

    def _start(self, client: imaplib.IMAP4) -> bool:
        """Issue IDLE; True when news came before the server's ``+`` continuation."""
        tag = client._command("IDLE")
        commands: dict[bytes, Any] = client.tagged_commands
        while client._get_response() is not None:
            done = commands.get(tag)
            if done:
                commands.pop(tag, None)
                raise imaplib.IMAP4.error(f"IDLE refused: {_server_text(done)}")
        self._tag, self._since = tag, time.monotonic()
        return _news(client)

    def _done(self, client: imaplib.IMAP4) -> bool:
        """End the IDLE in hand and read its answer; True when it brought news."""
        tag, self._tag = self._tag, None
        if tag is None:
            return _news(client)
        client.send(b"DONE\r\n")
        commands: dict[bytes, Any] = client.tagged_commands
        while not commands.get(tag):
            client._get_response()
        typ, data = commands.pop(tag)
        if typ != "OK":
            raise imaplib.IMAP4.error(f"IDLE ended with {typ} {_server_text((typ, data))}")
        return _news(client)


def _news(client: imaplib.IMAP4) -> bool:
    """Did the untagged responses read so far report new mail? (They are dropped.)"""
    said = client.untagged_responses
    if "BYE" in said:
        raise imaplib.IMAP4.abort(f"server said BYE {_server_text(('BYE', said['BYE']))}")
    # (after an EXPUNGE Dovecot says "RECENT 0": no news)
    news = "EXISTS" in said or any(r not in (b"0", "0") for r in said.get("RECENT", ()))
    said.clear()
    return news


def _pending(client: imaplib.IMAP4) -> bool:
    """Is a response already read from the socket and waiting in a buffer (which ``select``
    cannot see)? A non-blocking peek: it never waits."""
    sock = client.sock
    old = sock.gettimeout()
    sock.settimeout(0)
    try:
        return bool(client.file.peek(1))  # type: ignore[union-attr]
    except (BlockingIOError, ssl.SSLWantReadError):
        return False
    finally:
        sock.settimeout(old)
