"""The MailSender port (SMTP, or a local Maildir for the embedded default) and the outbox drain."""

from __future__ import annotations

import logging
import os
import ssl
import time
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Protocol
from urllib.parse import unquote, urlsplit

import aiosmtplib

from maild import failpoints
from maild.store import Outgoing, Store

log = logging.getLogger("maild.send")


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


async def drain(store: Store, sender: MailSender, clock: Callable[[], datetime], *,
                max_attempts: int = 8, batch: int = 50, lease: float = 120.0,
                mark_every: int = 10,
                should_stop: Callable[[], bool] = lambda: False) -> tuple[int, int]:
    """Send every due letter; returns (sent, failed attempts). Stops at the first connection
    failure so an unreachable server is retried later rather than hammered.

    Letters are marked sent ``mark_every`` at a time (one durable commit each group, not one
    per letter): a crash can make the next run send at most that many letters again, each
    with its original Message-ID (README, "The window that remains")."""
    sent = failed = 0
    done: list[tuple[Outgoing, str | None]] = []

    async def mark() -> None:
        if done:
            await store.sent(done, clock())
            done.clear()

    try:
        while not should_stop():
            rows = await store.claim(clock(), batch, timedelta(seconds=lease))
            if not rows:
                break
            for i, out in enumerate(rows):
                try:
                    note = await sender.send(out.mail_from, out.rcpt, out.raw)
                except SendError as e:
                    failed += 1
                    await mark()
                    gave_up = await store.failed(out, clock(), str(e), permanent=e.permanent,
                                                 max_attempts=max_attempts)
                    log.warning("%s send failed (%s): %s", out.message_id,
                                "given up" if gave_up else "will retry", e)
                    if not e.permanent:
                        # free for the next cycle rather than held for the lease
                        await store.release(rows[i + 1:])
                        return sent, failed
                    continue
                failpoints.hit("after_send")
                done.append((out, note))
                sent += 1
                if note:
                    log.warning("%s sent, but %s", out.message_id, note)
                else:
                    log.info("%s sent to %s", out.message_id, ", ".join(out.rcpt))
                if len(done) >= mark_every:
                    await mark()
            await mark()
    finally:
        if done:  # sent before an error or a cancellation: say so now, or they go out again
            try:
                await mark()
            except Exception as e:  # noqa: BLE001 - the error in hand matters more
                log.error("%d sent letter(s) could not be marked sent (%s); they will be "
                          "sent again with the same Message-ID", len(done), e)
    return sent, failed
