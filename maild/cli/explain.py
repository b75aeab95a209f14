"""``maild explain``: how one mail would be handled, without touching anything."""

from __future__ import annotations

import argparse
import asyncio
from datetime import datetime
from typing import Any

from maild import config as cfgmod
from maild.adapters.letters import LetterError
from maild.app import make_clock, make_store
from maild.classify.rules import Known, subject_tags
from maild.cli.output import print_json
from maild.config import Config, ConfigError
from maild.engine.apply import CaseState, apply
from maild.engine.effects import SendLetter
from maild.mail.commands import parse_commands
from maild.mail.message import ParsedMail
from maild.mail.parse import ParseError, parse_mail
from maild.site import Site


def explain(args: argparse.Namespace) -> int:
    cfg = cfgmod.load(args.config)
    try:
        raw = args.mail.read_bytes()
    except OSError as e:
        raise ConfigError(f"{args.mail}: cannot read: {e}") from e
    result = asyncio.run(explain_mail(cfg, raw, make_clock(args.now)()))
    if args.json:
        print_json(result)
    else:
        print(format_text(result))
    return 0


async def _known(cfg: Config, mail: ParsedMail) -> tuple[Known, str]:
    """Threading facts from the store when it exists; an absent database is not created."""
    url = cfg.database.url
    if url.startswith("sqlite://"):
        path = url[len("sqlite://"):].partition("?")[0]
        if not cfg.path(path).exists():
            return Known(), "no database yet: threading not checked"
    store = make_store(cfg)
    await store.open()
    try:
        return await store.known(mail, subject_tags(mail.subject)), ""
    finally:
        await store.close()


async def _copy_of(cfg: Config, mail: ParsedMail) -> str | None:
    """Why the intake would take ``mail`` for a copy: its Message-ID and From address are
    those of a mail decided before (``Inbox.same_message_id``); else None."""
    store = make_store(cfg)
    await store.open()
    try:
        first, _ = await store.same_message_id(mail)
    finally:
        await store.close()
    return None if first is None else f"same Message-ID and sender as message #{first}"


async def explain_mail(cfg: Config, raw: bytes, now: datetime) -> dict[str, Any]:
    """What the intake would decide for ``raw`` at ``now``: the same site, the same path."""
    site = Site.build(cfg)
    try:
        mail = parse_mail(raw, site.dkim)  # DKIM checked as the intake checks it
    except ParseError as e:
        return {"outcome": "quarantine", "reason": f"cannot parse: {e}"}
    known, note = await _known(cfg, mail)
    copy = None if note else await _copy_of(cfg, mail)
    if copy is not None:  # the intake files it as a duplicate, deciding nothing
        return {"outcome": "duplicate", "reason": copy, "message_id": mail.message_id}
    cls = site.classify(mail, known)
    case = None
    if cls.case_number:
        store = make_store(cfg)
        await store.open()
        try:
            case = await store.case_view(cls.case_number)
        finally:
            await store.close()
    decision = site.decide(mail, cls, case, now)
    # the case after it, by the same pure apply the store uses (timers as far as shown)
    applied = apply(CaseState(case) if case is not None else None, decision, now,
                    site.calendar, number=cls.case_number or "(new number)")
    after = applied.case.view if applied.case is not None else None
    letters = site.letters
    out_letters = []
    for letter in applied.outputs:
        if not isinstance(letter, SendLetter):
            continue
        entry: dict[str, Any] = {"letter": letter.letter, "language": letter.language,
                                 "to": list(letter.to), "cc": list(letter.cc)}
        try:
            r = letters.render(letter.letter, letter.language, letter.context)
            entry.update(subject=r.subject, text=r.text)
        except LetterError as e:
            entry["error"] = str(e)
        out_letters.append(entry)
    return {
        "outcome": "process", "message_id": mail.message_id, "from": mail.from_.addr,
        "subject": mail.subject, "note": note, "classification": cls.as_dict(),
        "commands": [{"command": c.name, "line": c.line, "source": c.source}
                     for c in parse_commands(mail.text, mail.subject, inherited=(
                         *((case.subject,) if case is not None else ()),
                         *cls.replied_subjects))],
        "decision": decision.summary,
        "effects": [type(e).__name__ for e in decision.effects], "letters": out_letters,
        "case": None if after is None else {
            "number": after.number, "step": after.step, "status": after.status,
            "due_at": after.due_at.isoformat() if after.due_at else None},
        "timers": [{"kind": t.kind, "key": t.key, "state": t.state,
                    "due_at": t.due_at.isoformat()} for t in applied.timers],
        "defects": list(mail.defects),
        "dkim": [{"domain": d.domain, "selector": d.selector, "ok": d.ok, "why": d.why}
                 for d in mail.dkim],
    }


def format_text(r: dict[str, Any]) -> str:
    if r["outcome"] != "process":
        return f"outcome: {r['outcome']}\nreason:  {r['reason']}"
    c = r["classification"]
    lines = [f"message: {r['message_id']}", f"from:    {r['from']}",
             f"subject: {r['subject']}", f"tags:    {' '.join(c['tags']) or '-'}",
             f"sender:  {c['sender_role']}", f"route:   {c['route']}",
             f"urgent:  {c['urgent']}",
             f"proof:   {c.get('proof') or 'none: the sender is not proven'}"]
    lines += [f"         - {why}" for why in c.get("unproven", [])]
    lines.append("")
    if r["note"]:
        lines.append(f"note: {r['note']}")
    lines.append("rules:")
    for h in c["hits"]:
        mark = {"hit": "✔", "miss": "·", "skipped": " "}[h["outcome"]]
        lines.append(f"  {mark} {h['stage']:<6} {h['rule']:<16} {h['detail']}")
    for c in r.get("commands", []):
        lines.append(f"command: {c['line']}  ({c['command'] or 'unknown'}, from the {c['source']})")
    lines += ["", f"decision: {r['decision']}"]
    if r.get("case") and r["case"]["due_at"]:
        lines.append(f"due:      {r['case']['due_at']}")
    for t in r.get("timers", []):
        lines.append(f"timer:    {t['kind']} {t['key']} {t['state']} {t['due_at']}")
    for letter in r["letters"]:
        lines.append(f"letter {letter['letter']}.{letter['language']} → {', '.join(letter['to'])}")
        if "error" in letter:
            lines.append(f"  error: {letter['error']}")
        else:
            lines.append(f"  Subject: {letter['subject']}")
            lines += [f"  | {t}" for t in letter["text"].rstrip().splitlines()]
    return "\n".join(lines)


__all__ = ["explain", "explain_mail", "format_text"]
