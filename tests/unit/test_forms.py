"""The request form parser: colons, spaces, continuation lines, missing fields, quotes."""

from __future__ import annotations

import pytest

from maild.mail.forms import REQUEST_FORM, department_of, is_urgent, merge, parse_form

FULL = """发起部门/人：市场部/王芳
接收部门/人：技术部/张伟
沟通目标：新品推广会技术讲解
核心内容：12 月 10 日推广会需要技术部讲解新品的宽温设计
需协助事项：派一名工程师讲解 30 分钟
期望完成时间：2026-12-10
紧急程度：一般
"""


def test_a_complete_form_with_full_width_colons() -> None:
    form = parse_form(FULL, REQUEST_FORM)
    assert form.complete and form.missing == ()
    assert form.values["接收部门/人"] == "技术部/张伟"
    assert form.values["期望完成时间"] == "2026-12-10"
    assert "需求编号" not in form.values  # optional


def test_ascii_colons_extra_spaces_bullets_and_aliases() -> None:
    text = ("您好：\n\n 1. 发起部门 : 市场部\n - 接收部门:技术部\n•沟通目标 ：  讲解\n"
            "（四）核心内容：讲解宽温设计\n需要协助事项:\u3000派工程师\n"
            "期望完成日期: 2026-12-10\n【紧急程度】：紧急\n")
    form = parse_form(text, REQUEST_FORM)
    assert form.missing == ()
    assert form.values["发起部门/人"] == "市场部"
    assert form.values["接收部门/人"] == "技术部"
    assert form.values["沟通目标"] == "讲解"
    assert form.values["需协助事项"] == "派工程师"
    assert is_urgent(form.values["紧急程度"])


def test_missing_and_empty_fields_are_listed_in_the_forms_order() -> None:
    text = "发起部门/人：市场部/王芳\n接收部门/人：技术部\n沟通目标：\n期望完成时间：2026-12-10\n"
    form = parse_form(text, REQUEST_FORM)
    assert form.missing == ("沟通目标", "核心内容", "需协助事项", "紧急程度")
    assert not form.complete


def test_a_value_goes_on_until_a_blank_line_or_the_next_field() -> None:
    text = "核心内容：第一点\n第二点\n  第三点\n\n谢谢！\n需协助事项：派人\n"
    form = parse_form(text, REQUEST_FORM)
    assert form.values["核心内容"] == "第一点\n第二点\n第三点"
    assert form.values["需协助事项"] == "派人"


def test_fields_in_the_quoted_part_do_not_count() -> None:
    reply = ("核心内容：讲解宽温设计\n需协助事项：派工程师\n\n"
             "在 2026-12-01 10:00:00，\"示例科技\" <service@example.test> 写道：\n"
             "> 请补充以下内容：\n> 紧急程度：\n> 沟通目标：（请填写）\n")
    form = parse_form(reply, REQUEST_FORM)
    assert set(form.values) == {"核心内容", "需协助事项"}
    outlook = ("紧急程度: 紧急\n\n-----Original Message-----\nFrom: a <a@b.c>\nSent: x\n\n"
               "沟通目标：旧的\n")
    assert parse_form(outlook, REQUEST_FORM).values == {"紧急程度": "紧急"}


def test_a_later_reply_completes_an_earlier_form() -> None:
    first = parse_form("发起部门/人：市场部\n接收部门/人：技术部\n沟通目标：讲解\n", REQUEST_FORM)
    second = parse_form("核心内容：宽温设计\n需协助事项：派工程师\n期望完成时间：2026-12-10\n"
                        "紧急程度：一般\n沟通目标：讲解与答疑\n", REQUEST_FORM)
    form = merge(first.values, second, REQUEST_FORM)
    assert form.complete
    assert form.values["沟通目标"] == "讲解与答疑"


@pytest.mark.parametrize("value, urgent", [
    ("紧急", True), ("高", True), ("URGENT", True), ("加急（今天）", True),
    ("一般", False), ("普通", False), ("低", False), ("", False),
])
def test_urgency(value: str, urgent: bool) -> None:
    assert is_urgent(value) is urgent


def test_department_of() -> None:
    assert department_of("市场部/王芳") == "市场部"
    assert department_of("技术部／张伟") == "技术部"
    assert department_of(" 技术部 ") == "技术部"


def test_command_lines_are_never_part_of_a_field() -> None:
    form = parse_form("紧急程度：一般\n#due 2026-12-10\n需协助事项：派人\n", REQUEST_FORM)
    assert form.values["紧急程度"] == "一般" and form.values["需协助事项"] == "派人"
