"""OAuth2 pieces without a mail server: the SASL strings, the token cache (with a clock of
its own, against the stand-in token endpoint), the providers' errors, the config sections
and what ``config check`` reports."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from oauth_servers import TokenAuthority, parse_sasl

from maild.adapters.oauth import (
    EARLY,
    CommandProvider,
    GoogleProvider,
    MicrosoftProvider,
    OAuthError,
    Tokens,
    oauth_problems,
    sasl_response,
)
from maild.config import ConfigError, parse_config

USER = "service@example.test"


@pytest.fixture
def authority(tmp_path: Path) -> Iterator[TokenAuthority]:
    with TokenAuthority(tmp_path / "authority", token_size=40) as a:
        yield a


def google(authority: TokenAuthority, d: Path) -> GoogleProvider:
    authority.client("g", "g-secret")
    (d / "secret").write_text("g-secret\n")
    (d / "refresh").write_text(authority.refresh_token(USER) + "\n")
    return GoogleProvider(client_id="g", client_secret_file=d / "secret",
                          refresh_token_file=d / "refresh",
                          token_url=authority.google_token_url, ca_file=authority.ca_file)


# -- SASL ----------------------------------------------------------------------------------


@pytest.mark.parametrize(("mechanism", "user", "expected"), [
    ("xoauth2", USER, f"user={USER}\x01auth=Bearer T0k\x01\x01"),
    ("oauthbearer", USER,
     f"n,a={USER},\x01host=imap.example.test\x01port=993\x01auth=Bearer T0k\x01\x01"),
    ("oauthbearer", "a,b=c@example.test",  # RFC 5801: "," and "=" escaped in the authzid
     "n,a=a=2Cb=3Dc@example.test,\x01host=imap.example.test\x01port=993"
     "\x01auth=Bearer T0k\x01\x01"),
])
def test_sasl_first_response(mechanism: str, user: str, expected: str) -> None:
    blob = sasl_response(mechanism, user, "T0k", "imap.example.test", 993)
    assert blob == expected.encode()
    assert parse_sasl(mechanism.upper(), blob) == (user, "T0k")  # the test servers' reading


# -- the cache -----------------------------------------------------------------------------


def test_a_token_is_kept_until_shortly_before_it_expires(
        authority: TokenAuthority, tmp_path: Path) -> None:
    now = [1000.0]
    tokens = Tokens(google(authority, tmp_path), clock=lambda: now[0])
    first = tokens.get()
    now[0] += authority.lifetime - EARLY - 1  # still good for more than EARLY seconds
    assert tokens.get() == first
    assert authority.grants_of("google") == 1
    now[0] += 2  # now within EARLY of its expiry: replaced before anyone uses it
    second = tokens.get()
    assert second != first and authority.grants_of("google") == 2
    assert tokens.get(fresh=True) not in (first, second)  # after a refusal: a new one
    assert authority.grants_of("google") == 3


def test_a_command_token_is_used_for_one_login(tmp_path: Path) -> None:
    counter = tmp_path / "n"
    script = tmp_path / "tok"
    script.write_text(f"#!/bin/sh\necho x >> {counter}\necho token-$(wc -l < {counter})\n")
    script.chmod(0o755)
    tokens = Tokens(CommandProvider(f"{script} --for 'the account'"))
    assert [tokens.get(), tokens.get()] == ["token-1", "token-2"]  # no lifetime: not kept


# -- provider errors -----------------------------------------------------------------------


@pytest.mark.parametrize(("script", "timeout", "expected"), [
    ("echo oops >&2; exit 3", 5, "exited 3: oops"),
    ("true", 5, "printed no token"),
    ("sleep 5", 0.2, "no answer within 0.2 s"),
])
def test_command_failures_are_clear(tmp_path: Path, script: str, timeout: float,
                                    expected: str) -> None:
    path = tmp_path / "tok"
    path.write_text(f"#!/bin/sh\n{script}\n")
    path.chmod(0o755)
    with pytest.raises(OAuthError, match=expected):
        CommandProvider(str(path), timeout=timeout).fetch()


def test_a_missing_command_is_clear() -> None:
    with pytest.raises(OAuthError, match="cannot run"):
        CommandProvider("/nonexistent/get-token").fetch()


def test_a_revoked_google_refresh_token_names_the_error_not_the_token(
        authority: TokenAuthority, tmp_path: Path) -> None:
    provider = google(authority, tmp_path)
    (tmp_path / "refresh").write_text("rt-revoked-token\n")
    with pytest.raises(OAuthError) as err:
        provider.fetch()
    assert str(err.value) == ("google token endpoint refused (400): invalid_grant: "
                              "Token has been expired or revoked.")


def test_a_wrong_microsoft_client_secret_is_reported(
        authority: TokenAuthority, tmp_path: Path) -> None:
    authority.client("app", "right", USER)
    (tmp_path / "secret").write_text("wrong\n")
    provider = MicrosoftProvider(client_id="app", authority=authority.authority_url,
                                 scopes=(), client_secret_file=tmp_path / "secret",
                                 refresh_token_file=None, ca_file=authority.ca_file)
    with pytest.raises(OAuthError) as err:
        provider.fetch()
    assert "microsoft token endpoint refused: invalid_client" in str(err.value)
    assert "wrong" not in str(err.value)


def test_an_untrusted_token_endpoint_is_refused(authority: TokenAuthority,
                                                tmp_path: Path) -> None:
    provider = google(authority, tmp_path)
    provider.context = GoogleProvider(
        client_id="g", client_secret_file=tmp_path / "secret",
        refresh_token_file=tmp_path / "refresh").context  # the system store only
    with pytest.raises(OAuthError, match="unreachable.*CERTIFICATE_VERIFY_FAILED"):
        provider.fetch()


def test_an_unreadable_secret_file_is_clear(tmp_path: Path) -> None:
    provider = GoogleProvider(client_id="g", client_secret_file=tmp_path / "missing",
                              refresh_token_file=tmp_path / "missing")
    with pytest.raises(OAuthError, match="client_secret_file .*missing: cannot read"):
        provider.fetch()


# -- config ----------------------------------------------------------------------------------


@pytest.mark.parametrize(("section", "message"), [
    ('provider = "google"\nclient_id = "x"',
     "provider 'google' needs client_secret_file, refresh_token_file"),
    ('provider = "microsoft"\nclient_id = "x"\nclient_secret_file = "s"',
     "provider 'microsoft' needs tenant (or authority)"),
    ('provider = "microsoft"\ntenant = "t"\nclient_id = "x"',
     "needs client_secret_file (client credentials) or refresh_token_file"),
    ('provider = "command"', "provider 'command' needs token_command"),
    ('provider = "microsoft"\nauthority = "http://login.example/t"\nclient_id = "x"\n'
     'client_secret_file = "s"', "must be https:// URLs"),
    ('provider = "github"', "mailbox.oauth.provider"),
    ('provider = "command"\ntoken_command = "x"\nmechanism = "plain"',
     "mailbox.oauth.mechanism"),
])
def test_oauth_sections_are_validated(section: str, message: str) -> None:
    text = f'[mailbox]\nurl = "imaps://{USER}@imap.example.test/INBOX"\n[mailbox.oauth]\n{section}\n'
    with pytest.raises(ConfigError, match=re.escape(message)):
        parse_config(text, "maild.toml")


def test_config_check_reports_unreadable_files_and_missing_commands(tmp_path: Path) -> None:
    (tmp_path / "secret").write_text("")
    cfg = parse_config(f"""
