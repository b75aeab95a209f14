"""The administrator's tools on the store: triage and quarantine read models, case actions
(assign, close, reopen, note), the export of a case, and backup and restore.

Every change is an admin action on the case's timeline (kind ``admin``, by the user who ran
the command). A case changes the way mail changes it: the case's process
(``maild.engine.workflow.Work``, the handler's hooks) closes, reopens or reassigns it, the
pure ``maild.engine.apply.apply`` folds the result (timers stop, pause and resume with the
status exactly as for mail), and the store writes the case, its timers, its notes and its
letters in one transaction, as ``Store.apply`` does for a mail.
"""

from __future__ import annotations

import email.policy
import html
import json
import os
import re
import shutil
import sqlite3
import subprocess
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.parser import BytesHeaderParser
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

from tortoise.transactions import in_transaction

from maild.classify.rules import Classification
from maild.engine.apply import apply
from maild.engine.effects import Decision, Note, OpenCase, SendLetter
from maild.engine.operations import resolve_person
from maild.engine.workflow import Work
from maild.handlers import HOOKS
from maild.handlers.common import assign_contact
from maild.mail.message import Address, ParsedMail
from maild.mail.parse import ParseError, parse_mail
from maild.site import Site
from maild.store import ApplyEnv, Store
from maild.store.attachments import ContentStore, safe_name
from maild.store.cases import case_state, clean, write_case, write_timers
from maild.store.models import Attachment, Case, Message, Outbox, TimelineEntry

#: what ``maild cases`` may do to a case
ACTIONS = ("assign", "close", "reopen", "note")


class AdminError(Exception):
    """An admin action that cannot be done; the message says why."""


def admin_actor() -> str:
    """Who runs the command, for the timeline: ``$SUDO_USER``, ``$USER``, else ``admin``."""
    return os.environ.get("SUDO_USER") or os.environ.get("USER") or "admin"


# -- inbound mail: triage and quarantine --------------------------------------------------------

async def find_inbound(store: Store, ref: str) -> Message:
    """An inbound mail by its id (``12``) or its Message-ID (with or without ``<>``)."""
    ref = ref.strip().lstrip("#")
    if ref.isdigit():
        row = await Message.get_or_none(id=int(ref), direction="in")
        if row is None:
            raise AdminError(f"no inbound mail #{ref}")
        return row
    mid = ref if ref.startswith("<") else f"<{ref}>"
    rows = await Message.filter(direction="in", message_id=mid).order_by("id")
    if not rows:  # a quarantined mail was never parsed: its Message-ID is in its bytes only
        rows = [r for r in await Message.filter(direction="in", message_id="").order_by("id")
                if mail_headers(store, r).get("message-id") == mid]
    rows = [r for r in rows if r.state != "duplicate"] or rows
    if not rows:
        raise AdminError(f"no inbound mail with Message-ID {mid}")
    if len(rows) > 1:
        raise AdminError(f"several inbound mails have Message-ID {mid}: "
                         + ", ".join(f"#{r.id}" for r in rows) + "; name one by its id")
    return rows[0]


def mail_headers(store: Store, row: Message) -> dict[str, str]:
    """Message-ID, From, Subject and Date from a mail's raw bytes ({} when unreadable)."""
    try:
        msg = BytesHeaderParser(policy=email.policy.default).parsebytes(
            store.raw.get(row.raw_path))
    except (OSError, ValueError):
        return {}
    out = {}
    for name in ("message-id", "from", "subject", "date"):
        try:
            out[name] = " ".join(str(msg.get(name, "")).split())
        except Exception:  # noqa: BLE001 - a header too broken to decode
            out[name] = ""
    return out


