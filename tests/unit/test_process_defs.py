"""Process definitions: the shipped TOML loads; broken definitions are refused clearly."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from datetime import datetime
from pathlib import Path

import pytest

from maild.calendar.business import BusinessCalendar, CalendarSettings
from maild.engine.definitions import (
    ARCHIVE,
    DEFAULT_DIR,
    ProcessError,
    check_letters,
    directory_warnings,
    load_processes,
    parse_process,
)

MINIMAL = """
process = "customer"
title = "客户"
[letters]
refused = "command_refused"
help = "command_help"
[commands]
help = ["staff"]
[[steps]]
id = "one"
title = "第一步"
owner = "contact"
[steps.commands]
advance = ["contact"]
[[steps]]
id = "two"
title = "第二步"
owner = "contact"
"""


def test_the_shipped_definitions_load_with_five_steps_each() -> None:
    procs = load_processes()
    assert list(procs) == ["internal", "customer", "supplier"]
    assert list(procs["internal"].steps) == ["request", "confirm", "meeting", "minutes", "track"]
    assert list(procs["customer"].steps) == ["requirements", "solution", "contract",
                                             "execution", "aftersales"]
    assert list(procs["supplier"].steps) == ["intent", "evaluation", "order", "fulfilment",
                                             "acceptance"]
    for proc in procs.values():
        assert [s.next for s in proc.steps.values()][-1] == ARCHIVE
        for s in proc.steps.values():
            assert s.commands["help"] == ("staff",)  # process-wide defaults merged in


def test_deadline_rules_use_the_business_calendar() -> None:
    confirm = load_processes()["internal"].step("confirm")
    cal = BusinessCalendar(CalendarSettings())
    friday = datetime.fromisoformat("2026-12-04T17:30+08:00")
    assert confirm.deadline_for(False).after(cal, friday) == datetime.fromisoformat(  # type: ignore[union-attr]
        "2026-12-07T17:30+08:00")
    assert confirm.deadline_for(True).after(cal, friday) == datetime.fromisoformat(  # type: ignore[union-attr]
        "2026-12-07T10:30+08:00")
    assert str(confirm.deadline) == "1 working day"
    assert load_processes()["internal"].step("meeting").deadline_for(False) is None


def test_a_minimal_definition_defaults_next_and_title_en() -> None:
    proc = parse_process(MINIMAL, "customer.toml")
    assert proc.first.id == "one" and proc.step("one").next == "two"
    assert proc.step("two").next == ARCHIVE
    assert proc.step("two").title_en == "第二步"
    assert proc.step("two").commands == {"help": ("staff",)}


@pytest.mark.parametrize("change, message", [
    (('owner = "contact"\n[steps.commands]\nadvance', 'next = "three"\nowner = "contact"\n'
      '[steps.commands]\nadvance'), "step 'one': next step 'three' is not defined"),
    (('id = "two"', 'id = "one"'), "steps[1].id: step 'one' is defined twice"),
    (('advance = ["contact"]', 'advance = []'), "commands.advance: no role may give"),
    (('advance = ["contact"]', 'advance = ["boss"]'), "'boss' is not a staff role"),
    (('advance = ["contact"]', 'advance = ["external"]'), "'external' is not a staff role"),
    (('advance = ["contact"]', 'fly = ["contact"]'), "commands.fly: unknown command"),
    (('owner = "contact"\n[steps.commands]', 'owner = "contact"\nnext = "one"\n'
      '[steps.commands]'), "step 'two': unreachable"),
    (('title = "第二步"', 'title = "第二步"\nconfirm_by = "contact"\nadvance_when = "sunny"'),
     "advance_when 'sunny' is not a known condition"),
    (('title = "第二步"', 'title = "第二步"\ndeadline = "soon"'),
     "steps[1].deadline: 'soon' is not a rule like"),
    (('title = "第二步"', 'title = "第二步"\nowner_role = "x"'),
     "steps[1].owner_role: unknown key (typo?)"),
    (('title = "第二步"', 'title = "第二步"\nrequires = "confirmed"'),
     "uses the condition 'confirmed' but has no confirm_by"),
    (('advance = ["contact"]', 'confirm = ["contact"]'), "allows #confirm but says nobody"),
    (('help = "command_help"', ''), "letters.help: missing"),
    (('title = "第二步"', 'title = 2'), "steps[1].title: must be a string, not int"),
])
def test_an_inconsistent_definition_is_refused_with_a_clear_message(change: tuple[str, str],
                                                                    message: str) -> None:
    old, new = change
    assert old in MINIMAL
    with pytest.raises(ProcessError) as e:
        parse_process(MINIMAL.replace(old, new, 1), "customer.toml")
    assert message in str(e.value)
    assert re.match(r"customer\.toml:\d+: ", str(e.value))  # the file and the line


def test_every_process_must_exist_and_match_its_file(tmp_path: Path) -> None:
    shutil.copytree(DEFAULT_DIR, tmp_path / "p")
    (tmp_path / "p" / "supplier.toml").unlink()
    text = (tmp_path / "p" / "customer.toml").read_text(encoding="utf-8")
    (tmp_path / "p" / "customer.toml").write_text(
        text.replace('process = "customer"', 'process = "supplier"'), encoding="utf-8")
    with pytest.raises(ProcessError) as e:
        load_processes(tmp_path / "p")
    assert "supplier.toml: cannot read" in str(e.value)
    assert "customer.toml:4: process: says 'supplier'" in str(e.value)


def test_letters_without_templates_and_roles_nobody_holds_are_reported() -> None:
    procs = load_processes()
    missing = check_letters(procs, ["ack.zh", "command_refused.zh"])
    assert any("letter 'command_help' has no template" in m for m in missing)
    assert not any("'command_refused'" in m for m in missing)
    warnings = directory_warnings(procs, ["技术部", "市场部"], "法务部")
    assert any("'dept:质量部'" in w for w in warnings)
    assert any("no legal department '法务部'" in w for w in warnings)
    assert directory_warnings(procs, ["法务部", "市场部", "采购部", "质量部", "财务部"],
                              "法务部") == []


def test_config_check_rejects_a_broken_process_definition(tmp_path: Path) -> None:
    shutil.copytree(DEFAULT_DIR, tmp_path / "processes")
    path = tmp_path / "processes" / "internal.toml"
    text = path.read_text(encoding="utf-8")
    text = text.replace('advance_when = "form_complete"', 'next = "meting"', 1)
    path.write_text(text.replace("confirm = [\"participant\"]", "confirm = []"),
                    encoding="utf-8")
    cfg = tmp_path / "maild.toml"
    cfg.write_text('[processes]\ndir = "processes"\n', encoding="utf-8")
    p = subprocess.run([sys.executable, "-m", "maild", "config", "check", "-c", str(cfg)],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 78  # EX_CONFIG
    assert "internal.toml:54: step 'request': next step 'meting' is not defined" in p.stderr
    assert "internal.toml:110: step 'minutes'.commands.confirm: no role may give" in p.stderr


def test_a_typo_is_reported_with_its_file_line_and_key() -> None:
    text = MINIMAL.replace('title = "第二步"', 'title = "第二步"\ndeadlin = "1 working day"')
    assert text.splitlines()[17] == 'deadlin = "1 working day"'  # line 18 of the file
    with pytest.raises(ProcessError) as e:
        parse_process(text, "customer.toml")
    assert str(e.value) == "customer.toml:18: steps[1].deadlin: unknown key (typo?)"


@pytest.mark.parametrize("change, message", [
    # the line of the key inside the right [[steps]] entry, not the first one's
    (('title = "第二步"', 'title = 2'), "customer.toml:17: steps[1].title: must be a string"),
    (('title = "第二步"\nowner = "contact"', 'title = "第二步"'),
     "customer.toml:15: steps[1].owner: missing"),
    (('id = "two"', 'id = "one"'), "customer.toml:16: steps[1].id: step 'one' is defined twice"),
    (('advance = ["contact"]', 'advance = ["boss"]'),
     "customer.toml:14: step 'one'.commands.advance: 'boss' is not a staff role"),
    (('refused = "command_refused"', 'refused = 1'), "customer.toml:5: letters.refused: must be"),
    (('title = "客户"', 'title = "客户"\n[settings]\ndelay_chase_after = "2 weeks"'),
     "customer.toml:5: settings.delay_chase_after: '2 weeks' is not a rule like"),
])
def test_errors_name_the_line_of_the_key(change: tuple[str, str], message: str) -> None:
    old, new = change
    assert old in MINIMAL
    with pytest.raises(ProcessError) as e:
        parse_process(MINIMAL.replace(old, new, 1), "customer.toml")
    assert message in str(e.value)


@pytest.mark.parametrize("text", ["1 working day", "1d", "8h", "1 个工作日", "0.5d"])
def test_deadlines_accept_every_working_duration_spelling(text: str) -> None:
    text = MINIMAL.replace('title = "第二步"', f'title = "第二步"\ndeadline = "{text}"')
    proc = parse_process(text, "customer.toml")
    assert proc.step("two").deadline is not None
