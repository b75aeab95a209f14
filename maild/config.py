"""Load and validate ``maild.toml``; errors name the file, the key and the line."""

from __future__ import annotations

import os
import re
import tomllib
from datetime import date, time, timedelta
from pathlib import Path
from typing import Any, Literal
from urllib.parse import unquote, urlsplit

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from maild.calendar.business import CalendarSettings, uncovered_years
from maild.calendar.durations import WorkingDuration

PROCESSES = ("customer", "supplier", "internal")


class ConfigError(Exception):
    """A configuration problem, already phrased for the admin who has to fix it."""


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Organisation(_Model):
    name: str = "示例科技有限公司"
    address: str = "service@example.com"  # the shared mailbox everyone writes to
    message_id_domain: str = ""  # domain of our Message-IDs; default: the address's domain
    language: Literal["zh", "en"] = "zh"

    @field_validator("address")
    @classmethod
    def _address(cls, v: str) -> str:
        if "@" not in v:
            raise ValueError("must be an email address like service@example.com")
        return v.strip().lower()

    @property
    def msgid_domain(self) -> str:
        return self.message_id_domain or self.address.rpartition("@")[2]


class Database(_Model):
    url: str = "sqlite://var/maild.db"
    raw_dir: str = "var/raw"  # every message's raw bytes, content-addressed

    @field_validator("url")
    @classmethod
    def _url(cls, v: str) -> str:
        if not re.match(r"^(sqlite|postgres|postgresql|asyncpg)://", v):
            raise ValueError("must start with sqlite:// or postgres://")
        return v


class Mailbox(_Model):
    url: str = "maildir://var/mail"
    starttls: bool = False
    password_file: str | None = None
    processed_folder: str = "Processed"
    quarantine_folder: str = "Quarantine"
    triage_folder: str = "Triage"  # new mail no process applies to, for a person to sort
    batch_size: int = Field(200, ge=1, le=5000)
    # bytes fetched and held at once (the look-ahead batch included); a larger mail alone
    batch_bytes: int = Field(32 * 1024 * 1024, ge=1)
    poll_interval: float = Field(30.0, gt=0)
    # processes that parse large batches beside the daemon (0: parse in the daemon itself)
    parse_workers: int = Field(1, ge=0, le=16)
    # seconds: a failed poll (disk, database, mailbox) is retried after 1, 2, 4 … up to this
    fault_backoff_max: float = Field(60.0, gt=0)

    @field_validator("url")
    @classmethod
    def _url(cls, v: str) -> str:
        if not re.match(r"^(imap|imaps|maildir)://", v):
            raise ValueError("must start with imap://, imaps:// or maildir://")
        return v


class Smtp(_Model):
    url: str = "maildir://var/sent"
    starttls: bool = False
    username: str | None = None
    password_file: str | None = None
    timeout: float = 30.0
    # waits between attempts of a letter the server did not take ("30s", "5m", "2h", "1d");
    # the last one repeats until give_up_after has passed since the letter was queued
    retry_schedule: tuple[str, ...] = ("30s", "1m", "5m", "15m", "30m", "1h", "2h", "4h")
    give_up_after: str = "5d"  # as long as common MTAs keep mail in their queue
    max_attempts: int | None = Field(None, ge=1)  # optional cap on attempts as well
    # a sender leases letters while it sends them; a killed sender's letters wait this long
    lease_seconds: float = Field(120.0, gt=0)

    @field_validator("url")
    @classmethod
    def _url(cls, v: str) -> str:
        if not re.match(r"^(smtp|smtps|maildir)://", v):
            raise ValueError("must start with smtp://, smtps:// or maildir://")
        return v

    @field_validator("retry_schedule")
    @classmethod
    def _schedule(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        if not v:
            raise ValueError("needs at least one wait, e.g. [\"5m\", \"1h\"]")
        for s in v:
            duration(s)
        return v

    @field_validator("give_up_after")
    @classmethod
    def _give_up(cls, v: str) -> str:
        duration(v)
        return v

    @property
    def retry_delays(self) -> tuple[timedelta, ...]:
        return tuple(duration(s) for s in self.retry_schedule)

    @property
    def give_up(self) -> timedelta:
        return duration(self.give_up_after)


_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|h|d)\s*$")
_UNIT = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def duration(text: str) -> timedelta:
    """A wall-clock length: ``"30s"``, ``"5m"``, ``"2h"``, ``"5d"`` (more than zero)."""
    m = _DURATION.match(text)
    if m is None or float(m.group(1)) <= 0:
        raise ValueError(f"{text!r} is not a length like \"30s\", \"5m\", \"2h\" or \"5d\"")
    return timedelta(seconds=float(m.group(1)) * _UNIT[m.group(2)])


class Numbering(_Model):
    # {year}, {seq} and, for internal requests, {dept} (the department's short name)
    internal: str = "{year}-{dept}-{seq:03d}"
    customer: str = "{year}-客-{seq:03d}"
    supplier: str = "{year}-供-{seq:03d}"


