"""The MailSender port: SMTP, or a local Maildir for the embedded default, and a thread to
send from while the intake keeps its event loop busy."""

from __future__ import annotations

import asyncio
import logging
import os
import re
import ssl
import threading
import time
from collections.abc import Coroutine, Sequence
from pathlib import Path
from typing import Any, Protocol, TypeVar
from urllib.parse import unquote, urlsplit

import aiosmtplib

from maild.adapters.oauth import OAuthError, OAuthLogin

log = logging.getLogger("maild.send")
T = TypeVar("T")


class SendError(Exception):
    """A letter not delivered. ``permanent`` only when its recipients are refused for good;
    ``kind`` says what failed: ``recipient``, ``auth``, ``policy``, ``server`` (a 5xx that
    is not about the recipient), ``busy`` (4xx) or ``connection``."""

    def __init__(self, message: str, *, permanent: bool, kind: str = "") -> None:
        super().__init__(message)
        self.permanent = permanent
        self.kind = kind or ("recipient" if permanent else "connection")


_ENHANCED = re.compile(r"^\s*([245])\.(\d{1,3})\.(\d{1,3})\b")


def enhanced_code(message: str) -> tuple[int, int, int] | None:
    """The RFC 3463 status at the start of a reply's text (``5.1.1 User unknown``)."""
    m = _ENHANCED.match(message or "")
    return (int(m[1]), int(m[2]), int(m[3])) if m else None


def recipient_refused(code: int, message: str, *, at_rcpt: bool = True) -> bool:
    """A reply that refuses the recipient for good: ``5.1.x`` (a bad mailbox, address or
    system, but not 5.1.7/5.1.8, which are about our sender address) or ``5.2.1`` (mailbox
    disabled), or, at RCPT and without an enhanced code, 550/551/553. Everything else,
    5.7.x policy refusals included, may succeed later."""
    if not 500 <= code < 600:
        return False
    status = enhanced_code(message)
    if status is None:
        return at_rcpt and code in (550, 551, 553)
    _, subject, detail = status
    return (subject == 1 and detail not in (7, 8)) or (subject, detail) == (2, 1)


def _kind(code: int, message: str) -> str:
    status = enhanced_code(message)
    detail = status[1:] if status else None
    if code in (530, 534, 535, 538) or detail in ((7, 8), (7, 9), (7, 11), (7, 12)):
        return "auth"  # our login refused or required
    if detail is not None and detail[0] == 7:
        return "policy"
    return "busy" if 400 <= code < 500 else "server"


class MailSender(Protocol):
    async def send(self, mail_from: str, rcpt: Sequence[str], raw: bytes) -> str | None:
        """Deliver; return a note about refused recipients, or None. Raises SendError."""

    async def close(self) -> None: ...


