"""Authentication-Results (RFC 8601) parsing, alignment and the DMARC-fail rule."""

from __future__ import annotations

from maild.mail.auth import aligned, dmarc_fail_policy, judge, parse_header

TRUSTED = ("mx.example.com",)


def test_rfc8601_example_with_several_results() -> None:
    # RFC 8601 appendix B.4 style: SPF and Sender ID results from one server
    h = parse_header("example.com; spf=pass smtp.mailfrom=example.net "
                     "sender-id=pass header.from=example.net")
    # a resinfo is introduced by ';': the second method sits in the first one's properties
    assert h.authserv_id == "example.com"
    assert [(r.method, r.result) for r in h.results] == [("spf", "pass")]
    h = parse_header("example.com; spf=pass smtp.mailfrom=example.net; "
                     "sender-id=pass header.from=example.net")
    assert [(r.method, r.result) for r in h.results] == [("spf", "pass"), ("sender-id", "pass")]
    assert h.results[1].props == {"header.from": "example.net"}


def test_none_version_comments_quotes_and_case() -> None:
    assert parse_header("example.org 1; none").results == ()
    assert parse_header("Example.ORG (our server) 1;\r\n none").authserv_id == "example.org"
    h = parse_header('mx.Example.com; DKIM (good (nested) sig) = Pass '
                     'reason="signature ok; fine" header.D=Example.com header.i=@example.com '
                     '(comment; with semicolon); dmarc=pass (p=REJECT sp=NONE) '
                     'header.from=example.com; spf=fail smtp.mailfrom="a;b"@x.com')
    assert h.authserv_id == "mx.example.com"
    dkim, dmarc, spf = h.results
    assert (dkim.method, dkim.result, dkim.reason) == ("dkim", "pass", "signature ok; fine")
    assert dkim.props == {"header.d": "Example.com", "header.i": "@example.com"}
    assert dkim.comments == ("good (nested) sig", "comment; with semicolon")
    assert dmarc.comments == ("p=REJECT sp=NONE",)
    assert spf.props["smtp.mailfrom"] == '"a;b"@x.com'


def test_versioned_method_and_garbage() -> None:
    h = parse_header("mx.example.com; dkim/1=pass header.d=example.com")
    assert h.results[0].method == "dkim"
    assert parse_header("").authserv_id == ""
    assert parse_header(";;;=;").results == ()
    assert parse_header("mx.example.com; header.d=example.com").results == ()
    assert parse_header("x" * 100_000).authserv_id  # cut, never slow or failing


def test_alignment() -> None:
    assert aligned("example.com", "example.com")
    assert aligned("example.com", "mail.example.com")  # a parent domain signs
    assert not aligned("mail.example.com", "example.com")
    assert not aligned("com", "example.com")  # a public suffix speaks for nobody
    assert not aligned("examp1e.com", "example.com")
    assert not aligned("ample.com", "example.com")  # a suffix, but not a parent
    assert not aligned("", "example.com")


def test_judge_trusts_only_the_configured_server() -> None:
    good = "mx.example.com; dmarc=pass header.from=example.com"
    assert judge([good], "example.com", TRUSTED).proof == "dmarc=pass (mx.example.com)"
    forged = "evil.example; dmarc=pass header.from=example.com"
    v = judge([forged], "example.com", TRUSTED)
    assert v.proof is None and v.ignored == ("evil.example",)
    assert any("no Authentication-Results from a trusted server" in w for w in v.why)
    assert judge([good], "example.com", ()).proof is None  # nothing trusted: nothing proves


def test_judge_dmarc_for_another_domain_or_failing() -> None:
    assert judge(["mx.example.com; dmarc=pass header.from=evil.com"], "example.com",
                 TRUSTED).proof is None
    v = judge(["mx.example.com; dmarc=fail header.from=example.com"], "example.com", TRUSTED)
    assert v.proof is None and "dmarc=fail (mx.example.com)" in v.why
    # a forged pass bearing our id that the server did not remove loses to the server's fail
    both = ["mx.example.com; dmarc=fail header.from=example.com",
            "mx.example.com; dmarc=pass header.from=example.com"]
    assert judge(both, "example.com", TRUSTED).proof is None


def test_judge_dkim_alignment_in_several_headers() -> None:
    headers = ["other.example; dkim=pass header.d=example.com",
               "mx.example.com; spf=pass smtp.mailfrom=example.com",
               "mx.example.com; dkim=pass header.d=example.com"]
    v = judge(headers, "sales.example.com", TRUSTED)
    assert v.proof == "dkim=pass header.d=example.com (mx.example.com)"
    assert judge(["mx.example.com; dkim=pass header.d=evil.com"], "example.com",
                 TRUSTED).proof is None
    assert judge(["mx.example.com; dkim=pass header.i=@example.com"], "example.com",
                 TRUSTED).proof is not None
    assert judge(["mx.example.com; dkim=fail header.d=example.com"], "example.com",
                 TRUSTED).proof is None


def test_dmarc_fail_policy_forms() -> None:
    gmail = "mx.example.com; dmarc=fail (p=REJECT sp=REJECT dis=NONE) header.from=bank.com"
    assert dmarc_fail_policy([gmail], "bank.com", TRUSTED) == "reject"
    prop = "mx.example.com; dmarc=fail policy.dmarc=quarantine header.from=bank.com"
    assert dmarc_fail_policy([prop], "bank.com", TRUSTED) == "quarantine"
    none = "mx.example.com; dmarc=fail (p=NONE) header.from=bank.com"
    assert dmarc_fail_policy([none], "bank.com", TRUSTED) is None
    assert dmarc_fail_policy([gmail], "bank.com", ("other",)) is None  # untrusted
    assert dmarc_fail_policy([gmail.replace("fail", "pass")], "bank.com", TRUSTED) is None