async def inbound_rows(store: Store, *, triage_folder: str, quarantine_folder: str,
                       quarantined: bool = False) -> list[dict[str, Any]]:
    """Triaged mail (decided, no process applied, no case), or the quarantined mail."""
    if quarantined:
        rows = await Message.filter(direction="in", state="quarantined").order_by("id")
    else:
        # decided to triage by the intake, or by `maild reprocess` (the copy stays put)
        rows = [r for r in await Message.filter(
            direction="in", state="processed", case_id__isnull=True,
            route__in=(triage_folder, quarantine_folder)).order_by("id")
            if (r.rules or {}).get("route") == "triage"]
    return [row_dict(store, r) for r in rows]


def row_dict(store: Store, row: Message, number: str | None = None) -> dict[str, Any]:
    head = mail_headers(store, row) if not row.message_id else {}
    return {"id": row.id, "at": row.at.isoformat(), "state": row.state,
            "message_id": row.message_id or head.get("message-id", ""),
            "from": row.sender or head.get("from", ""),
            "subject": row.subject or head.get("subject", ""),
            "folder": row.route, "reason": row.reason, "case": number,
            "route": (row.rules or {}).get("route")}


async def mail_detail(store: Store, row: Message) -> dict[str, Any]:
    """``maild triage show``: the mail as the intake recorded it, with its text."""
    number = None
    if row.case_id is not None:  # type: ignore[attr-defined]
        number = (await Case.get(id=row.case_id)).number  # type: ignore[attr-defined]
    out = row_dict(store, row, number)
    out["classification"] = row.rules
    try:
        mail = parse_mail(store.raw.get(row.raw_path))
    except (OSError, ParseError) as e:
        out["text"], out["error"] = "", f"cannot read or parse: {e}"
        return out
    out.update(to=[a.addr for a in mail.to], cc=[a.addr for a in mail.cc], date=mail.date,
               text=mail.text, attachments=[{"filename": a.filename, "size": a.size,
                                             "content_type": a.content_type}
                                            for a in mail.attachments])
    return out


# -- case actions ---------------------------------------------------------------------------

@dataclass(frozen=True)
class CaseAction:
    """What an admin action did to a case."""

    number: str
    action: str
    step: str
    status: str
    summary: str
    letters: tuple[str, ...] = ()


def admin_mail(actor: str, text: str = "") -> ParsedMail:
    """The admin's action as the engine takes a mail: from the admin, with no message."""
    return ParsedMail("", Address("admin", actor), (), (), (), "", "", text, "", (), (), ())


async def case_action(store: Store, site: Site, number: str, action: str, arg: str,
                      now: datetime, actor: str | None = None) -> CaseAction:
    """``maild cases assign|close|reopen|note``: one admin action on a case, in one
    transaction; AdminError when the case cannot take it."""
    if action not in ACTIONS:
        raise AdminError(f"unknown action {action!r}")
    actor = actor or admin_actor()
    env = ApplyEnv.for_site(site, now)
    async with in_transaction(store.conn):
        row = await Case.filter(number=number).select_for_update().first()
        if row is None:
            raise AdminError(f"no case {number}")
        before = await case_state(row)
        proc = site.processes[row.process]
        work = Work(proc, HOOKS[row.process], admin_mail(actor, arg), Classification(),
                    site.context(now), before.view)
        _act(work, action, arg.strip())
        decision = work.decision()
        letters = await persist(store, row, decision, env)
    return CaseAction(number, action, work.step, work.status, decision.summary, letters)


def _act(work: Work, action: str, arg: str) -> None:
    """The action on the case as the engine sees it (the admin note first)."""
    if action == "note":
        if not arg:
            raise AdminError("a note needs some text")
        work.note("admin", arg)
        work.event("note")
        return
    if action == "reopen":
        if work.is_open:
            raise AdminError(f"{work.number} is {work.status}, not closed")
        work.note("admin", work.t("管理员重新打开", "reopened by the administrator")
                  + (f": {arg}" if arg else ""))
        work.reopen()
        return
    if not work.is_open:
        raise AdminError(f"{work.number} is {work.status}: reopen it first")
    if action == "close":
        work.note("admin", work.t("管理员关闭", "closed by the administrator")
                  + (f": {arg}" if arg else ""))
        work.finish("closed")
    else:
        _assign(work, arg)