class SmtpSender:
    """aiosmtplib over one reused connection, reconnecting when the server dropped it."""

    def __init__(self, url: str, *, username: str | None = None, password: str | None = None,
                 starttls: bool = False, timeout: float = 30.0,
                 tls_context: ssl.SSLContext | None = None,
                 oauth: OAuthLogin | None = None) -> None:
        u = urlsplit(url)
        self.implicit_tls = u.scheme == "smtps"
        self.host = u.hostname or "127.0.0.1"
        self.port = u.port or (465 if self.implicit_tls else 25)
        self.username = username or (unquote(u.username) if u.username else None)
        self.password = password
        self.starttls = starttls
        self.timeout = timeout
        self.tls_context = tls_context
        self.oauth = oauth  # XOAUTH2 / OAUTHBEARER instead of the password (adapters/oauth.py)
        self._smtp: aiosmtplib.SMTP | None = None

    async def _connect(self) -> aiosmtplib.SMTP:
        if self._smtp is not None and self._smtp.is_connected:
            return self._smtp
        smtp = aiosmtplib.SMTP(hostname=self.host, port=self.port, timeout=self.timeout,
                               use_tls=self.implicit_tls, start_tls=self.starttls or None,
                               tls_context=self.tls_context)
        await smtp.connect()
        if self.oauth is not None:
            try:
                await self.oauth.login_smtp(smtp, self.username or "")
            except OAuthError:
                smtp.close()
                raise
        elif self.username and self.password:
            await smtp.login(self.username, self.password)
        self._smtp = smtp
        return smtp

    async def send(self, mail_from: str, rcpt: Sequence[str], raw: bytes) -> str | None:
        try:
            smtp = await self._connect()
            errors, _ = await smtp.sendmail(mail_from, list(rcpt), raw)
        except aiosmtplib.SMTPRecipientsRefused as e:
            refused = [(r.code, r.message) for r in e.recipients]
            permanent = bool(refused) and all(recipient_refused(c, m) for c, m in refused)
            text = "; ".join(f"{r.recipient}: {r.code} {r.message}" for r in e.recipients)
            raise SendError(f"all recipients refused: {text}", permanent=permanent,
                            kind="recipient" if permanent else _kind(*refused[0])) from e
        except aiosmtplib.SMTPResponseException as e:
            # at connect, EHLO, AUTH, MAIL or DATA: our login, our sender, the server's
            # policy or state, which may change: tried again later
            await self._drop()
            gone = isinstance(e, aiosmtplib.SMTPDataError) and recipient_refused(
                e.code, e.message, at_rcpt=False)  # a server that checks mailboxes at DATA
            raise SendError(f"SMTP {e.code} {e.message}", permanent=gone,
                            kind="recipient" if gone else _kind(e.code, e.message)) from e
        except (aiosmtplib.SMTPException, OSError) as e:
            await self._drop()
            raise SendError(f"SMTP connection: {e}", permanent=False,
                            kind="connection") from e
        except OAuthError as e:  # no token, or a fresh one refused: retried like a bad login
            raise SendError(f"SMTP {e}", permanent=False, kind="auth") from e
        if errors:
            return "refused: " + ", ".join(f"{a} ({r.code} {r.message})"
                                           for a, r in errors.items())
        return None

    async def _drop(self) -> None:
        smtp, self._smtp = self._smtp, None
        if smtp is not None:
            try:
                smtp.close()
            except Exception:  # noqa: BLE001 - a broken connection may fail to close
                pass

    async def close(self) -> None:
        smtp, self._smtp = self._smtp, None
        if smtp is not None and smtp.is_connected:
            try:
                await smtp.quit()
            except aiosmtplib.SMTPException:
                smtp.close()


class MaildirSender:
    """Writes each letter into a local Maildir's ``new/``: the embedded default and the demo."""

    def __init__(self, path: Path) -> None:
        self.path = path
        for sub in ("tmp", "new", "cur"):
            (path / sub).mkdir(parents=True, exist_ok=True)
        self._n = 0

    async def send(self, mail_from: str, rcpt: Sequence[str], raw: bytes) -> str | None:
        self._n += 1
        name = f"{time.time_ns()}.P{os.getpid()}Q{self._n}.maild"
        tmp = self.path / "tmp" / name
        envelope = f"X-Envelope-From: {mail_from}\r\nX-Envelope-To: {', '.join(rcpt)}\r\n"
        tmp.write_bytes(envelope.encode() + raw)
        os.replace(tmp, self.path / "new" / name)
        return None

    async def close(self) -> None:
        return None


def make_sender(url: str, base_dir: Path, **smtp_kwargs: object) -> MailSender:
    if url.startswith("maildir://"):
        p = Path(url[len("maildir://"):])
        return MaildirSender(p if p.is_absolute() else base_dir / p)
    return SmtpSender(url, **smtp_kwargs)  # type: ignore[arg-type]


class SendThread:
    """A MailSender driven from a thread of its own, with an event loop of its own.

    While the intake decides a batch it seldom gives its event loop back, so letters sent from
    that loop would wait for the batch to end, and the intake would wait for every answer of
    the SMTP server. Handed to this thread, a chunk of letters goes out while the intake goes
    on. The inner sender (and its one SMTP connection) is used from this thread only.
    """

    def __init__(self, inner: MailSender) -> None:
        self.inner = inner
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    async def run(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run ``coro`` on the sending thread's loop and wait for it here."""
        if self._loop is None:
            self._loop = asyncio.new_event_loop()
            self._thread = threading.Thread(target=self._loop.run_forever, name="maild-send",
                                            daemon=True)
            self._thread.start()
        return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(coro, self._loop))

    async def send(self, mail_from: str, rcpt: Sequence[str], raw: bytes) -> str | None:
        return await self.run(self.inner.send(mail_from, rcpt, raw))

    async def close(self) -> None:
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            await self.inner.close()
            return
        try:
            await self.run(self.inner.close())
        finally:
            self._loop = self._thread = None
            loop.call_soon_threadsafe(loop.stop)
            await asyncio.to_thread(thread.join)
            loop.close()
