"""Letters greet people by name: the directory's ``[directory.names]`` first, then the
display name their mail carried (never one that is, or holds, an address), else the role
phrase as before. Mails go through the real intake into SQLite and PostgreSQL; the greetings
are read from the letters queued in the outbox."""

from __future__ import annotations

import email
import email.policy
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest
from flows import INQUIRY, REQUEST_FORM, SOLUTION
from sim import PROCESS_DIRECTORY
from support import mail, open_store, with_security
from timing import body, sh

from maild.adapters.sources.maildir import MaildirSource, deliver
from maild.config import ConfigError, parse_config
from maild.engine.names import clean_display
from maild.runners.intake import Intake
from maild.runners.sweeper import Sweeper
from maild.site import Site
from maild.store.models import Case, Outbox

NAMES = """
[directory.names]
"zhang@corp.example.test" = "张伟"
"Li@Huaxin.example.cn" = "李建国"
"""


class Desk:
    def __init__(self, intake: Intake, inbox: Path, sweeper: Sweeper) -> None:
        self.intake, self.inbox, self.sweeper = intake, inbox, sweeper
        self.clock = sh("2026-12-01 10:00")

    async def send(self, sender: str, subject: str, text: str) -> None:
        deliver(self.inbox, mail(sender, subject, text))
        self.clock += timedelta(minutes=5)
        await self.intake.poll()

    async def greetings(self, letter: str) -> dict[str, str]:
        """Each recipient of ``letter`` and the greeting line of the text part."""
        out = {}
        for o in await Outbox.filter(letter=letter).order_by("id"):
            m = email.message_from_bytes(bytes(o.body), policy=email.policy.default)
            lines = [ln for ln in body(m).splitlines() if ln.strip()]  # type: ignore[arg-type]
            out[o.rcpt[0]] = lines[0]
        return out


@pytest.fixture(params=["sqlite", "postgres"])
async def desk(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Desk]:
    async with open_store(request.param, tmp_path) as store:
        cfg = parse_config(with_security(PROCESS_DIRECTORY + NAMES), "names.toml",
                           str(tmp_path))
        inbox = tmp_path / "mail"
        holder: list[Desk] = []
        site = Site.build(cfg)
        intake = Intake(site, MaildirSource(inbox), store, lambda: holder[0].clock)
        holder.append(Desk(intake, inbox, Sweeper(site, store)))
        yield holder[0]


async def test_a_department_head_in_the_directory_is_greeted_by_name(desk: Desk) -> None:
    await desk.send("王芳 <wang@corp.example.test>", "[跨部门][技术部] 新品推广技术支持",
                    REQUEST_FORM + "需协助事项：派一名工程师讲解 30 分钟\n")
    greetings = await desk.greetings("request_notice")
    # the head (To) by name, not 「技术部负责人」; the initiator's copy (Cc) is the same letter
    assert greetings == {"zhang@corp.example.test": "张伟，您好：",
                         "wang@corp.example.test": "张伟，您好："}


async def test_timer_letters_greet_the_owner_by_name_too(desk: Desk) -> None:
    await desk.send("王芳 <wang@corp.example.test>", "[跨部门][技术部] 新品推广技术支持",
                    REQUEST_FORM + "需协助事项：派一名工程师讲解 30 分钟\n")
    await desk.sweeper.timers(sh("2026-12-02 11:00"))  # a working day later: overdue
    assert (await desk.greetings("deadline_warning"))["zhang@corp.example.test"] \
        == "张伟，您好："
    assert (await desk.greetings("deadline_reminder"))["zhang@corp.example.test"] \
        == "张伟，您好："


async def _customer_letter(desk: Desk, sender: str) -> dict[str, str]:
    await desk.send(sender, "定制工控主板询价", INQUIRY)
    case = await Case.get(process="customer")
    await desk.send("ma@corp.example.test", f"Re: [{case.number}] {case.subject}", SOLUTION)
    greetings = await desk.greetings("customer_confirmation")
    # one letter: the account manager's copy (in Cc) reads the same
    assert greetings.pop("ma@corp.example.test") == next(iter(greetings.values()))
    return greetings


async def test_a_customer_is_greeted_by_the_display_name_of_their_mail(desk: Desk) -> None:
    greetings = await _customer_letter(desk, '"王经理" <wang@huaxin.example.cn>')
    assert greetings == {"wang@huaxin.example.cn": "王经理，您好："}  # not 「华信集团」
    case = await Case.get(process="customer")
    assert case.data["names"]["wang@huaxin.example.cn"] == "王经理"


async def test_the_directory_name_comes_before_the_display_name(desk: Desk) -> None:
    greetings = await _customer_letter(desk, "Li Manager <li@huaxin.example.cn>")
    assert greetings == {"li@huaxin.example.cn": "李建国，您好："}


@pytest.mark.parametrize("display", [
    '"ceo@corp.example.test" <wang@huaxin.example.cn>',  # an address as the name
    '"王经理 (boss@evil.example)" <wang@huaxin.example.cn>',  # a name holding an address
    "wang <wang@huaxin.example.cn>",  # the local part says nothing more
    "wang@huaxin.example.cn",  # no display name at all
])
async def test_a_display_name_that_is_no_name_is_not_used(desk: Desk, display: str) -> None:
    greetings = await _customer_letter(desk, display)
    assert greetings == {"wang@huaxin.example.cn": "华信集团，您好："}  # the party, as before


def test_what_counts_as_a_display_name() -> None:
    assert clean_display(" 王经理 ", "wang@huaxin.example.cn") == "王经理"
    assert clean_display("Wang Fang", "wang@huaxin.example.cn") == "Wang Fang"
    for bad in ("ceo＠corp.example.test", "<script>", "https://evil.example", "王" * 41,
                "---", "Wang", ""):
        assert clean_display(bad, "wang@huaxin.example.cn") == "", bad


def test_names_in_the_directory_must_be_addresses_and_names(tmp_path: Path) -> None:
    for bad in ('"zhang" = "张伟"', '"zhang@corp.example.test" = "x@y.example"',
                '"zhang@corp.example.test" = "  "'):
        with pytest.raises(ConfigError, match="names"):
            parse_config(with_security(PROCESS_DIRECTORY + f"\n[directory.names]\n{bad}\n"),
                         "bad.toml", str(tmp_path))
    cfg = parse_config(with_security(PROCESS_DIRECTORY + NAMES), "ok.toml", str(tmp_path))
    assert cfg.directory.names["li@huaxin.example.cn"] == "李建国"  # keys in lower case
