"""Load and validate ``maild.toml``; errors name the file, the key and the line."""

from __future__ import annotations

import os
import re
import tomllib
from datetime import date, time, timedelta
from pathlib import Path
from typing import Any, Literal
from urllib.parse import unquote, urlsplit

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from maild.calendar.business import CalendarSettings, uncovered_warning, uncovered_years
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


class OAuth(_Model):
    """``[mailbox.oauth]`` / ``[smtp.oauth]``: log in with an OAuth2 access token (XOAUTH2 or
    OAUTHBEARER) instead of a password. The token comes from Microsoft identity (msal:
    client credentials, or a refresh token), Google (a refresh token) or a command that
    prints it. See docs/operations/oauth.md."""

    provider: Literal["microsoft", "google", "command"]
    mechanism: Literal["xoauth2", "oauthbearer"] = "xoauth2"
    user: str = ""  # the login; "" = the user of the URL (mailbox) or smtp.username
    tenant: str = ""  # microsoft: the directory (tenant) ID or domain
    authority: str = ""  # microsoft: default https://login.microsoftonline.com/TENANT
    client_id: str = ""
    client_secret_file: str | None = None
    refresh_token_file: str | None = None
    scopes: tuple[str, ...] = ()  # "" = the provider's mail scopes
    token_url: str = ""  # google: default https://oauth2.googleapis.com/token
    token_command: str = ""  # command: prints the access token on stdout
    command_timeout: float = Field(30.0, gt=0)
    ca_file: str | None = None  # CA bundle for the token endpoint; default: system store

    @model_validator(mode="after")
    def _fields(self) -> OAuth:
        need: list[str] = []
        if self.provider == "microsoft":
            if not self.client_id:
                need.append("client_id")
            if not (self.tenant or self.authority):
                need.append("tenant (or authority)")
            if not (self.client_secret_file or self.refresh_token_file):
                need.append("client_secret_file (client credentials) or refresh_token_file")
        elif self.provider == "google":
            need += [k for k in ("client_id", "client_secret_file", "refresh_token_file")
                     if not getattr(self, k)]
        elif not self.token_command.strip():
            need.append("token_command")
        if need:
            raise ValueError(f"provider {self.provider!r} needs " + ", ".join(need))
        for url in (self.authority, self.token_url):
            if url and not url.startswith("https://"):
                raise ValueError(f"{url!r}: token endpoints must be https:// URLs")
        return self


class Mailbox(_Model):
    url: str = "maildir://var/mail"
    starttls: bool = False
    password_file: str | None = None
    oauth: OAuth | None = None  # [mailbox.oauth]: a token instead of the password
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
    # take new mail in as it arrives: IMAP IDLE on a second connection, or a look at a
    # Maildir's new/ every half second; poll_interval stays as the safety net
    idle: bool = True
    # seconds an IDLE lasts before it is issued again (RFC 2177: at most 29 minutes)
    idle_seconds: float = Field(600.0, ge=10, le=29 * 60)

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
    oauth: OAuth | None = None  # [smtp.oauth]: a token instead of the password
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


def _one_or_many(v: Any) -> Any:
    return (v,) if isinstance(v, str | dict) else v


_HEADER_NAME = re.compile(r"[!-9;-~]{1,100}")  # RFC 5322 field name: printable, no colon


class HeaderMatch(_Model):
    """``header = {name = "X-Foo", value = "…"}`` of a routing rule: the header is there
    (neither value nor regex), has this value (case-insensitive) or matches the regex."""

    name: str
    value: str | None = None
    regex: str | None = None

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        v = v.strip()
        if not _HEADER_NAME.fullmatch(v):
            raise ValueError(f"{v!r} is not a header name like \"X-Foo\"")
        return v.lower()

    @field_validator("regex")
    @classmethod
    def _regex(cls, v: str | None) -> str | None:
        return None if v is None else _compiles(v)

    @model_validator(mode="after")
    def _one(self) -> HeaderMatch:
        if self.value is not None and self.regex is not None:
            raise ValueError("give value or regex, not both")
        return self


