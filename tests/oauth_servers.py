"""OAuth2 on loopback for tests: a stand-in identity provider, Dovecot with its ``oauth2``
passdb, and an SMTP server that takes XOAUTH2 and OAUTHBEARER.

``TokenAuthority`` plays Microsoft identity (OpenID discovery and the v2.0 token endpoint:
client credentials and refresh tokens), Google's token endpoint (refresh tokens) over HTTPS
with a self-signed certificate (``ca_file``), and a token-introspection endpoint over plain
HTTP (RFC 7662 style: ``POST token=...`` -> ``{"active": ..., "username": ...}``) that
Dovecot asks. It records every grant and introspection so tests can count them, and can
expire the tokens it issued or disown a user (every token refused).

``OAuthDovecot`` is ``DovecotServer`` with ``auth_mechanisms`` XOAUTH2 and OAUTHBEARER
checked by ``passdb { driver = oauth2 }`` against the authority (the password still works
for the helper methods). ``OAuthSmtpSink`` is ``SmtpSink`` requiring AUTH, with both
mechanisms implemented as aiosmtpd ``auth_*`` handler methods that ask the same authority;
a refused token gets Google's error challenge (base64 JSON) before the 535.
"""

from __future__ import annotations

import base64
import binascii
import collections
import json
import secrets
import ssl
import subprocess
import threading
import time
import urllib.parse
import warnings
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult
from servers import DovecotServer, SmtpSink, _Handler

HOST = "127.0.0.1"
TENANT = "contoso-test"


@dataclass
class Issued:
    user: str
    expires: float
    active: bool = True


class TokenAuthority:
    """The stand-in identity provider (see the module docstring). Thread-safe."""

    def __init__(self, directory: Path, *, lifetime: int = 3600, token_size: int = 1200) -> None:
        self.dir = directory
        self.lifetime = lifetime  # expires_in of the tokens it issues
        self.token_size = token_size  # about the size of a Microsoft access token
        self.clients: dict[str, str] = {}  # client_id -> secret
        self.app_users: dict[str, str] = {}  # client_id -> mailbox its app tokens are for
        self.refresh_tokens: dict[str, str] = {}  # refresh token -> user
        self.rotate = False  # hand out a new refresh token with each refresh grant
        self.denied: set[str] = set()  # users whose every token is refused
        self.tokens: dict[str, Issued] = {}
        self.grants: list[tuple[str, str]] = []  # (endpoint, grant_type) of successful grants
        self.refusals: list[tuple[str, str]] = []  # (endpoint, error) of refused grants
        self.introspections: list[bool] = []  # the "active" answered, in order
        self._lock = threading.Lock()
        self._servers: list[ThreadingHTTPServer] = []
        self.ca_file = self.dir / "authority-cert.pem"
        self.https_port = 0
        self.http_port = 0

    # -- setup -----------------------------------------------------------------------------

    def client(self, client_id: str, secret: str, app_user: str | None = None) -> None:
        with self._lock:
            self.clients[client_id] = secret
            if app_user:
                self.app_users[client_id] = app_user

    def refresh_token(self, user: str) -> str:
        token = "rt-" + secrets.token_urlsafe(32)
        with self._lock:
            self.refresh_tokens[token] = user
        return token

    def issue(self, user: str, lifetime: float | None = None) -> str:
        """An access token for ``user`` (as a command provider's tool would obtain one)."""
        token = "at-" + secrets.token_urlsafe(self.token_size * 3 // 4)
        with self._lock:
            self.tokens[token] = Issued(user, time.time() + (lifetime or self.lifetime))
        return token

    def expire_all(self) -> None:
        """Every token issued so far expires now (the client still believes in its own)."""
        with self._lock:
            for t in self.tokens.values():
                t.active = False

    def introspect(self, token: str) -> dict[str, Any]:
        with self._lock:
            t = self.tokens.get(token)
            ok = (t is not None and t.active and t.expires > time.time()
                  and t.user not in self.denied)
            self.introspections.append(ok)
            if not ok or t is None:
                return {"active": False}
            return {"active": True, "username": t.user, "exp": int(t.expires),
                    "scope": "https://outlook.office.com/.default https://mail.google.com/"}

    def grants_of(self, endpoint: str) -> int:
        with self._lock:
            return sum(1 for e, _ in self.grants if e == endpoint)

    @property
    def authority_url(self) -> str:
        return f"https://{HOST}:{self.https_port}/{TENANT}"

    @property
    def google_token_url(self) -> str:
        return f"https://{HOST}:{self.https_port}/google/token"

    @property
    def introspection_url(self) -> str:
        return f"http://{HOST}:{self.http_port}/introspect"

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> TokenAuthority:
        self.dir.mkdir(parents=True, exist_ok=True)
        key = self.dir / "authority-key.pem"
        if not self.ca_file.exists():
            subprocess.run(
                ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                 "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", str(key), "-out",
                 str(self.ca_file), "-days", "2", "-subj", f"/CN={HOST}",
                 "-addext", f"subjectAltName=IP:{HOST}"],
                check=True, capture_output=True)
        handler = type("Handler", (_HttpHandler,), {"authority": self})
        https = ThreadingHTTPServer((HOST, 0), handler)
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(self.ca_file, key)
        https.socket = ctx.wrap_socket(https.socket, server_side=True)
        http = ThreadingHTTPServer((HOST, 0), handler)
        self.https_port, self.http_port = https.server_port, http.server_port
        for server in (https, http):
            server.daemon_threads = True
            threading.Thread(target=server.serve_forever, daemon=True,
                             name="token-authority").start()
            self._servers.append(server)
        return self

    def stop(self) -> None:
        servers, self._servers = self._servers, []
        for server in servers:
            server.shutdown()
            server.server_close()

    def __enter__(self) -> TokenAuthority:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- the token endpoints ---------------------------------------------------------------

    def grant(self, endpoint: str, form: dict[str, str]) -> tuple[int, dict[str, Any]]:
        kind = form.get("grant_type", "")
        client_id, secret = form.get("client_id", ""), form.get("client_secret")
        with self._lock:
            known = self.clients.get(client_id)
            if known is None or (secret is not None and secret != known) or (
                    secret is None and (endpoint == "google" or kind == "client_credentials")):
                self.refusals.append((endpoint, "invalid_client"))
                return 401, {"error": "invalid_client",
                             "error_description": "The client secret is not valid."}
            if kind == "client_credentials" and endpoint == "microsoft":
                user = self.app_users.get(client_id)
            elif kind == "refresh_token":
                user = self.refresh_tokens.get(form.get("refresh_token", ""))
            else:
                self.refusals.append((endpoint, "unsupported_grant_type"))
                return 400, {"error": "unsupported_grant_type"}
            if user is None:
                self.refusals.append((endpoint, "invalid_grant"))
                return 400, {"error": "invalid_grant",
                             "error_description": "Token has been expired or revoked."}
            self.grants.append((endpoint, kind))
        answer: dict[str, Any] = {"token_type": "Bearer", "expires_in": self.lifetime,
                                  "access_token": self.issue(user)}
        if kind == "refresh_token" and endpoint == "microsoft" and self.rotate:
            answer["refresh_token"] = self.refresh_token(user)
            with self._lock:  # the old one stops working, as a rotated token may
                self.refresh_tokens.pop(form["refresh_token"], None)
        if endpoint == "microsoft":
            answer["scope"] = form.get("scope", "")
        return 200, answer

    def discovery(self) -> dict[str, Any]:
        base = self.authority_url
        return {"issuer": f"{base}/v2.0", "authorization_endpoint": f"{base}/oauth2/v2.0/authorize",
                "token_endpoint": f"{base}/oauth2/v2.0/token",
                "device_authorization_endpoint": f"{base}/oauth2/v2.0/devicecode"}