def _assign(work: Work, who: str) -> None:
    """A process with an ``assigned`` letter (customer, supplier) gets a new contact, who
    owns its steps from now on and is told by letter, as ``#assign`` does; otherwise the
    current step gets a new owner. The step's deadline then answers to the new owner."""
    addr = resolve_person(work, who) if who else None
    if addr is None:
        raise AdminError(f"{who!r} is neither an address nor a department in the directory")
    if not work.roles.in_directory(addr):
        raise AdminError(f"{addr} is not staff in the directory")
    work.note("admin", work.t(f"管理员指派给 {addr}", f"assigned to {addr} by the administrator"))
    if "assigned" in work.proc.letters:
        why = assign_contact(work, addr)
        if why is not None:
            raise AdminError(why)
        return
    if work.owner == (addr,):
        raise AdminError(f"{addr} already owns the step")
    work.owner = (addr,)
    if work.due is not None:
        work.set_due(work.due)
    work.note("assigned", addr)
    work.event(f"owner {addr}")


async def persist(store: Store, row: Case, decision: Decision, env: ApplyEnv
                  ) -> tuple[str, ...]:
    """A decision without an inbound mail, written as ``Store.apply`` writes one, in the
    caller's transaction: the case, its notes, its letters (queued), its timers. Returns
    the letters queued."""
    before = await case_state(row)
    applied = apply(before, decision, env.now, env.calendar)
    if applied.case is None:
        raise AdminError(f"{row.number}: the decision left no case")
    case = await write_case(row, applied.case, env.now, True)
    letters = []
    for out in applied.outputs:
        if isinstance(out, SendLetter):
            if await store.enqueue(out, case, env) is not None:
                letters.append(out.letter)
        elif isinstance(out, Note):
            await TimelineEntry.create(case=case, at=env.now, kind=out.kind,
                                       actor=out.actor[:320], message_id=None,
                                       text=clean(out.text))
    await write_timers(case, applied.timers, before, env.now)
    return tuple(letters)


def with_note(decision: Decision, note: Note) -> Decision:
    """The decision with an admin note, right after the case it opens (if any)."""
    effects = list(decision.effects)
    at = next((i + 1 for i, e in enumerate(effects) if isinstance(e, OpenCase)), 0)
    effects.insert(at, note)
    return Decision(tuple(effects), decision.summary)


# -- export ---------------------------------------------------------------------------------

@dataclass
class _Mail:
    at: datetime
    direction: str
    message_id: str
    raw: bytes | None
    name: str = ""
    info: dict[str, str] = field(default_factory=dict)


async def export_case(store: Store, case: dict[str, Any], dest: Path) -> Path:
    """``maild cases export``: ``dest/NUMBER.zip`` with ``case.json`` (the ``cases show
    --json`` object), every raw mail in and every letter out under ``mail/``, every file
    under ``attachments/``, and an ``index.html`` that reads offline."""
    row = await Case.get(number=case["number"])
    mails = [_Mail(m.at, "in", m.message_id, _read(store.raw, m.raw_path))
             for m in await Message.filter(case=row, direction="in").order_by("at", "id")]
    mails += [_Mail(o.created_at, "out", o.message_id, bytes(o.body))
              for o in await Outbox.filter(case=row).order_by("created_at", "id")]
    mails.sort(key=lambda m: (m.at, m.direction))
    for i, m in enumerate(mails, 1):
        m.name = f"mail/{i:03d}-{m.direction}-{_id_name(m.message_id)}.eml"
        m.info = _mail_info(m.raw)
    files: list[tuple[str, Attachment, bytes | None]] = []
    used: set[str] = set()
    for a in await Attachment.filter(case=row).order_by("id"):
        files.append((_unique(f"attachments/{safe_name(a.filename)}", used), a,
                       _read(store.files, a.path)))
    dest.mkdir(parents=True, exist_ok=True)
    target = dest / f"{safe_name(case['number'])}.zip"
    tmp = target.with_name(target.name + ".tmp")
    with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("case.json", json.dumps(case, ensure_ascii=False, indent=2) + "\n")
        for m in mails:
            if m.raw is not None:
                z.writestr(m.name, m.raw)
        for name, _, data in files:
            if data is not None:
                z.writestr(name, data)
        z.writestr("index.html", _index(case, mails, files))
    os.replace(tmp, target)
    return target