def _compiles(v: str) -> str:
    try:
        re.compile(v)
    except re.error as e:
        raise ValueError(f"regex {v!r} does not compile: {e}") from e
    return v


_ADDRESS_PATTERN = re.compile(r"[^\s@<>,;]*@[^\s@<>,;]*")


class RouteRule(_Model):
    """One ``[[routing.rules]]`` entry: conditions that must all hold, and one outcome.

    Conditions: ``to`` (an address of To, Cc, Delivered-To, X-Original-To or
    Envelope-To), ``from``; both take ``"sales@example.com"``, ``"@example.com"`` (a
    domain) or ``"sales@"`` (a local part at any domain), one or a list, any may match.
    ``subject``: a tag (``"[RMA]"`` or ``"RMA"``), one or a list; ``subject_regex``;
    ``header``. Outcome: ``process`` and/or ``department``, ``triage = true`` or
    ``ignore = true`` (recorded and filed, never answered).
    """

    name: str
    to: tuple[str, ...] = ()
    from_: tuple[str, ...] = Field((), alias="from")
    subject: tuple[str, ...] = ()
    subject_regex: str | None = None
    header: tuple[HeaderMatch, ...] = ()
    process: Literal["customer", "supplier", "internal"] | None = None
    department: str | None = None
    triage: bool = False
    ignore: bool = False

    @field_validator("to", "from_", "subject", "header", mode="before")
    @classmethod
    def _listify(cls, v: Any) -> Any:
        return _one_or_many(v)

    @field_validator("name")
    @classmethod
    def _rule_name(cls, v: str) -> str:
        v = v.strip()
        if not v or len(v) > 64 or any(c.isspace() and c != " " for c in v):
            raise ValueError("must be a short name (1 to 64 characters on one line)")
        return v

    @field_validator("to", "from_")
    @classmethod
    def _addresses(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        out = tuple(a.strip().lower() for a in v)
        for a in out:
            if a == "@" or not _ADDRESS_PATTERN.fullmatch(a):
                raise ValueError(f"{a!r} is not an address (sales@example.com), a domain "
                                 f"(@example.com) or a local part (sales@)")
        return out

    @field_validator("subject")
    @classmethod
    def _tags(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        out = []
        for t in v:
            m = re.fullmatch(r"\s*(?:\[([^\[\]]+)\]|【([^【】]+)】|([^\[\]【】]+))\s*", t)
            if m is None:
                raise ValueError(f"{t!r} is not one subject tag like \"[RMA]\" or \"RMA\"")
            out.append(next(g for g in m.groups() if g is not None).strip())
        return tuple(out)

    @field_validator("subject_regex")
    @classmethod
    def _subject_regex(cls, v: str | None) -> str | None:
        return None if v is None else _compiles(v)

    @field_validator("department")
    @classmethod
    def _department(cls, v: str | None, info: ValidationInfo) -> str | None:
        """The department must be in the directory (name, short name or alias); checked
        here when the whole file is at hand (``parse_config``), else when the site is
        built."""
        if v is None:
            return None
        v = v.strip()
        toml = (info.context or {}).get("toml")
        if isinstance(toml, dict):
            depts = toml.get("directory", {}).get("departments", [])
            known = {str(n) for d in depts if isinstance(d, dict)
                     for n in (d.get("name"), d.get("short"), *d.get("aliases", ())) if n}
            if v not in known:
                raise ValueError(f"no department {v!r} in [[directory.departments]] "
                                 f"(there are: {', '.join(sorted(known)) or 'none'})")
        return v

    @model_validator(mode="after")
    def _shape(self) -> RouteRule:
        outcomes = [k for k, on in (("process/department", self.process or self.department),
                                    ("triage", self.triage), ("ignore", self.ignore)) if on]
        if len(outcomes) != 1:
            raise ValueError("needs exactly one outcome: process and/or department, "
                             "triage = true or ignore = true"
                             + (f" (has {' and '.join(outcomes)})" if outcomes else ""))
        if not (self.to or self.from_ or self.subject or self.subject_regex or self.header):
            raise ValueError("needs a condition: to, from, subject, subject_regex or header "
                             "(mail no rule takes follows [routing] default_process)")
        return self


class Routing(_Model):
    default_process: Literal["customer", "supplier", "triage"] = "customer"
    staff_domains: tuple[str, ...] = ()
    #: acknowledge mail the server marked as spam (X-Spam-Flag: YES); recorded either way
    acknowledge_spam: bool = False
    #: ``[[routing.rules]]``, tried in order before the built-in routing (maild.classify.routing)
    rules: tuple[RouteRule, ...] = ()

    @field_validator("rules")
    @classmethod
    def _unique_names(cls, v: tuple[RouteRule, ...]) -> tuple[RouteRule, ...]:
        seen: dict[str, int] = {}
        for n, r in enumerate(v, 1):
            if r.name in seen:
                raise ValueError(f"rules {seen[r.name]} and {n} are both named {r.name!r}")
            seen[r.name] = n
        return v


class Limits(_Model):
    replies_per_sender_per_hour: int = Field(10, ge=0)
    # notices to one staff address per hour; more are folded into one summary letter (0: off)
    notices_per_staff_per_hour: int = Field(20, ge=0)
    max_attachment_bytes: int = Field(25 * 1024 * 1024, ge=0)
    # files one letter carries (staff files to a party, a party's files to staff); more are
    # listed by name in the letter instead
    max_letter_attachment_bytes: int = Field(10 * 1024 * 1024, ge=0)
    # a larger mail is not parsed but quarantined with the reason
    max_message_bytes: int = Field(50 * 1024 * 1024, ge=1)
    # raw bytes kept of a mail: a larger one is kept truncated to this (and its reason says so)
    max_raw_bytes: int = Field(200 * 1024 * 1024, ge=1)


class LettersConfig(_Model):
    templates: str = ""  # a folder of templates replacing the built-in ones; "" = built-in


#: the generated documents a letter may carry (``[documents] attach``), by document name
DocumentName = Literal["customer_confirmation", "purchase_order", "acceptance_notice", "form"]


class DocumentsConfig(_Model):
    """``[documents]``: DOCX documents generated from templates (maild/adapters/documents.py)."""

    #: which letters carry their document: the 《客户需求确认函》, the 《采购订单》, the
    #: acceptance notice and the blank request form (#form); empty = none
    attach: tuple[DocumentName, ...] = ("customer_confirmation", "purchase_order",
                                        "acceptance_notice", "form")
    #: a folder of document templates (<name>.<zh|en>.j2) used before the built-in ones
    templates: str = ""


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
    # the step's owner is warned when this share of the step's working time has passed
    # (0.75: three quarters of the way to the deadline); 0 turns early warnings off
    early_warning: float = Field(0.75, ge=0, lt=1)

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
    # when the digest day is not a working day (a statutory holiday, a weekend): send it
    # on the next working day at the same time, skip that week, or send it anyway
    on_holiday: Literal["next_working_day", "skip", "send"] = "next_working_day"

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
    #: how letters greet people: address -> name ("王芳"), ahead of mail display names
    names: dict[str, str] = {}

    @field_validator("names")
    @classmethod
    def _names(cls, v: dict[str, str]) -> dict[str, str]:
        out = {}
        for addr, name in v.items():
            if "@" not in addr:
                raise ValueError(f"names: {addr!r} is not a mail address")
            name = " ".join(name.split())
            if not name or "@" in name or len(name) > 40:
                raise ValueError(f"names: {addr!r}: give a person's name of 1 to 40 characters"
                                 " (not an address)")
            out[addr.strip().lower()] = name
        return out

    @model_validator(mode="after")
    def _unique(self) -> Directory:
        seen: set[str] = set()
        for d in self.departments:
            for key in (d.name, d.short):
                if key in seen:
                    raise ValueError(f"department name or short name {key!r} is used twice")
                seen.add(key)
        return self


class Security(_Model):
    """Who may run staff commands: what proves that a mail comes from its From address
    (docs/SECURITY.md)."""

    #: the authserv-id(s) our own mailbox server writes in Authentication-Results; results
    #: stamped by anyone else are ignored (a sender can write any header)
    trusted_authserv_ids: tuple[str, ...] = ()
    verify_dkim: bool = True  # maild checks DKIM signatures itself
    #: pinned DKIM keys used instead of DNS: "sel._domainkey.example.com" = "v=DKIM1; p=..."
    dkim_keys: dict[str, str] = Field(default_factory=dict)
    dkim_dns_timeout: float = Field(3.0, gt=0, le=30)
    reply_tokens: bool = True  # our Message-IDs carry a token a reply can prove itself with
    secret_file: str = "var/reply-token.key"  # the site secret of the tokens (0600)
    #: which proofs count: authentication-results, dkim, reply-token
    command_proof: tuple[Literal["authentication-results", "dkim", "reply-token"], ...] = (
        "authentication-results", "dkim", "reply-token")
    allow_unproven_commands: bool = False  # insecure: any From: runs commands
    #: acknowledge mail that fails DMARC at a sender domain asking for reject/quarantine
    acknowledge_dmarc_fail: bool = False

    @field_validator("trusted_authserv_ids")
    @classmethod
    def _ids(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(i.strip().lower() for i in v if i.strip())

    @field_validator("dkim_keys")
    @classmethod
    def _keys(cls, v: dict[str, str]) -> dict[str, str]:
        return {k.strip().lower().rstrip("."): val for k, val in v.items()}


LogLevel = Literal["debug", "info", "warning", "error", "critical"]


class LoggingConfig(_Model):
    """``[logging]``: what maild writes to stderr (the journal, under systemd)."""

    format: Literal["text", "json"] = "text"  # json: one object per line
    level: LogLevel = "info"
    #: a level per logger, e.g. "maild.intake" = "debug", "imap_tools" = "warning"
    channels: dict[str, LogLevel] = Field(default_factory=dict)
    #: a warning or error repeating within this many seconds is logged once, then counted
    repeat_window: float = Field(60.0, ge=0)

    @field_validator("level", "channels", mode="before")
    @classmethod
    def _lower(cls, v: Any) -> Any:
        if isinstance(v, str):
            return v.strip().lower()
        if isinstance(v, dict):
            return {k: x.strip().lower() if isinstance(x, str) else x for k, x in v.items()}
        return v


class MetricsConfig(_Model):
    """``[metrics]``: Prometheus ``/metrics`` and ``/healthz`` served by ``maild run``
    (docs/operations/monitoring.md)."""

    listen: str = ""  # "127.0.0.1:9101" ("[::1]:9101"); "" = off
    #: healthy while a poll went through and the database answered this recently
    healthy_within: str = "5m"

    @field_validator("listen")
    @classmethod
    def _listen(cls, v: str) -> str:
        v = v.strip()
        if v:
            _host_port(v)
        return v

    @field_validator("healthy_within")
    @classmethod
    def _within(cls, v: str) -> str:
        duration(v)
        return v

    @property
    def address(self) -> tuple[str, int]:
        """(host, port) of ``listen``."""
        return _host_port(self.listen)

    @property
    def healthy_seconds(self) -> float:
        return duration(self.healthy_within).total_seconds()


def _host_port(v: str) -> tuple[str, int]:
    try:
        u = urlsplit("//" + v)
        host, port = u.hostname, u.port
    except ValueError:
        host = port = None
    if not host or not port or u.path or u.username or u.query:
        raise ValueError(f"{v!r} is not HOST:PORT like \"127.0.0.1:9101\" or \"[::1]:9101\"")
    return host, port


class Receipts(_Model):
    """``[receipts]``: the short ``command_receipt`` letter a member of staff gets after the
    commands of their mail ran (what each did, the case's step, owner and deadline, and any
    refused in the same mail). ``commands``: only these get one ([] = every command but
    ``skip``); ``skip``: commands that never do (#note and #help change nothing)."""

    enabled: bool = True
    commands: tuple[str, ...] = ()
    skip: tuple[str, ...] = ("note", "help")

    @field_validator("commands", "skip")
    @classmethod
    def _known(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        from maild.mail.commands import COMMANDS

        names = {w.casefold(): s.name for s in COMMANDS.values() for w in (s.name, *s.aliases)}
        out = []
        for word in v:
            name = names.get(word.strip().lstrip("#＃").casefold())
            if name is None:
                raise ValueError(f"{word!r} is not a command (known: {', '.join(COMMANDS)})")
            out.append(name)
        return tuple(out)

    def wants(self, command: str) -> bool:
        """Whether a successful ``command`` (its English name) gets a receipt."""
        if not self.enabled or command in self.skip:
            return False
        return not self.commands or command in self.commands


class Config(_Model):
    organisation: Organisation = Organisation()
    database: Database = Database()
    mailbox: Mailbox = Mailbox()
    smtp: Smtp = Smtp()
    numbering: Numbering = Numbering()
    routing: Routing = Routing()
    limits: Limits = Limits()
    letters: LettersConfig = LettersConfig()
    documents: DocumentsConfig = DocumentsConfig()
    processes: ProcessesConfig = ProcessesConfig()
    directory: Directory = Directory()
    calendar: CalendarConfig = CalendarConfig()
    escalation: Escalation = Escalation()
    timers: Timers = Timers()
    digest: DigestConfig = DigestConfig()
    metrics: MetricsConfig = MetricsConfig()
    security: Security = Security()
    receipts: Receipts = Receipts()
    logging: LoggingConfig = LoggingConfig()
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


_ARRAY_HEADER = re.compile(r"^\s*\[\[\s*([^\]]+?)\s*\]\]")
_ANY_HEADER = re.compile(r"^\s*\[\[?\s*([^\]]+?)\s*\]")


def _table_of(pattern: re.Pattern[str], line: str) -> list[str] | None:
    m = pattern.match(line)
    return [p.strip().strip('"') for p in m.group(1).split(".")] if m else None


def line_in(text: str, loc: tuple[Any, ...]) -> int | None:
    """``line_of`` that heeds array indices: ``("routing", "rules", 2, "to")`` is the
    ``to`` of the third ``[[routing.rules]]``, not of the first."""
    lines = text.splitlines()
    start, end = 0, len(lines)
    path: list[str] = []
    for part in loc:
        if isinstance(part, str):
            path.append(part)
            continue
        heads = [n for n in range(start, end) if _table_of(_ARRAY_HEADER, lines[n]) == path]
        if part >= len(heads):
            break  # an inline array: its key's line is as close as it gets
        start, end = heads[part], (heads[part + 1] if part + 1 < len(heads) else end)
        for n in range(start + 1, end):
            table = _table_of(_ANY_HEADER, lines[n])
            if table is not None and table[: len(path)] != path:
                end = n
                break
    if start == 0:
        return line_of(text, loc)
    found = line_of("\n".join(lines[start:end]), loc)
    return start + found if found else start + 1


def parse_config(text: str, filename: str = "maild.toml", base_dir: str = ".") -> Config:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{filename}: not valid TOML: {e}") from e
    data["base_dir"] = base_dir
    try:
        return Config.model_validate(data, context={"toml": data})
    except ValidationError as e:
        lines = []
        for err in e.errors():
            loc = tuple(err["loc"])
            key = ".".join(str(p) for p in loc) or "(top level)"
            line = line_in(text, loc)
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
        out.append(uncovered_warning(cfg.calendar.settings(), year))
    if not cfg.directory.departments:
        out.append("directory has no departments: internal requests cannot be routed")
    return out
