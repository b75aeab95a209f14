"""The MailSender port (SMTP, or a local Maildir for the embedded default) and the outbox drain."""

from __future__ import annotations

import asyncio
import logging
import os
import ssl
import threading
import time
from collections.abc import Callable, Coroutine, Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Protocol, TypeVar
from urllib.parse import unquote, urlsplit

import aiosmtplib

from maild import failpoints
from maild.store import Outgoing, Store

log = logging.getLogger("maild.send")
T = TypeVar("T")


class SendError(Exception):
    def __init__(self, message: str, *, permanent: bool) -> None:
        super().__init__(message)
        self.permanent = permanent


class MailSender(Protocol):
    async def send(self, mail_from: str, rcpt: Sequence[str], raw: bytes) -> str | None:
        """Deliver; return a note about refused recipients, or None. Raises SendError."""

    async def close(self) -> None: ...


class SmtpSender:
    """aiosmtplib over one reused connection, reconnecting when the server dropped it."""

    def __init__(self, url: str, *, username: str | None = None, password: str | None = None,
                 starttls: bool = False, timeout: float = 30.0,
                 tls_context: ssl.SSLContext | None = None) -> None:
        u = urlsplit(url)
        self.implicit_tls = u.scheme == "smtps"
        self.host = u.hostname or "127.0.0.1"
        self.port = u.port or (465 if self.implicit_tls else 25)
        self.username = username or (unquote(u.username) if u.username else None)
        self.password = password
        self.starttls = starttls
        self.timeout = timeout
        self.tls_context = tls_context
        self._smtp: aiosmtplib.SMTP | None = None

    async def _connect(self) -> aiosmtplib.SMTP:
        if self._smtp is not None and self._smtp.is_connected:
            return self._smtp
        smtp = aiosmtplib.SMTP(hostname=self.host, port=self.port, timeout=self.timeout,
                               use_tls=self.implicit_tls, start_tls=self.starttls or None,
                               tls_context=self.tls_context)
        await smtp.connect()
        if self.username and self.password:
            await smtp.login(self.username, self.password)
        self._smtp = smtp
        return smtp

    async def send(self, mail_from: str, rcpt: Sequence[str], raw: bytes) -> str | None:
        try:
            smtp = await self._connect()
            errors, _ = await smtp.sendmail(mail_from, list(rcpt), raw)
        except aiosmtplib.SMTPRecipientsRefused as e:
            codes = [r.code for r in e.recipients]
            raise SendError(f"all recipients refused: {e}",
                            permanent=all(500 <= c < 600 for c in codes)) from e
        except aiosmtplib.SMTPResponseException as e:
            await self._drop()
            raise SendError(f"SMTP {e.code} {e.message}", permanent=500 <= e.code < 600) from e
        except (aiosmtplib.SMTPException, OSError) as e:
            await self._drop()
            raise SendError(f"SMTP connection: {e}", permanent=False) from e
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


Attempt = str | None | BaseException


async def _attempt(sender: MailSender, rows: Sequence[Outgoing]) -> list[Attempt]:
    """Send ``rows`` in order: each one's refusal note (or None), or the error it met. Stops
    after a transient SendError or any other error; ``len(result) < len(rows)`` then."""
    out: list[Attempt] = []
    for row in rows:
        try:
            out.append(await sender.send(row.mail_from, row.rcpt, row.raw))
        except SendError as e:
            out.append(e)
            if not e.permanent:
                break
            continue
        except Exception as e:  # noqa: BLE001 - reported by drain after the marks
            out.append(e)
            break
        failpoints.hit("after_send")
    return out


async def drain(store: Store, sender: MailSender, clock: Callable[[], datetime], *,
                max_attempts: int = 8, batch: int = 25, lease: float = 120.0,
                should_stop: Callable[[], bool] = lambda: False) -> tuple[int, int]:
    """Send every due letter; returns (sent, failed attempts). Stops at the first connection
    failure so an unreachable server is retried later rather than hammered.

    Letters go out ``batch`` at a time (through a SendThread when given one) and are marked
    sent together, in the transaction that leases the next ones: a crash can make the next
    run send at most that many letters again, each with its original Message-ID (README,
    "The window that remains")."""
    sent = failed = 0
    rows = await store.claim(clock(), batch, timedelta(seconds=lease))
    while rows:
        if isinstance(sender, SendThread):
            results = await sender.run(_attempt(sender.inner, rows))
        else:
            results = await _attempt(sender, rows)
        done: list[tuple[Outgoing, str | None]] = []
        error: BaseException | None = None
        for out, res in zip(rows, results, strict=False):  # results may stop short
            if isinstance(res, SendError):
                failed += 1
                gave_up = await store.failed(out, clock(), str(res), permanent=res.permanent,
                                             max_attempts=max_attempts)
                log.warning("%s send failed (%s): %s", out.message_id,
                            "given up" if gave_up else "will retry", res)
            elif isinstance(res, BaseException):
                error = res  # not attempted to our knowledge: its lease runs out
            else:
                done.append((out, res))
                sent += 1
                if res:
                    log.warning("%s sent, but %s", out.message_id, res)
                else:
                    log.info("%s sent to %s", out.message_id, ", ".join(out.rcpt))
        stopped = len(results) < len(rows) or error is not None
        if stopped or should_stop():
            await store.sent(done, clock())
            # free for the next cycle rather than held for the lease
            await store.release(rows[len(results):])
            if error is not None:
                raise error
            break
        rows = await store.sent(done, clock(), claim=(batch, timedelta(seconds=lease)))
    return sent, failed
