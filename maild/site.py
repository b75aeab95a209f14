"""The configured site, built once: directory, calendar, processes, letters, organisation
and escalation policy, and the one decision path every caller goes through.

The intake, ``maild explain``, the sweeper and the tests' simulator all hold a ``Site`` and
call :meth:`Site.classify` and :meth:`Site.decide`; none of them assembles a decision's
inputs by hand, so none can, say, forget the configured time zone.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from maild.adapters.documents import Documents, site_documents
from maild.adapters.letters import Letters
from maild.calendar.business import BusinessCalendar
from maild.classify.directory import Directory
from maild.classify.proof import ProofPolicy
from maild.classify.routing import Routes, compile_routes
from maild.classify.rules import STAGES, Classification, Known, classify
from maild.config import Config, ConfigError
from maild.data import templates_dir
from maild.engine.definitions import ProcessDef, ProcessError, check_letters
from maild.engine.effects import CaseView, Context, Decision
from maild.handlers import decide, load_definitions
from maild.handlers.form import form_letter_missing
from maild.mail.auth import DkimPolicy
from maild.mail.message import ParsedMail
from maild.schedule.digest import Labels
from maild.schedule.firing import EscalationPolicy, FireContext


@dataclass(frozen=True)
class Site:
    cfg: Config
    directory: Directory
    calendar: BusinessCalendar
    processes: Mapping[str, ProcessDef]
    letters: Letters
    policy: EscalationPolicy
    #: the reply-token key (``[security] secret_file``); b"" when tokens are off or the
    #: file is not there yet (only ``maild init`` and ``maild run`` create it)
    secret: bytes = b""
    #: ``[[routing.rules]]`` compiled (None: the built-in routing alone)
    routes: Routes | None = None
    #: the generated documents letters carry (``[documents]``; None: none)
    documents: Documents | None = None

    @classmethod
    def build(cls, cfg: Config, *, create_secret: bool = False) -> Site:
        """Everything the config describes, read and checked once; ConfigError when unfit
        (a process definition that does not fit the handlers, a letter it names missing,
        a reply-token secret file that cannot be read). ``create_secret``: make the secret
        file when it is missing (the daemon)."""
        letters = site_letters(cfg)
        processes = site_processes(cfg)
        missing = check_letters(processes, letters.names())
        missing += form_letter_missing(letters.names())  # #form's letter
        if missing:
            raise ConfigError("\n".join(missing))
        directory = Directory(cfg.directory, cfg.routing.staff_domains,
                              cfg.organisation.address)
        return cls(cfg, directory, BusinessCalendar(cfg.calendar.settings()), processes,
                   letters, EscalationPolicy.from_config(cfg.escalation),
                   load_secret(cfg, create=create_secret),
                   compile_routes(cfg.routing, directory),
                   site_documents(cfg, letters.sample))

    # -- the decision path ------------------------------------------------------------------

    def context(self, now: datetime) -> Context:
        org = self.cfg.organisation
        return Context(now, org.name, org.address, org.language, self.directory,
                       self.calendar, self.processes, self.cfg.escalation.early_warning,
                       self.cfg.receipts)

    def classify(self, mail: ParsedMail, known: Known) -> Classification:
        return classify(mail, self.directory, known,
                        default_process=self.cfg.routing.default_process,
                        msgid_domain=self.cfg.organisation.msgid_domain,
                        acknowledge_spam=self.cfg.routing.acknowledge_spam,
                        proof=self.proof_policy,
                        acknowledge_dmarc_fail=self.cfg.security.acknowledge_dmarc_fail,
                        stages=self.routes.stages if self.routes else STAGES)

    @property
    def proof_policy(self) -> ProofPolicy:
        sec = self.cfg.security
        return ProofPolicy(sec.trusted_authserv_ids, tuple(sec.command_proof), self.secret,
                           self.cfg.organisation.msgid_domain, sec.allow_unproven_commands)

    @property
    def dkim(self) -> DkimPolicy | None:
        """How the parse checks DKIM signatures (None: it does not)."""
        sec = self.cfg.security
        if not sec.verify_dkim or "dkim" not in sec.command_proof:
            return None
        return DkimPolicy.of(sec.dkim_keys, dns=True, timeout=sec.dkim_dns_timeout,
                             domains=staff_domains(self.cfg))

    def decide(self, mail: ParsedMail, cls: Classification, case: CaseView | None,
               now: datetime) -> Decision:
        return decide(mail, cls, case, self.context(now))

    # -- the scheduler's inputs -------------------------------------------------------------

    def fire_context(self, now: datetime) -> FireContext:
        org = self.cfg.organisation
        return FireContext(now, self.calendar, self.directory, org.name, org.language,
                           self.policy, self.labels(org.language).steps, self.processes,
                           org_address=org.address)

    def labels(self, language: str) -> Labels:
        """Process and step names in ``language``, from the process definitions."""
        procs = self.processes
        return Labels({name: p.label(language) for name, p in procs.items()},
                      {(name, sid): step.label(language)
                       for name, p in procs.items() for sid, step in p.steps.items()},
                      {(name, what): p.chase_label(what, language)
                       for name, p in procs.items() for what in p.chases})


def site_letters(cfg: Config) -> Letters:
    """The letter templates the config names (default: the shipped ones)."""
    return Letters(cfg.path(cfg.letters.templates) if cfg.letters.templates
                   else templates_dir())


def site_processes(cfg: Config) -> dict[str, ProcessDef]:
    """The process definitions the config names (default: the shipped ones), checked
    against the handlers; ConfigError when they do not fit."""
    try:
        return load_definitions(cfg.path(cfg.processes.dir) if cfg.processes.dir else None)
    except ProcessError as e:
        raise ConfigError(str(e)) from e


SECRET_BYTES = 32


def secret_path(cfg: Config) -> Path:
    return cfg.path(cfg.security.secret_file)


def load_secret(cfg: Config, *, create: bool = False) -> bytes:
    """The reply-token key: b"" when tokens are off, or when the file is missing and not
    to be ``create``d (then letters carry plain Message-IDs and no reply proves itself by
    a token). ConfigError when it exists but cannot be read, or is too short."""
    if not cfg.security.reply_tokens:
        return b""
    path = secret_path(cfg)
    if not path.exists() and create:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as f:
                f.write(secrets.token_bytes(SECRET_BYTES))
        except FileExistsError:
            pass  # another process made it first: read theirs
        except OSError as e:
            raise ConfigError(f"[security] secret_file {path}: cannot create it: {e}") from e
    if not path.exists():
        return b""
    try:
        data = path.read_bytes()
    except OSError as e:
        raise ConfigError(f"[security] secret_file {path}: cannot read it: {e}") from e
    if len(data) < 16:
        raise ConfigError(f"[security] secret_file {path}: {len(data)} bytes; a reply-token "
                          f"secret needs 16 at least (delete it and `maild init` makes one)")
    return data


def staff_domains(cfg: Config) -> set[str]:
    """The domains staff write from (staff domains, department members, managers): the
    only mail whose DKIM signatures are worth checking, as only staff run commands."""
    d = cfg.directory
    addrs = [a for dept in d.departments for a in (dept.head, *dept.members)]
    addrs += [m.address for m in d.managers]
    return {a.rpartition("@")[2].lower() for a in addrs if "@" in a} | {
        x.lower() for x in cfg.routing.staff_domains}
