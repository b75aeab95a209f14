"""The proof of sender as classification computes it, and what `config check` says of the
policy."""

from __future__ import annotations

from pathlib import Path

import pytest
from support import AUTHSERV, DIRECTORY_TOML, NOW, mail, make_config

from maild.classify.proof import ProofPolicy, prove
from maild.classify.rules import Known
from maild.cli.check import security_problems
from maild.cli.explain import explain_mail, format_text
from maild.config import ConfigError, parse_config
from maild.mail.parse import parse_mail
from maild.mail.tokens import make_message_id
from maild.site import Site, load_secret

POLICY = ProofPolicy(trusted=(AUTHSERV,), secret=b"s" * 32, msgid_domain="example.test")
LI = "li@corp.example.test"


def test_several_from_addresses_or_a_foreign_sender_prove_nothing() -> None:
    assert prove(parse_mail(mail(LI, "x")), None, POLICY).how is not None
    two = parse_mail(mail(f"{LI}, evil@x.test", "x"))
    assert prove(two, None, POLICY).how is None
    foreign = parse_mail(mail(LI, "x", Sender="evil@x.test"))
    assert "Sender evil@x.test" in prove(foreign, None, POLICY).why[0]
    same = parse_mail(mail(LI, "x", Sender="secretary@corp.example.test"))
    assert prove(same, None, POLICY).how is not None
    # not even the insecure switch lets an ambiguous sender through
    insecure = ProofPolicy(allow_unproven=True)
    assert prove(two, None, insecure).how is None
    assert prove(parse_mail(mail(LI, "x", auth=None)), None, insecure).how is not None


def test_only_the_accepted_proofs_count() -> None:
    m = parse_mail(mail(LI, "x"))
    tokens_only = ProofPolicy(trusted=(AUTHSERV,), accept=("reply-token",), secret=b"s" * 32)
    p = prove(m, "2026-技-001", tokens_only)
    assert p.how is None and p.why == ("reply-token: no token of ours for this address "
                                       "and case",)


def test_a_reply_token_proves_only_on_its_case() -> None:
    mid = make_message_id(POLICY.secret, "2026-技-001", LI, "example.test")
    m = parse_mail(mail(LI, "Re: x", auth=None, In_Reply_To=mid))
    assert prove(m, "2026-技-001", POLICY).how == "reply-token"
    assert prove(m, "2026-技-002", POLICY).how is None
    assert prove(m, None, POLICY).how is None


def test_classification_carries_the_proof(tmp_path: Path) -> None:
    site = Site.build(make_config(tmp_path))
    cls = site.classify(parse_mail(mail(LI, "x", auth=None)), Known())
    assert cls.proof is None and cls.unproven
    assert cls.as_dict()["unproven"] == list(cls.unproven)
    cls = site.classify(parse_mail(mail(LI, "x")), Known())
    assert cls.proof == f"authentication-results: dmarc=pass ({AUTHSERV})"


async def test_explain_shows_the_proof(tmp_path: Path) -> None:
    cfg = make_config(tmp_path)
    raw = mail(LI, "Re: [2026-技-001] x", "#close", auth=None,
               Authentication_Results="mx.evil.example; dmarc=pass header.from=corp.example.test")
    out = await explain_mail(cfg, raw, NOW)
    assert out["classification"]["proof"] is None
    text = format_text(out)
    assert "proof:   none: the sender is not proven" in text
    assert "ignored untrusted Authentication-Results from mx.evil.example" in text
    out = await explain_mail(cfg, mail(LI, "x"), NOW)
    assert out["classification"]["proof"].startswith("authentication-results: dmarc=pass")


def test_config_check_reports_the_policy(tmp_path: Path) -> None:
    errors, warnings = security_problems(make_config(tmp_path))
    assert errors == [] and any("does not exist yet" in w for w in warnings)
    bare = DIRECTORY_TOML.replace(f'trusted_authserv_ids = ["{AUTHSERV}"]',
                                  'verify_dkim = false\nreply_tokens = false')
    nothing = parse_config(bare, "t.toml", str(tmp_path))
    errors, _ = security_problems(nothing)
    assert errors and "nothing can prove a sender" in errors[0]
    _, warnings = security_problems(make_config(tmp_path,
                                                security="allow_unproven_commands = true\n"))
    assert any("allow_unproven_commands" in w for w in warnings)


def test_the_secret_is_made_once_0600_and_a_bad_one_is_an_error(tmp_path: Path) -> None:
    cfg = make_config(tmp_path)
    assert load_secret(cfg) == b""  # not made unless asked: only init and run make it
    made = load_secret(cfg, create=True)
    path = tmp_path / "var" / "reply-token.key"
    assert len(made) == 32 and path.stat().st_mode & 0o777 == 0o600
    assert load_secret(cfg, create=True) == made == Site.build(cfg).secret
    path.write_bytes(b"short")
    with pytest.raises(ConfigError, match="16 at least"):
        Site.build(cfg)
    path.unlink()
    path.mkdir()  # a secret_file that is no file cannot be read
    with pytest.raises(ConfigError, match="cannot read"):
        load_secret(cfg)


def test_a_from_nested_too_deep_is_no_sender_not_a_crash() -> None:
    raw = ("From: a@b " + "(" * 3000 + "x" + ")" * 3000 + "\r\nSubject: x\r\n\r\nhi").encode()
    m = parse_mail(raw)
    assert m.from_.addr == ""
    assert prove(m, None, POLICY).why == ("no usable From address",)