def _read(store: ContentStore, rel: str) -> bytes | None:
    try:
        return bytes(store.get(rel)) if rel else None
    except OSError:
        return None


def _id_name(message_id: str) -> str:
    s = re.sub(r"[^A-Za-z0-9._@-]+", "_", message_id.strip("<>"))[:80].strip("._")
    return s or "no-id"


def _unique(name: str, used: set[str]) -> str:
    stem, dot, ext = name.rpartition(".")
    if not dot or "/" in ext:
        stem, ext = name, ""
    out, n = name, 1
    while out in used:
        n += 1
        out = f"{stem}-{n}.{ext}" if ext else f"{stem}-{n}"
    used.add(out)
    return out


def _mail_info(raw: bytes | None) -> dict[str, str]:
    if raw is None:
        return {"error": "the raw mail is missing from the raw store"}
    try:
        m = parse_mail(raw)
    except ParseError as e:
        return {"error": f"cannot parse: {e}"}
    return {"from": m.from_.addr, "to": ", ".join(a.addr for a in (*m.to, *m.cc)),
            "subject": m.subject, "date": m.date, "text": m.text}


def _link(name: str) -> str:
    return f'<a href="{html.escape(quote(name))}">{html.escape(name)}</a>'


_STYLE = ("body{font-family:sans-serif;max-width:60em;margin:2em auto;padding:0 1em}"
          "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:.2em .5em;"
          "text-align:left;vertical-align:top}pre{white-space:pre-wrap;background:#f6f6f6;"
          "padding:.5em}")


def _index(case: dict[str, Any], mails: Sequence[_Mail],
           files: Sequence[tuple[str, Attachment, bytes | None]]) -> str:
    e = html.escape
    head = "".join(f"<tr><th>{e(k)}</th><td>{e(str(case.get(k) or '-'))}</td></tr>"
                   for k in ("number", "subject", "process", "step", "step_title", "status",
                             "department", "opened_at", "due_at", "closed_at"))
    mail_rows = []
    for m in mails:
        i = m.info
        link = _link(m.name) if m.raw is not None else e(i.get("error", ""))
        mail_rows.append(
            f"<details><summary>{e(m.at.isoformat())} {m.direction} — "
            f"{e(i.get('from', ''))}: {e(i.get('subject', ''))}</summary>"
            f"<p>{link}<br>to: {e(i.get('to', ''))}<br>date: {e(i.get('date', ''))}</p>"
            f"<pre>{e(i.get('text', i.get('error', '')))}</pre></details>")
    file_rows = "".join(
        f"<tr><td>{_link(n) if data is not None else e(n) + ' (missing)'}</td>"
        f"<td>{e(a.output)}</td><td>{a.size}</td><td>{e(a.at.isoformat())}</td></tr>"
        for n, a, data in files)
    timeline = "".join(
        f"<tr><td>{e(t['at'])}</td><td>{e(t['kind'])}</td><td>{e(t['actor'])}</td>"
        f"<td>{e(t['text'])}</td></tr>" for t in case.get("timeline", []))
    return (f'<!doctype html><html lang="zh"><head><meta charset="utf-8">'
            f"<title>{e(case['number'])}</title><style>{_STYLE}</style></head><body>"
            f"<h1>{e(case['number'])} {e(case.get('subject', ''))}</h1><table>{head}</table>"
            f"<h2>Mail ({len(mails)})</h2>{''.join(mail_rows) or '<p>none</p>'}"
            f"<h2>Attachments ({len(files)})</h2><table><tr><th>file</th><th>output</th>"
            f"<th>bytes</th><th>at</th></tr>{file_rows}</table>"
            f"<h2>Timeline</h2><table><tr><th>at</th><th>kind</th><th>actor</th>"
            f"<th>text</th></tr>{timeline}</table>"
            f"<p>Exported {e(datetime.now(UTC).isoformat(timespec='seconds'))}; "
            f"case.json holds the case as <code>maild cases show --json</code> prints it."
            f"</p></body></html>\n")


