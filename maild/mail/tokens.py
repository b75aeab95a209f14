"""Reply tokens: our Message-IDs prove who answers them.

Every letter goes to one recipient and carries a Message-ID ``<NONCE.TOKEN@domain>``: a
random nonce, and an HMAC-SHA256 over the case number, the recipient's address and the
nonce, keyed with the site secret (a file outside the database). A reply whose
In-Reply-To/References holds such an id, whose token verifies for the case the reply threads
to and for the reply's From address, comes from someone who received that letter: a forger
who never saw it cannot make one, and a letter stolen from someone else names another
address. Pure: the secret comes in as bytes.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
from collections.abc import Iterable

__all__ = ["make_message_id", "token_for", "verified"]

NONCE_BYTES = 10  # 16 base32 characters
TOKEN_BYTES = 15  # 120 bits of HMAC: 24 base32 characters
_ID = re.compile(r"<([a-z2-7]{16})\.([a-z2-7]{24})@([^<>@\s]+)>")


def _b32(data: bytes) -> str:
    return base64.b32encode(data).decode("ascii").rstrip("=").lower()


def token_for(secret: bytes, case_number: str, recipient: str, nonce: str) -> str:
    """The token binding a letter of case ``case_number`` to ``recipient``."""
    message = "\n".join((case_number, recipient.strip().lower(), nonce)).encode("utf-8")
    return _b32(hmac.new(secret, message, hashlib.sha256).digest()[:TOKEN_BYTES])


def make_message_id(secret: bytes, case_number: str, recipient: str, domain: str,
                    nonce: str | None = None) -> str:
    """A Message-ID for one letter of ``case_number`` to ``recipient``."""
    nonce = nonce or _b32(secrets.token_bytes(NONCE_BYTES))
    return f"<{nonce}.{token_for(secret, case_number, recipient, nonce)}@{domain}>"


def verified(secret: bytes, ids: Iterable[str], case_number: str, sender: str,
             domain: str) -> str | None:
    """The first of ``ids`` that is one of our Message-IDs whose token was made for
    ``sender`` on ``case_number`` (None: none is)."""
    if not secret or not case_number or not sender:
        return None
    for mid in ids:
        m = _ID.fullmatch(mid.strip().lower())
        if m is None or m.group(3) != domain.lower():
            continue
        nonce, token = m.group(1), m.group(2)
        if hmac.compare_digest(token, token_for(secret, case_number, sender, nonce)):
            return mid
    return None
