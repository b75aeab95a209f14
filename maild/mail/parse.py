"""Parse raw mail bytes into the frozen :class:`ParsedMail` value.

mail-parser reads the MIME structure and reports defects; headers, bodies and attachments are
then decoded once, here, from the raw parts, because mail-parser drops or garbles raw 8-bit
headers, a wrong declared charset and quoted encoded-words, all common in Chinese mail.
"""

from __future__ import annotations

import binascii
import functools
import re
from email.message import Message
from email.utils import getaddresses
from typing import TYPE_CHECKING, Any

import mailparser
from mailparser.exceptions import MailParserRecursionError

from maild.mail.auth import (
    MAX_HEADER_CHARS,
    MAX_HEADERS,
    DkimPolicy,
    DkimResult,
    verify_dkim,
)
from maild.mail.charset import (
    codec_for,
    decode_bytes_as,
    decode_words,
    install_aliases,
    recover_raw,
)
from maild.mail.dsn import Dsn, parse_dsn
from maild.mail.message import Address, Attachment, ParsedMail

if TYPE_CHECKING:
    from inscriptis.model.config import ParserConfig

__all__ = ["ParseError", "parse_mail"]

MAX_DEPTH = 64  # MIME nesting levels walked; real mail stays far below
MAX_DEFECTS = 20
# Byte budget: what one header may put into a case, a letter or a log line.
MAX_SUBJECT = 1000  # characters of the decoded subject (case subjects keep 500 of them)
MAX_NAME = 200  # characters of a display name
MAX_ADDRESS = 254  # an address longer than a forward-path can hold is unusable
MAX_ID = 998  # an In-Reply-To or References id longer than a header line is dropped
MAX_REFERENCES = 50  # the last ones are what threads a reply
MAX_SIGNAL = 1000  # characters of a robot-signal header value
# bytes of one top-level header field handed to mail-parser: it decodes encoded-words in
# quadratic time (a 5 MB subject of them took minutes); nothing past this is ever used
MAX_FIELD = 64 * 1024
MAX_RECEIVED = 100  # Received: fields handed on (mail-parser reads each one slowly)
SIGNALS = ("auto-submitted", "precedence", "list-id", "list-unsubscribe", "return-path",
           "x-auto-response-suppress", "x-autoreply", "x-autorespond", "x-maild-case",
           "x-spam-flag", "x-spam-status", "content-type")  # fmt: skip
_ADDRESS_HEADERS = ("from", "to", "cc", "reply-to")
_WANTED = frozenset((*SIGNALS, *_ADDRESS_HEADERS, "subject", "date", "message-id",
                     "in-reply-to", "references", "sender",
                     "authentication-results"))  # fmt: skip
# At least one of these must be present for the input to count as mail.
_MAIL_HEADERS = frozenset((*_WANTED, "sender", "received", "mime-version", "delivered-to",
                           "x-mailer", "user-agent", "bcc", "resent-from"))  # fmt: skip
_MIME_HEADERS = frozenset(("content-type", "content-disposition", "content-transfer-encoding",
                           "content-id"))  # fmt: skip
_EXT = {"image/png": ".png", "image/jpeg": ".jpg", "image/gif": ".gif", "image/bmp": ".bmp",
        "image/webp": ".webp", "image/tiff": ".tif", "image/svg+xml": ".svg",
        "text/plain": ".txt", "text/html": ".html", "text/calendar": ".ics", "text/csv": ".csv",
        "application/pdf": ".pdf", "application/ms-tnef": ".dat",
        "application/vnd.ms-outlook": ".msg", "message/rfc822": ".eml",
        "message/global": ".eml"}  # fmt: skip
_OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"

_WS = re.compile(r"[ \t\r\n]+")
# control characters (C0, DEL, C1), bidi embeddings, overrides and isolates, line separators:
# they reach terminals and letters from subjects and names, so they never leave the parser
_CONTROLS = re.compile("[\x00-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069"
                       "\u2028\u2029]+")
