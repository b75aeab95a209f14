"""Proof of sender: may this mail's From address be believed enough to run commands?

A mail proves its From address by one of the proofs the site accepts
(``[security] command_proof``):

- ``authentication-results``: our own mailbox server (a trusted authserv-id) says
  ``dmarc=pass`` for the From domain, or ``dkim=pass`` for a domain aligned with it;
- ``dkim``: maild verified a DKIM signature that covers From, by an aligned domain;
- ``reply-token``: the mail answers one of our letters whose Message-ID token was made for
  this From address on this case.

A mail with more than one From address, or with a Sender of another domain, proves
nothing, whatever it carries. Pure: the secret comes in as bytes.
"""

from __future__ import annotations

from dataclasses import dataclass

from maild.mail.auth import aligned, judge
from maild.mail.message import ParsedMail
from maild.mail.tokens import verified

PROOFS = ("authentication-results", "dkim", "reply-token")


@dataclass(frozen=True)
class ProofPolicy:
    """What the site accepts as proof, from ``[security]``."""

    trusted: tuple[str, ...] = ()  # authserv-ids whose Authentication-Results count
    accept: tuple[str, ...] = PROOFS
    secret: bytes = b""  # the reply-token key ("": tokens prove nothing)
    msgid_domain: str = ""
    allow_unproven: bool = False  # insecure: everything counts as proven


@dataclass(frozen=True)
class Proof:
    how: str | None  # "dkim: example.com", ...; None: not proven
    why: tuple[str, ...] = ()  # why not (each proof tried), or notes


def prove(mail: ParsedMail, case_number: str | None, policy: ProofPolicy) -> Proof:
    """The first accepted proof the mail carries for its From address."""
    sender = mail.from_.addr
    if not sender:
        return Proof(None, ("no usable From address",))
    if mail.from_count > 1:
        return Proof(None, (f"{mail.from_count} From addresses: the sender is ambiguous",))
    if mail.sender and mail.sender.rpartition("@")[2] != mail.from_.domain:
        return Proof(None, (f"Sender {mail.sender} is of another domain than From {sender}",))
    if policy.allow_unproven:
        return Proof("none required (allow_unproven_commands)")
    why: list[str] = []
    domain = mail.from_.domain
    if "authentication-results" in policy.accept:
        verdict = judge(mail.auth_results, domain, policy.trusted)
        if verdict.proof:
            return Proof(f"authentication-results: {verdict.proof}", verdict.why)
        why.append("authentication-results: " + ("; ".join(verdict.why) or "none"))
    if "dkim" in policy.accept:
        good = [d for d in mail.dkim if d.ok and aligned(d.domain, domain)]
        if good:
            return Proof(f"dkim: {good[0].domain}", tuple(why))
        seen = [f"{d.domain or '?'}: {d.why or 'not aligned with ' + domain}" for d in mail.dkim]
        why.append("dkim: " + ("; ".join(seen) if seen else "no signature checked"))
    if "reply-token" in policy.accept:
        ids = (*mail.in_reply_to, *reversed(mail.references))
        mid = verified(policy.secret, ids, case_number or "", sender, policy.msgid_domain)
        if mid:
            return Proof("reply-token", tuple(why))
        why.append("reply-token: " + (
            "no site secret" if not policy.secret else "not a reply to a case"
            if not case_number else "no token of ours for this address and case"))
    return Proof(None, tuple(why))
