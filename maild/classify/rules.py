"""Classification: an ordered table of small named rules over a parsed mail.

Rules come in stages. In a *decisive* stage the first rule that hits decides and the rest
are recorded as skipped; other stages collect every hit. Every rule's outcome is kept in
``Classification.hits`` so ``maild explain`` can show why a mail went where it went.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Set
from dataclasses import dataclass, field, replace
from typing import Any

from maild.classify.directory import Directory, Person
from maild.classify.formrequest import FORM, form_request
from maild.classify.proof import Proof, ProofPolicy, prove
from maild.mail.auth import dmarc_fail_policy
from maild.mail.message import ParsedMail

PROCESS_TAGS = {
    "客户": "customer", "cust": "customer", "customer": "customer",
    "供应商": "supplier", "supp": "supplier", "supplier": "supplier",
    "跨部门": "internal", "int": "internal", "internal": "internal",
}
URGENT_TAGS = {"紧急", "urgent", "加急"}
_TAG = re.compile(r"\[([^\[\]]{1,64})\]|【([^【】]{1,64})】")
_REPLY_PREFIX = re.compile(
    r"^\s*((re|fw|fwd|aw|sv|回复|答复|转发|回覆|轉寄)\s*(\[\d+\])?\s*[:：]\s*)+", re.IGNORECASE)
_AUTO_SUBJECT = re.compile(
    r"^\s*(自动回复|自動回覆|自动答复|自動答覆|auto(matic)?[ -]?reply|out of (the )?office|"
    r"undeliverable|delivery status notification|退信|系统退信)", re.IGNORECASE)
_ROBOT_LOCALPARTS = {"mailer-daemon", "postmaster", "mail-daemon", "mailerdaemon"}
_FORM_DEPT = re.compile(r"^[ \t\u3000]*接收部门(?:/人)?[ \t\u3000]*[:：][ \t\u3000]*"
                        r"([^\s/／,，]+)", re.MULTILINE)


def subject_tags(subject: str) -> tuple[str, ...]:
    """Every ``[...]`` and ``【...】`` tag of a subject, stripped, in order."""
    return tuple((a or b).strip() for a, b in _TAG.findall(subject))


MAX_SUBJECT = 500  # characters of a case subject (and so of the subject in its letters)
# the characters NFKC turns into tag brackets, as the brackets themselves
_BRACKETS = str.maketrans({"［": "[", "］": "]", "﹇": "[", "﹈": "]", "︻": "【", "︼": "】"})
_ANY_TAG = re.compile(r"[\[【][^\[\]【】]*[\]】]")
_STRAY = re.compile(r"[\[\]【】]")
_CONTROLS = re.compile("[\x00-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069"
                       "\u2028\u2029]")


def _one_line(s: str) -> str:
    s = re.sub(r"\s+", " ", _CONTROLS.sub(" ", s)).strip()
    return s if len(s) <= MAX_SUBJECT else s[: MAX_SUBJECT - 1].rstrip() + "…"


def clean_subject(subject: str) -> str:
    """The subject without reply prefixes, tags and brackets, for letters and case titles.

    Tags are stripped until none is left (``[关[关闭]闭]`` leaves no ``[关闭]``), stray
    brackets go too, so no tag can be planted in a case subject and come back in the
    subject of a letter a member of staff answers. No control characters; 500 at most.
    """
    s = _REPLY_PREFIX.sub("", _CONTROLS.sub(" ", subject)).translate(_BRACKETS)
    while True:
        stripped = _ANY_TAG.sub(" ", s)
        if stripped == s:
            break
        s = stripped
    return _one_line(_REPLY_PREFIX.sub("", _STRAY.sub(" ", s)))


def case_subject(subject: str) -> str:
    """A new case's subject: the clean subject; for a subject that is only tags, their text
    without the brackets (which would make them tags again)."""
    return clean_subject(subject) or _one_line(_STRAY.sub(" ", subject.translate(_BRACKETS)))


@dataclass(frozen=True)
class Known:
    """What the store already knows, resolved by the pipeline before classifying."""

    case_by_message_id: Mapping[str, str] = field(default_factory=dict)
    case_numbers: Set[str] = frozenset()
    #: subject of the message the mail answers (In-Reply-To, else the last of References),
    #: a letter of ours or a mail we received: the tags a reply inherits from it
    subjects: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Hit:
    rule: str
    stage: str
    outcome: str  # hit / miss / skipped
    detail: str = ""


@dataclass(frozen=True)
class Classification:
    hits: tuple[Hit, ...] = ()
    robot: str | None = None  # why the mail is from a robot
    case_number: str | None = None  # an existing case the mail belongs to
    process: str | None = None  # for a new case: internal / customer / supplier / triage
    department: str | None = None  # department name (internal: the receiving one)
    urgent: bool = False
    tags: tuple[str, ...] = ()
    sender: Person = Person("", "unknown")
    #: why nothing automatic may go back to the sender (X-Auto-Response-Suppress, spam)
    quiet: str | None = None
    #: the subject of the message the mail answers, when known: tags it carries are inherited
    replied_subjects: tuple[str, ...] = ()
    #: how the From address is proven ("authentication-results: dmarc=pass (mx...)",
    #: "dkim: example.com", "reply-token"); None: it is not, and ``unproven`` says why.
    #: Staff commands run only from a proven sender (docs/SECURITY.md).
    proof: str | None = None
    unproven: tuple[str, ...] = ()
    #: a ``[[routing.rules]]`` rule with ``ignore = true`` took it (``robot`` says which)
    ignored: bool = False

    @property
    def route(self) -> str:
        if self.case_number:
            return f"case {self.case_number}"
        if self.robot:
            return f"{'ignored' if self.ignored else 'robot'} (recorded, not answered)"
        if self.process == FORM:
            return "form (sent, no case)"
        return f"new {self.process}" if self.process not in (None, "triage") else "triage"

    def as_dict(self) -> dict[str, Any]:
        return {
            "route": self.route, "robot": self.robot, "case": self.case_number,
            "process": self.process, "department": self.department, "urgent": self.urgent,
            "tags": list(self.tags), "sender_role": self.sender.role, "quiet": self.quiet,
            "proof": self.proof, "unproven": list(self.unproven), "ignored": self.ignored,
            "hits": [h.__dict__ for h in self.hits],
        }


@dataclass(frozen=True)
class Env:
    mail: ParsedMail
    directory: Directory
    known: Known
    default_process: str
    msgid_domain: str
    tags: tuple[str, ...]
    sender: Person
    acknowledge_spam: bool = False
    trusted: tuple[str, ...] = ()  # authserv-ids whose Authentication-Results count
    acknowledge_dmarc_fail: bool = False


#: a rule's check returns None (miss) or (detail, facts for Classification)
Check = Callable[[Env], tuple[str, dict[str, Any]] | None]


@dataclass(frozen=True)
class Rule:
    name: str
    description: str
    check: Check


@dataclass(frozen=True)
class Stage:
    name: str
    decisive: bool
    rules: tuple[Rule, ...]


# -- robot detection -------------------------------------------------------------------


def _auto_submitted(env: Env) -> tuple[str, dict[str, Any]] | None:
    v = env.mail.signals.get("auto-submitted", "").strip().lower()
    if v and not v.startswith("no"):
        return f"Auto-Submitted: {v}", {"robot": "auto-submitted"}
    return None


def _precedence(env: Env) -> tuple[str, dict[str, Any]] | None:
    v = env.mail.signals.get("precedence", "").strip().lower()
    if v in ("bulk", "junk", "list", "auto_reply"):
        return f"Precedence: {v}", {"robot": f"precedence {v}"}
    return None


def _mailing_list(env: Env) -> tuple[str, dict[str, Any]] | None:
    for h in ("list-id", "list-unsubscribe"):
        if env.mail.signals.get(h):
            return f"{h}: {env.mail.signals[h][:60]}", {"robot": "mailing list"}
    return None


def _null_sender(env: Env) -> tuple[str, dict[str, Any]] | None:
    rp = env.mail.signals.get("return-path")
    if rp is not None and rp.strip() in ("<>", ""):
        return "Return-Path: <>", {"robot": "bounce (empty Return-Path)"}
    return None


def _daemon_sender(env: Env) -> tuple[str, dict[str, Any]] | None:
    local = env.mail.from_.addr.partition("@")[0]
    if local in _ROBOT_LOCALPARTS:
        return env.mail.from_.addr, {"robot": "bounce (mailer-daemon)"}
    if "multipart/report" in env.mail.signals.get("content-type", "").lower():
        return "multipart/report", {"robot": "delivery report"}
    return None


def _auto_headers(env: Env) -> tuple[str, dict[str, Any]] | None:
    for h in ("x-autoreply", "x-autorespond"):
        if env.mail.signals.get(h):
            return h, {"robot": "auto-reply"}
    if _AUTO_SUBJECT.match(env.mail.subject):
        return "auto-reply subject", {"robot": "auto-reply"}
    return None


def _own_mail(env: Env) -> tuple[str, dict[str, Any]] | None:
    if env.mail.from_.addr and env.mail.from_.addr == env.directory.own_address:
        return "From is our own address", {"robot": "our own mail"}
    if env.mail.signals.get("x-maild-case") and \
            env.mail.message_id.endswith("@" + env.msgid_domain + ">"):
        return "our X-Maild-Case and Message-ID", {"robot": "our own mail"}
    return None


# -- what may go back to the sender ----------------------------------------------------

_SUPPRESS = {"all", "autoreply", "oof"}


def _suppress_header(env: Env) -> tuple[str, dict[str, Any]] | None:
    v = env.mail.signals.get("x-auto-response-suppress", "")
    words = {w.casefold() for w in re.split(r"[\s,;]+", v) if w}
    if words & _SUPPRESS:
        return f"X-Auto-Response-Suppress: {v[:60]}", {
            "quiet": f"X-Auto-Response-Suppress: {v[:60]}"}
    return None


def _spam_flag(env: Env) -> tuple[str, dict[str, Any]] | None:
    flag = env.mail.signals.get("x-spam-flag", "").strip().casefold()
    status = env.mail.signals.get("x-spam-status", "").strip().casefold()
    if flag.startswith("yes"):
        why = "X-Spam-Flag: YES"
    elif status.startswith("yes"):
        why = "X-Spam-Status: Yes"
    else:
        return None
    if env.acknowledge_spam:
        return f"{why} (acknowledge_spam: answered all the same)", {}
    return why, {"quiet": f"marked as spam ({why})"}


def _dmarc_fail(env: Env) -> tuple[str, dict[str, Any]] | None:
    policy = dmarc_fail_policy(env.mail.auth_results, env.mail.from_.domain, env.trusted)
    if policy is None:
        return None
    why = f"DMARC fails and {env.mail.from_.domain} asks to {policy} such mail"
    if env.acknowledge_dmarc_fail:
        return f"{why} (acknowledge_dmarc_fail: answered all the same)", {}
    return why, {"quiet": why}


# -- threading -------------------------------------------------------------------------


def _thread_headers(env: Env) -> tuple[str, dict[str, Any]] | None:
    # a bounce belongs where the letter it returns does
    returned = (env.mail.dsn.original_id,) if env.mail.dsn and env.mail.dsn.original_id else ()
    for mid in (*returned, *env.mail.in_reply_to, *reversed(env.mail.references)):
        number = env.known.case_by_message_id.get(mid)
        if number:
            return f"{mid} belongs to {number}", {"case_number": number}
    return None


def _subject_case(env: Env) -> tuple[str, dict[str, Any]] | None:
    for tag in env.tags:
        if tag in env.known.case_numbers:
            return f"[{tag}]", {"case_number": tag}
    return None


# -- tags --------------------------------------------------------------------------------


def _urgent_tag(env: Env) -> tuple[str, dict[str, Any]] | None:
    hit = next((t for t in env.tags if t.casefold() in URGENT_TAGS), None)
    return (f"[{hit}]", {"urgent": True}) if hit else None


def _department_tag(env: Env) -> tuple[str, dict[str, Any]] | None:
    for t in env.tags:
        d = env.directory.department(t)
        if d is not None:
            return f"[{t}] = {d.name}", {"department": d.name}
    return None


# -- routing of new mail -----------------------------------------------------------------


def _no_sender(env: Env) -> tuple[str, dict[str, Any]] | None:
    if env.mail.from_.addr:
        return None
    return "no usable From address", {"process": "triage"}


def _form_request(env: Env) -> tuple[str, dict[str, Any]] | None:
    if env.sender.role != "staff":  # the internal process is for staff
        return None
    asked = form_request(env.mail)
    return (f"{asked[0]}: the blank form, no case", {"process": FORM}) if asked else None


def _process_tag(env: Env) -> tuple[str, dict[str, Any]] | None:
    for t in env.tags:
        p = PROCESS_TAGS.get(t.casefold())
        if p:
            return f"[{t}]", {"process": p}
    return None


def _staff_request(env: Env) -> tuple[str, dict[str, Any]] | None:
    if env.sender.role != "staff":
        return None
    return f"staff sender {env.sender.addr}", {"process": "internal"}


def _known_party(env: Env) -> tuple[str, dict[str, Any]] | None:
    if env.sender.role in ("customer", "supplier") and env.sender.party is not None:
        return f"{env.sender.role} {env.sender.party.name}", {"process": env.sender.role}
    return None


def _default_route(env: Env) -> tuple[str, dict[str, Any]] | None:
    return f"unknown sender -> {env.default_process}", {"process": env.default_process}


STAGES: tuple[Stage, ...] = (
    Stage("robot", True, (
        Rule("own_mail", "our own outgoing mail coming back", _own_mail),
        Rule("auto_submitted", "RFC 3834 Auto-Submitted other than 'no'", _auto_submitted),
        Rule("precedence", "Precedence: bulk, junk or list", _precedence),
        Rule("mailing_list", "List-Id or List-Unsubscribe header", _mailing_list),
        Rule("null_sender", "empty Return-Path (a bounce)", _null_sender),
        Rule("daemon_sender", "mailer-daemon/postmaster or a delivery report", _daemon_sender),
        Rule("auto_reply", "X-Autoreply headers or an auto-reply subject", _auto_headers),
    )),
    Stage("answer", False, (
        Rule("suppress_header", "X-Auto-Response-Suppress: All, AutoReply or OOF",
             _suppress_header),
        Rule("spam_flag", "X-Spam-Flag: YES or X-Spam-Status: Yes ([routing] "
             "acknowledge_spam)", _spam_flag),
        Rule("dmarc_fail", "a trusted server says DMARC fails at a domain asking for "
             "reject or quarantine ([security] acknowledge_dmarc_fail)", _dmarc_fail),
    )),
    Stage("thread", True, (
        Rule("thread_headers", "In-Reply-To/References name a message of a case",
             _thread_headers),
        Rule("subject_case", "the subject carries a known case number", _subject_case),
    )),
    Stage("tags", False, (
        Rule("urgent_tag", "[紧急]/[URGENT] in the subject", _urgent_tag),
        Rule("department_tag", "a department's name or short name in the subject",
             _department_tag),
    )),
    Stage("route", True, (
        Rule("no_sender", "no usable From address: a person must look", _no_sender),
        Rule("form_request", "staff ask for the blank 申请表 (#form, or a subject asking "
             "for it): sent, no case", _form_request),
        Rule("process_tag", "[客户]/[CUST], [供应商]/[SUPP], [跨部门]/[INT]", _process_tag),
        Rule("known_party", "sender is a known customer or supplier", _known_party),
        Rule("staff_request", "sender is staff: an internal request", _staff_request),
        Rule("default_route", "the configured default for unknown senders", _default_route),
    )),
)


def _check_registry(stages: tuple[Stage, ...]) -> None:
    names = [r.name for s in stages for r in s.rules]
    dupes = {n for n in names if names.count(n) > 1}
    if dupes:
        raise RuntimeError(f"duplicate classification rule names: {sorted(dupes)}")


_check_registry(STAGES)


def classify(mail: ParsedMail, directory: Directory, known: Known, *,
             default_process: str = "customer", msgid_domain: str = "",
             acknowledge_spam: bool = False, proof: ProofPolicy | None = None,
             acknowledge_dmarc_fail: bool = False,
             stages: tuple[Stage, ...] = STAGES) -> Classification:
    """``proof``: what proves a sender (None: the default policy, which trusts no server
    and has no token secret, so only maild's own DKIM check can prove one)."""
    tags = subject_tags(mail.subject)
    sender = directory.lookup(mail.from_.addr)
    policy = proof or ProofPolicy(msgid_domain=msgid_domain)
    env = Env(mail, directory, known, default_process, msgid_domain, tags, sender,
              acknowledge_spam, policy.trusted, acknowledge_dmarc_fail)
    facts: dict[str, Any] = {}
    hits: list[Hit] = []
    for stage in stages:  # STAGES, with the configured routing rules (classify.routing)
        skip = stage.name == "route" and ("case_number" in facts or "robot" in facts)
        decided = False
        for rule in stage.rules:
            if skip or decided:
                hits.append(Hit(rule.name, stage.name, "skipped"))
                continue
            res = rule.check(env)
            if res is None:
                hits.append(Hit(rule.name, stage.name, "miss"))
                continue
            detail, new = res
            hits.append(Hit(rule.name, stage.name, "hit", detail))
            facts.update(new)
            decided = stage.decisive
    parent = mail.in_reply_to or mail.references[-1:]  # the message it answers
    replied = tuple(known.subjects[m] for m in parent if m in known.subjects)
    shown: Proof = prove(mail, facts.get("case_number"), policy)
    result = Classification(hits=tuple(hits), tags=tags, sender=sender,
                            replied_subjects=replied, proof=shown.how,
                            unproven=() if shown.how else shown.why, **facts)
    if result.process == "internal" and result.department is None:
        result = replace(result, department=_form_department(mail, directory, sender))
    return result


def _form_department(mail: ParsedMail, directory: Directory, sender: Person) -> str | None:
    """An internal request without a department tag: the form's 接收部门, else the sender's."""
    m = _FORM_DEPT.search(mail.text)
    if m:
        d = directory.department(m.group(1)) or directory.department(m.group(1).rstrip("部"))
        if d:
            return d.name
    return sender.department.name if sender.department else None
