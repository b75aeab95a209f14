"""``[[routing.rules]]`` on the real stack: Dovecot (IMAP + LMTP), the SMTP sink, ``maild``
as a real process. Aliases of one shared mailbox open the case their rule names."""

from __future__ import annotations

import email
import email.policy
import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from servers import DovecotServer, SmtpSink
from support import DIRECTORY_TOML, mail

from maild.cli.exits import EXIT_CONFIG

pytestmark = pytest.mark.slow

RULES = """
[[routing.rules]]
name = "采购信箱"
to = ["purchase@example.test", "shared+purchase@example.test"]
process = "supplier"

[[routing.rules]]
name = "销售信箱"
to = ["sales@example.test", "shared+sales@example.test"]
process = "customer"
department = "市场部"

[[routing.rules]]
name = "供应商门户"
header = {name = "X-Portal", value = "supplier-portal"}
process = "supplier"

[[routing.rules]]
name = "营销邮件"
header = {name = "X-Campaign"}
ignore = true
"""


class Site:
    def __init__(self, base: Path, dovecot: DovecotServer, sink: SmtpSink,
                 rules: str = RULES) -> None:
        self.base, self.dovecot, self.sink = base, dovecot, sink
        self.config = base / "maild.toml"
        self.config.write_text(f"""
[database]
url = "sqlite://var/maild.db"
[mailbox]
url = "{dovecot.imap_url}"
poll_interval = 0.5
[smtp]
url = "smtp://{sink.host}:{sink.port}"
""" + DIRECTORY_TOML + rules, encoding="utf-8")

    def run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("MAILD_")}
        env["MAILD_IMAP_PASSWORD"] = self.dovecot.password
        p = subprocess.run([sys.executable, "-m", "maild", *args], env=env, cwd=self.base,
                           capture_output=True, text=True, timeout=120)
        if check and p.returncode != 0:
            raise AssertionError(f"maild {' '.join(args)} exited {p.returncode}:\n{p.stderr}")
        return p

    def case(self, number: str) -> dict[str, object]:
        return json.loads(self.run("cases", "show", "-c", str(self.config), number,
                                   "--json").stdout)

    def inbound(self) -> dict[str, dict[str, object]]:
        """The decided inbound rows by sender: the classification the intake recorded."""
        with sqlite3.connect(self.base / "var" / "maild.db") as conn:
            rows = conn.execute("select sender, rules, state, route from messages "
                                "where direction = 'in'").fetchall()
        return {s: {"rules": json.loads(r), "state": st, "folder": f} for s, r, st, f in rows}


@pytest.fixture
def site(tmp_path: Path, dovecot: DovecotServer, smtp_sink: SmtpSink) -> Site:
    return Site(tmp_path, dovecot, smtp_sink)


def _hit(rules: dict[str, object]) -> tuple[str, str]:
    hits = rules["hits"]
    assert isinstance(hits, list)
    [(name, detail)] = [(h["rule"], h["detail"]) for h in hits
                        if h["stage"] == "route" and h["outcome"] == "hit"]
    return name, detail


