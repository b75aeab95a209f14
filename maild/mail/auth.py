"""Who really sent a mail: Authentication-Results (RFC 8601) and DKIM (RFC 6376).

Anyone can write any header, so an ``Authentication-Results`` field counts only when its
authserv-id is one the administrator trusts (the mailbox server's own, which must remove
such fields bearing its id from incoming mail, RFC 8601 section 5). DKIM signatures are
checked here too (dkimpy), with pinned keys or DNS, so maild needs no help from the server.

Alignment is kept simple and strict: a domain ``d`` (DKIM ``header.d``, DMARC
``header.from``) speaks for the From domain when it is the same domain or a parent of it
(the From domain ends with ``"." + d``), and ``d`` has at least two labels.

Everything here but :func:`verify_dkim` (which may ask DNS) is pure.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

__all__ = ["AuthHeader", "AuthResult", "AuthVerdict", "DkimPolicy", "DkimResult", "aligned",
           "dmarc_fail_policy", "judge", "parse_header", "verify_dkim"]

log = logging.getLogger("maild.auth")

MAX_HEADERS = 20  # Authentication-Results fields read per mail (the topmost ones)
MAX_HEADER_CHARS = 4000  # characters of one field read
MAX_RESULTS = 30  # resinfo entries read per field

_QUOTED = r'"(?:[^"\\]|\\.)*"'
_PAIR = re.compile(r"\s*([A-Za-z0-9_-]+(?:\s*/\s*[0-9]+)?(?:\s*\.\s*[A-Za-z0-9_-]+)?)\s*=\s*"
                   rf"((?:{_QUOTED}|[^\s;\"])*)")
_POLICY_COMMENT = re.compile(r"\bp\s*=\s*(reject|quarantine)\b", re.I)


@dataclass(frozen=True)
class AuthResult:
    """One ``resinfo``: ``method=result`` with its reason and properties."""

    method: str  # lower case, without a version: "dkim", "dmarc", "spf", ...
    result: str  # lower case: "pass", "fail", "none", ...
    props: Mapping[str, str] = field(default_factory=dict)  # "header.d" -> "example.com"
    reason: str = ""
    comments: tuple[str, ...] = ()


@dataclass(frozen=True)
class AuthHeader:
    authserv_id: str  # lower case; "" when the field could not be read
    results: tuple[AuthResult, ...] = ()


def _strip_comments(text: str) -> tuple[str, list[str]]:
    """``text`` with every (nested) comment replaced by a NUL mark, and the comments'
    texts in order; quoted strings are kept as they are."""
    out: list[str] = []
    comments: list[str] = []
    current: list[str] = []
    depth, quoted, escaped = 0, False, False
    for ch in text.replace("\0", " "):
        sink = current if depth else out
        if escaped:
            sink.append(ch)
            escaped = False
        elif ch == "\\" and (quoted or depth):
            escaped = True
            if not depth:
                out.append(ch)
        elif quoted:
            out.append(ch)
            quoted = ch != '"'
        elif ch == "(":
            if depth:
                current.append(ch)
            depth += 1
        elif ch == ")" and depth:
            depth -= 1
            if depth:
                current.append(ch)
            else:
                comments.append("".join(current).strip())
                current = []
                out.append("\0")
        else:
            quoted = ch == '"' and not depth
            sink.append(ch)
    return "".join(out), comments


def _split(text: str) -> list[str]:
    """``text`` split at semicolons outside quoted strings (comments already removed)."""
    parts: list[str] = []
    current: list[str] = []
    quoted = escaped = False
    for ch in text:
        if escaped:
            escaped = False
        elif ch == "\\" and quoted:
            escaped = True
        elif ch == '"':
            quoted = not quoted
        elif ch == ";" and not quoted:
            parts.append("".join(current))
            current = []
            continue
        current.append(ch)
    parts.append("".join(current))
    return parts


def _sections(value: str) -> list[tuple[str, list[str]]]:
    """Each ';'-section of ``value`` without its comments, with the comments it held."""
    clean, comments = _strip_comments(value)
    found = iter(comments)
    out: list[tuple[str, list[str]]] = []
    for part in _split(clean):
        out.append((part.replace("\0", " "), [next(found, "") for _ in range(part.count("\0"))]))
    return out


def _unquote(value: str) -> str:
    if len(value) >= 2 and value[0] == value[-1] == '"':
        return re.sub(r"\\(.)", r"\1", value[1:-1])
    return value


def parse_header(value: str) -> AuthHeader:
    """One Authentication-Results field value (RFC 8601 section 2.2): the authserv-id and
    each ``method=result`` with its ``reason=`` and ``ptype.property=value`` pairs. A field
    that does not follow the grammar gives what could be read (an empty id at worst)."""
    value = value[:MAX_HEADER_CHARS].replace("\r", " ").replace("\n", " ")
    raw_sections = _sections(value)
    head = raw_sections[0][0].split()
    authserv = _unquote(head[0]).lower() if head else ""
    results: list[AuthResult] = []
    for text, comments in raw_sections[1:MAX_RESULTS + 1]:
        result = _resinfo(text, comments)
        if result is not None:
            results.append(result)
    return AuthHeader(authserv, tuple(results))


def _resinfo(text: str, comments: list[str]) -> AuthResult | None:
    text = text.strip()
    if not text or text.lower() == "none":
        return None
    pos, first = 0, True
    method = result = reason = ""
    props: dict[str, str] = {}
    while pos < len(text):
        m = _PAIR.match(text, pos)
        if m is None:
            break
        key, val = re.sub(r"\s+", "", m.group(1)).lower(), _unquote(m.group(2))
        pos = m.end()
        if first:
            if "." in key:
                return None
            method, result, first = key.partition("/")[0], val.lower(), False
        elif key == "reason":
            reason = val
        elif "." in key:
            props.setdefault(key, val)
    if first or not method or not result:
        return None
    return AuthResult(method, result, props, reason, tuple(comments))


# -- deciding ---------------------------------------------------------------------------


def aligned(domain: str, from_domain: str) -> bool:
    """``domain`` speaks for ``from_domain``: the same, or a parent of it (two labels at
    least, so no public suffix like ``com`` speaks for everyone under it)."""
    d = domain.strip().strip(".").lower()
    f = from_domain.strip().strip(".").lower()
    if not d or not f or "." not in d:
        return False
    return f == d or f.endswith("." + d)


def _domain_of(value: str) -> str:
    """The domain of ``header.i``/``header.from`` style values: ``@d``, ``user@d`` or ``d``."""
    return value.strip().rpartition("@")[2].strip().strip(".").lower()


@dataclass(frozen=True)
class AuthVerdict:
    """What the trusted Authentication-Results say about the From domain."""

    proof: str | None  # e.g. "dmarc=pass (mx.example.com)"; None: nothing proves it
    why: tuple[str, ...] = ()  # why not, or what was seen (for explain and the timeline)
    ignored: tuple[str, ...] = ()  # authserv-ids of fields not trusted


def _weigh(r: AuthResult, authserv: str, from_domain: str) -> tuple[str, str, bool]:
    """One trusted result: (a proof, or "", why not, or "", whether it is a DMARC fail)."""
    if r.method == "dmarc":
        said = _domain_of(r.props.get("header.from", ""))
        if said and said != from_domain:
            return "", f"dmarc={r.result} is for {said}, not {from_domain}", False
        if r.result == "pass":
            return f"dmarc=pass ({authserv})", "", False
        return "", f"dmarc={r.result} ({authserv})", True
    if r.method == "dkim":
        d = _domain_of(r.props.get("header.d", "") or r.props.get("header.i", ""))
        if r.result != "pass":
            return "", f"dkim={r.result} {d}".strip(), False
        if aligned(d, from_domain):
            return f"dkim=pass header.d={d} ({authserv})", "", False
        return "", f"dkim=pass for {d or '?'}, not aligned with {from_domain}", False
    return "", "", False


def judge(headers: Sequence[str], from_domain: str, trusted: Sequence[str]) -> AuthVerdict:
    """The Authentication-Results ``headers`` (top first) as a proof that the mail comes
    from ``from_domain``: a trusted ``dmarc=pass`` whose ``header.from`` is that domain, or
    a trusted ``dkim=pass`` whose ``header.d`` (or ``header.i``'s domain) aligns with it.
    A trusted ``dmarc=fail`` for the domain beats any pass (a forged field bearing our id
    that the server failed to remove cannot outvote the server)."""
    trusted_ids = {t.lower() for t in trusted}
    from_domain = from_domain.lower()
    ignored: list[str] = []
    passes: list[str] = []
    why: list[str] = []
    failed = False
    read = headers[:MAX_HEADERS]
    for raw in read:
        header = parse_header(raw)
        if header.authserv_id not in trusted_ids:
            ignored.append(header.authserv_id or "(unreadable)")
            continue
        for r in header.results:
            proof, reason, fail = _weigh(r, header.authserv_id, from_domain)
            passes += [proof] if proof else []
            why += [reason] if reason else []
            failed = failed or fail
    if ignored:
        why.append("ignored untrusted Authentication-Results from "
                   + ", ".join(dict.fromkeys(ignored)))
    if not trusted_ids:
        why.append("no trusted authserv-id configured")
    elif len(ignored) == len(read):
        why.append("no Authentication-Results from a trusted server")
    proven = passes[0] if passes and not failed else None
    return AuthVerdict(proven, tuple(why), tuple(ignored))


def dmarc_fail_policy(headers: Sequence[str], from_domain: str,
                      trusted: Sequence[str]) -> str | None:
    """``"reject"`` or ``"quarantine"`` when a trusted server says the mail fails DMARC for
    its From domain and that domain asks for it to be rejected or quarantined
    (``policy.dmarc=reject`` or the common comment ``(p=REJECT sp=... dis=...)``)."""
    trusted_ids = {t.lower() for t in trusted}
    for raw in headers[:MAX_HEADERS]:
        header = parse_header(raw)
        if header.authserv_id not in trusted_ids:
            continue
        for r in header.results:
            if r.method != "dmarc" or r.result != "fail":
                continue
            said = _domain_of(r.props.get("header.from", ""))
            if said and said != from_domain.lower():
                continue
            for key in ("policy.dmarc", "policy.published-domain-policy", "policy.applied"):
                p = r.props.get(key, "").lower()
                if p in ("reject", "quarantine"):
                    return p
            for comment in r.comments:
                m = _POLICY_COMMENT.search(comment)
                if m:
                    return m.group(1).lower()
    return None


# -- DKIM ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class DkimResult:
    domain: str  # the d= of the signature, lower case
    selector: str
    ok: bool  # the signature verifies and it signs the From field
    why: str = ""  # why not (or "" when ok)


@dataclass(frozen=True)
class DkimPolicy:
    """How :func:`verify_dkim` finds keys: pinned records first, else DNS (when ``dns``)."""

    keys: tuple[tuple[str, str], ...] = ()  # ("sel._domainkey.example.com", "v=DKIM1; p=...")
    dns: bool = True
    timeout: float = 3.0  # seconds for one DNS look-up
    max_signatures: int = 3  # signatures checked per mail
    #: only mail from these domains (or their subdomains) is checked: the staff's, since
    #: only staff run commands; empty: all mail
    domains: tuple[str, ...] = ()

    @classmethod
    def of(cls, keys: Mapping[str, str], dns: bool = True, timeout: float = 3.0,
           domains: Iterable[str] = ()) -> DkimPolicy:
        return cls(tuple(sorted((k.lower().rstrip("."), v) for k, v in keys.items())), dns,
                   timeout, domains=tuple(sorted({d.lower() for d in domains if d})))

    def wanted(self, from_domain: str) -> bool:
        """Whether mail from ``from_domain`` is worth checking."""
        f = from_domain.lower()
        return not self.domains or any(f == d or f.endswith("." + d) for d in self.domains)


def _has_signature(raw: bytes) -> bool:
    end = min((i for i in (raw.find(b"\n\n"), raw.find(b"\r\n\r\n")) if i >= 0),
              default=len(raw))
    head = raw[:end].lower()
    return head.startswith(b"dkim-signature:") or b"\ndkim-signature:" in head


def _dnsfunc(policy: DkimPolicy) -> Callable[..., bytes | None]:
    pinned = dict(policy.keys)

    def lookup(name: bytes | str, timeout: float = 5) -> bytes | None:
        key = (name.decode("ascii", "replace") if isinstance(name, bytes) else name)
        key = key.lower().rstrip(".")
        if key in pinned:
            return pinned[key].encode("ascii", "replace")
        if not policy.dns:
            return None
        import dkim  # type: ignore[import-untyped]
        import dns.exception
        import dns.resolver

        try:
            answer = dns.resolver.resolve(key + ".", "TXT", lifetime=min(timeout, policy.timeout),
                                          raise_on_no_answer=False)
        except (dns.resolver.NXDOMAIN, dns.resolver.NoNameservers):
            return None
        except dns.exception.Timeout as e:
            raise dkim.DnsTimeoutError(f"DNS timed out for {key}") from e
        except dns.exception.DNSException as e:
            raise dkim.DnsTimeoutError(f"DNS failed for {key}: {e}") from e
        for rrset in answer.response.answer:
            for rdata in rrset:
                strings = getattr(rdata, "strings", None)
                if strings:
                    return b"".join(strings)
        return None

    return lookup


def verify_dkim(raw: bytes, policy: DkimPolicy) -> tuple[DkimResult, ...]:
    """Each DKIM signature of the raw mail (at most ``policy.max_signatures``), verified.
    A key that cannot be had (DNS down, no record) is a failed signature, never an error."""
    if not _has_signature(raw):
        return ()
    import dkim

    quiet = logging.getLogger("maild.auth.dkimpy")
    try:
        signer = dkim.DKIM(raw, logger=quiet, timeout=int(max(1, policy.timeout)))
    except Exception as e:  # noqa: BLE001 - a mail dkimpy cannot read proves nothing
        return (DkimResult("", "", False, f"unreadable: {type(e).__name__}"),)
    count = sum(1 for name, _ in signer.headers if name.lower() == b"dkim-signature")
    dnsfunc = _dnsfunc(policy)
    out: list[DkimResult] = []
    for idx in range(min(count, policy.max_signatures)):
        domain = selector = ""
        try:
            ok = bool(signer.verify(idx=idx, dnsfunc=dnsfunc))
            domain = _text(signer.domain)
            selector = _text(signer.selector)
            why = "" if ok else "signature does not verify (or no key)"
            if ok and b"from" not in signer.include_headers:
                ok, why = False, "the signature does not cover From"
        except Exception as e:  # noqa: BLE001 - dkimpy raises many kinds on hostile input
            fields = getattr(signer, "signature_fields", {}) or {}
            domain = _text(fields.get(b"d", b""))
            selector = _text(fields.get(b"s", b""))
            ok, why = False, f"{type(e).__name__}: {e}"[:200]
        out.append(DkimResult(domain.lower(), selector, ok, why))
    return tuple(out)


def _text(value: object) -> str:
    if isinstance(value, bytes):
        return value.decode("ascii", "replace")
    return str(value or "")
