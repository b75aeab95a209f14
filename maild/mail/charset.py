"""Charset robustness: read any byte string or raw header as the text its sender meant.

Chinese mail is routinely labelled ``gb2312`` while containing GBK-only characters (镕, 喆),
labelled ``utf-8`` while carrying GBK bytes, or not labelled at all.  Everything here decodes
leniently and never raises: a GB2312/GBK label is read as GB18030 (its superset), a Big5 label
as cp950 (Big5 with the Windows extensions every Taiwanese client emits), and a failing label
falls back along utf-8, gb18030, big5.
"""

from __future__ import annotations

import binascii
import codecs
import encodings
import encodings.aliases
import re
from functools import lru_cache

# Normalised names (as ``encodings.normalize_encoding`` spells them) of GB2312/GBK labels.
GB_LABELS = (
    "gb2312", "gbk", "cp936", "ms936", "936", "x_gbk", "euc_cn", "euccn", "x_euc_cn",
    "eucgb2312_cn", "chinese", "csgb2312", "csiso58gb231280", "gb2312_1980", "gb2312_80",
    "gb_2312_80", "gb_2312", "iso_ir_58", "windows_936",
)  # fmt: skip
BIG5_LABELS = ("big5", "big_5", "big5_tw", "csbig5", "cn_big5", "x_x_big5", "x_big5", "cp950")
FALLBACK_CHAIN = ("utf-8", "gb18030", "cp950")

# Western single-byte labels are the classic mislabel of UTF-8 text: valid multibyte UTF-8
# is never Western text in practice, so it wins over these labels.
_WESTERN = frozenset({"ascii", "iso8859-1", "iso8859-15", "cp1252"})
# Codecs that can fabricate lone surrogates or are no charset at all.
_UNSAFE = frozenset({"unicode_escape", "raw_unicode_escape", "utf_7", "idna", "punycode",
                     "undefined", "mbcs", "oem"})  # fmt: skip
_LOCAL = {**dict.fromkeys(GB_LABELS, "gb18030"), **dict.fromkeys(BIG5_LABELS, "cp950")}
_installed = False


def install_aliases() -> None:
    """Make every GB2312/GBK label decode as GB18030 process-wide (idempotent).

    Besides ``encodings.aliases.aliases`` this clears the codec caches, because a label
    looked up before the call (e.g. by the ``email`` package) stays cached as plain GB2312.
    """
    global _installed
    if _installed:
        return
    for label in GB_LABELS:
        encodings.aliases.aliases[label] = "gb18030"
    getattr(encodings, "_cache", {}).clear()
    codecs.register(_no_codec)  # unregistering clears the interpreter's lookup cache
    codecs.unregister(_no_codec)
    codec_for.cache_clear()
    _installed = True


def _no_codec(_name: str) -> None:
    return None


@lru_cache(maxsize=256)
def codec_for(label: str | None) -> str | None:
    """The Python codec to use for a MIME charset label, or None if unusable."""
    if not label:
        return None
    norm = encodings.normalize_encoding(label.strip().strip("\"'").lower())
    norm = _LOCAL.get(norm, norm)
    try:
        info = codecs.lookup(norm)
    except (LookupError, ValueError, TypeError, UnicodeError):
        return None
    if not getattr(info, "_is_text_encoding", True) or info.name.replace("-", "_") in _UNSAFE:
        return None
    return _LOCAL.get(info.name.replace("-", "_"), info.name)


def decode_bytes(data: bytes, declared: str | None = None) -> str:
    """Decode ``data``: declared charset (aliased), then utf-8, gb18030, big5. Never raises."""
    return decode_bytes_as(data, declared)[0]


def decode_bytes_as(data: bytes, declared: str | None = None) -> tuple[str, str]:
    """Like :func:`decode_bytes`, also returning the codec that was used.

    When every codec fails, the one that read furthest decodes with replacement characters
    (a truncated GBK body keeps its text); latin-1 is the last resort.
    """
    if data.isascii():
        return data.decode("ascii"), "ascii"
    first = codec_for(declared)
    tried = (first, *FALLBACK_CHAIN) if first else FALLBACK_CHAIN
    if first in _WESTERN:
        tried = ("utf-8", *tried)
    best, reach = "latin-1", 0
    for codec in dict.fromkeys(tried):
        try:
            return data.decode(codec), codec
        except UnicodeDecodeError as err:
            if err.start > reach:
                best, reach = codec, err.start
        except (LookupError, UnicodeError):
            continue
    return data.decode(best, "replace"), best


def recover_raw(value: str) -> str:
    """Text of a header value read with surrogateescape: its raw 8-bit bytes as UTF-8 or GB18030."""
    if value.isascii():
        return value
    try:
        data = value.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:  # stray surrogates that were not escaped bytes
        return value.encode("utf-8", "replace").decode("utf-8")
    return decode_bytes(data)


_WORD = re.compile(r"=\?([^?\s]+)\?([bBqQ])\?([^?\s]*)\?=")
_NOT_B64 = re.compile(r"[^A-Za-z0-9+/]")


def _word_bytes(kind: str, text: str) -> bytes:
    if kind in "bB":  # lenient like mail clients: padding ends the data, missing padding is fine
        clean = _NOT_B64.sub("", text.partition("=")[0])
        if len(clean) % 4 == 1:
            clean = clean[:-1]
        return binascii.a2b_base64(clean + "=" * (-len(clean) % 4))
    return binascii.a2b_qp(text.encode("ascii", "replace"), header=True)


def decode_words(value: str) -> str:
    """Decode RFC 2047 encoded-words in ``value``; adjacent words of one charset join as bytes.

    Joining before decoding keeps a multibyte character split across two words intact.
    """
    if "=?" not in value:
        return value
    out: list[str] = []
    run: list[bytes] = []
    run_charset: str | None = None
    pos = 0
    for match in _WORD.finditer(value):
        gap = value[pos : match.start()]
        charset = match.group(1).partition("*")[0].lower()  # RFC 2231 language suffix
        spaces_only = pos > 0 and not gap.strip(" \t\r\n")  # ignored between two words
        if run and (not spaces_only or charset != run_charset):
            out.append(decode_bytes(b"".join(run), run_charset))
            run = []
        if not spaces_only:
            out.append(gap)
        try:
            run.append(_word_bytes(match.group(2), match.group(3)))
        except (binascii.Error, ValueError):
            run.append(match.group(0).encode("ascii", "replace"))
        run_charset, pos = charset, match.end()
    if run:
        out.append(decode_bytes(b"".join(run), run_charset))
    out.append(value[pos:])
    return "".join(out)
