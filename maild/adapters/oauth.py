"""OAuth2 logins: access tokens from a provider, presented with XOAUTH2 or OAUTHBEARER.

Providers (``[mailbox.oauth]`` / ``[smtp.oauth]`` in the config):

- ``microsoft``: Microsoft identity through msal, with the client-credentials grant (an app
  permission such as IMAP.AccessAsApp) or, when ``refresh_token_file`` is set, a delegated
  refresh token (a new refresh token the server hands out is written back to the file);
- ``google``: the refresh-token grant POSTed to Google's token endpoint;
- ``command``: a command (split like a shell would, run without one) whose first line of
  output is the token, as mutt and isync do; it keeps its own cache, so it runs per login.

``Tokens`` caches a token until ``EARLY`` seconds before it expires. ``OAuthLogin`` logs in:
a kept token the server refuses is replaced by a fresh one, once; when a fresh token is
refused, or no token can be had, ``OAuthError`` names the provider and the server's answer
(never the token or a secret), and the refused token is forgotten. The IMAP source turns
it into ``MailSourceError``, the SMTP sender into ``SendError(kind="auth")``: both are
reported once and retried with backoff.
"""

from __future__ import annotations

import asyncio
import base64
import imaplib
import json
import logging
import os
import shlex
import shutil
import ssl
import subprocess
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

import aiosmtplib

from maild.config import Config, OAuth

log = logging.getLogger("maild.auth")

#: a cached token is replaced this many seconds before it expires
EARLY = 300.0
MICROSOFT_AUTHORITY = "https://login.microsoftonline.com/"
#: client credentials: the app permissions granted to the app (IMAP.AccessAsApp, SMTP.SendAsApp)
MICROSOFT_APP_SCOPES = ("https://outlook.office365.com/.default",)
#: a delegated refresh token: the user's own mailbox
MICROSOFT_USER_SCOPES = ("https://outlook.office.com/IMAP.AccessAsUser.All",
                         "https://outlook.office.com/SMTP.Send")
GOOGLE_TOKEN_URL = "https://oauth2.googleapis.com/token"


class OAuthError(Exception):
    """No token to be had, or the server refused a fresh one; phrased for the admin."""


class Provider(Protocol):
    #: "microsoft", "google" or "command", for messages
    kind: str

    def fetch(self) -> tuple[str, float | None]:
        """A new access token and its lifetime in seconds (None: unknown). Raises OAuthError."""


# -- providers ---------------------------------------------------------------------------


def _read_secret(path: Path, what: str) -> str:
    try:
        text = path.read_text(encoding="utf-8").strip()
    except OSError as e:
        raise OAuthError(f"{what} {path}: cannot read: {e.strerror or e}") from e
    if not text:
        raise OAuthError(f"{what} {path} is empty")
    return text


def _lifetime(answer: dict[str, Any]) -> float | None:
    try:
        return float(answer["expires_in"])
    except (KeyError, TypeError, ValueError):
        return None


def _refusal(answer: dict[str, Any]) -> str:
    """The error of a token endpoint's JSON answer, in one line."""
    error = str(answer.get("error") or "no access_token in the answer")
    desc = str(answer.get("error_description") or "").strip().splitlines()
    return f"{error}: {desc[0]}" if desc else error