class Routing(_Model):
    default_process: Literal["customer", "supplier", "triage"] = "customer"
    staff_domains: tuple[str, ...] = ()
    #: acknowledge mail the server marked as spam (X-Spam-Flag: YES); recorded either way
    acknowledge_spam: bool = False


class Limits(_Model):
    replies_per_sender_per_hour: int = Field(10, ge=0)
    max_attachment_bytes: int = Field(25 * 1024 * 1024, ge=0)
    # a larger mail is not parsed but quarantined with the reason
    max_message_bytes: int = Field(50 * 1024 * 1024, ge=1)
    # raw bytes kept of a mail: a larger one is kept truncated to this (and its reason says so)
    max_raw_bytes: int = Field(200 * 1024 * 1024, ge=1)


class LettersConfig(_Model):
    templates: str = ""  # a folder of templates replacing the built-in ones; "" = built-in


class ProcessesConfig(_Model):
    dir: str = ""  # a folder of process definitions replacing config/processes; "" = built-in


class CalendarConfig(_Model):
    timezone: str = "Asia/Shanghai"
    working_hours: tuple[str, ...] = ("09:00-12:00", "13:30-18:00")
    extra_closed_days: tuple[date, ...] = ()
    extra_working_days: tuple[date, ...] = ()  # e.g. the 2027 make-up days until packaged
    source: Literal["chinesecalendar", "weekdays"] = "chinesecalendar"

    @field_validator("working_hours")
    @classmethod
    def _hours(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        for p in v:
            if not re.fullmatch(r"\d{1,2}:\d{2}-\d{1,2}:\d{2}", p.strip()):
                raise ValueError(f"{p!r} is not a period like 09:00-12:00")
        return v

    @model_validator(mode="after")
    def _settings_valid(self) -> CalendarConfig:
        self.settings()  # raises ValueError with the calendar's own explanation
        return self

    def settings(self) -> CalendarSettings:
        periods = []
        for p in self.working_hours:
            a, b = p.strip().split("-")
            periods.append((time.fromisoformat(a.zfill(5)), time.fromisoformat(b.zfill(5))))
        return CalendarSettings(timezone=self.timezone, periods=tuple(periods),
                                extra_closed_days=frozenset(self.extra_closed_days),
                                extra_working_days=frozenset(self.extra_working_days),
                                source=self.source)


def _working_duration(v: str) -> str:
    WorkingDuration.parse(v)  # ValueError naming the spellings it accepts
    return v.strip()


class Escalation(_Model):
    """When an overdue step climbs the ladder, in working time (``1d``, ``2h``, ``0.5h``).

    A deadline first reminds the step's owner; ``head_after`` later the department head
    hears; ``managers_after`` after that the managers covering the department. An unanswered
    supplier chase goes to the buyer's department head ``chase_escalate_after`` later.
    """

    head_after: str = "1d"
    head_after_urgent: str = "2h"
    managers_after: str = "1d"
    managers_after_urgent: str = "2h"
    chase_escalate_after: str = "2d"

    @field_validator("head_after", "head_after_urgent", "managers_after",
                     "managers_after_urgent", "chase_escalate_after")
    @classmethod
    def _durations(cls, v: str) -> str:
        return _working_duration(v)


class Timers(_Model):
    sweep_seconds: float = Field(60.0, gt=0)  # how often due timers are looked for
    batch_size: int = Field(200, ge=1, le=5000)  # timers fired per transaction
    # a sweeper leases the timers it fires; a killed sweeper's timers wait this long
    lease_seconds: float = Field(120.0, gt=0)


class DigestConfig(_Model):
    """The weekly manager digest, sent at ``weekday`` ``time`` in the calendar's zone."""

    enabled: bool = True
    weekday: Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"] = "mon"
    time: str = "09:00"
    # a daemon that was down at the digest time still sends it within this many hours
    catch_up_hours: float = Field(24.0, gt=0, le=167)
    at_risk_within: str = "1d"  # pending deadlines due within this working time are at risk
    language: Literal["zh", "en"] | None = None  # default: organisation.language
    list_limit: int = Field(10, ge=1, le=200)  # rows per list in the mail

    @field_validator("time")
    @classmethod
    def _time(cls, v: str) -> str:
        if not re.fullmatch(r"\d{1,2}:\d{2}", v.strip()):
            raise ValueError(f"{v!r} is not a time like 09:00")
        time.fromisoformat(v.strip().zfill(5))
        return v.strip().zfill(5)

    @field_validator("at_risk_within")
    @classmethod
    def _risk(cls, v: str) -> str:
        return _working_duration(v)


class Department(_Model):
    name: str
    short: str
    head: str
    members: tuple[str, ...] = ()
    aliases: tuple[str, ...] = ()  # extra tag names, e.g. "TECH"


class Party(_Model):
    """A known customer or supplier: addresses and/or whole domains."""

    name: str
    addresses: tuple[str, ...] = ()
    domains: tuple[str, ...] = ()
    language: Literal["zh", "en"] | None = None
    contact: str = ""  # the account manager or buyer in charge of this party's cases


class Manager(_Model):
    name: str = ""
    address: str
    departments: tuple[str, ...] = ()  # empty: all departments


class Directory(_Model):
    departments: tuple[Department, ...] = ()
    managers: tuple[Manager, ...] = ()
    customers: tuple[Party, ...] = ()
    suppliers: tuple[Party, ...] = ()
    legal_department: str = "法务部"

    @model_validator(mode="after")
    def _unique(self) -> Directory:
        seen: set[str] = set()
        for d in self.departments:
            for key in (d.name, d.short):
                if key in seen:
                    raise ValueError(f"department name or short name {key!r} is used twice")
                seen.add(key)
        return self


class Config(_Model):
    organisation: Organisation = Organisation()
    database: Database = Database()
    mailbox: Mailbox = Mailbox()
    smtp: Smtp = Smtp()
    numbering: Numbering = Numbering()
    routing: Routing = Routing()
    limits: Limits = Limits()
    letters: LettersConfig = LettersConfig()
    processes: ProcessesConfig = ProcessesConfig()
    directory: Directory = Directory()
    calendar: CalendarConfig = CalendarConfig()
    escalation: Escalation = Escalation()
    timers: Timers = Timers()
    digest: DigestConfig = DigestConfig()
    # where relative paths (sqlite file, maildirs, raw store) are resolved; set by load()
    base_dir: str = "."

    def path(self, p: str) -> Path:
        q = Path(p)
        return q if q.is_absolute() else Path(self.base_dir) / q

    @property
    def raw_dir(self) -> Path:
        return self.path(self.database.raw_dir)


def line_of(text: str, loc: tuple[Any, ...]) -> int | None:
    """Best-effort line number of a key path (``("mailbox", "url")``) in TOML text."""
    keys = [k for k in loc if isinstance(k, str)]
    if not keys:
        return None
    table: list[str] = []
    best: int | None = None
    header = re.compile(r"^\s*\[\[?\s*([^\]]+?)\s*\]\]?")
    keyline = re.compile(r"^\s*([A-Za-z0-9_\-\"]+)\s*=")
    for n, line in enumerate(text.splitlines(), 1):
        m = header.match(line)
        if m:
            table = [p.strip().strip('"') for p in m.group(1).split(".")]
            if table == keys[: len(table)] and len(table) == len(keys):
                best = best or n
            continue
        m = keyline.match(line)
        if m and table + [m.group(1).strip('"')] == keys:
            return n
    if best is None and len(keys) > 1:
        return line_of(text, tuple(keys[:-1]))
    return best


def parse_config(text: str, filename: str = "maild.toml", base_dir: str = ".") -> Config:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{filename}: not valid TOML: {e}") from e
    data["base_dir"] = base_dir
    try:
        return Config.model_validate(data)
    except ValidationError as e:
        lines = []
        for err in e.errors():
            loc = tuple(err["loc"])
            key = ".".join(str(p) for p in loc) or "(top level)"
            line = line_of(text, loc)
            where = f"{filename}:{line}" if line else filename
            msg = err["msg"]
            if err["type"] == "extra_forbidden":
                msg = "unknown key (typo?)"
            lines.append(f"{where}: {key}: {msg}")
        raise ConfigError("\n".join(lines)) from e


def load(path: str | os.PathLike[str]) -> Config:
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError as e:
        raise ConfigError(f"{p}: no such config file (create one with `maild init`)") from e
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"{p}: cannot read: {e}") from e
    return parse_config(text, str(p), str(p.resolve().parent))