_ID = re.compile(r"<([^<>]*)>")
_LIST_TOKEN = re.compile(r'"(?:[^"\\]|\\.)*"?|\([^()]*\)?|<[^<>]*>?|[^",(<]+|.', re.S)
_ADDR = re.compile(r"[^\s<>,;@]+@[^\s<>,;@()\[\]\"]+")
_SAFE_CID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,80}\.[A-Za-z0-9]{1,8}")
_META_CHARSET = re.compile(rb"<meta[^>]{0,200}?charset=[\"']?([A-Za-z0-9_-]{2,30})", re.I)
# the browser's own layout (Firefox's defaults): no indented <div>s, no blanks around <span>s,
# which would split Chinese words
_SURROGATE = re.compile("[\ud800-\udfff]")  # lxml cuts the text at a lone surrogate
_BLANK_LINES = re.compile(r"\n{3,}")


class ParseError(ValueError):
    """The input cannot be understood as mail at all; ``str(err)`` is the quarantine reason."""


def parse_mail(raw: bytes, dkim: DkimPolicy | None = None) -> ParsedMail:
    """Build a :class:`ParsedMail` from raw RFC 5322 bytes; raise ParseError if it is not mail.

    ``dkim``: check the mail's DKIM signatures with these keys (None: not checked)."""
    install_aliases()
    original = raw
    raw, cut = _bounded_header(raw)
    parser = _mail_parser(raw)
    message: Message = parser.message
    headers = _top_headers(message)
    if not headers and not _known_header(message):
        raise ParseError(_not_mail_reason(raw))
    walk = _Walk(message)
    first = headers.get
    text = "\n".join(walk.plain) if walk.plain else html_to_text("\n".join(walk.html))
    from_ = _sender(first("from", []))
    froms = first("from", [])
    return ParsedMail(
        # an overlong Message-ID is kept: the store refuses it, and the mail is quarantined
        message_id=next(iter(_ids(first("message-id", [""])[0], checked=False)), ""),
        from_=from_,
        to=_addresses(first("to", [])),
        cc=_addresses(first("cc", [])),
        reply_to=_addresses(first("reply-to", [])),
        subject=_line(_text(first("subject", [""])[0], words=True), MAX_SUBJECT),
        date=_line(_text(first("date", [""])[0]), 200),
        text=text,
        html="\n".join(walk.html),
        attachments=tuple(walk.attachments),
        in_reply_to=_ids(" ".join(first("in-reply-to", [])))[:MAX_REFERENCES],
        references=_ids(" ".join(first("references", [])))[-MAX_REFERENCES:],
        signals={name: _line(_text(headers[name][0]), MAX_SIGNAL)
                 for name in SIGNALS if name in headers},
        defects=_defects(parser.defects, [*cut, *walk.defects]),
        dsn=_dsn(message, from_.addr, _text(first("return-path", [""])[0]), text),
        auth_results=tuple(_line(_text(v), MAX_HEADER_CHARS)
                           for v in first("authentication-results", [])[:MAX_HEADERS]),
        dkim=_dkim(original, dkim, from_.domain),
        from_count=max(len(froms), sum(1 for v in froms for _, a in _mailboxes(recover_raw(v))
                                       if a.strip())),
        sender=_sender(first("sender", [])).addr,
        **_all_headers(message),
    )


def _dkim(raw: bytes, policy: DkimPolicy | None, from_domain: str) -> tuple[DkimResult, ...]:
    """The mail's DKIM signatures checked; nothing when not asked (or not for mail from
    this domain) or on any failure."""
    if policy is None or not from_domain or not policy.wanted(from_domain):
        return ()
    try:
        return verify_dkim(raw, policy)
    except Exception:  # noqa: BLE001 - a signature that cannot be checked proves nothing
        return ()


def _dsn(message: Message, sender: str, return_path: str, text: str) -> Dsn | None:
    """The bounce the mail reports; a report too odd to read is no bounce (never an error)."""
    try:
        return parse_dsn(message, sender=sender, return_path=return_path, text=text)
    except Exception:  # best effort: a broken report must not quarantine the mail
        return None