class MicrosoftProvider:
    """Microsoft identity platform through msal (client credentials or a refresh token)."""

    kind = "microsoft"

    def __init__(self, *, client_id: str, authority: str, scopes: tuple[str, ...],
                 client_secret_file: Path | None, refresh_token_file: Path | None,
                 ca_file: Path | None = None, timeout: float = 30.0) -> None:
        self.client_id = client_id
        self.authority = authority
        self.secret_file = client_secret_file
        self.refresh_file = refresh_token_file
        default = MICROSOFT_USER_SCOPES if refresh_token_file else MICROSOFT_APP_SCOPES
        self.scopes = list(scopes or default)
        self.verify: str | bool = str(ca_file) if ca_file else True
        self.timeout = timeout
        self._app: Any = None
        self._refresh_token: str | None = None

    def _client(self) -> Any:
        if self._app is None:
            import msal  # type: ignore[import-untyped]  # only when a mailbox uses it

            common = {"authority": self.authority, "http_client": self._session(),
                      "token_cache": msal.TokenCache(),
                      # no instance discovery at login.microsoftonline.com: the authority is
                      # the admin's (a sovereign cloud, or a stand-in in the tests)
                      "instance_discovery": False,
                      "validate_authority": self.authority.startswith(MICROSOFT_AUTHORITY)}
            try:
                if self.secret_file is not None:
                    secret = _read_secret(self.secret_file, "client_secret_file")
                    self._app = msal.ConfidentialClientApplication(
                        self.client_id, client_credential=secret, **common)
                else:
                    self._app = msal.PublicClientApplication(self.client_id, **common)
            except OAuthError:
                raise
            except Exception as e:  # noqa: BLE001 - msal raises ValueError, requests' errors
                raise OAuthError(f"microsoft authority {self.authority}: {e}") from e
        return self._app

    def _session(self) -> Any:
        """requests as msal would set it up, but with our CA bundle even when
        REQUESTS_CA_BUNDLE is set (requests lets the environment win over a session's
        ``verify``), and a timeout on every request."""
        import requests

        verify, timeout = self.verify, self.timeout

        class Session(requests.Session):
            def merge_environment_settings(self, *args: Any, **kw: Any) -> Any:
                settings = super().merge_environment_settings(*args, **kw)
                if verify is not True:
                    settings["verify"] = verify
                return settings

            def request(self, *args: Any, **kw: Any) -> Any:
                kw.setdefault("timeout", timeout)
                return super().request(*args, **kw)

        return Session()

    def fetch(self) -> tuple[str, float | None]:
        app = self._client()
        try:
            if self.refresh_file is not None:
                if self._refresh_token is None:
                    self._refresh_token = _read_secret(self.refresh_file, "refresh_token_file")
                answer = app.acquire_token_by_refresh_token(self._refresh_token, self.scopes)
            else:
                # msal keeps the token it got; forget it, we are asked for a new one
                cache = app.token_cache
                for item in list(cache.search(cache.CredentialType.ACCESS_TOKEN)):
                    cache.remove_at(item)
                answer = app.acquire_token_for_client(self.scopes)
        except Exception as e:  # noqa: BLE001 - requests' connection errors and the like
            raise OAuthError(f"microsoft token request failed: {e}") from e
        if not isinstance(answer, dict) or "access_token" not in answer:
            self._refresh_token = None  # read the file again: the admin may have renewed it
            reason = _refusal(answer if isinstance(answer, dict) else {})
            raise OAuthError(f"microsoft token endpoint refused: {reason}")
        rotated = answer.get("refresh_token")
        if rotated and self.refresh_file is not None and rotated != self._refresh_token:
            self._refresh_token = rotated
            _write_back(self.refresh_file, rotated)
        return str(answer["access_token"]), _lifetime(answer)


def _write_back(path: Path, token: str) -> None:
    """Keep a renewed refresh token in its file (the old one may stop working), with the
    file's mode: beside it and renamed over it, or in place if the folder is read-only."""
    data = (token + "\n").encode()
    tmp = path.with_name(f".{path.name}.new")
    try:
        mode = path.stat().st_mode & 0o777
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
        except PermissionError:
            fd = os.open(path, os.O_WRONLY | os.O_TRUNC)
            tmp = path
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        if tmp != path:
            os.replace(tmp, path)
    except OSError as e:
        log.warning("refresh_token_file %s: cannot store the renewed refresh token (%s); it "
                    "is kept in memory, but after a restart the file's older one is used",
                    path, e.strerror or e)