[mailbox]
url = "imaps://{USER}@imap.example.test/INBOX"
[mailbox.oauth]
provider = "google"
client_id = "x"
client_secret_file = "secret"
refresh_token_file = "no-such-file"
[smtp]
url = "smtp://smtp.example.test:587"
[smtp.oauth]
provider = "command"
token_command = "no-such-program --account x"
""", "maild.toml", str(tmp_path))
    problems = oauth_problems(cfg)
    assert problems == [
        f"mailbox.oauth.client_secret_file: {tmp_path}/secret is empty",
        f"mailbox.oauth.refresh_token_file: cannot read {tmp_path}/no-such-file: "
        "No such file or directory",
        "smtp.oauth.token_command: 'no-such-program' is not an executable program "
        "(give its full path)",
        "smtp.oauth: no login name: set smtp.username or smtp.oauth.user",
    ]


def test_config_check_accepts_a_complete_section(tmp_path: Path) -> None:
    (tmp_path / "secret").write_text("s\n")
    (tmp_path / "token.sh").write_text("#!/bin/sh\necho t\n")
    (tmp_path / "token.sh").chmod(0o755)
    cfg = parse_config(f"""
[mailbox]
url = "imaps://{USER}@outlook.office365.com/INBOX"
[mailbox.oauth]
provider = "microsoft"
tenant = "contoso.onmicrosoft.com"
client_id = "00000000-0000-0000-0000-000000000000"
client_secret_file = "secret"
[smtp]
url = "smtp://smtp.office365.com:587"
starttls = true
username = "{USER}"
[smtp.oauth]
provider = "command"
token_command = "./token.sh"
""", "maild.toml", str(tmp_path))
    assert oauth_problems(cfg) == []
    assert cfg.mailbox.oauth is not None and cfg.mailbox.oauth.mechanism == "xoauth2"