def _bounded_header(raw: bytes) -> tuple[bytes, list[str]]:
    """``raw`` with every top-level header field cut to MAX_FIELD bytes and no more than
    MAX_RECEIVED Received: fields; what was cut."""
    end = min((i for i in (raw.find(b"\n\n"), raw.find(b"\r\n\r\n")) if i >= 0),
              default=len(raw))
    head = raw[:end]
    if len(head) <= MAX_FIELD:
        return raw, []
    fields: list[list[bytes]] = []
    for line in head.split(b"\n"):
        if fields and line[:1] in (b" ", b"\t"):
            fields[-1].append(line)
        else:
            fields.append([line])
    out, cut, received = [], [], 0
    for field in fields:
        if field[0][:9].lower() == b"received:":
            received += 1
            if received > MAX_RECEIVED:
                continue
        text = b"\n".join(field)
        if len(text) > MAX_FIELD:
            name = text.partition(b":")[0][:40].decode("ascii", "replace")
            cut.append(f"header {name!r} cut from {len(text)} to {MAX_FIELD} bytes")
            text = text[:MAX_FIELD].rstrip(b"\r")
        out.append(text)
    if received > MAX_RECEIVED:
        cut.append(f"{received - MAX_RECEIVED} of {received} Received: fields left out")
    return b"\n".join(out) + raw[end:], cut


def _mail_parser(raw: bytes) -> mailparser.MailParser:
    if not raw or raw.isspace():
        raise ParseError("empty input: the message has no bytes")
    try:
        return mailparser.parse_from_bytes(raw)
    except MailParserRecursionError as exc:
        raise ParseError("MIME parts nested too deeply to parse (possible attack)") from exc
    except Exception as exc:  # mail-parser should never raise; if it does, say what failed
        raise ParseError(f"mail-parser failed: {type(exc).__name__}: {exc}"[:300]) from exc


def _top_headers(message: Message) -> dict[str, list[str]]:
    """Raw values (8-bit bytes still surrogate-escaped) of the headers read here."""
    found: dict[str, list[str]] = {}
    for name, value in message.raw_items():
        key = name.lower()
        if key in _WANTED:
            found.setdefault(key, []).append(value)
    return found


MAX_HEADER_NAMES = 100  # distinct top-level header names kept for routing rules
MAX_HEADER_VALUES = 10  # values kept of one name
_DELIVERED = ("delivered-to", "x-original-to", "envelope-to")


def _all_headers(message: Message) -> dict[str, Any]:
    """``delivered_to`` and ``headers`` of a ParsedMail: every top-level field, bounded."""
    raw: dict[str, list[str]] = {}
    for name, value in message.raw_items():
        key = _line(str(name), 100).lower()
        if key not in raw and len(raw) >= MAX_HEADER_NAMES:
            continue
        values = raw.setdefault(key, [])
        if len(values) < MAX_HEADER_VALUES:
            values.append(value)
    return {"delivered_to": _addresses([v[:MAX_SIGNAL] for k in _DELIVERED
                                        for v in raw.get(k, [])]),
            "headers": {k: tuple(_line(_text(v[:4 * MAX_SIGNAL], words=True), MAX_SIGNAL)
                                      for v in vs)
                        for k, vs in raw.items()}}


def _known_header(message: Message) -> bool:
    return any(name.lower() in _MAIL_HEADERS for name in message.keys())


def _not_mail_reason(raw: bytes) -> str:
    if raw.startswith(_OLE_MAGIC):
        return "not RFC 5322 mail: an OLE2 file (e.g. an Outlook .msg), not a message"
    return f"not RFC 5322 mail: no mail header (From, To, Subject, ...); starts {raw[:40]!r}"


def _text(value: str, words: bool = False) -> str:
    value = recover_raw(value)
    return _WS.sub(" ", decode_words(value) if words else value).strip()


def _line(value: str, limit: int) -> str:
    """One line of text: no control characters, at most ``limit`` characters."""
    value = _CONTROLS.sub(" ", value)
    if _WS.search(value):
        value = _WS.sub(" ", value).strip()
    return value if len(value) <= limit else value[: limit - 1].rstrip() + "…"


def _ids(value: str, checked: bool = True) -> tuple[str, ...]:
    """Message ids as ``<...>`` tokens; garbage between them is dropped. ``checked``: so are
    ids too long for a header line or with control characters (they could not be written
    back, and no letter of ours carries one)."""
    found = ["".join(inner.split()) for inner in _ID.findall(value)]
    if not found and "<" not in value:  # ids written without brackets
        found = [token for token in value.split() if "@" in token]
    return tuple(dict.fromkeys(f"<{token}>" for token in found if token and (
        not checked or (len(token) <= MAX_ID - 2 and not _CONTROLS.search(token)))))