def secret(cfg: Config, kind: Literal["imap", "smtp"]) -> str | None:
    """The password for the mailbox or SMTP: environment, then password_file, then the URL."""
    env = os.environ.get(f"MAILD_{kind.upper()}_PASSWORD")
    if env:
        return env
    section: Mailbox | Smtp = cfg.mailbox if kind == "imap" else cfg.smtp
    if section.password_file:
        f = cfg.path(section.password_file)
        try:
            return f.read_text(encoding="utf-8").strip()
        except OSError as e:
            raise ConfigError(f"{kind} password_file {f}: cannot read: {e}") from e
    pw = urlsplit(section.url).password
    return unquote(pw) if pw else None


def warnings(cfg: Config) -> list[str]:
    """Things that work but that an admin should hear about."""
    out = []
    for kind, section in (("mailbox", cfg.mailbox), ("smtp", cfg.smtp)):
        if urlsplit(section.url).password:
            out.append(f"{kind}.url contains a password; prefer MAILD_"
                       f"{'IMAP' if kind == 'mailbox' else 'SMTP'}_PASSWORD or password_file")
    if cfg.mailbox.url.startswith("imap://") and not cfg.mailbox.starttls:
        host = urlsplit(cfg.mailbox.url).hostname or ""
        if host not in ("127.0.0.1", "localhost", "::1"):
            out.append("mailbox.url is plain imap:// to a remote host without starttls")
    this_year = date.today().year
    for year in uncovered_years(cfg.calendar.settings(), (this_year, this_year + 1)):
        out.append(f"calendar: no official holiday data for {year}; working days fall back to "
                   "Mon-Fri plus calendar.extra_closed_days/extra_working_days")
    if not cfg.directory.departments:
        out.append("directory has no departments: internal requests cannot be routed")
    return out
