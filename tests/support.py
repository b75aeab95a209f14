"""Test helpers: realistic mail bytes and a store on either backend."""

from __future__ import annotations

import email.policy
import textwrap
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from email.header import Header
from email.message import EmailMessage
from email.utils import format_datetime
from pathlib import Path

import asyncpg

from maild.config import Config, parse_config
from maild.store import Store

PG_ADMIN = "postgres://postgres@127.0.0.1:5432/test"
NOW = datetime(2026, 12, 1, 2, 0, tzinfo=UTC)  # Tuesday 10:00 in Shanghai
#: the authserv-id the tests' mail server stamps in Authentication-Results; the test
#: configs trust it (``[security] trusted_authserv_ids``), as a site trusts its own server
AUTHSERV = "mx.example.test"
SECURITY_TOML = f"""
[security]
trusted_authserv_ids = ["{AUTHSERV}"]
"""

DIRECTORY_TOML = SECURITY_TOML + """
[organisation]
name = "示例科技有限公司"
address = "service@example.test"

[routing]
staff_domains = ["corp.example.test"]

[[directory.departments]]
name = "技术部"
short = "技"
head = "zhang@corp.example.test"
members = ["li@corp.example.test"]

[[directory.departments]]
name = "市场部"
short = "市"
head = "wang@corp.example.test"

[[directory.customers]]
name = "华信集团"
domains = ["huaxin.example.cn"]

[[directory.suppliers]]
name = "恒达材料"
addresses = ["sales@hengda.example.cn"]
"""


def with_security(text: str, security: str = "") -> str:
    """A test config with the tests' trusted authserv-id (and ``security``: more keys of
    the ``[security]`` table)."""
    if "[security]\n" not in text:
        text = SECURITY_TOML + text
    return text.replace("[security]\n", "[security]\n" + textwrap.dedent(security), 1)


def make_config(base: Path, extra: str = "", *, db: str | None = None,
                default_process: str = "customer", security: str = "") -> Config:
    routing = f'[routing]\ndefault_process = "{default_process}"\n'
    text = with_security(DIRECTORY_TOML.replace("[routing]\n", routing)
                         + textwrap.dedent(extra), security)
    if db:
        text = f'[database]\nurl = "{db}"\n' + text
    return parse_config(text, "test.toml", str(base))


def mail(sender: str, subject: str, body: str = "您好，请报价。", *, charset: str = "utf-8",
         to: str = "service@example.test", msgid: str | None = None,
         attachments: tuple[tuple[str, bytes], ...] = (), auth: str | None = "dmarc=pass",
         **headers: str) -> bytes:
    """A realistic message; header names in ``headers`` use ``_`` for ``-``.

    ``auth``: the Authentication-Results our mail server (``AUTHSERV``) stamps, for the
    From domain (``"dmarc=pass"``: the sender is proven); None: the mail has none."""
    m = EmailMessage()
    if auth is not None:
        domain = sender.rpartition("@")[2].strip(">").strip()
        m["Authentication-Results"] = f"{AUTHSERV}; {auth} header.from={domain}"
    m["From"] = sender
    m["To"] = to
    m["Subject"] = subject
    m["Date"] = format_datetime(NOW)
    m["Message-ID"] = msgid or f"<{uuid.uuid4().hex}@{sender.rpartition('@')[2].strip('>')}>"
    for k, v in headers.items():
        m[k.replace("_", "-")] = v
    m.set_content(body, charset=charset)
    for name, payload in attachments:
        m.add_attachment(payload, maintype="application", subtype="octet-stream",
                         filename=name)
    try:
        return m.as_bytes(policy=email.policy.SMTP)  # CRLF, as mail travels (Dovecot stores)
    except UnicodeEncodeError:
        # the stdlib's folder chokes on some subjects that look like encoded words next to
        # non-ASCII text: write the subject as RFC 2047 encoded words ourselves
        # (a placeholder replaced in the bytes: the folder would decode them again)
        del m["Subject"]
        m["Subject"] = "SUBJECT-PLACEHOLDER"
        words = Header(subject, "utf-8").encode(maxlinelen=76).replace("\n", "\r\n")
        return m.as_bytes(policy=email.policy.SMTP).replace(
            b"SUBJECT-PLACEHOLDER", words.encode("ascii"), 1)


@asynccontextmanager
async def pg_database() -> AsyncIterator[str]:
    """A fresh PostgreSQL database for one test, dropped afterwards."""
    name = f"maild_t_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(PG_ADMIN)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    try:
        yield f"postgres://postgres@127.0.0.1:5432/{name}"
    finally:
        admin = await asyncpg.connect(PG_ADMIN)
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()


@asynccontextmanager
async def open_store(backend: str, base: Path) -> AsyncIterator[Store]:
    if backend == "sqlite":
        store = Store(f"sqlite://{base}/maild.db", base / "raw", base)
        await store.open()
        try:
            yield store
        finally:
            await store.close()
        return
    async with pg_database() as url:
        store = Store(url, base / "raw", base)
        await store.open()
        try:
            yield store
        finally:
            await store.close()


def find_corpus() -> Path:
    """The public mail corpus kept in the repository: ``tests/corpus`` (see its README.md)."""
    return Path(__file__).resolve().parent / "corpus"