def _address(name: str, addr: str) -> Address:
    addr = addr.strip().lower()
    if len(addr) > MAX_ADDRESS or not _ADDR.fullmatch(addr):
        return Address("", "")
    name = _WS.sub(" ", decode_words(name)).strip()
    if len(name) > 1 and name[0] == name[-1] == '"':
        name = name[1:-1].strip()
    return Address(_line(name, MAX_NAME), addr)


def _addresses(values: list[str]) -> tuple[Address, ...]:
    pairs: list[tuple[str, str]] = []
    for value in values:
        pairs.extend(_mailboxes(recover_raw(value)))
    return tuple(a for a in (_address(name, addr) for name, addr in pairs) if a.addr)


def _mailboxes(value: str) -> list[tuple[str, str]]:
    """``getaddresses``, except that ``bob@x <eve@y>`` is one mailbox (eve), not two. A
    field ``email.utils`` cannot read (comments nested thousands deep exhaust its
    recursion) has no usable mailbox."""
    try:
        return _read_mailboxes(value)
    except RecursionError:
        return []


def _read_mailboxes(value: str) -> list[tuple[str, str]]:
    pairs = getaddresses([value])
    if len(pairs) < 2:
        return pairs
    pieces = _split_list(value)
    if len(pieces) == len(pairs):
        return pairs
    found = []
    for piece in pieces:
        more = getaddresses([piece])
        if len(more) > 1 and "<" in piece:
            name, _, rest = piece.partition("<")
            more = [(name.strip().strip('"'), rest.partition(">")[0])]
        found.extend(more)
    return found


def _split_list(value: str) -> list[str]:
    """Split an address list at commas outside quotes, comments and angle brackets."""
    pieces: list[list[str]] = [[]]
    for token in _LIST_TOKEN.findall(value):
        if token == ",":
            pieces.append([])
        else:
            pieces[-1].append(token)
    joined = ("".join(piece) for piece in pieces)
    return [piece for piece in joined if piece.strip()]


def _sender(values: list[str]) -> Address:
    found = _addresses(values[:1])
    return found[0] if found else Address("", "")


def _defects(reported: list, own: list[str]) -> tuple[str, ...]:
    out: list[str] = []
    for entry in reported:
        items = entry.items() if isinstance(entry, dict) else [("", entry)]
        for where, details in items:
            for detail in details if isinstance(details, list) else [details]:
                out.append(f"{where}: {detail}" if where else str(detail))
    short = (_WS.sub(" ", d).strip() for d in (*out, *own))
    clean = (d if len(d) <= 160 else d[:159] + "…" for d in short)
    safe = (d.encode("utf-8", "backslashreplace").decode("utf-8") for d in clean)
    return tuple(dict.fromkeys(safe))[:MAX_DEFECTS]


def html_to_text(markup: str) -> str:
    """Readable text from HTML, laid out by inscriptis (blocks, lists, tables; no scripts,
    styles, comments or hidden elements; entities unescaped). Lines are stripped: centred
    layout tables would otherwise indent them by dozens of blanks. Runs of blank lines become
    one. Elements nested deeper than lxml's limit (255 levels) are dropped."""
    if not markup.strip():
        return ""
    # imported here: inscriptis brings lxml (about 6 MB in each process), which only mail
    # with HTML and no text part needs
    import inscriptis

    text = inscriptis.get_text(_SURROGATE.sub("\ufffd", markup), _html_layout())
    lines = (line.strip() for line in text.replace("\xa0", " ").split("\n"))
    return _BLANK_LINES.sub("\n\n", "\n".join(lines)).strip()


@functools.cache
def _html_layout() -> ParserConfig:
    """inscriptis's strict layout: no indented divs and no blanks around spans (which would
    split Chinese words)."""
    from inscriptis.css_profiles import CSS_PROFILES
    from inscriptis.model.config import ParserConfig

    return ParserConfig(css=CSS_PROFILES["strict"].copy())


