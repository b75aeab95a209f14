"""DKIM checked by maild (dkimpy), with keys the test makes and pins."""

from __future__ import annotations

import base64
import sys
from pathlib import Path

import dkim
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from support import mail  # noqa: E402

from maild.classify.proof import ProofPolicy, prove  # noqa: E402
from maild.mail.auth import DkimPolicy, verify_dkim  # noqa: E402
from maild.mail.parse import parse_mail  # noqa: E402


def keypair() -> tuple[bytes, str]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    der = key.public_key().public_bytes(serialization.Encoding.DER,
                                        serialization.PublicFormat.SubjectPublicKeyInfo)
    return pem, "v=DKIM1; k=rsa; p=" + base64.b64encode(der).decode("ascii")


@pytest.fixture(scope="module")
def keys() -> tuple[bytes, str]:
    return keypair()


def signed(raw: bytes, pem: bytes, domain: str = "corp.example.test",
           selector: str = "s1", headers: list[bytes] | None = None) -> bytes:
    sig = dkim.sign(raw, selector.encode(), domain.encode(), pem,
                    include_headers=headers or [b"from", b"to", b"subject", b"date"])
    return sig + raw


def test_a_signature_verifies_with_a_pinned_key(keys: tuple[bytes, str]) -> None:
    pem, record = keys
    raw = signed(mail("zhang@corp.example.test", "[关闭]", "#close", auth=None), pem)
    policy = DkimPolicy.of({"s1._domainkey.corp.example.test": record}, dns=False)
    [r] = verify_dkim(raw, policy)
    assert (r.domain, r.selector, r.ok) == ("corp.example.test", "s1", True)
    m = parse_mail(raw, policy)
    assert m.dkim == (r,)
    assert prove(m, None, ProofPolicy()).how == "dkim: corp.example.test"


def test_a_tampered_body_fails(keys: tuple[bytes, str]) -> None:
    pem, record = keys
    raw = signed(mail("zhang@corp.example.test", "hello", "#note ok", auth=None), pem)
    policy = DkimPolicy.of({"s1._domainkey.corp.example.test": record}, dns=False)
    tampered = raw.replace(b"#note ok", b"#close").replace(b"I25vdGUgb2s", b"I2Nsb3Nl")
    if tampered == raw:  # the body is base64: change its encoded text
        tampered = raw[:-10] + b"AAAA" + raw[-6:]
    [r] = verify_dkim(tampered, policy)
    assert not r.ok
    assert prove(parse_mail(tampered, policy), None, ProofPolicy()).how is None


def test_an_unknown_key_or_other_domain_proves_nothing(keys: tuple[bytes, str]) -> None:
    pem, record = keys
    raw = signed(mail("zhang@corp.example.test", "hi", "#close", auth=None), pem)
    [r] = verify_dkim(raw, DkimPolicy.of({}, dns=False))
    assert not r.ok  # no key: not proven, never an error
    # a valid signature by the attacker's own domain does not speak for the From domain
    evil = signed(mail("zhang@corp.example.test", "hi", "#close", auth=None), pem,
                  domain="evil.test")
    policy = DkimPolicy.of({"s1._domainkey.evil.test": record}, dns=False)
    m = parse_mail(evil, policy)
    assert m.dkim[0].ok
    p = prove(m, None, ProofPolicy())
    assert p.how is None and any("dkim" in w for w in p.why)


def test_a_from_added_after_signing_breaks_it(keys: tuple[bytes, str]) -> None:
    pem, record = keys
    raw = signed(mail("zhang@corp.example.test", "hi", "#close", auth=None), pem)
    policy = DkimPolicy.of({"s1._domainkey.corp.example.test": record}, dns=False)
    two = b"From: evil@attacker.test\r\n" + raw
    m = parse_mail(two, policy)
    assert m.from_count == 2
    p = prove(m, None, ProofPolicy())
    assert p.how is None and "2 From addresses" in p.why[0]


def test_no_signature_no_work_and_garbage_signatures() -> None:
    assert verify_dkim(mail("a@x.test", "hi", auth=None), DkimPolicy()) == ()
    raw = b"DKIM-Signature: v=1; garbage\r\n" + mail("a@x.test", "hi", auth=None)
    [r] = verify_dkim(raw, DkimPolicy(dns=False))
    assert not r.ok and r.why
    many = b"".join(b"DKIM-Signature: v=1; a=rsa-sha256; d=x.test; s=s; h=from; bh=; b=\r\n"
                    for _ in range(10)) + mail("a@x.test", "hi", auth=None)
    assert len(verify_dkim(many, DkimPolicy(dns=False, max_signatures=3))) == 3


def test_only_mail_from_the_listed_domains_is_checked(keys: tuple[bytes, str]) -> None:
    pem, record = keys
    pinned = {"s1._domainkey.corp.example.test": record, "s1._domainkey.evil.test": record}
    staff_only = DkimPolicy.of(pinned, dns=False, domains=["corp.example.test"])
    outsider = signed(mail("a@evil.test", "hi", auth=None), pem, domain="evil.test")
    assert parse_mail(outsider, staff_only).dkim == ()  # no work for mail from outsiders
    sub = signed(mail("a@mail.corp.example.test", "hi", auth=None), pem)
    assert parse_mail(sub, staff_only).dkim[0].ok  # a subdomain of a staff domain is
