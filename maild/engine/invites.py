"""Calendar invitations: ``#meeting`` in the meeting step and milestones, as iCalendar.

A meeting goes to the participants as an iTIP ``REQUEST`` (RFC 5546) carried by mail as iMIP
(RFC 6047): one VEVENT whose UID is fixed per case and meeting, whose SEQUENCE grows with
each change, with DTSTART/DTEND in the calendar's zone (TZID and its VTIMEZONE), ORGANIZER
our address and one ATTENDEE per participant asked to answer (RSVP). ``#meeting`` again
moves it (same UID, SEQUENCE + 1); ``#meeting cancel`` or closing the case sends ``CANCEL``.
A milestone notice carries an all-day VEVENT (``PUBLISH``): a date to put in the calendar.
The letter writer puts the .ics into the mail (``maild.adapters.attach``).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from typing import TYPE_CHECKING

from maild.engine.effects import LetterFile
from maild.mail.commands import parse_date

PRODID = "-//maild//maild calendar invitations//ZH"
ICS_NAME = "invite.ics"
#: the letter of an invitation, its update and its cancellation (its own context: see
#: ``meeting_invite.sample.toml``)
MEETING_LETTER = "meeting_invite"
DEFAULT_MINUTES = 60
MAX_MINUTES = 24 * 60
_TIME = re.compile(r"^(\d{1,2})\s*[:：点时]\s*(\d{2})?\s*分?")
_DURATION = re.compile(
    r"(?:^|\s)(?:时长\s*[:：]?\s*)?(\d+(?:\.\d+)?)\s*(h|小时|个小时|hours?|min|mins|minutes?|分钟)"
    r"(?=\s|$)", re.IGNORECASE)
CANCEL_WORDS = ("cancel", "取消")


@dataclass(frozen=True)
class MeetingArg:
    start: datetime
    minutes: int
    place: str


if TYPE_CHECKING:
    import icalendar


def parse_meeting(arg: str, tz: tzinfo) -> MeetingArg | str:
    """``2026-12-03 14:00 会议室A [1.5h]``: the start in ``tz``, the duration (default
    1 hour) and the place; else which part is wrong: "date", "time", "place", "duration"."""
    parsed = parse_date(arg)
    if parsed is None:
        return "date"
    day, rest = parsed
    m = _TIME.match(rest)
    if not m:
        return "time"
    hour, minute = int(m.group(1)), int(m.group(2) or 0)
    if hour > 23 or minute > 59:
        return "time"
    rest = rest[m.end():].strip()
    minutes = DEFAULT_MINUTES
    d = _DURATION.search(rest)
    if d:
        amount = float(d.group(1))
        minutes = round(amount * 60) if d.group(2).lower()[0] in "h小个" else round(amount)
        rest = (rest[: d.start()] + " " + rest[d.end():]).strip()
        if not 0 < minutes <= MAX_MINUTES:
            return "duration"
    place = " ".join(rest.split())
    if not place:
        return "place"
    return MeetingArg(datetime.combine(day, time(hour, minute), tzinfo=tz), minutes, place[:200])


def meeting_uid(number: str, seq: int, domain: str) -> str:
    return f"maild-{_slug(number)}-meeting-{seq}@{domain or 'maild.invalid'}"


def milestone_uid(number: str, day: str, title: str, domain: str) -> str:
    digest = hashlib.sha256(title.encode("utf-8")).hexdigest()[:12]
    return f"maild-{_slug(number)}-milestone-{day}-{digest}@{domain or 'maild.invalid'}"


def _slug(number: str) -> str:
    """A case number in a UID: ASCII, so every calendar program keeps it as it is."""
    return number.encode("utf-8").hex() if not number.isascii() else number


def _calendar(method: str) -> icalendar.Calendar:
    import icalendar  # here: 7 MB that only letters with an event need
    cal = icalendar.Calendar()
    cal.add("prodid", PRODID)
    cal.add("version", "2.0")
    cal.add("calscale", "GREGORIAN")
    cal.add("method", method)
    return cal


def _organizer(addr: str, name: str) -> icalendar.vCalAddress:
    import icalendar  # here: 7 MB that only letters with an event need
    org = icalendar.vCalAddress(f"mailto:{addr}")
    if name:
        org.params["CN"] = name
    return org


def meeting_ics(*, method: str, uid: str, sequence: int, start: datetime, minutes: int,
                summary: str, location: str, description: str, organizer: str,
                organizer_name: str, attendees: Sequence[str], now: datetime) -> bytes:
    """A REQUEST or CANCEL for one meeting, with the VTIMEZONE of ``start``'s zone."""
    import icalendar  # here: 7 MB that only letters with an event need
    cal = _calendar(method)
    ev = icalendar.Event()
    ev.add("uid", uid)
    ev.add("sequence", sequence)
    ev.add("dtstamp", now.astimezone(UTC))
    ev.add("dtstart", start)
    ev.add("dtend", start + timedelta(minutes=minutes))
    ev.add("summary", summary)
    ev.add("location", location)
    if description:
        ev.add("description", description)
    ev.add("organizer", _organizer(organizer, organizer_name))
    for addr in attendees:
        a = icalendar.vCalAddress(f"mailto:{addr}")
        a.params["CUTYPE"] = "INDIVIDUAL"
        a.params["ROLE"] = "REQ-PARTICIPANT"
        a.params["PARTSTAT"] = "NEEDS-ACTION"
        a.params["RSVP"] = "TRUE"
        ev.add("attendee", a, encode=False)
    ev.add("status", "CANCELLED" if method == "CANCEL" else "CONFIRMED")
    ev.add("transp", "OPAQUE")
    if method == "REQUEST":
        alarm = icalendar.Alarm()
        alarm.add("action", "DISPLAY")
        alarm.add("description", summary)
        alarm.add("trigger", timedelta(minutes=-15))
        ev.add_component(alarm)
    cal.add_component(ev)
    cal.add_missing_timezones(first_date=start.date() - timedelta(days=366),
                              last_date=start.date() + timedelta(days=366))
    return cal.to_ical()


def milestone_ics(*, uid: str, day: date, summary: str, description: str, organizer: str,
                  organizer_name: str, now: datetime) -> bytes:
    """A PUBLISH of one all-day event (DTSTART;VALUE=DATE, DTEND the day after)."""
    import icalendar  # here: 7 MB that only letters with an event need
    cal = _calendar("PUBLISH")
    ev = icalendar.Event()
    ev.add("uid", uid)
    ev.add("sequence", 0)
    ev.add("dtstamp", now.astimezone(UTC))
    ev.add("dtstart", day)
    ev.add("dtend", day + timedelta(days=1))
    ev.add("summary", summary)
    if description:
        ev.add("description", description)
    if organizer:
        ev.add("organizer", _organizer(organizer, organizer_name))
    ev.add("transp", "TRANSPARENT")
    cal.add_component(ev)
    return cal.to_ical()


def ics_file(data: bytes, method: str) -> LetterFile:
    return LetterFile(ICS_NAME, "text/calendar", len(data), data=data, method=method)
