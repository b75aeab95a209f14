"""``[[routing.rules]]``: matching, order, outcomes, and validation with line numbers."""

from __future__ import annotations

import textwrap
from datetime import UTC, datetime
from pathlib import Path

import pytest
from support import DIRECTORY_TOML, mail, make_config

from maild.classify.routing import compile_routes, routing_problems
from maild.classify.rules import STAGES, Classification, Known
from maild.config import ConfigError, parse_config
from maild.mail.parse import parse_mail
from maild.site import Site

NOW = datetime(2026, 12, 1, 2, 0, tzinfo=UTC)

RULES = """
[[routing.rules]]
name = "purchase-alias"
to = "purchase@example.test"
process = "supplier"

[[routing.rules]]
name = "sales-alias"
to = ["sales@", "@sales.example.test"]
process = "customer"
department = "市"

[[routing.rules]]
name = "rma"
subject = "[RMA]"
department = "技术部"

[[routing.rules]]
name = "erp"
from = "@erp.example.test"
subject_regex = "^订单\\\\s*\\\\d+"
process = "internal"
department = "技术部"

[[routing.rules]]
name = "campaign"
header = {name = "X-Campaign"}
ignore = true

[[routing.rules]]
name = "helpdesk"
header = [{name = "X-Source", value = "Helpdesk"}, {name = "X-Prio", regex = "^[12]$"}]
triage = true
"""


def site(rules: str = RULES, tmp: Path = Path(".")) -> Site:
    return Site.build(make_config(tmp, rules))


SITE = site()


NOTHING_KNOWN = Known()


def run(raw: bytes, known: Known = NOTHING_KNOWN, s: Site = SITE) -> Classification:
    return s.classify(parse_mail(raw), known)


def decided_by(cls: Classification) -> list[tuple[str, str]]:
    return [(h.rule, h.detail) for h in cls.hits if h.stage == "route" and h.outcome == "hit"]


# -- matching ------------------------------------------------------------------------------


@pytest.mark.parametrize("headers, rule", [
    (dict(to="purchase@example.test"), "purchase-alias"),
    (dict(to="Purchase@Example.TEST"), "purchase-alias"),
    (dict(to="service@example.test", Cc="采购 <purchase@example.test>"), "purchase-alias"),
    (dict(to="service@example.test", Delivered_To="purchase@example.test"), "purchase-alias"),
    (dict(to="someone@else.example", X_Original_To="purchase@example.test"), "purchase-alias"),
    (dict(to="someone@else.example", Envelope_To="purchase@example.test"), "purchase-alias"),
    (dict(to="sales@example.test"), "sales-alias"),  # "sales@": the local part anywhere
    (dict(to="sales@other.example"), "sales-alias"),
    (dict(to="team@sales.example.test"), "sales-alias"),  # "@domain"
    (dict(to="team@xsales.example.test"), "default_route"),  # not a suffix match
    (dict(to="purchases@example.test"), "default_route"),
    (dict(to="xsales@example.test"), "default_route"),
    (dict(to="service@example.test", X_Campaign="winter"), "campaign"),
    (dict(to="service@example.test", X_Source="helpdesk", X_Prio="2"), "helpdesk"),
    (dict(to="service@example.test", X_Source="helpdesk", X_Prio="3"), "default_route"),
    (dict(to="service@example.test", X_Source="helpdesk x", X_Prio="1"), "default_route"),
    (dict(to="service@example.test", X_Prio="1"), "default_route"),
])
def test_recipient_and_header_conditions(headers: dict[str, str], rule: str) -> None:
    cls = run(mail("someone@unknown.example", "询价", **headers))
    assert [r for r, _ in decided_by(cls)] == [rule]


@pytest.mark.parametrize("subject, sender, rule", [
    ("[RMA] 主板返修", "x@unknown.example", "rma"),
    ("【rma】主板返修", "x@unknown.example", "rma"),
    ("RMA 主板返修", "x@unknown.example", "default_route"),  # a tag, not a word
    ("订单 4711 已排产", "robot-free@erp.example.test", "erp"),
    ("订单 4711 已排产", "x@unknown.example", "default_route"),  # every condition must hold
    ("关于订单 4711", "robot-free@erp.example.test", "default_route"),  # regex anchored
])
def test_subject_and_sender_conditions(subject: str, sender: str, rule: str) -> None:
    cls = run(mail(sender, subject))
    assert [r for r, _ in decided_by(cls)] == [rule]


# -- outcomes ------------------------------------------------------------------------------


def test_process_and_department_outcomes() -> None:
    cls = run(mail("x@unknown.example", "询价", to="sales@example.test"))
    assert (cls.route, cls.process, cls.department) == ("new customer", "customer", "市场部")
    cls = run(mail("bot@erp.example.test", "订单 7 已排产"))
    assert (cls.process, cls.department) == ("internal", "技术部")