async def cases_since(since: datetime | None) -> list[str]:
    """Numbers of the cases changed since ``since`` (every case when None), oldest first."""
    q = Case.all().order_by("id")
    if since is not None:
        q = q.filter(updated_at__gte=since)
    return [str(n) for n in await q.values_list("number", flat=True)]


# -- backup and restore ---------------------------------------------------------------------

#: the database snapshot, the raw store and the attachments inside a backup folder
DB_FILE, PG_FILE, RAW, FILES, SITE = "maild.db", "maild.pgdump", "raw", "attachments", "site"


@dataclass(frozen=True)
class Backup:
    """What ``backup_site`` or ``restore_site`` did."""

    dir: Path
    backend: str  # sqlite / postgres
    counts: dict[str, int]
    #: PostgreSQL: the pg_dump or pg_restore command (run, or for the admin to run)
    pg_command: str | None = None
    pg_done: bool = False


def sqlite_path(store: Store) -> Path | None:
    """The SQLite database file of the store (None on PostgreSQL)."""
    if store.conn != "sqlite":
        return None
    return Path(store.url[len("sqlite://"):].partition("?")[0])


def pg_url(store: Store) -> tuple[str, str]:
    """The libpq URL of a PostgreSQL store without its password, and the password."""
    u = urlsplit(store.url)
    netloc = u.hostname or ""
    if u.port:
        netloc += f":{u.port}"
    if u.username:
        netloc = f"{u.username}@{netloc}"
    return urlunsplit(("postgresql", netloc, u.path, "", "")), u.password or ""


def backup_site(store: Store, dest: Path, config_file: Path | None = None,
                site_dirs: Sequence[Path] = ()) -> Backup:
    """A consistent copy of a site in ``dest`` (a new or empty folder), while it runs.

    The database comes first: SQLite through the online backup API (one consistent
    snapshot), PostgreSQL through ``pg_dump`` when it is on the PATH. The raw store and
    the attachments come after: files are only ever added, and each is written before
    the row naming it commits, so every row of the snapshot finds its file. Then the config
    file and the folders it names (``site_dirs``, relative to the config's folder)."""
    if dest.exists() and any(dest.iterdir()):
        raise AdminError(f"{dest} is not empty: back up into a new folder")
    dest.mkdir(parents=True, exist_ok=True)
    counts: dict[str, int] = {}
    command, done = None, False
    db = sqlite_path(store)
    if db is not None:
        if not db.exists():
            raise AdminError(f"no database at {db}")
        _sqlite_copy(db, dest / DB_FILE)
        counts.update(sqlite_counts(dest / DB_FILE))
    else:
        command, done = _pg_dump(store, dest / PG_FILE)
    counts["raw files"] = _copy_tree(store.raw.root, dest / RAW)
    counts["attachment files"] = _copy_tree(store.files.root, dest / FILES)
    if config_file is not None:
        shutil.copy2(config_file, dest / "maild.toml")
        for rel in site_dirs:
            _copy_tree(config_file.parent / rel, dest / SITE / rel)
    manifest = {"created_at": datetime.now(UTC).isoformat(timespec="seconds"),
                "backend": store.conn, "counts": counts, "pg_dump": done}
    (dest / "manifest.json").write_text(json.dumps(manifest, ensure_ascii=False, indent=2)
                                        + "\n", encoding="utf-8")
    return Backup(dest, store.conn, counts, command, done)


