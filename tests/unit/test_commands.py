"""Staff commands read from replies: every quote style, aliases, subject tags, arguments."""

from __future__ import annotations

from datetime import date

import pytest

from maild.mail.commands import (
    COMMANDS,
    ActionArg,
    parse_action,
    parse_commands,
    parse_date,
    strip_commands,
)
from maild.mail.quoting import reply_top

QUOTED_COMMAND = "#close\n#advance\n"

QUOTE_STYLES = {
    "outlook_en": "-----Original Message-----\nFrom: 示例科技 <service@example.test>\n"
                  "Sent: Tuesday, December 1, 2026 10:00 AM\nTo: li@corp.example.test\n"
                  "Subject: [2026-技-005] 新品推广\n\n" + QUOTED_COMMAND,
    "outlook_zh": "________________________________\n发件人: 示例科技 <service@example.test>\n"
                  "发送时间: 2026年12月1日 10:00\n收件人: li@corp.example.test\n主题: 新品推广\n\n"
                  + QUOTED_COMMAND,
    "outlook_headers_only": "发件人: 示例科技 <service@example.test>\n"
                            "发送时间: 2026年12月1日 10:00\n主题: 新品推广\n\n" + QUOTED_COMMAND,
    "foxmail": "------------------ Original ------------------\nFrom: \"示例科技\"<service@example."
               "test>;\nDate: Tue, Dec 1, 2026 10:00 AM\n\n" + QUOTED_COMMAND,
    "qq_mail": "------------------\xa0原始邮件\xa0------------------\n发件人: \"示例科技\" "
               "<service@example.test>;\n发送时间: 2026年12月1日(星期二) 上午10:00\n\n"
               + QUOTED_COMMAND,
    "gmail_en": "On Tue, Dec 1, 2026 at 10:00 AM 示例科技 <service@example.test> wrote:\n\n> "
                + QUOTED_COMMAND,
    "gmail_en_wrapped": "On Tue, Dec 1, 2026 at 10:00 AM 示例科技有限公司客户服务中心\n"
                        "<service@example.test> wrote:\n\n" + QUOTED_COMMAND,
    "gmail_zh": "示例科技 <service@example.test> 于2026年12月1日周二 10:00写道：\n\n"
                + QUOTED_COMMAND,
    "netease": "在 2026-12-01 10:00:00，\"示例科技\" <service@example.test> 写道：\n"
               + QUOTED_COMMAND,
    "angle_quotes": "> #close\n> #advance\n",
    "signature": "-- \n张伟 技术部\n#close\n",
}


@pytest.mark.parametrize("style", sorted(QUOTE_STYLES))
def test_commands_above_the_quote_count_and_quoted_ones_do_not(style: str) -> None:
    body = "#确认\n好的，没有问题。\n\n" + QUOTE_STYLES[style]
    cmds = parse_commands(body)
    assert [c.name for c in cmds] == ["confirm"]
    assert "#close" not in reply_top(body)
    assert strip_commands(body) == "好的，没有问题。"


@pytest.mark.parametrize("word", ["advance", "ADVANCE", "推进", "下一步"])
def test_aliases_name_the_same_command(word: str) -> None:
    [c] = parse_commands(f"#{word}\n")
    assert c.name == "advance" and c.word == word and c.source == "body"


def test_every_command_has_english_and_chinese_words() -> None:
    for spec in COMMANDS.values():
        assert spec.name.isascii()
        assert any(not a.isascii() for a in spec.aliases), spec.name
        [c] = parse_commands(f"＃{spec.aliases[0]} x\n")  # full-width hash too
        assert c.name == spec.name


def test_arguments_and_chinese_without_a_space() -> None:
    cmds = parse_commands("  #assign 技术部 财务部\n#确认，没问题\n#note：已电话沟通\n"
                          "#延期 2026-12-20 原材料短缺\n")
    assert [(c.name, c.arg) for c in cmds] == [
        ("assign", "技术部 财务部"), ("confirm", "没问题"), ("note", "已电话沟通"),
        ("delay", "2026-12-20 原材料短缺")]


