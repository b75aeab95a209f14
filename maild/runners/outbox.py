"""The outbox drain: due letters leased, sent through a MailSender, marked sent or failed."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta

from maild import failpoints
from maild.adapters.senders import MailSender, SendError, SendThread
from maild.store import Outgoing, Store

log = logging.getLogger("maild.send")


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