class _HttpHandler(BaseHTTPRequestHandler):
    authority: TokenAuthority

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - quiet
        pass

    def _answer(self, status: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:  # noqa: N802
        if self.path.split("?")[0] == f"/{TENANT}/v2.0/.well-known/openid-configuration":
            self._answer(200, self.authority.discovery())
        else:
            self._answer(404, {"error": "not_found"})

    def do_POST(self) -> None:  # noqa: N802
        length = int(self.headers.get("Content-Length") or 0)
        form = dict(urllib.parse.parse_qsl(self.rfile.read(length).decode()))
        path = self.path.split("?")[0]
        if path == "/introspect":
            self._answer(200, self.authority.introspect(form.get("token", "")))
        elif path == f"/{TENANT}/oauth2/v2.0/token":
            self._answer(*self.authority.grant("microsoft", form))
        elif path == "/google/token":
            self._answer(*self.authority.grant("google", form))
        else:
            self._answer(404, {"error": "not_found"})


# -- Dovecot with the oauth2 passdb ----------------------------------------------------------


class OAuthDovecot(DovecotServer):
    """Dovecot whose XOAUTH2/OAUTHBEARER logins are checked by the authority's introspection."""

    def __init__(self, directory: Path, authority: TokenAuthority, **kw: Any) -> None:
        super().__init__(directory, **kw)
        self.authority = authority

    def _write_conf(self) -> None:
        super()._write_conf()
        ext = self.dir / "dovecot-oauth2.conf.ext"
        ext.write_text(
            f"introspection_mode = post\n"
            f"introspection_url = {self.authority.introspection_url}\n"
            "force_introspection = yes\n"
            "username_attribute = username\n"
            "active_attribute = active\n"
            "active_value = true\n"
            "timeout_msecs = 5000\n")
        ext.chmod(0o644)
        conf = self.conf.read_text()
        old_mechs = "auth_mechanisms = plain login\n"
        old_passdb = "passdb {\n  driver = passwd-file\n"
        if old_mechs not in conf or old_passdb not in conf:
            raise RuntimeError("tests/servers.py changed its Dovecot config: update OAuthDovecot")
        conf = conf.replace(old_mechs, "auth_mechanisms = plain login xoauth2 oauthbearer\n")
        conf = conf.replace(old_passdb, (
            "passdb {\n  driver = oauth2\n  mechanisms = xoauth2 oauthbearer\n"
            f"  args = {ext}\n}}\n"
            "passdb {\n  driver = passwd-file\n  mechanisms = plain login\n"))
        self.conf.write_text(conf)


# -- SMTP with XOAUTH2 / OAUTHBEARER -------------------------------------------------------


class _LongAuthSMTP(SMTP):
    """aiosmtpd's SMTP with room for a token in the AUTH line (RFC 4954 allows 12288)."""

    line_length_limit = 16384  # the reader's limit, for every line

    def __init__(self, *args: Any, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self.command_size_limits = collections.defaultdict(
            lambda: self.command_size_limit, {"AUTH": 12288})


class _OAuthController(Controller):
    def factory(self) -> SMTP:
        with warnings.catch_warnings():  # AUTH without TLS: on loopback, on purpose
            warnings.filterwarnings("ignore", "Requiring AUTH while not requiring TLS")
            return _LongAuthSMTP(self.handler, **self.SMTP_kwargs)


def parse_sasl(mechanism: str, blob: bytes) -> tuple[str, str]:
    """(user, token) of an XOAUTH2 or OAUTHBEARER client response; ValueError if malformed."""
    text = blob.decode()
    if mechanism == "XOAUTH2":
        fields = dict(f.split("=", 1) for f in text.split("\x01") if f)
        user, auth = fields["user"], fields["auth"]
    else:
        gs2, _, rest = text.partition("\x01")
        parts = gs2.split(",")
        if parts[0] != "n" or not parts[1].startswith("a="):
            raise ValueError("bad gs2 header")
        user = parts[1][2:].replace("=2C", ",").replace("=3D", "=")
        fields = dict(f.split("=", 1) for f in rest.split("\x01") if f)
        auth = fields["auth"]
    scheme, _, token = auth.partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise ValueError("not a bearer token")
    return user, token


class _OAuthHandler(_Handler):
    def __init__(self, sink: OAuthSmtpSink) -> None:
        super().__init__(sink)
        self.oauth_sink = sink

    async def auth_XOAUTH2(self, server: SMTP, args: list[str]) -> AuthResult:  # noqa: N802
        return await self._login(server, args, "XOAUTH2")

    async def auth_OAUTHBEARER(self, server: SMTP, args: list[str]) -> AuthResult:  # noqa: N802
        return await self._login(server, args, "OAUTHBEARER")

    async def _login(self, server: SMTP, args: list[str], mechanism: str) -> AuthResult:
        sink = self.oauth_sink
        if len(args) == 2:
            try:
                blob = base64.b64decode(args[1], validate=True)
            except binascii.Error:
                await server.push("501 5.5.2 Can't decode base64")
                return AuthResult(success=False, handled=True)
        else:
            answer = await server.challenge_auth("", encode_to_b64=False)
            if not isinstance(answer, bytes):
                return AuthResult(success=False, handled=True)
            blob = answer
        try:
            user, token = parse_sasl(mechanism, blob)
        except (ValueError, KeyError, UnicodeDecodeError):
            await server.push("501 5.5.2 Malformed " + mechanism)
            return AuthResult(success=False, handled=True)
        said = sink.authority.introspect(token)
        if said.get("active") and said.get("username") == user:
            sink.logins.append((mechanism, user))
            return AuthResult(success=True, auth_data=user)
        sink.refused_logins.append((mechanism, user))
        # Google's and RFC 7628's error challenge; the client answers it, then the verdict
        error = {"status": "401", "schemes": "bearer", "scope": "https://mail.google.com/"}
        await server.challenge_auth(json.dumps(error))
        return AuthResult(success=False, handled=False,
                          message="535 5.7.8 Username and token not accepted (test server)")


class OAuthSmtpSink(SmtpSink):
    """``SmtpSink`` that requires AUTH XOAUTH2 or OAUTHBEARER, checked by ``authority``."""

    def __init__(self, authority: TokenAuthority) -> None:
        super().__init__()
        self.authority = authority
        self.logins: list[tuple[str, str]] = []
        self.refused_logins: list[tuple[str, str]] = []

    def start(self) -> OAuthSmtpSink:
        from servers import free_port

        for attempt in range(3):
            self.port = free_port()
            controller = _OAuthController(
                _OAuthHandler(self), hostname=self.host, port=self.port,
                auth_require_tls=False, auth_required=True,
                auth_exclude_mechanism=["LOGIN", "PLAIN"])
            try:
                controller.start()
            except OSError:
                controller.loop.close()
                if attempt == 2:
                    raise
                continue
            self._controller = controller
            break
        return self