def test_department_alone_takes_the_process_of_the_default_rules() -> None:
    cls = run(mail("li@huaxin.example.cn", "[RMA] 主板返修"))  # a known customer
    assert (cls.process, cls.department) == ("customer", "技术部")
    [(rule, detail)] = decided_by(cls)
    assert rule == "rma" and "known_party" in detail
    cls = run(mail("sales@hengda.example.cn", "[RMA] 退货"))  # a known supplier
    assert (cls.process, cls.department) == ("supplier", "技术部")


def test_triage_outcome() -> None:
    cls = run(mail("x@unknown.example", "问题", X_Source="HELPDESK", X_Prio="1"))
    assert cls.route == "triage" and cls.process == "triage"
    assert SITE.decide(parse_mail(mail("x@unknown.example", "问题", X_Source="helpdesk",
                                       X_Prio="1")), cls, None, NOW).effects == ()


def test_ignore_is_recorded_not_answered() -> None:
    raw = mail("news@shop.example", "冬季促销", X_Campaign="winter")
    cls = run(raw)
    assert cls.ignored and cls.route == "ignored (recorded, not answered)"
    assert cls.robot == "ignored by routing rule 'campaign'"
    decision = SITE.decide(parse_mail(raw), cls, None, NOW)
    assert decision.effects == ()
    assert decision.summary == "ignored by routing rule 'campaign': recorded, not answered"
    assert cls.as_dict()["ignored"] is True


# -- order ---------------------------------------------------------------------------------


def test_first_hit_decides_and_the_rest_are_skipped() -> None:
    # both purchase-alias and rma would hit: the first written wins
    cls = run(mail("x@unknown.example", "[RMA] 返修", to="purchase@example.test"))
    route = [(h.rule, h.outcome) for h in cls.hits if h.stage == "route"]
    assert route[:5] == [("no_sender", "miss"), ("form_request", "miss"),
                         ("purchase-alias", "hit"), ("sales-alias", "skipped"),
                         ("rma", "skipped")]
    assert all(o == "skipped" for _, o in route[5:])
    assert cls.process == "supplier" and cls.department is None


def test_configured_rules_come_before_the_default_rule_set() -> None:
    # a known supplier writing to sales@ becomes a customer case; a process tag loses too
    cls = run(mail("sales@hengda.example.cn", "[供应商] 询价", to="sales@example.test"))
    assert cls.process == "customer"
    assert [r for r, _ in decided_by(cls)] == ["sales-alias"]
    hits = {h.rule: h.outcome for h in cls.hits}
    assert hits["process_tag"] == hits["known_party"] == "skipped"


def test_mail_of_a_case_is_not_rerouted() -> None:
    raw = mail("x@unknown.example", "Re: 询价", to="purchase@example.test",
               In_Reply_To="<ours@example.test>")
    cls = run(raw, Known(case_by_message_id={"<ours@example.test>": "2026-客-001"}))
    assert cls.case_number == "2026-客-001" and cls.process is None
    assert {h.outcome for h in cls.hits if h.stage == "route"} == {"skipped"}


def test_robot_mail_is_not_rerouted() -> None:
    cls = run(mail("x@unknown.example", "自动回复：不在办公室", to="purchase@example.test",
                   Auto_Submitted="auto-replied"))
    assert cls.robot == "auto-submitted" and not cls.ignored
    assert {h.outcome for h in cls.hits if h.stage == "route"} == {"skipped"}


def test_mail_without_sender_stays_for_triage_before_any_rule() -> None:
    cls = run(b"To: purchase@example.test\r\nSubject: x\r\nMessage-ID: <a@b>\r\n\r\nx\r\n")
    assert cls.process == "triage" and decided_by(cls)[0][0] == "no_sender"


def test_no_rules_is_the_builtin_table() -> None:
    s = Site.build(make_config(Path(".")))
    assert s.routes is not None and s.routes.stages is STAGES and s.routes.rules == ()
    cls = run(mail("x@unknown.example", "询价", to="purchase@example.test"), s=s)
    assert cls.process == "customer" and [r for r, _ in decided_by(cls)] == ["default_route"]


def test_explain_shows_the_rule_and_why() -> None:
    hits = run(mail("x@unknown.example", "询价", to="sales@example.test")).as_dict()["hits"]
    [hit] = [h for h in hits if h["outcome"] == "hit" and h["stage"] == "route"]
    assert hit["rule"] == "sales-alias"
    assert hit["detail"] == "to sales@example.test -> customer, 市场部"


# -- validation ----------------------------------------------------------------------------


def check(rules: str) -> str:
    text = DIRECTORY_TOML + textwrap.dedent(rules)
    with pytest.raises(ConfigError) as e:
        parse_config(text, "maild.toml")
    return str(e.value)


