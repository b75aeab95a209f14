"""The configured site, built once: directory, calendar, processes, letters, organisation
and escalation policy, and the one decision path every caller goes through.

The intake, ``maild explain``, the sweeper and the tests' simulator all hold a ``Site`` and
call :meth:`Site.classify` and :meth:`Site.decide`; none of them assembles a decision's
inputs by hand, so none can, say, forget the configured time zone.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from maild.adapters.letters import Letters
from maild.calendar.business import BusinessCalendar
from maild.classify.directory import Directory
from maild.classify.rules import Classification, Known, classify
from maild.config import Config, ConfigError
from maild.data import templates_dir
from maild.engine.definitions import ProcessDef, ProcessError, check_letters
from maild.engine.effects import CaseView, Context, Decision
from maild.handlers import decide, load_definitions
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

    @classmethod
    def build(cls, cfg: Config) -> Site:
        """Everything the config describes, read and checked once; ConfigError when unfit
        (a process definition that does not fit the handlers, a letter it names missing)."""
        letters = site_letters(cfg)
        processes = site_processes(cfg)
        missing = check_letters(processes, letters.names())
        if missing:
            raise ConfigError("\n".join(missing))
        directory = Directory(cfg.directory, cfg.routing.staff_domains,
                              cfg.organisation.address)
        return cls(cfg, directory, BusinessCalendar(cfg.calendar.settings()), processes,
                   letters, EscalationPolicy.from_config(cfg.escalation))

    # -- the decision path ------------------------------------------------------------------

    def context(self, now: datetime) -> Context:
        org = self.cfg.organisation
        return Context(now, org.name, org.address, org.language, self.directory,
                       self.calendar, self.processes)

    def classify(self, mail: ParsedMail, known: Known) -> Classification:
        return classify(mail, self.directory, known,
                        default_process=self.cfg.routing.default_process,
                        msgid_domain=self.cfg.organisation.msgid_domain,
                        acknowledge_spam=self.cfg.routing.acknowledge_spam)

    def decide(self, mail: ParsedMail, cls: Classification, case: CaseView | None,
               now: datetime) -> Decision:
        return decide(mail, cls, case, self.context(now))

    # -- the scheduler's inputs -------------------------------------------------------------

    def fire_context(self, now: datetime) -> FireContext:
        org = self.cfg.organisation
        return FireContext(now, self.calendar, self.directory, org.name, org.language,
                           self.policy, self.labels(org.language).steps)

    def labels(self, language: str) -> Labels:
        """Process and step names in ``language``, from the process definitions."""
        procs = self.processes
        return Labels({name: p.label(language) for name, p in procs.items()},
                      {(name, sid): step.label(language)
                       for name, p in procs.items() for sid, step in p.steps.items()})


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