def test_unknown_words_are_kept_as_unknown_and_numbers_are_not_commands() -> None:
    cmds = parse_commands("#frobnicate now\n#催办\n#1 问题一\n# 标题\n#advancement\n")
    assert [(c.name, c.word) for c in cmds] == [(None, "frobnicate"), (None, "催办"),
                                                (None, "advancement")]


@pytest.mark.parametrize("subject, expected", [
    ("Re: [2026-技-005] 新品推广 [确认]", ["confirm"]),
    ("回复：【2026-技-005】新品推广【推进】", ["advance"]),
    ("RE: [2026-技-005] promo [ADVANCE]", ["advance"]),
    ("Re: [2026-技-005] [#confirm] promo", ["confirm"]),
    ("Re: [2026-技-005] 新品推广 [help]", ["help"]),
    ("Re: [2026-技-005] [紧急] [技术部] 新品推广", []),
    ("Re: [2026-技-005] [延期] 新品推广", []),  # needs an argument: not as a tag
])
def test_argument_free_commands_work_as_subject_tags(subject: str, expected: list[str]) -> None:
    cmds = parse_commands("好的\n", subject)
    assert [c.name for c in cmds] == expected
    assert all(c.source == "subject" for c in cmds)


def test_a_command_in_body_and_subject_counts_once() -> None:
    cmds = parse_commands("#确认\n", "Re: [2026-技-005] x [确认]")
    assert [(c.name, c.source) for c in cmds] == [("confirm", "body")]


@pytest.mark.parametrize("text, expected", [
    ("2026-12-10", (date(2026, 12, 10), "")),
    ("2026/12/10 样机交付", (date(2026, 12, 10), "样机交付")),
    ("2026年12月5日 原材料短缺", (date(2026, 12, 5), "原材料短缺")),
    ("2026.1.5", (date(2026, 1, 5), "")),
    ("2026-13-40 x", None),
    ("下周五", None),
    ("", None),
])
def test_dates(text: str, expected: tuple[date, str] | None) -> None:
    assert parse_date(text) == expected


@pytest.mark.parametrize("arg, expected", [
    ("完成讲解材料 | li@corp.example.test | 2026-12-10 | 市场部提供资料",
     ActionArg("完成讲解材料", "li@corp.example.test", date(2026, 12, 10), "市场部提供资料")),
    ("完成讲解材料｜技术部｜2026/12/10",
     ActionArg("完成讲解材料", "技术部", date(2026, 12, 10), "")),
    ("完成讲解材料 | 技术部", "format"),
    (" | 技术部 | 2026-12-10", "format"),
    ("完成讲解材料 | 技术部 | 12月10日", "date"),
    ("完成讲解材料 | 技术部 | 2026-12-10 早上", "date"),
])
def test_action_items(arg: str, expected: ActionArg | str) -> None:
    assert parse_action(arg) == expected


@pytest.mark.parametrize("subject, expected", [
    ("Re: [2026-技-005] x ［确认］", ["confirm"]),  # full-width brackets
    ("Re: [2026-技-005] x [ＣＯＮＦＩＲＭ]", ["confirm"]),  # full-width letters
    ("Re: [2026-技-005] x ︻推进︼", ["advance"]),  # presentation forms (NFKC: 【】)
    ("Re: [2026-技-005] x [关[关闭]闭]", []),  # a tag inside brackets is text
    ("Re: [2026-技-005] x 【关【关闭】闭】", []),
    ("Re: [2026-技-005] x [ [CLOSE] ]", []),
    ("Re: [2026-技-005] x [CLOSE", []),
    ("Re: [2026-技-005] x ]CLOSE]", []),
])
def test_subject_tags_after_nfkc_and_only_standing_alone(subject: str,
                                                         expected: list[str]) -> None:
    assert [c.name for c in parse_commands("好的\n", subject)] == expected


def test_full_width_command_words_in_the_body() -> None:
    [c] = parse_commands("＃ＣＬＯＳＥ 不再需要\n")
    assert (c.name, c.arg) == ("close", "不再需要")


def test_commands_are_bounded() -> None:
    cmds = parse_commands("#note " + "长" * 100_000 + "\n" + "#确认\n" * 500)
    assert len(cmds) == 50
    assert len(cmds[0].arg) <= 2000 and len(cmds[0].line) <= 300
