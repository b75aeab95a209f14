"""Routing rules as data: ``[[routing.rules]]`` of the config, compiled once per site.

The configured rules join the decisive ``route`` stage of :mod:`maild.classify.rules`,
after ``no_sender`` and before the built-in rules, which stay as the default rule set
(process tags, known party, staff request, default route). So they run only for mail
that belongs to no case and comes from no robot, in the order written; the first that
hits decides. Each is a :class:`~maild.classify.rules.Rule` of its own, named as in the
config, so ``maild explain`` lists it with why it hit or missed.

Outcomes: ``process`` (with the department, when given); ``department`` alone, the process
then being what the default rule set gives; ``triage``; ``ignore``, which files the mail
as recorded and never answers it (the intake logs it as ``route=ignored``, the message row
keeps the rule that decided).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from maild.classify.directory import Directory
from maild.classify.rules import STAGES, Env, Rule, Stage
from maild.config import Config, ConfigError, HeaderMatch, RouteRule, Routing

ROUTE_STAGE = "route"
FIRST_RULES = ("no_sender", "form_request")  # built-in rules before the configured ones

Match = Callable[[Env], str | None]  # None: no match; else what matched, for explain


def _address_matches(pattern: str, addr: str) -> bool:
    """``sales@example.com`` exactly, ``@example.com`` any address of that domain,
    ``sales@`` that local part at any domain (all lower case)."""
    if pattern.startswith("@"):
        return addr.endswith(pattern)
    if pattern.endswith("@"):
        return addr.startswith(pattern)
    return addr == pattern


def _addresses(patterns: tuple[str, ...], label: str,
               get: Callable[[Env], list[str]]) -> Match:
    def match(env: Env) -> str | None:
        for addr in get(env):
            if addr and any(_address_matches(p, addr) for p in patterns):
                return f"{label} {addr}"
        return None
    return match


def _recipients(env: Env) -> list[str]:
    m = env.mail
    return [a.addr for a in (*m.to, *m.cc, *m.delivered_to)]


def _tags(wanted: tuple[str, ...]) -> Match:
    folded = {t.casefold() for t in wanted}

    def match(env: Env) -> str | None:
        hit = next((t for t in env.tags if t.casefold() in folded), None)
        return f"subject [{hit}]" if hit is not None else None
    return match


def _subject_regex(pattern: str) -> Match:
    rx = re.compile(pattern, re.IGNORECASE)

    def match(env: Env) -> str | None:
        m = rx.search(env.mail.subject)
        return f"subject ~ {pattern!r} ({m.group(0)[:40]!r})" if m else None
    return match


def _header(h: HeaderMatch) -> Match:
    rx = re.compile(h.regex, re.IGNORECASE) if h.regex is not None else None
    want = h.value.strip().casefold() if h.value is not None else None

    def match(env: Env) -> str | None:
        for v in env.mail.headers.get(h.name, ()):
            if (rx is None and want is None) or (want is not None and v.casefold() == want) \
                    or (rx is not None and rx.search(v)):
                return f"{h.name}: {v[:60]}"
        return None
    return match


def _matches(r: RouteRule) -> tuple[Match, ...]:
    out: list[Match] = []
    if r.to:
        out.append(_addresses(r.to, "to", _recipients))
    if r.from_:
        out.append(_addresses(r.from_, "from", lambda env: [env.mail.from_.addr]))
    if r.subject:
        out.append(_tags(r.subject))
    if r.subject_regex is not None:
        out.append(_subject_regex(r.subject_regex))
    out += [_header(h) for h in r.header]
    return tuple(out)


def _outcome(r: RouteRule, department: str | None,
             defaults: tuple[Rule, ...]) -> Callable[[Env], tuple[str, dict[str, Any]]]:
    """What a hit of ``r`` decides, and how to say it."""
    if r.ignore:
        facts: dict[str, Any] = {"robot": f"ignored by routing rule {r.name!r}",
                                 "ignored": True}
        return lambda env: ("ignore (recorded, not answered)", facts)
    if r.triage:
        return lambda env: ("triage", {"process": "triage"})
    if r.process is not None:
        facts = {"process": r.process}
        if department is not None:
            facts["department"] = department
        said = r.process + (f", {department}" if department else "")
        return lambda env: (said, facts)

    def by_default(env: Env) -> tuple[str, dict[str, Any]]:
        # department alone: the process is what the default rule set would give
        for rule in defaults:
            res = rule.check(env)
            if res is not None and res[1].get("process"):
                process = res[1]["process"]
                return (f"{department}, process {process} by {rule.name}",
                        {"process": process, "department": department})
        return f"{department}", {"department": department}
    return by_default


def _rule(n: int, r: RouteRule, directory: Directory, defaults: tuple[Rule, ...]) -> Rule:
    department = None
    if r.department is not None:
        d = directory.department(r.department)
        if d is None:  # parse_config refuses it already; a Config built in code may not
            raise ConfigError(f"routing.rules.{n} ({r.name!r}): no department "
                              f"{r.department!r} in [[directory.departments]]")
        department = d.name
    matches = _matches(r)
    outcome = _outcome(r, department, defaults)

    def check(env: Env) -> tuple[str, dict[str, Any]] | None:
        why = []
        for m in matches:
            found = m(env)
            if found is None:
                return None
            why.append(found)
        said, facts = outcome(env)
        return f"{'; '.join(why)} -> {said}", facts

    return Rule(r.name, f"[[routing.rules]] {n + 1} of the config", check)


@dataclass(frozen=True)
class Routes:
    """The configured rules compiled, and the classification stages they take part in."""

    rules: tuple[Rule, ...]
    stages: tuple[Stage, ...]


def compile_routes(routing: Routing, directory: Directory,
                   base: tuple[Stage, ...] = STAGES) -> Routes:
    """``routing.rules`` as classification rules, placed in ``base``'s route stage after
    ``no_sender``; ConfigError when a rule names what the site does not have."""
    stage = next(s for s in base if s.name == ROUTE_STAGE)
    first = tuple(r for r in stage.rules if r.name in FIRST_RULES)
    defaults = tuple(r for r in stage.rules if r.name not in FIRST_RULES)
    taken = {r.name for s in base for r in s.rules}
    clash = [(n, r.name) for n, r in enumerate(routing.rules) if r.name in taken]
    if clash:
        n, name = clash[0]
        raise ConfigError(f"routing.rules.{n}: name {name!r} is a built-in rule's name "
                          f"(see `maild explain`); choose another")
    rules = tuple(_rule(n, r, directory, defaults) for n, r in enumerate(routing.rules))
    if not rules:
        return Routes((), base)
    stages = tuple(Stage(s.name, s.decisive, (*first, *rules, *defaults))
                   if s.name == ROUTE_STAGE else s for s in base)
    return Routes(rules, stages)


def routing_problems(cfg: Config) -> list[str]:
    """What ``maild config check`` reports of ``[[routing.rules]]`` beyond the file's own
    validation: what only the compiled site can tell."""
    directory = Directory(cfg.directory, cfg.routing.staff_domains, cfg.organisation.address)
    try:
        compile_routes(cfg.routing, directory)
    except ConfigError as e:
        return str(e).splitlines()
    return []


__all__ = ["Routes", "compile_routes", "routing_problems"]