def test_aliases_of_one_mailbox_open_the_case_their_rule_names(site: Site) -> None:
    d = site.dovecot
    # all four land in the one shared mailbox: what the MTA's aliases or plus-addressing
    # deliver, by LMTP (Dovecot writes Delivered-To) or straight into the INBOX
    d.deliver(mail("li@newvendor.example.cn", "报价：铝合金外壳", "请查收报价单。",
                   to="purchase@example.test"))
    d.deliver(mail("buyer@shop.example.com", "询价：工控主板", "请报价 200 套。",
                   to="undisclosed-recipients:;"), rcpt="shared+sales@example.test")
    d.append(mail("zhao@portal.example.net", "交期更新", "本周发货。", X_Portal="supplier-portal"))
    d.deliver(mail("news@promo.example.org", "冬季促销", "全场八折。", X_Campaign="winter-2026"))
    site.run("run", "-c", str(site.config), "--once")

    rows = site.inbound()
    assert _hit(rows["li@newvendor.example.cn"]["rules"]) == (
        "采购信箱", "to purchase@example.test -> supplier")
    assert _hit(rows["buyer@shop.example.com"]["rules"]) == (
        "销售信箱", "to shared+sales@example.test -> customer, 市场部")
    assert _hit(rows["zhao@portal.example.net"]["rules"])[0] == "供应商门户"
    ignored = rows["news@promo.example.org"]
    assert _hit(ignored["rules"])[0] == "营销邮件"
    assert ignored["rules"]["route"] == "ignored (recorded, not answered)"
    assert {r["state"] for r in rows.values()} == {"processed"}

    cases = json.loads(site.run("cases", "list", "-c", str(site.config), "--json").stdout)
    by_process = sorted((str(c["process"]), str(c["subject"])) for c in cases)
    assert by_process == [("customer", "询价：工控主板"), ("supplier", "交期更新"),
                          ("supplier", "报价：铝合金外壳")]
    [customer] = [c for c in cases if c["process"] == "customer"]
    assert site.case(str(customer["number"]))["department"] == "市场部"

    # the three cases acknowledged their senders; the campaign got nothing
    letters = [email.message_from_bytes(m.raw, policy=email.policy.default)
               for m in site.sink.messages]
    assert sorted(str(m["To"]) for m in letters) == [
        "buyer@shop.example.com", "li@newvendor.example.cn", "zhao@portal.example.net"]
    # nothing left behind and nothing lost: the ignored mail is filed with the rest
    assert d.count("INBOX") == 0 and d.count("Processed") == 4


def test_ignored_mail_is_logged(site: Site) -> None:
    site.dovecot.append(mail("news@promo.example.org", "冬季促销", "全场八折。",
                             X_Campaign="winter-2026"))
    p = site.run("run", "-c", str(site.config), "--once")
    line = next(s for s in p.stderr.splitlines() if "news@promo.example.org" in s)
    assert "route=ignored" in line and "ignored by routing rule '营销邮件'" in line
    assert site.sink.messages == [] and site.dovecot.count("Processed") == 1


def test_explain_json_shows_the_rule_that_decided(site: Site) -> None:
    eml = site.base / "purchase.eml"
    eml.write_bytes(mail("li@newvendor.example.cn", "报价", to="采购 <purchase@example.test>"))
    out = json.loads(site.run("explain", "-c", str(site.config), str(eml), "--json").stdout)
    cls = out["classification"]
    assert cls["route"] == "new supplier" and cls["process"] == "supplier"
    assert _hit(cls) == ("采购信箱", "to purchase@example.test -> supplier")
    skipped = [h["rule"] for h in cls["hits"] if h["outcome"] == "skipped"]
    assert {"销售信箱", "营销邮件", "known_party", "default_route"} <= set(skipped)
    text = site.run("explain", "-c", str(site.config), str(eml)).stdout
    assert "采购信箱" in text and "to purchase@example.test -> supplier" in text


def test_a_bad_rule_stops_check_and_start_with_its_line(site: Site) -> None:
    bad = '\n[[routing.rules]]\nname = "法务"\nto = "legal@"\ndepartment = "法务部"\n'
    site.config.write_text(site.config.read_text(encoding="utf-8") + bad, encoding="utf-8")
    lines = site.config.read_text(encoding="utf-8").splitlines()
    want = max(n for n, s in enumerate(lines, 1) if s.startswith("department ="))
    for args in (("config", "check"), ("run", "--once")):
        p = site.run(*args, "-c", str(site.config), check=False)
        assert p.returncode == EXIT_CONFIG, p.stderr
        assert f"maild.toml:{want}: routing.rules.4.department: " in p.stderr, p.stderr
        assert "no department '法务部'" in p.stderr
    assert site.dovecot.count("INBOX") == 0 and not (site.base / "var" / "maild.db").exists()
