"""``maild explain``: how one mail would be handled, without touching anything."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from maild.app import make_letters, make_processes, make_store
from maild.classify import Known, classify, subject_tags
from maild.commands import parse_commands
from maild.config import Config
from maild.directory import Directory
from maild.effects import Context
from maild.engine import decide
from maild.letters import LetterError
from maild.message import ParsedMail
from maild.parse import ParseError, parse_mail


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
    try:
        mail = parse_mail(raw)
    except ParseError as e:
        return {"outcome": "quarantine", "reason": f"cannot parse: {e}"}
    known, note = await _known(cfg, mail)
    directory = Directory(cfg.directory, cfg.routing.staff_domains, cfg.organisation.address)
    cls = classify(mail, directory, known, default_process=cfg.routing.default_process,
                   msgid_domain=cfg.organisation.msgid_domain)
    case = None
    if cls.case_number:
        store = make_store(cfg)
        await store.open()
        try:
            case = await store.case_view(cls.case_number)
        finally:
            await store.close()
    org = cfg.organisation
    decision = decide(mail, cls, case, Context(now, org.name, org.address, org.language,
                                              directory, processes=make_processes(cfg)))
    letters = make_letters(cfg)
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