class GoogleProvider:
    """Google's token endpoint, refresh-token grant (urllib, form POST, JSON answer)."""

    kind = "google"

    def __init__(self, *, client_id: str, client_secret_file: Path, refresh_token_file: Path,
                 token_url: str = GOOGLE_TOKEN_URL, scopes: tuple[str, ...] = (),
                 ca_file: Path | None = None, timeout: float = 30.0) -> None:
        self.client_id = client_id
        self.secret_file = client_secret_file
        self.refresh_file = refresh_token_file
        self.token_url = token_url
        self.scopes = scopes
        self.timeout = timeout
        self.context = ssl.create_default_context(cafile=str(ca_file) if ca_file else None)

    def fetch(self) -> tuple[str, float | None]:
        form = {"grant_type": "refresh_token", "client_id": self.client_id,
                "client_secret": _read_secret(self.secret_file, "client_secret_file"),
                "refresh_token": _read_secret(self.refresh_file, "refresh_token_file")}
        if self.scopes:
            form["scope"] = " ".join(self.scopes)
        request = urllib.request.Request(
            self.token_url, data=urllib.parse.urlencode(form).encode(),
            headers={"Content-Type": "application/x-www-form-urlencoded",
                     "Accept": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=self.timeout,
                                        context=self.context) as resp:
                body = resp.read()
        except urllib.error.HTTPError as e:  # 400/401 carry the JSON error
            body = e.read()
            answer = _json(body)
            raise OAuthError(f"google token endpoint refused ({e.code}): "
                             f"{_refusal(answer)}") from e
        except (OSError, ValueError) as e:
            raise OAuthError(f"google token endpoint {self.token_url} unreachable: "
                             f"{getattr(e, 'reason', e)}") from e
        answer = _json(body)
        if not isinstance(answer.get("access_token"), str):
            raise OAuthError(f"google token endpoint refused: {_refusal(answer)}")
        return answer["access_token"], _lifetime(answer)


def _json(body: bytes) -> dict[str, Any]:
    try:
        answer = json.loads(body)
    except ValueError:
        return {"error": "not a JSON answer", "error_description": body[:200].decode(
            "utf-8", "replace")}
    return answer if isinstance(answer, dict) else {"error": "not a JSON object"}


class CommandProvider:
    """A command that prints the token (``oama access ME``, ``mutt_oauth2.py TOKENFILE``)."""

    kind = "command"

    def __init__(self, command: str, *, timeout: float = 30.0, cwd: Path | None = None) -> None:
        self.argv = shlex.split(command)
        self.timeout = timeout
        self.cwd = cwd

    def fetch(self) -> tuple[str, float | None]:
        name = self.argv[0] if self.argv else "(empty)"
        try:
            done = subprocess.run(self.argv, capture_output=True, timeout=self.timeout,
                                  stdin=subprocess.DEVNULL, cwd=self.cwd, check=False)
        except subprocess.TimeoutExpired as e:
            raise OAuthError(f"token_command {name}: no answer within "
                             f"{self.timeout:g} s") from e
        except (OSError, ValueError) as e:
            raise OAuthError(f"token_command {name}: cannot run: {e}") from e
        if done.returncode != 0:
            said = done.stderr.decode("utf-8", "replace").strip().splitlines()
            raise OAuthError(f"token_command {name} exited {done.returncode}"
                             + (f": {said[-1][:300]}" if said else ""))
        lines = done.stdout.decode("utf-8", "replace").strip().splitlines()
        if not lines or not lines[0].strip():
            raise OAuthError(f"token_command {name} printed no token")
        return lines[0].strip(), None


# -- the cache -----------------------------------------------------------------------------


class Tokens:
    """A provider's token, kept until ``EARLY`` seconds before it expires (thread-safe).

    A token of unknown lifetime (a command's) is used for one login only.
    """

    def __init__(self, provider: Provider, *, clock: Callable[[], float] = time.time,
                 early: float = EARLY) -> None:
        self.provider = provider
        self.clock = clock
        self.early = early
        self._token: str | None = None
        self._expires: float | None = None
        self._lock = threading.Lock()
        #: tokens fetched so far: tells a kept token from a new one
        self.fetched = 0

    @property
    def kind(self) -> str:
        return self.provider.kind

    def get(self, *, fresh: bool = False) -> str:
        """A token: the cached one while it is good for ``early`` more seconds, else a new one
        (``fresh``: a new one regardless, after the server refused the cached one)."""
        with self._lock:
            now = self.clock()
            if (not fresh and self._token is not None and self._expires is not None
                    and now < self._expires - self.early):
                return self._token
            token, lifetime = self.provider.fetch()
            self.fetched += 1
            self._token = token
            self._expires = now + lifetime if lifetime is not None else None
            if lifetime is not None and lifetime <= self.early:
                log.debug("%s token lives only %.0f s", self.kind, lifetime)
            return token

    def forget(self) -> None:
        with self._lock:
            self._token = self._expires = None


# -- SASL ----------------------------------------------------------------------------------


def sasl_response(mechanism: str, user: str, token: str, host: str, port: int) -> bytes:
    """The client's first response: Google's XOAUTH2 or RFC 7628 OAUTHBEARER."""
    if mechanism == "xoauth2":
        return f"user={user}\x01auth=Bearer {token}\x01\x01".encode()
    authzid = user.replace("=", "=3D").replace(",", "=2C")  # RFC 5801 saslname
    return f"n,a={authzid},\x01host={host}\x01port={port}\x01auth=Bearer {token}\x01\x01".encode()


#: what the client answers the server's error challenge with (RFC 7628 3.2.3; XOAUTH2: empty)
_ABORT = {"xoauth2": b"", "oauthbearer": b"\x01"}


def _challenge_text(data: bytes) -> str:
    """The server's error challenge (JSON: status, schemes, scope), shown as it came."""
    try:
        parsed = json.loads(data)
    except ValueError:
        return data.decode("utf-8", "replace").strip()
    return json.dumps(parsed, separators=(",", ":"), ensure_ascii=False)


class OAuthLogin:
    """Logs in to IMAP or SMTP with a token from ``tokens`` (see the module docstring)."""

    def __init__(self, tokens: Tokens, mechanism: str = "xoauth2", user: str = "") -> None:
        if mechanism not in _ABORT:
            raise ValueError(f"unknown OAuth2 mechanism {mechanism!r}")
        self.tokens = tokens
        self.mechanism = mechanism
        self.user = user

    @property
    def mech(self) -> str:
        return self.mechanism.upper()

    def _refused(self, user: str, answer: str) -> OAuthError:
        self.tokens.forget()  # the next attempt starts from a new token
        return OAuthError(f"{self.mech} login as {user!r} refused a fresh token from "
                          f"{self.tokens.kind}: {answer}")

    # -- IMAP (blocking, imaplib under imap-tools) ----------------------------------------

    def login_imap(self, client: imaplib.IMAP4, user: str) -> None:
        """AUTHENTICATE on ``client``; raises OAuthError (or imaplib's errors for the link)."""
        user = self.user or user
        offered = [c[5:] for c in client.capabilities if c.upper().startswith("AUTH=")]
        if self.mech not in (m.upper() for m in offered):
            raise OAuthError(f"IMAP server {client.host}:{client.port} does not offer "
                             f"AUTH={self.mech} (it offers: {' '.join(offered) or 'none'})")
        fetched = self.tokens.fetched
        answer = self._imap_try(client, user, self.tokens.get())
        if answer and self.tokens.fetched == fetched:  # a kept token: a fresh one may do
            log.debug("%s refused the kept token for %s: %s", self.mech, user, answer)
            answer = self._imap_try(client, user, self.tokens.get(fresh=True))
            if not answer:
                log.info("%s: the kept %s token was refused, a fresh one accepted",
                         user, self.tokens.kind)
        if answer:
            raise self._refused(user, answer)

    def _imap_try(self, client: imaplib.IMAP4, user: str, token: str) -> str:
        """One AUTHENTICATE: "" when accepted, else the server's answer."""
        first = sasl_response(self.mechanism, user, token, str(client.host), int(client.port))
        challenges: list[str] = []

        def respond(challenge: bytes) -> bytes:
            if not challenges and not challenge:
                challenges.append("")
                return first
            challenges.append(_challenge_text(challenge))
            return _ABORT[self.mechanism]

        try:
            typ, data = client.authenticate(self.mech, respond)
        except imaplib.IMAP4.abort:
            raise  # the link dropped: the caller's reconnect logic
        except imaplib.IMAP4.error as e:
            said = " ".join(c for c in challenges if c)
            return f"{e}" + (f" ({said})" if said else "")
        if typ != "OK":
            return f"{typ} {data!r}"
        return ""

    # -- SMTP (aiosmtplib) ------------------------------------------------------------------

    async def login_smtp(self, smtp: aiosmtplib.SMTP, user: str) -> None:
        """AUTH on ``smtp``; raises OAuthError, or aiosmtplib's errors for the link."""
        user = self.user or user
        if smtp.is_ehlo_or_helo_needed:
            await smtp.ehlo()
        if self.mechanism not in smtp.server_auth_methods:
            offered = " ".join(smtp.server_auth_methods).upper() or "none"
            raise OAuthError(f"SMTP server {smtp.hostname}:{smtp.port} does not offer "
                             f"AUTH {self.mech} (it offers: {offered})")
        fetched = self.tokens.fetched
        answer = await self._smtp_try(smtp, user, await asyncio.to_thread(self.tokens.get))
        if answer and self.tokens.fetched == fetched:  # a kept token: a fresh one may do
            log.debug("%s refused the kept token for %s: %s", self.mech, user, answer)
            token = await asyncio.to_thread(self.tokens.get, fresh=True)
            answer = await self._smtp_try(smtp, user, token)
            if not answer:
                log.info("%s: the kept %s token was refused, a fresh one accepted",
                         user, self.tokens.kind)
        if answer:
            raise self._refused(user, answer)

    async def _smtp_try(self, smtp: aiosmtplib.SMTP, user: str, token: str) -> str:
        first = sasl_response(self.mechanism, user, token, str(smtp.hostname),
                              int(smtp.port or 0))
        resp = await smtp.execute_command(b"AUTH", self.mech.encode(),
                                          base64.b64encode(first))
        said = ""
        if resp.code == 334:  # the error challenge: base64 JSON; answer it to get the verdict
            try:
                said = _challenge_text(base64.b64decode(resp.message, validate=True))
            except ValueError:
                said = resp.message
            resp = await smtp.execute_command(base64.b64encode(_ABORT[self.mechanism]))
        if resp.code == 235:
            return ""
        return f"{resp.code} {resp.message}" + (f" ({said})" if said else "")


# -- from the config -----------------------------------------------------------------------


def provider_for(cfg: Config, section: OAuth) -> Provider:
    def path(p: str | None) -> Path | None:
        return cfg.path(p) if p else None

    ca = path(section.ca_file)
    if section.provider == "microsoft":
        authority = section.authority or MICROSOFT_AUTHORITY + section.tenant
        return MicrosoftProvider(client_id=section.client_id, authority=authority.rstrip("/"),
                                 scopes=section.scopes,
                                 client_secret_file=path(section.client_secret_file),
                                 refresh_token_file=path(section.refresh_token_file),
                                 ca_file=ca)
    if section.provider == "google":
        assert section.client_secret_file and section.refresh_token_file  # the config's check
        return GoogleProvider(client_id=section.client_id,
                              client_secret_file=cfg.path(section.client_secret_file),
                              refresh_token_file=cfg.path(section.refresh_token_file),
                              token_url=section.token_url or GOOGLE_TOKEN_URL,
                              scopes=section.scopes, ca_file=ca)
    return CommandProvider(section.token_command, timeout=section.command_timeout,
                           cwd=Path(cfg.base_dir))


def oauth_login(cfg: Config, section: OAuth | None) -> OAuthLogin | None:
    """The login for a ``[mailbox.oauth]`` or ``[smtp.oauth]`` section (None: passwords)."""
    if section is None:
        return None
    return OAuthLogin(Tokens(provider_for(cfg, section)), section.mechanism, section.user)


def oauth_problems(cfg: Config) -> list[str]:
    """What ``maild config check`` reports about the OAuth sections: unreadable files, a
    token command that is not there, a section without a login name or a server."""
    problems: list[str] = []
    for name, section, url in (("mailbox", cfg.mailbox.oauth, cfg.mailbox.url),
                               ("smtp", cfg.smtp.oauth, cfg.smtp.url)):
        if section is None:
            continue
        problems += _file_problems(cfg, f"{name}.oauth", section)
        if section.provider == "command":
            problems += _command_problems(cfg, f"{name}.oauth", section.token_command)
        if name == "smtp" and not (section.user or cfg.smtp.username):
            problems.append("smtp.oauth: no login name: set smtp.username or smtp.oauth.user")
        if url.startswith("maildir://"):
            problems.append(f"{name}.oauth is set but {name}.url is a maildir:// folder")
    return problems


def _file_problems(cfg: Config, where: str, section: OAuth) -> list[str]:
    problems: list[str] = []
    for key in ("client_secret_file", "refresh_token_file", "ca_file"):
        value = getattr(section, key)
        if not value:
            continue
        f = cfg.path(value)
        try:
            if not f.read_text(encoding="utf-8").strip():
                problems.append(f"{where}.{key}: {f} is empty")
        except (OSError, UnicodeDecodeError) as e:
            problems.append(f"{where}.{key}: cannot read {f}: "
                            f"{getattr(e, 'strerror', None) or e}")
    return problems


def _command_problems(cfg: Config, where: str, command: str) -> list[str]:
    try:
        argv = shlex.split(command)
    except ValueError as e:
        return [f"{where}.token_command: {e}"]
    prog = argv[0] if argv else ""
    found = shutil.which(prog) if os.sep not in prog else os.access(cfg.path(prog), os.X_OK)
    if not found:
        return [f"{where}.token_command: {prog!r} is not an executable program "
                "(give its full path)"]
    return []
