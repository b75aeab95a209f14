"""The satisfaction survey's answers, as customers write them: the score or no score."""

from __future__ import annotations

import pytest

from maild.mail.satisfaction import parse

QUOTED = ("\n\n------------------ 原始邮件 ------------------\n发件人: 示例科技\n"
          "发送时间: 2026年12月1日\n主题: 满意度调研\n\n  1. 总体满意度（1-5 分）：\n")
OUTLOOK = ("\n\n-----Original Message-----\nFrom: service@corp.example.test\n"
           "Sent: Tuesday, December 1, 2026 10:00 AM\nSubject: How did we do?\n\n"
           "  1. Overall satisfaction (1-5):\n")

CASES = [
    # (reply, expected score or None)
    ("5分", 5),
    ("打4分，整体不错。", 4),
    ("给5分！交付很及时。", 5),
    ("4/5", 4),
    ("score: 3", 3),
    ("五星，谢谢！", 5),
    ("五星好评", 5),
    ("非常满意", 5),
    ("满意", 4),
    ("一般吧，沟通有点慢。", 3),
    ("不满意，交付晚了两周。", 2),
    ("非常不满意！", 1),
    ("很满意，感谢各位的辛苦付出。", 5),
    ("Very satisfied, thank you!", 5),
    ("Satisfied overall.", 4),
    ("We were dissatisfied with the delays.", 2),
    ("Very dissatisfied.", 1),
    ("I'd rate it 4 out of 5.", 4),
    ("4 stars", 4),
    # the survey filled in, its own wording copied into the reply
    ("1. 总体满意度（1-5 分）：4\n2. 交付质量：好\n3. 沟通与响应：及时\n4. 无", 4),
    ("1. Overall satisfaction (1-5): 5\n2. Quality: fine\n3. Communication: quick", 5),
    ("满意度：3", 3),
    ("总体满意度：非常满意\n交付质量：很好", 5),
    # greetings, signatures and quoted history around it
    ("王经理您好：\n\n本次合作打5分。\n\n华信集团 王经理" + QUOTED, 5),
    ("Hi,\n\nScore: 4. Delivery was on time.\n\nBest regards,\nWang" + OUTLOOK, 4),
    ("确认\n整体满意，4分" + QUOTED, 4),
    ("4", 4),
    # numbers that are something else are not a score
    ("12月5日收到货物，订单号 PO-2026-1205，一切正常。", None),
    ("下午3点5分到货，共 200 套。", None),
    ("2026/3/5 已验收。", None),
    ("请5分钟后给我回电话。", None),
    ("订单 20261205 的发票已收到。", None),
    # unsure: no score, two scores, a 10-point answer, mixed words
    ("收到，谢谢。", None),
    ("", None),
    ("产品打5分，服务打3分。", None),
    ("打8分。", None),
    ("8/10", None),
    ("产品满意，但售后不满意。", None),
    # quoted history alone carries no score
    ("谢谢" + "\n\n> 非常满意\n> 5分", None),
    ("好的" + QUOTED + "满意度：5分", None),
]


def test_the_table_is_large_enough() -> None:
    assert len(CASES) >= 25


@pytest.mark.parametrize(("reply", "expected"), CASES)
def test_score(reply: str, expected: int | None) -> None:
    score = parse(reply)
    assert score.value == expected, (reply, score)
    if expected is None:
        assert score.reason  # why is recorded on the case


def test_the_timeline_says_the_score_or_why_not() -> None:
    assert parse("打4分").text("zh").startswith("满意度：4/5")
    assert parse("4 out of 5").text("en").startswith("satisfaction: 4/5")
    unsure = parse("产品打5分，服务打3分。")
    assert unsure.reason == "several"
    assert unsure.text("zh").startswith("满意度：未能识别评分，回复中有多个不同的评分")
    assert parse("收到").text("zh") == "满意度：未能识别评分，回复中没有评分"


def test_a_huge_reply_is_not_read_for_a_score() -> None:
    from maild.mail.satisfaction import MAX_TEXT, parse

    score = parse("满意度（" * (MAX_TEXT // 4) + "5分")
    assert (score.value, score.reason) == (None, "too_long")
    assert "过长" in score.text("zh")