def last_line(rules: str, needle: str) -> int:
    """The line of the last ``needle`` in the test config."""
    lines = (DIRECTORY_TOML + textwrap.dedent(rules)).splitlines()
    return [n for n, s in enumerate(lines, 1) if needle in s][-1]


THREE = """
[[routing.rules]]
name = "a"
to = "a@example.test"
process = "customer"

[[routing.rules]]
name = "b"
to = "b@example.test"
process = "supplier"

[[routing.rules]]
name = "c"
to = "c@example.test"
{bad}
"""


@pytest.mark.parametrize("bad, key, words", [
    ('colour = "red"\nprocess = "customer"', "colour", "unknown key"),
    ('process = "purchasing"', "process", "'customer', 'supplier' or 'internal'"),
    ('process = "customer"\nignore = true', None, "exactly one outcome"),
    ('triage = true\nignore = true', None, "exactly one outcome"),
    ('department = "采购部"', "department", "no department '采购部'"),
    ('subject_regex = "(x"\nprocess = "customer"', "subject_regex", "does not compile"),
    ('header = {name = "X-Foo", regex = "[x"}\ntriage = true', "header", "does not compile"),
    ('header = {name = "X Foo:"}\ntriage = true', "header", "not a header name"),
    ('header = {name = "X-Foo", value = "a", regex = "b"}\ntriage = true', "header",
     "not both"),
    ('from = "nobody"\nignore = true', "from", "not an address"),
    ('subject = "[a] [b]"\nignore = true', "subject", "one subject tag"),
])
def test_a_bad_rule_is_refused_with_its_line(bad: str, key: str | None, words: str) -> None:
    rules = THREE.format(bad=bad)
    msg = check(rules)
    assert words in msg
    want = last_line(rules, f"{key} =" if key else "[[routing.rules]]")
    assert f"maild.toml:{want}: routing.rules.2" in msg, msg


def test_a_rule_without_outcome_or_condition() -> None:
    msg = check('[[routing.rules]]\nname = "x"\nto = "x@example.test"\n')
    assert "exactly one outcome" in msg
    msg = check('[[routing.rules]]\nname = "x"\nprocess = "customer"\n')
    assert "needs a condition" in msg


def test_duplicate_names_are_refused() -> None:
    msg = check(THREE.format(bad='process = "customer"').replace('"c"', '"a"'))
    assert "rules 1 and 3 are both named 'a'" in msg


def test_department_by_short_name_or_alias_is_accepted() -> None:
    text = DIRECTORY_TOML + '[[routing.rules]]\nname = "x"\nto = "x@example.test"\n' \
        'department = "技"\n'
    s = Site.build(parse_config(text))
    cls = s.classify(parse_mail(mail("q@unknown.example", "q", to="x@example.test")), Known())
    assert cls.department == "技术部"


def test_a_builtin_rule_name_is_refused_by_check_and_build() -> None:
    cfg = make_config(Path("."), '[[routing.rules]]\nname = "known_party"\n'
                      'to = "x@example.test"\nprocess = "customer"\n')
    [problem] = routing_problems(cfg)
    assert "routing.rules.0: name 'known_party' is a built-in rule's name" in problem
    with pytest.raises(ConfigError, match="built-in"):
        Site.build(cfg)


def test_a_department_unchecked_by_the_file_is_refused_at_build() -> None:
    # a Config validated without the file at hand (no context): the site still refuses it
    cfg = make_config(Path("."))
    rules = cfg.routing.model_validate(
        {"rules": [{"name": "x", "to": "x@", "department": "采购部"}]})
    with pytest.raises(ConfigError, match="no department '采购部'"):
        compile_routes(rules, Site.build(cfg).directory)


def test_reload_refuses_a_bad_rule_with_its_line_and_takes_a_good_one(tmp_path: Path) -> None:
    from maild.runners.reload import prepare

    path = tmp_path / "maild.toml"
    good = DIRECTORY_TOML + RULES
    path.write_text(good, encoding="utf-8")
    old = parse_config(good, str(path), str(tmp_path))
    bad = good.replace('process = "supplier"', 'process = "supplier"\ntriage = true', 1)
    path.write_text(bad, encoding="utf-8")
    want = bad.splitlines().index("[[routing.rules]]") + 1  # the first rule's header
    with pytest.raises(ConfigError, match=f"maild.toml:{want}: routing.rules.0: .*exactly one"):
        prepare(path, old)
    path.write_text(good.replace('to = "purchase@example.test"', 'to = "buy@example.test"'),
                    encoding="utf-8")
    _, new_site, _ = prepare(path, old)
    cls = new_site.classify(parse_mail(mail("x@unknown.example", "q", to="buy@example.test")),
                            Known())
    assert [r for r, _ in decided_by(cls)] == ["purchase-alias"]
