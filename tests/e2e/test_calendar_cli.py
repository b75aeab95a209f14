"""`maild calendar show YEAR` and the uncovered-year warning of `maild config check`, run as
an admin runs them."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import date
from pathlib import Path

from maild.calendar.sources import package_covers


def maild(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "maild", *args], capture_output=True,
                          text=True, timeout=120)


def line_of(out: str, day: str) -> str:
    return next(ln for ln in out.splitlines() if ln.startswith(day))


def test_show_2027_lists_spring_festival_without_configuration() -> None:
    p = maild("calendar", "show", "2027")
    assert p.returncode == 0, p.stderr
    out = p.stdout
    assert "statutory holidays computed from the lunar calendar" in out
    assert "warning: calendar: no official holiday data for 2027" in out
    assert "Make-up working days (调休) for 2027 are not known yet" in out
    for day, name in (("2027-02-05", "农历除夕"), ("2027-02-06", "春节"),
                      ("2027-02-08", "春节"), ("2027-02-09", "春节（补假）"),
                      ("2027-02-10", "春节（补假）")):
        line = line_of(out, day)
        assert name in line and "computed from the lunar calendar" in line, line
    assert "2027-02-11" not in out
    assert "Working days that would otherwise be off (0)" in out


def test_show_2026_comes_from_the_package_with_its_make_up_days() -> None:
    p = maild("calendar", "show", "2026", "--json")
    assert p.returncode == 0, p.stderr
    year = json.loads(p.stdout)
    assert year["basis"] == "package" and year["makeup_days_known"] is True
    assert year["warning"] is None
    assert {d["date"]: d["name"] for d in year["working_days"]}["2026-02-14"] == "春节调休上班"
    assert all(d["source"] == "package" for d in year["days_off"] + year["working_days"])
    assert {"date": "2026-02-16", "weekday": "周一", "name": "春节", "weekend": False,
            "source": "package", "source_text": "package data"} in year["days_off"]
    text = maild("calendar", "show", "2026").stdout
    assert "package data (chinesecalendar" in text and "not known" not in text
    assert "春节调休上班" in line_of(text, "2026-02-28")


def test_show_with_a_config_marks_configured_days(tmp_path: Path) -> None:
    cfg = tmp_path / "maild.toml"
    cfg.write_text("[calendar]\nextra_working_days = [2027-02-20]\n"
                   "extra_closed_days = [2027-02-11, 2027-02-12]\n", encoding="utf-8")
    p = maild("calendar", "show", "2027", "-c", str(cfg), "--json")
    assert p.returncode == 0, p.stderr
    year = json.loads(p.stdout)
    assert [(d["date"], d["source"]) for d in year["working_days"]] == [
        ("2027-02-20", "configured")]
    off = {d["date"]: d["source"] for d in year["days_off"]}
    assert off["2027-02-11"] == off["2027-02-12"] == "configured"
    assert off["2027-02-08"] == "computed"
    assert "(1 working day(s) configured for 2027)" in year["warning"]
    text = maild("calendar", "show", "2027", "-c", str(cfg)).stdout
    assert "configured" in line_of(text, "2027-02-20")


def test_show_refuses_what_is_not_a_year() -> None:
    p = maild("calendar", "show", "0")
    assert p.returncode == 2 and "0 is not a year" in p.stderr
    p = maild("calendar", "show", "next")
    assert p.returncode == 2 and "invalid int value" in p.stderr


def test_config_check_warns_that_make_up_days_must_be_configured(tmp_path: Path) -> None:
    # `config check` looks at this year and the next by the real clock; a year the package
    # covers gives no warning, so the assertion is about whichever year it does not cover.
    cfg = tmp_path / "maild.toml"
    cfg.write_text("[calendar]\n", encoding="utf-8")
    p = maild("config", "check", "-c", str(cfg))
    assert p.returncode == 0, p.stderr
    warned = [ln for ln in p.stdout.splitlines() if "no official holiday data" in ln]
    expected = [y for y in (date.today().year, date.today().year + 1) if not package_covers(y)]
    assert len(warned) == len(expected)
    for line, year in zip(warned, expected, strict=True):
        assert f"for {year}" in line and "调休" in line and "extra_working_days" in line
        assert f"maild calendar show {year}" in line
