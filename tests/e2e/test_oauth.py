"""OAuth2 logins against real servers: Dovecot's oauth2 passdb and an SMTP server taking
XOAUTH2 / OAUTHBEARER, both asking a stand-in identity provider (``tests/oauth_servers.py``)
that also serves the Microsoft and Google token endpoints over HTTPS."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from oauth_servers import OAuthDovecot, OAuthSmtpSink, TokenAuthority
from servers import DovecotServer, SmtpSink
from support import DIRECTORY_TOML, mail

from maild.adapters.oauth import (
    CommandProvider,
    GoogleProvider,
    MicrosoftProvider,
    OAuthLogin,
    Provider,
    Tokens,
)
from maild.adapters.senders import SendError, SmtpSender
from maild.adapters.sources.base import MailSourceError
from maild.adapters.sources.imap import ImapSource

pytestmark = pytest.mark.slow

USER = OAuthDovecot.user
KINDS = ("microsoft-app", "microsoft-refresh", "google", "command")


@pytest.fixture
def authority(tmp_path: Path) -> Iterator[TokenAuthority]:
    with TokenAuthority(tmp_path / "authority") as a:
        yield a


@pytest.fixture
def oauth_dovecot(tmp_path: Path, authority: TokenAuthority) -> Iterator[OAuthDovecot]:
    server = OAuthDovecot(tmp_path / "dovecot", authority).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def oauth_smtp(authority: TokenAuthority) -> Iterator[OAuthSmtpSink]:
    sink = OAuthSmtpSink(authority).start()
    try:
        yield sink
    finally:
        sink.stop()


def make_provider(kind: str, authority: TokenAuthority, d: Path) -> Provider:
    """A provider of ``kind`` set up with the stand-in, its secrets in files under ``d``."""
    d.mkdir(parents=True, exist_ok=True)
    secret, refresh = d / "client-secret", d / "refresh-token"
    if kind == "command":
        # as a mutt/isync setup would: a tool that prints a token it got elsewhere
        token_file = d / "token"
        script = d / "get-token"
        script.write_text(f"#!/bin/sh\nexec cat {token_file}\n")
        script.chmod(0o755)
        return _CommandIssuing(authority, token_file, str(script))
    authority.client(f"{kind}-id", "s3cret-" + kind, USER)
    secret.write_text(f"s3cret-{kind}\n")
    refresh.write_text(authority.refresh_token(USER) + "\n")
    if kind == "google":
        return GoogleProvider(client_id=f"{kind}-id", client_secret_file=secret,
                              refresh_token_file=refresh, token_url=authority.google_token_url,
                              ca_file=authority.ca_file)
    return MicrosoftProvider(
        client_id=f"{kind}-id", authority=authority.authority_url, scopes=(),
        client_secret_file=secret if kind == "microsoft-app" else None,
        refresh_token_file=refresh if kind == "microsoft-refresh" else None,
        ca_file=authority.ca_file)


class _CommandIssuing(CommandProvider):
    """The command provider; before each run the authority issues the token the command's
    (imaginary) upstream tool would have, and ``fetches`` counts the runs."""

    def __init__(self, authority: TokenAuthority, token_file: Path, command: str) -> None:
        super().__init__(command)
        self.authority, self.token_file, self.fetches = authority, token_file, 0

    def fetch(self) -> tuple[str, float | None]:
        self.token_file.write_text(self.authority.issue(USER) + "\n")
        self.fetches += 1
        return super().fetch()


def grants(authority: TokenAuthority, provider: Provider) -> int:
    if isinstance(provider, _CommandIssuing):
        return provider.fetches
    return len(authority.grants)


def source(dovecot: OAuthDovecot, login: OAuthLogin) -> ImapSource:
    return ImapSource(dovecot.imap_url, oauth=login, timeout=10)


# -- a login with each kind of provider -------------------------------------------------------


@pytest.mark.parametrize("mechanism", ["xoauth2", "oauthbearer"])
@pytest.mark.parametrize("kind", KINDS)
def test_imap_login_with_each_provider(kind: str, mechanism: str, tmp_path: Path,
                                       authority: TokenAuthority,
                                       oauth_dovecot: OAuthDovecot) -> None:
    uid = oauth_dovecot.append(mail("a@huaxin.example.cn", "询价"))
    provider = make_provider(kind, authority, tmp_path / "secrets")
    with source(oauth_dovecot, OAuthLogin(Tokens(provider), mechanism)) as src:
        fetched = src.fetch_after(0, 10)
    assert [f.uid for f in fetched] == [uid]
    assert grants(authority, provider) == 1
    assert authority.introspections == [True]  # Dovecot asked the authority, once
    assert f"method={mechanism.upper()}" in oauth_dovecot.log()


@pytest.mark.parametrize("mechanism", ["xoauth2", "oauthbearer"])
@pytest.mark.parametrize("kind", KINDS)
def test_smtp_login_with_each_provider(kind: str, mechanism: str, tmp_path: Path,
                                       authority: TokenAuthority,
                                       oauth_smtp: OAuthSmtpSink) -> None:
    provider = make_provider(kind, authority, tmp_path / "secrets")
    sender = SmtpSender(f"smtp://{oauth_smtp.host}:{oauth_smtp.port}", username=USER,
                        oauth=OAuthLogin(Tokens(provider), mechanism), timeout=10)

    async def go() -> None:
        try:
            for n in range(2):  # one connection, one login
                await sender.send(USER, ["kehu@huaxin.example.cn"], mail(USER, f"回复 {n}"))
        finally:
            await sender.close()

    asyncio.run(go())
    assert len(oauth_smtp.wait_for(2)) == 2
    assert oauth_smtp.logins == [(mechanism.upper(), USER)]
    assert grants(authority, provider) == 1


def test_smtp_without_oauth_is_refused_by_the_oauth_server(oauth_smtp: OAuthSmtpSink) -> None:
    """The server really requires the login (the tests above would fail without it)."""
    sender = SmtpSender(f"smtp://{oauth_smtp.host}:{oauth_smtp.port}", timeout=10)

    async def go() -> None:
        try:
            await sender.send(USER, ["kehu@huaxin.example.cn"], mail(USER, "无登录"))
        finally:
            await sender.close()

    with pytest.raises(SendError) as err:
        asyncio.run(go())
    assert err.value.kind == "auth"
    assert oauth_smtp.messages == []


def test_a_server_without_the_mechanism_is_named_before_any_token_is_fetched(
        tmp_path: Path, authority: TokenAuthority, dovecot: DovecotServer) -> None:
    provider = make_provider("google", authority, tmp_path / "secrets")
    with pytest.raises(MailSourceError) as err:  # the plain test Dovecot: passwords only
        ImapSource(dovecot.imap_url, oauth=OAuthLogin(Tokens(provider), "oauthbearer")).open()
    assert "does not offer AUTH=OAUTHBEARER (it offers: PLAIN LOGIN)" in str(err.value)
    assert authority.grants == []


def test_an_smtp_server_without_auth_is_named(tmp_path: Path, authority: TokenAuthority,
                                              smtp_sink: SmtpSink) -> None:
    provider = make_provider("google", authority, tmp_path / "secrets")
    sender = SmtpSender(f"smtp://{smtp_sink.host}:{smtp_sink.port}", username=USER,
                        oauth=OAuthLogin(Tokens(provider)), timeout=10)

    async def go() -> None:
        try:
            await sender.send(USER, ["kehu@huaxin.example.cn"], mail(USER, "无认证"))
        finally:
            await sender.close()

    with pytest.raises(SendError) as err:
        asyncio.run(go())
    assert err.value.kind == "auth"
    assert "does not offer AUTH XOAUTH2 (it offers: none)" in str(err.value)
    assert smtp_sink.messages == [] and authority.grants == []


# -- expiry and refusal ----------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["microsoft-app", "google"])
def test_a_token_the_server_no_longer_takes_is_refreshed_once(
        kind: str, tmp_path: Path, authority: TokenAuthority,
        oauth_dovecot: OAuthDovecot, oauth_smtp: OAuthSmtpSink) -> None:
    tokens = Tokens(make_provider(kind, authority, tmp_path / "secrets"))
    src = source(oauth_dovecot, OAuthLogin(tokens, "xoauth2"))
    with src:
        src.uidvalidity()
    authority.expire_all()  # revoked or expired early: our cache still believes in it
    with src:
        src.uidvalidity()  # refused once, a fresh token accepted
    assert len(authority.grants) == 2
    assert authority.introspections == [True, False, True]

    authority.expire_all()
    sender = SmtpSender(f"smtp://{oauth_smtp.host}:{oauth_smtp.port}", username=USER,
                        oauth=OAuthLogin(tokens, "oauthbearer"), timeout=10)

    async def go() -> None:
        try:
            await sender.send(USER, ["kehu@huaxin.example.cn"], mail(USER, "刷新"))
        finally:
            await sender.close()

    asyncio.run(go())
    assert len(oauth_smtp.wait_for(1)) == 1
    assert oauth_smtp.refused_logins == [("OAUTHBEARER", USER)]
    assert len(authority.grants) == 3


def test_a_token_about_to_expire_is_replaced_before_it_is_used(
        tmp_path: Path, authority: TokenAuthority, oauth_dovecot: OAuthDovecot) -> None:
    authority.lifetime = 200  # less than the 300 s we keep in hand: never worth using again
    tokens = Tokens(make_provider("microsoft-refresh", authority, tmp_path / "secrets"))
    src = source(oauth_dovecot, OAuthLogin(tokens, "xoauth2"))
    for _ in range(3):
        with src:
            src.uidvalidity()
    assert len(authority.grants) == 3
    assert authority.introspections == [True, True, True]  # none was refused first


def test_a_refused_imap_login_is_reported_after_one_refresh(
        tmp_path: Path, authority: TokenAuthority, oauth_dovecot: OAuthDovecot) -> None:
    tokens = Tokens(make_provider("microsoft-app", authority, tmp_path / "secrets"))
    src = source(oauth_dovecot, OAuthLogin(tokens, "xoauth2"))
    with src:
        src.uidvalidity()
    authority.denied.add(USER)  # e.g. the app lost its mailbox permission
    with pytest.raises(MailSourceError) as err:
        src.open()
    text = str(err.value)
    assert "microsoft" in text and "XOAUTH2" in text and USER in text
    assert "AUTHENTICATIONFAILED" in text and '"status":"401"' in text  # Dovecot's answer
    assert "at-" not in text and "s3cret" not in text  # neither the token nor the secret
    assert len(authority.grants) == 2  # the kept token, then one fresh one: no loop
    assert authority.introspections == [True, False, False]
    with pytest.raises(MailSourceError):  # the next poll: a new token, refused, reported
        src.open()
    assert len(authority.grants) == 3
    assert authority.introspections == [True, False, False, False]


def test_a_refused_smtp_login_is_an_auth_failure_after_one_refresh(
        tmp_path: Path, authority: TokenAuthority, oauth_smtp: OAuthSmtpSink) -> None:
    tokens = Tokens(make_provider("google", authority, tmp_path / "secrets"))
    sender = SmtpSender(f"smtp://{oauth_smtp.host}:{oauth_smtp.port}", username=USER,
                        oauth=OAuthLogin(tokens, "xoauth2"), timeout=10)

    async def send(subject: str) -> None:
        try:
            await sender.send(USER, ["kehu@huaxin.example.cn"], mail(USER, subject))
        finally:
            await sender.close()  # the next letter logs in again

    asyncio.run(send("通过"))
    authority.denied.add(USER)
    with pytest.raises(SendError) as err:
        asyncio.run(send("拒绝"))
    assert err.value.kind == "auth" and not err.value.permanent
    text = str(err.value)
    assert "google" in text and "535 5.7.8" in text and '"status":"401"' in text
    assert oauth_smtp.refused_logins == [("XOAUTH2", USER)] * 2
    assert len(authority.grants) == 2
    assert len(oauth_smtp.messages) == 1


def test_a_token_endpoint_refusal_is_reported_without_a_login(
        tmp_path: Path, authority: TokenAuthority, oauth_dovecot: OAuthDovecot) -> None:
    provider = make_provider("google", authority, tmp_path / "secrets")
    (tmp_path / "secrets" / "refresh-token").write_text("rt-revoked\n")
    with pytest.raises(MailSourceError) as err:
        source(oauth_dovecot, OAuthLogin(Tokens(provider), "xoauth2")).open()
    assert "google token endpoint refused (400): invalid_grant" in str(err.value)
    assert "rt-revoked" not in str(err.value)
    assert authority.introspections == []  # no token, no login attempt


def test_a_rotated_microsoft_refresh_token_is_kept(
        tmp_path: Path, authority: TokenAuthority, oauth_dovecot: OAuthDovecot) -> None:
    authority.rotate = True  # each refresh grant retires the refresh token it was given
    provider = make_provider("microsoft-refresh", authority, tmp_path / "secrets")
    refresh_file = tmp_path / "secrets" / "refresh-token"
    refresh_file.chmod(0o600)
    first = refresh_file.read_text().strip()
    src = source(oauth_dovecot, OAuthLogin(Tokens(provider), "xoauth2"))
    with src:
        src.uidvalidity()
    kept = refresh_file.read_text().strip()
    assert kept != first and kept in authority.refresh_tokens
    assert refresh_file.stat().st_mode & 0o777 == 0o600
    # a restarted daemon starts from the file, whose old token no longer works
    again = make_provider_from_files("microsoft-refresh", authority, tmp_path / "secrets")
    with source(oauth_dovecot, OAuthLogin(Tokens(again), "xoauth2")) as src2:
        src2.uidvalidity()


def make_provider_from_files(kind: str, authority: TokenAuthority, d: Path) -> Provider:
    return MicrosoftProvider(client_id=f"{kind}-id", authority=authority.authority_url,
                             scopes=(), client_secret_file=None,
                             refresh_token_file=d / "refresh-token", ca_file=authority.ca_file)


# -- maild itself, from its config -----------------------------------------------------------


def test_maild_run_with_oauth_for_imap_and_smtp(
        tmp_path: Path, authority: TokenAuthority, oauth_dovecot: OAuthDovecot,
        oauth_smtp: OAuthSmtpSink) -> None:
    """``[mailbox.oauth]`` (Microsoft, client credentials) and ``[smtp.oauth]`` (Google):
    a customer's mail is fetched and acknowledged, with no password anywhere."""
    base = tmp_path / "site"
    (base / "secrets").mkdir(parents=True)
    authority.client("ms-app", "ms-secret", USER)
    authority.client("g-app", "g-secret")
    (base / "secrets" / "ms-secret").write_text("ms-secret\n")
    (base / "secrets" / "g-secret").write_text("g-secret\n")
    (base / "secrets" / "g-refresh").write_text(authority.refresh_token(USER) + "\n")
    config = base / "maild.toml"
    config.write_text(f"""
[database]
url = "sqlite://var/maild.db"
[mailbox]
url = "{oauth_dovecot.imap_url}"
[mailbox.oauth]
provider = "microsoft"
mechanism = "oauthbearer"
authority = "{authority.authority_url}"
client_id = "ms-app"
client_secret_file = "secrets/ms-secret"
ca_file = "{authority.ca_file}"
[smtp]
url = "smtp://{oauth_smtp.host}:{oauth_smtp.port}"
username = "{USER}"
[smtp.oauth]
provider = "google"
token_url = "{authority.google_token_url}"
client_id = "g-app"
client_secret_file = "secrets/g-secret"
refresh_token_file = "secrets/g-refresh"
ca_file = "{authority.ca_file}"
""" + DIRECTORY_TOML, encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAILD_")}

    def maild(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "maild", *args, "-c", str(config)],
                              env=env, capture_output=True, text=True, timeout=120, cwd=base)

    checked = maild("config", "check")
    assert checked.returncode == 0, checked.stderr
    oauth_dovecot.deliver(mail("li@huaxin.example.cn", "询价：工业阀门"))
    ran = maild("run", "--once")
    assert ran.returncode == 0, ran.stderr
    sent = oauth_smtp.wait_for(1, timeout=30)
    assert any("li@huaxin.example.cn" in m.rcpt_tos for m in sent)
    assert oauth_smtp.logins == [("XOAUTH2", USER)]
    assert authority.grants_of("microsoft") == 1 and authority.grants_of("google") == 1
    assert "method=OAUTHBEARER" in oauth_dovecot.log()
    assert oauth_dovecot.count("Processed") == 1