def restore_site(store: Store, src: Path, base_dir: Path | None = None, *,
                 force: bool = False) -> Backup:
    """Put a backup back into the site ``store`` describes (stop its daemon first).

    SQLite: the snapshot becomes the database, refused when the database there already
    holds cases or mail (unless ``force``). PostgreSQL: the files are copied and the
    ``pg_restore`` command to run is returned. The raw store and the attachments are
    copied in, and the folders the config named into ``base_dir``."""
    if not (src / "manifest.json").exists():
        raise AdminError(f"{src} is not a maild backup (no manifest.json)")
    db = sqlite_path(store)
    counts: dict[str, int] = {}
    command = None
    if db is not None:
        if not (src / DB_FILE).exists():
            raise AdminError(f"{src} holds no SQLite snapshot ({DB_FILE}): restore it into a "
                             "site whose database is PostgreSQL")
        if db.exists() and any(sqlite_counts(db).values()) and not force:
            raise AdminError(f"{db} already holds cases or mail: restore into an empty site "
                             "(or --force to replace it)")
        for suffix in ("", "-wal", "-shm", "-journal"):
            Path(f"{db}{suffix}").unlink(missing_ok=True)
        db.parent.mkdir(parents=True, exist_ok=True)
        _sqlite_copy(src / DB_FILE, db)
        counts.update(sqlite_counts(db))
    else:
        url, _ = pg_url(store)
        command = (f"pg_restore --no-owner --exit-on-error --dbname '{url}' "
                   f"'{src / PG_FILE}'")
    counts["raw files"] = _copy_tree(src / RAW, store.raw.root)
    counts["attachment files"] = _copy_tree(src / FILES, store.files.root)
    if base_dir is not None and (src / SITE).is_dir():
        _copy_tree(src / SITE, base_dir)
    return Backup(src, store.conn, counts, command)


def _sqlite_copy(source: Path, target: Path) -> None:
    """One consistent snapshot through SQLite's online backup API (safe while it is used)."""
    src = sqlite3.connect(source, timeout=60)
    try:
        dst = sqlite3.connect(target)
        try:
            src.backup(dst)
        finally:
            dst.close()
    finally:
        src.close()


def sqlite_counts(db: Path) -> dict[str, int]:
    """Cases and inbound mail in a SQLite database (0 for a database without tables)."""
    out = {}
    con = sqlite3.connect(db)
    try:
        for key, sql in (("cases", "SELECT COUNT(*) FROM cases"),
                         ("mail", "SELECT COUNT(*) FROM messages WHERE direction = 'in'")):
            try:
                out[key] = int(con.execute(sql).fetchone()[0])
            except sqlite3.OperationalError:  # no such table: an empty database
                out[key] = 0
    finally:
        con.close()
    return out


def _pg_dump(store: Store, target: Path) -> tuple[str, bool]:
    url, password = pg_url(store)
    command = f"pg_dump --format=custom --no-owner --file '{target}' '{url}'"
    exe = shutil.which("pg_dump")
    if exe is None:
        return command, False
    env = {**os.environ, **({"PGPASSWORD": password} if password else {})}
    p = subprocess.run([exe, "--format=custom", "--no-owner", "--file", str(target), url],
                       env=env, capture_output=True, text=True, timeout=3600)
    if p.returncode != 0:
        raise AdminError(f"pg_dump failed: {p.stderr.strip()}\n(the command: {command})")
    return command, True


def _copy_tree(src: Path, dst: Path) -> int:
    """Copy the files of ``src`` into ``dst`` (existing ones kept); how many there are.
    Temporary files of a write in progress are left out."""
    if not src.is_dir():
        return 0
    n = 0
    for path in sorted(src.rglob("*")):
        if path.is_dir() or ".tmp" in path.name:
            continue
        target = dst / path.relative_to(src)
        n += 1
        if target.exists():
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, target)
    return n


__all__ = ["ACTIONS", "AdminError", "Backup", "CaseAction", "admin_actor", "admin_mail",
           "backup_site", "case_action", "cases_since", "export_case", "find_inbound",
           "inbound_rows", "mail_detail", "mail_headers", "persist", "restore_site",
           "sqlite_counts", "sqlite_path", "with_note"]
