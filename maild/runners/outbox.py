"""The outbox drain: due letters leased, sent through a MailSender, each delivery written to
the journal as the server accepts it, marked sent (or retried later, or given up) in the
database."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta

from maild import failpoints
from maild.adapters.senders import MailSender, SendError, SendThread
from maild.config import Smtp
from maild.engine.bounce import who_hears
from maild.engine.effects import CaseView, SendLetter
from maild.site import Site
from maild.store import ApplyEnv, Outgoing, Store
from maild.store.limits import letter_label
from maild.store.outbox import DeliveryJournal, RetryPolicy, Tell

log = logging.getLogger("maild.send")

#: the letter that tells a case's owner one of its letters was given up
FAILURE_LETTER = "delivery_failed"

Attempt = str | None | BaseException


def retry_policy(smtp: Smtp) -> RetryPolicy:
    """``[smtp] retry_schedule``, ``give_up_after`` and ``max_attempts``."""
    return RetryPolicy(smtp.retry_delays, smtp.give_up, smtp.max_attempts)


class Outage:
    """Delivery trouble, reported once: at the first failed attempt, and when a letter goes
    out again. Between the two, each failure is noted on its letter (``maild outbox
    list``) and logged at DEBUG only."""

    def __init__(self) -> None:
        self.since: datetime | None = None
        self.failures = 0

    def failed(self, error: SendError, now: datetime) -> None:
        self.failures += 1
        if self.since is None:
            self.since = now
            log.warning("delivery failing (%s): %s; letters stay queued and are retried on "
                        "[smtp] retry_schedule (reported again when delivery resumes)",
                        error.kind, error)
        else:
            log.debug("delivery still failing (%s): %s", error.kind, error)

    def delivered(self, now: datetime) -> None:
        if self.since is not None:
            log.warning("delivery resumed after %s, %d failed attempt(s)",
                        str(now - self.since).split(".")[0], self.failures)
            self.since, self.failures = None, 0


def owner_notice(site: Site) -> Tell:
    """The ``delivery_failed`` letter for a letter given up, to the case's owners on staff
    (else its department's head, else our own address), in the organisation's language.
    Not automatic (no rate limit applies), and never about a ``delivery_failed`` letter."""
    org = site.cfg.organisation

    def tell(case: CaseView, out: Outgoing, error: str, permanent: bool, now: datetime
             ) -> tuple[SendLetter, ApplyEnv] | None:
        if out.letter == FAILURE_LETTER:
            return None  # no letters about letters about letters
        tz = site.calendar.tz
        label = letter_label(out.letter or "", org.language)  # 「受理回执」, not "ack"
        ctx = {"org_name": org.name, "subject": case.subject, "letter": label,
               "rcpt": list(out.rcpt), "error": error, "attempts": out.attempts + 1,
               "permanent": permanent, "message_id": out.message_id,
               "queued_at": (out.created_at.astimezone(tz).strftime("%Y-%m-%d %H:%M")
                             if out.created_at else ""),
               "given_up_at": now.astimezone(tz).strftime("%Y-%m-%d %H:%M"),
               "outbox_id": out.id}
        return (SendLetter(FAILURE_LETTER, tuple(told(site, case, out.rcpt)), ctx,
                           org.language, automatic=False),
                ApplyEnv.for_site(site, now))

    return tell


def told(site: Site, case: CaseView, failed: Sequence[str]) -> list[str]:
    """Who hears of a failed letter (as of a bounce: ``maild.engine.bounce.who_hears``)."""
    return who_hears(case, failed, site.directory, site.cfg.organisation.address)


async def _attempt(sender: MailSender, rows: Sequence[Outgoing], journal: DeliveryJournal,
                   should_stop: Callable[[], bool]) -> list[Attempt]:
    """Send ``rows`` in order: each one's refusal note (or None), or the error it met. Each
    letter the server accepts is written to the journal at once. Stops before the next
    letter when told to, and after a transient SendError or any other error;
    ``len(result) < len(rows)`` then. (On the sending thread when there is one.)"""
    out: list[Attempt] = []
    for row in rows:
        if should_stop():
            break
        try:
            note = await sender.send(row.mail_from, row.rcpt, row.raw)
        except SendError as e:
            out.append(e)
            if not e.permanent:
                break
            continue
        except Exception as e:  # noqa: BLE001 - reported by drain after the marks
            out.append(e)
            break
        failpoints.hit("after_send")  # accepted, not yet in the journal: sent again
        try:
            journal.record(row)
        except OSError as e:
            log.error("delivery journal: %s; %s is marked with its chunk only", e,
                      row.message_id)
        out.append(note)
    return out


async def drain(store: Store, sender: MailSender, clock: Callable[[], datetime], *,
                max_attempts: int | None = None, batch: int = 25, lease: float = 120.0,
                should_stop: Callable[[], bool] = lambda: False,
                retry: RetryPolicy | None = None, tell: Tell | None = None,
                outage: Outage | None = None) -> tuple[int, int]:
    """Send every due letter; returns (sent, failed attempts). Stops at the first transient
    failure so an unreachable server is retried later rather than hammered, and, when
    ``should_stop``, before the next letter: the letters not attempted are given back.

    First the journal of deliveries is folded into the marks (letters a killed or cancelled
    sender delivered are marked sent, not sent again). Letters go out ``batch`` at a time
    (through a SendThread when given one); each is written to the journal as the server
    accepts it, and the database marks them sent together, in the transaction that leases
    the next ones. A letter the server did not take is tried again on ``retry``'s schedule;
    one refused for good, or past the schedule's end, is given up: noted on its case, and
    ``tell`` may write to its owner."""
    policy = retry or RetryPolicy(max_attempts=max_attempts)
    report = outage or Outage()
    journal = store.journal
    await store.fold_journal(clock())
    if should_stop():
        return 0, 0
    sent = failed = 0
    rows = await store.claim(clock(), batch, timedelta(seconds=lease))
    while rows:
        if isinstance(sender, SendThread):
            results = await sender.run(_attempt(sender.inner, rows, journal, should_stop))
        else:
            results = await _attempt(sender, rows, journal, should_stop)
        done: list[tuple[Outgoing, str | None]] = []
        error: BaseException | None = None
        stopped = len(results) < len(rows)
        for out, res in zip(rows, results, strict=False):  # results may stop short
            if isinstance(res, SendError):
                failed += 1
                stopped = stopped or not res.permanent  # the server's trouble: try later
                now = clock()
                if not res.permanent:
                    report.failed(res, now)
                gave_up = await store.failed(out, now, f"{res.kind}: {res}",
                                             permanent=res.permanent, retry=policy, tell=tell)
                if gave_up:
                    log.error("%s (%s to %s) given up: %s", out.message_id, out.letter,
                              ", ".join(out.rcpt), res)
                else:
                    log.debug("%s not sent, kept: %s", out.message_id, res)
            elif isinstance(res, BaseException):
                error = res  # not attempted to our knowledge: its lease runs out
            else:
                done.append((out, res))
                sent += 1
                report.delivered(clock())
                if res:
                    log.warning("%s sent, but %s", out.message_id, res)
                else:
                    log.info("%s sent to %s", out.message_id, ", ".join(out.rcpt))
        if stopped or error is not None or should_stop():
            await store.sent(done, clock())
            # free for the next cycle rather than held for the lease
            await store.release(rows[len(results):])
            if error is not None:
                raise error
            break
        rows = await store.sent(done, clock(), claim=(batch, timedelta(seconds=lease)))
    return sent, failed