def test_maild_run_reports_a_refused_mailbox_token_once(
        tmp_path: Path, authority: TokenAuthority, oauth_dovecot: OAuthDovecot) -> None:
    base = tmp_path / "site"
    base.mkdir()
    (base / "token.sh").write_text("#!/bin/sh\necho at-not-a-real-token\n")
    (base / "token.sh").chmod(0o755)
    config = base / "maild.toml"
    config.write_text(f"""
[mailbox]
url = "{oauth_dovecot.imap_url}"
[mailbox.oauth]
provider = "command"
token_command = "./token.sh --account service"
""" + DIRECTORY_TOML, encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAILD_")}
    ran = subprocess.run([sys.executable, "-m", "maild", "run", "--once", "-c", str(config)],
                         env=env, capture_output=True, text=True, timeout=120, cwd=base)
    assert ran.returncode != 0
    logged = [ln for ln in ran.stderr.splitlines()
              if "refused a fresh token" in ln and not ln.startswith("maild:")]
    assert len(logged) == 1, ran.stderr  # the log; "maild: ..." is the exit summary
    assert "command" in logged[0] and "AUTHENTICATIONFAILED" in logged[0]
    assert "at-not-a-real-token" not in ran.stderr
    # the command's token was new: asking it again would not help
    assert authority.introspections == [False]