class _Walk:
    """One pass over the MIME tree: body texts, attachments, charset notes."""

    def __init__(self, message: Message) -> None:
        self.plain: list[str] = []
        self.html: list[str] = []
        self.attachments: list[Attachment] = []
        self.defects: list[str] = []
        stack = [(message, 0)]
        while stack:
            part, depth = stack.pop()
            if depth > MAX_DEPTH:
                raise ParseError(f"MIME parts nested deeper than {MAX_DEPTH} levels")
            view = _mime_view(part)
            ctype = view.get_content_type()
            # get_payload() of a leaf applies its charset, which may raise: only ask containers
            if ctype.startswith("multipart/") and part.is_multipart():
                stack.extend((child, depth + 1) for child in reversed(_children(part)))
            else:
                self._leaf(part, view, ctype)

    def _leaf(self, part: Message, view: Message, ctype: str) -> None:
        name = _filename(view)
        if ctype.startswith("message/"):
            payload = _embedded(part, view)
        else:
            payload = _payload(part)
            body = ctype in ("text/plain", "text/html") and not name
            if body and view.get_content_disposition() != "attachment":
                self._body(payload, ctype, view.get_content_charset())
                return
        name = name or _made_up_name(ctype, view.get("content-id", ""), len(self.attachments))
        self.attachments.append(Attachment(name, ctype, len(payload), payload))

    def _body(self, payload: bytes, ctype: str, declared: str | None) -> None:
        if declared is None and ctype == "text/html":
            sniffed = _META_CHARSET.search(payload, 0, 2048)
            declared = sniffed.group(1).decode("ascii") if sniffed else None
        text, codec = decode_bytes_as(payload, declared)
        if declared and codec not in ("ascii", codec_for(declared)):
            self.defects.append(f"{ctype}: charset {declared!r} did not fit; read as {codec}")
        if "\r" in text:
            text = text.replace("\r\n", "\n")
        if text.strip():  # an empty plain part must not hide the HTML one
            (self.html if ctype == "text/html" else self.plain).append(text)


def _mime_view(part: Message) -> Message:
    """The part's MIME headers with raw 8-bit values decoded, so parameters read correctly."""
    view = Message()
    view.set_default_type(part.get_default_type())
    for name, value in part.raw_items():
        key = name.lower()
        if key in _MIME_HEADERS and key not in view:
            view[key] = recover_raw(value)
    return view


def _filename(view: Message) -> str:
    """Decoded file name (RFC 2231, RFC 2047, raw 8-bit), without any directory part."""
    value = view.get_param("filename", None, "content-disposition")
    if value is None:
        value = view.get_param("name", None, "content-type")
    if isinstance(value, tuple):  # RFC 2231: (charset, language, octets as latin-1)
        charset, _, text = value
        try:
            value = decode_bytes_as(text.encode("latin-1"), charset or None)[0]
        except UnicodeEncodeError:
            value = text
    if not value:
        return ""
    name = _WS.sub(" ", decode_words(str(value))).strip()
    name = name.replace("\\", "/").rpartition("/")[2]
    return "".join(ch for ch in name if ch.isprintable()).strip()


def _made_up_name(ctype: str, content_id: str, index: int) -> str:
    if ctype in ("message/rfc822", "message/global"):
        return "forwarded.eml"
    local = str(content_id).strip().strip("<>").partition("@")[0]
    if _SAFE_CID.fullmatch(local):
        return local
    return f"{ctype.partition('/')[0] or 'part'}-{index + 1}{_EXT.get(ctype, '.bin')}"


def _embedded(part: Message, view: Message) -> bytes:
    """Bytes of an attached message (message/rfc822, delivery-status...) as one file."""
    if not part.is_multipart():
        return _payload(part)
    data = b"".join(_flatten(message) for message in _children(part))
    encoding = str(view.get("content-transfer-encoding", "")).strip().lower()
    try:  # an encoded message/* part is invalid but seen; the parser kept the encoded text
        if encoding == "base64":
            return binascii.a2b_base64(data)
        if encoding == "quoted-printable":
            return binascii.a2b_qp(data)
    except (binascii.Error, ValueError):
        pass
    return data


def _flatten(message: Message) -> bytes:
    try:
        return message.as_bytes()
    except Exception:  # the generator refuses some charsets or structures; keep headers+text
        head = "".join(f"{name}: {value}\n" for name, value in message.raw_items())
        return f"{head}\n".encode("utf-8", "surrogateescape") + _payload(message)


def _payload(part: Message) -> bytes:
    """A leaf's payload with its transfer encoding undone (b"" for containers)."""
    payload = part.get_payload(decode=True)
    return payload if isinstance(payload, bytes) else b""


def _children(part: Message) -> list[Message]:
    return [child for child in part.get_payload() if isinstance(child, Message)]
