"""``maild explain``: how one mail would be handled, without touching anything."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from maild.adapters.letters import LetterError
from maild.app import make_store
from maild.classify.rules import Known, subject_tags
from maild.config import Config
from maild.mail.commands import parse_commands
from maild.mail.message import ParsedMail
from maild.mail.parse import ParseError, parse_mail
from maild.site import Site


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


async def explain_mail(cfg: Config, raw: bytes, now: datetime) -> dict[str, Any]:
    """What the intake would decide for ``raw`` at ``now``: the same site, the same path."""
    try:
        mail = parse_mail(raw)
    except ParseError as e:
        return {"outcome": "quarantine", "reason": f"cannot parse: {e}"}
    site = Site.build(cfg)
    known, note = await _known(cfg, mail)
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
    letters = site.letters
    out_letters = []
    for letter in decision.letters():
        entry: dict[str, Any] = {"letter": letter.letter, "language": letter.language,
                                 "to": list(letter.to), "cc": list(letter.cc)}
        try:
            r = letters.render(letter.letter, letter.language,
                               {**letter.context, "number": cls.case_number or "(new number)"})
            entry.update(subject=r.subject, text=r.text)
        except LetterError as e:
            entry["error"] = str(e)
        out_letters.append(entry)
    return {
        "outcome": "process", "message_id": mail.message_id, "from": mail.from_.addr,
        "subject": mail.subject, "note": note, "classification": cls.as_dict(),
        "commands": [{"command": c.name, "line": c.line, "source": c.source}
                     for c in parse_commands(mail.text, mail.subject)],
        "decision": decision.summary,
        "effects": [type(e).__name__ for e in decision.effects], "letters": out_letters,
        "defects": list(mail.defects),
    }


def format_text(r: dict[str, Any]) -> str:
    if r["outcome"] != "process":
        return f"outcome: {r['outcome']}\nreason:  {r['reason']}"
    c = r["classification"]
    lines = [f"message: {r['message_id']}", f"from:    {r['from']}",
             f"subject: {r['subject']}", f"tags:    {' '.join(c['tags']) or '-'}",
             f"sender:  {c['sender_role']}", f"route:   {c['route']}",
             f"urgent:  {c['urgent']}", ""]
    if r["note"]:
        lines.append(f"note: {r['note']}")
    lines.append("rules:")
    for h in c["hits"]:
        mark = {"hit": "✔", "miss": "·", "skipped": " "}[h["outcome"]]
        lines.append(f"  {mark} {h['stage']:<6} {h['rule']:<16} {h['detail']}")
    for c in r.get("commands", []):
        lines.append(f"command: {c['line']}  ({c['command'] or 'unknown'}, from the {c['source']})")
    lines += ["", f"decision: {r['decision']}"]
    for letter in r["letters"]:
        lines.append(f"letter {letter['letter']}.{letter['language']} → {', '.join(letter['to'])}")
        if "error" in letter:
            lines.append(f"  error: {letter['error']}")
        else:
            lines.append(f"  Subject: {letter['subject']}")
            lines += [f"  | {t}" for t in letter["text"].rstrip().splitlines()]
    return "\n".join(lines)


__all__ = ["explain_mail", "format_text"]
