"""Confirmations people can trust: realistic replies to 「请确认」 letters, each with the
outcome a careful account manager would give it (confirmed, feedback, unsure).

Every reply goes through real mail bytes and the parser, as it arrives: greetings first,
signatures, quoted history below 「-----原始邮件-----」 / "On … wrote:", Outlook, Foxmail
and QQ Mail quoting, full-width punctuation, HTML-only bodies, attachments.
"""

from __future__ import annotations

import email.policy
import os
import shutil
from email.message import EmailMessage
from pathlib import Path

import pytest
from flows import INQUIRY, SOLUTION, at_step
from sim import Sim
from support import mail

from maild.adapters.letters import Letters
from maild.engine.confirming import UNSURE_LETTER
from maild.engine.definitions import DEFAULT_DIR as DEFAULT_PROCESSES
from maild.mail.intents import Outcome, Reading, is_confirmation, own_words, read_confirmation
from maild.mail.parse import parse_mail

C, F, U = Outcome.CONFIRMED, Outcome.FEEDBACK, Outcome.UNSURE

OUTLOOK_ZH = """

发件人: 马丽 <ma@corp.example.test>
发送时间: 2026年12月1日 10:02
收件人: 王经理 <wang@huaxin.example.cn>
主题: [2026-客-001] 请确认《客户需求确认函》第 1 版

王经理，您好：
请确认以下方案，如需修改请直接回复修改意见。
"""
OUTLOOK_EN = """

From: Ma Li <ma@corp.example.test>
Sent: Tuesday, December 1, 2026 10:02 AM
To: Alice Chen <alice@huaxin.example.cn>
Subject: [2026-客-001] Please confirm the solution (v1)

Dear Alice,
Please confirm the solution below, or tell us what to change.
"""
FOXMAIL = """

------------------ 原始邮件 ------------------
发件人: "马丽"<ma@corp.example.test>;
发送时间: 2026年12月1日(星期二) 上午10:02
收件人: "王经理"<wang@huaxin.example.cn>;
主题: [2026-客-001] 请确认《客户需求确认函》第 1 版

请确认方案；如有修改意见，请直接回复。但是交期可以商量。
"""
QQMAIL = """


------------------&nbsp;原始邮件&nbsp;------------------
发件人: "示例科技"<service@example.test>;
发送时间:&nbsp;2026年12月1日(星期二) 上午10:02
主题:&nbsp;[2026-客-001] 请确认

您好，请确认方案，有问题请提出修改意见？
""".replace("&nbsp;", "\xa0")
GMAIL = """

On Tue, Dec 1, 2026 at 10:02 AM Ma Li <ma@corp.example.test> wrote:
> Please confirm the solution, or tell us what you would change.
> Are there any questions?
"""
GMAIL_ZH = """

马丽 <ma@corp.example.test> 于2026年12月1日周二 10:02写道：
> 请确认方案。如需修改，请回复修改意见。
"""
SIGNATURE_ZH = """

谢谢！
王建国
华信集团 采购部 经理
电话：010-8888 6666  手机：139 0000 0000
地址：北京市海淀区中关村大街 1 号
"""
SIGNATURE_EN = """

Best regards,
Alice Chen
Procurement Manager | Huaxin Group Co., Ltd.
Tel: +86 10 8888 6666
"""
DASHDASH = "\n\n-- \nAlice Chen\nHuaxin Group\n"
IPHONE = "\n\n发自我的iPhone\n"

# (id, body, attachment names, expected)
REPLIES: list[tuple[str, str, tuple[str, ...], Outcome]] = [
    # -- the four --------------------------------------------------------------------
    ("ok-but-changes", "OK, but we need changes" + GMAIL, (), F),
    ("agree-but-earlier", "同意，但是交期需要提前" + OUTLOOK_ZH, (), F),
    ("file-with-comments", "见附件。" + FOXMAIL, ("客户需求确认函-修改意见.docx",), F),
    ("hi-then-confirmed", "Hi Wang Fang,\n\nConfirmed, thank you." + OUTLOOK_EN, (), C),
    # -- clear confirmations, greeting first, signature after ---------------------------------
    ("zh-plain", "确认。" + OUTLOOK_ZH, (), C),
    ("zh-greeting-line",
     "马经理，您好：\n\n方案确认无误，请按此方案执行。" + SIGNATURE_ZH + FOXMAIL, (), C),
    ("zh-greeting-inline", "您好，方案没有问题，同意。" + SIGNATURE_ZH, (), C),
    ("zh-respected",
     "尊敬的马丽女士：\n\n我司同意贵司提交的第 1 版方案。\n\n此致\n敬礼！\n王建国", (), C),
    ("zh-no-objection",
     "马经理好！\n经内部评审，对方案无异议，请安排后续合同事宜。" + QQMAIL, (), C),
    ("zh-no-changes", "王经理：\n方案无需修改，可以按这个版本推进。" + GMAIL_ZH, (), C),
    ("zh-fullwidth", "马经理：\n\n　　确认！就按这个方案来办，谢谢！" + IPHONE, (), C),
    ("zh-confirmed-later-line",
     "马经理您好：\n\n邮件已阅。\n经与技术部门沟通，我方确认此方案。\n\n谢谢" + FOXMAIL, (), C),
    ("zh-no-problem", "没问题" + IPHONE + QQMAIL, (), C),
    ("zh-signed-text", "确认函已签字盖章，扫描件见附件。" + SIGNATURE_ZH,
     ("客户需求确认函-签字版.pdf",), C),
    ("zh-accept", "各位好，\n我司接受该方案及报价。" + SIGNATURE_ZH, (), C),
    ("zh-qq-ok-only", "好的" + QQMAIL, (), C),
    ("zh-contact-if-problem", "确认，如有问题再联系。" + SIGNATURE_ZH, (), C),
    ("en-confirm-whole-text", "Dear Ms. Ma,\n\nWe have reviewed the proposal with our engineers.\n"
     "We confirm the solution v1.\n" + SIGNATURE_EN + OUTLOOK_EN, (), C),
    ("en-happy-to-confirm", "Hello Ma Li,\n\nWe are happy to confirm the order.\n" + SIGNATURE_EN,
     (), C),
    ("en-agreed", "Agreed." + DASHDASH + GMAIL, (), C),
    ("en-approved", "Good morning,\n\nApproved on our side, please go ahead.\n\nThanks,\nAlice",
     (), C),
    ("en-looks-good", "Hi Ma,\nLooks good to us. No further changes.\n\nCheers,\nBob" + GMAIL,
     (), C),
    ("en-ok-alone", "OK\n\nSent from my iPhone\n" + OUTLOOK_EN, (), C),
    ("zh-settled", "行，就这么定了。" + IPHONE, (), C),
    # -- a supplier confirming an order (the supplier process's order step) ------------------
    ("supplier-order-schedule", "确认订单。排期：12-05 原材料到货，12-18 发货。" + SIGNATURE_ZH,
     (), C),
    ("supplier-order-en", "Dear Mr. Wu,\n\nWe would like to confirm your PO 2026-采-001.\n"
     "Shipment is planned for Dec 18." + SIGNATURE_EN + OUTLOOK_EN, (), C),
    ("supplier-signed-po", "附件为签字确认的订单，请查收。" + FOXMAIL,
     ("PO-2026-采-001.pdf",), C),
    ("supplier-confirm-ask", "Confirmed. When can you send the drawings?" + SIGNATURE_EN, (), F),
    ("supplier-partial", "500 件可以接受，但交货日期只能到 12-25。" + SIGNATURE_ZH, (), F),
    ("supplier-receipt", "确认收到订单，我们尽快安排排期后回复。" + SIGNATURE_ZH, (), F),
    ("en-no-questions", "Confirmed - no questions from our side." + SIGNATURE_EN, (), C),
    ("en-let-us-know", "Confirmed. Let us know if you need anything else from us." + SIGNATURE_EN,
     (), C),
    ("mixed-lang", "Hi 马经理，\n\n方案 confirmed，谢谢！\nAlice" + OUTLOOK_ZH, (), C),
    # -- attachments ------------------------------------------------------------------------
    ("file-signed-no-text", "", ("客户需求确认函（已签字）.pdf",), C),
    ("file-signed-en", "Please find attached." + SIGNATURE_EN, ("Confirmation_v1_signed.pdf",), C),
    ("file-stamped", "请查收。" + SIGNATURE_ZH, ("需求确认函_盖章.jpg",), C),
    ("file-unsigned-letter", "请查收" + SIGNATURE_ZH, ("客户需求确认函.pdf",), U),
    ("file-only-image", "", ("IMG_20261201_101500.jpg",), U),
    ("file-signed-but-text-change", "已签字，但是第 3 条要改一下。", ("确认函-签字.pdf",), F),
    ("file-redline", "Please see our comments attached.", ("Solution_v1_redline.docx",), F),
    ("file-revised", "请看附件。", ("确认函_修订版.docx",), F),
    # -- hedges and change requests: feedback ---------------------------------------------
    ("zh-buguo", "方案基本可以，不过希望把交付改成一次交齐。" + SIGNATURE_ZH + OUTLOOK_ZH, (), F),
    ("zh-xiugai", "王经理您好：\n\n附件是我们的修改意见，请查收。" + SIGNATURE_ZH, (), F),
    ("zh-tiaozheng", "确认方案，数量调整为 300 套。" + FOXMAIL, (), F),
    ("zh-keshi", "同意，可是价格还需要再谈。", (), F),
    ("zh-chule", "除了交付时间，其他都同意。" + QQMAIL, (), F),
    ("zh-jianyi", "整体没问题，建议增加一路 CAN 接口。" + SIGNATURE_ZH, (), F),
    ("zh-question-fullwidth", "马经理：\n\n交期能否提前到 1 月 10 日？" + SIGNATURE_ZH, (), F),
    ("zh-question-ma", "这个价格含税吗" + IPHONE, (), F),
    ("en-however", "Dear Ma Li,\n\nWe confirm the order, however delivery must be by March 1."
     + SIGNATURE_EN, (), F),
    ("en-except", "All agreed except the payment terms." + SIGNATURE_EN, (), F),
    ("en-change-request", "Hi,\n\nCould you change the connector to M12?\n\nThanks,\nBob", (), F),
    ("en-question", "Looks fine. What is the lead time?" + GMAIL, (), F),
    ("en-please-update", "Please update the quantity to 250 pcs and resend." + SIGNATURE_EN,
     (), F),
    ("en-subject-to", "Approved subject to final price review." + SIGNATURE_EN, (), F),
    # -- refusals and "not yet": feedback -------------------------------------------------
    ("zh-disagree", "不同意此方案，价格太高。" + SIGNATURE_ZH, (), F),
    ("zh-internal-later", "您好：\n我们内部确认后再回复您。" + SIGNATURE_ZH, (), F),
    ("zh-cannot-confirm", "目前还无法确认，需要领导审批。" + OUTLOOK_ZH, (), F),
    ("zh-ask-us", "请确认交期是否可以保证。", (), F),
    ("en-dont-agree", "I don't agree with the price." + SIGNATURE_EN, (), F),
    ("en-will-confirm", "Thanks, we will review it internally and confirm next week."
     + SIGNATURE_EN + OUTLOOK_EN, (), F),
    ("en-not-yet", "Not approved yet, still with our finance team." + GMAIL, (), F),
    ("zh-no-yes", "您好，我们的工程师下周二到贵司现场。" + SIGNATURE_ZH, (), F),
    # -- only a person can tell: unsure ------------------------------------------------------
    ("zh-bare-received", "收到" + IPHONE + OUTLOOK_ZH, (), U),
    ("zh-received-thanks", "收到，谢谢！" + SIGNATURE_ZH, (), U),
    ("en-ok-then-more", "OK\nOur team will look at the board layout tomorrow." + SIGNATURE_EN,
     (), U),
    ("zh-ok-then-more", "好的，我转给技术部的同事看看。" + SIGNATURE_ZH, (), U),
    ("en-noted", "Noted, thanks." + GMAIL, (), U),
    ("empty", "" + OUTLOOK_ZH, (), U),
    ("zh-known", "知道了" + QQMAIL, (), U),
    # -- the traps: negation with an adverb, "would like to confirm" a question, full width ---
    ("zh-not-quite", "王经理：\n我们不太同意这个方案。" + SIGNATURE_ZH, (), F),
    ("zh-not-fully", "不完全同意，细节见下次会议。", (), F),
    ("zh-in-principle", "原则上同意，细节再沟通。" + QQMAIL, (), F),
    ("en-not-sure", "Not sure we can agree to this yet." + SIGNATURE_EN, (), F),
    ("en-like-to-confirm-details", "Dear Ma Li,\n\nI would like to confirm a few details first:\n"
     "1. lead time\n2. packaging" + SIGNATURE_EN, (), F),
    ("en-pending-legal", "Agreed, pending legal review." + SIGNATURE_EN, (), F),
    ("en-could-you", "Could you send the contract for signature" + SIGNATURE_EN, (), F),
    ("zh-fullwidth-ok", "ＯＫ！" + IPHONE, (), C),
    ("zh-ok-le", "方案OK了，谢谢" + QQMAIL, (), C),
    ("zh-mixed-no-space", "方案confirmed，谢谢。" + OUTLOOK_ZH, (), C),
    ("zh-disclaimer", "确认。" + SIGNATURE_ZH
     + "\n本邮件及其附件含有保密信息，包括但不限于商业秘密。"
       "如果您错误收到本邮件，请立即删除。\n", (), C),
    ("en-disclaimer", "Confirmed.\n\nThis email and any attachments are confidential. If you "
     "are not the intended recipient, however, please delete it and notify the sender.", (), C),
    ("en-change-last-line", "Confirmed.\nBut please change the delivery address."
     + SIGNATURE_EN, (), F),
    ("en-signature-details", "Confirmed.\nPlease ship to the address below.\n\nAlice Chen\n"
     "alice@huaxin.example.cn\nwww.huaxin.example.cn\n+86 138 0000 0000", (), C),
    ("en-mail-for-windows", "Approved.\n\nSent from Mail for Windows\n" + OUTLOOK_EN, (), C),
    # -- the quoted history and the signature never decide --------------------------------
    ("quote-has-confirm", "我们再讨论一下。" + "\n\n> 确认\n> 同意\n", (), F),
    ("quote-has-change", "同意。" + FOXMAIL, (), C),
    ("signature-has-question", "确认。\n\n王建国\n华信集团 采购部\n电话：010-8888 6666?", (), C),
]


def _raw(body: str, files: tuple[str, ...], html: bool) -> bytes:
    if not html:
        return mail("王经理 <wang@huaxin.example.cn>", "Re: [2026-客-001] 请确认", body,
                    attachments=tuple((n, b"%PDF-1.4 x") for n in files))
    m = EmailMessage()
    m["From"] = "王经理 <wang@huaxin.example.cn>"
    m["To"] = "service@example.test"
    m["Subject"] = "Re: [2026-客-001] 请确认"
    m["Message-ID"] = "<html-reply@huaxin.example.cn>"
    paragraphs = "".join(f"<p>{line}</p>" if line else "<p><br></p>"
                         for line in body.split("\n"))
    m.set_content(f"<html><body>{paragraphs}</body></html>", subtype="html")
    for name in files:
        m.add_attachment(b"%PDF-1.4 x", maintype="application", subtype="pdf", filename=name)
    return m.as_bytes(policy=email.policy.SMTP)


def test_the_table_is_big_and_varied() -> None:
    assert len(REPLIES) >= 60
    assert len({r[0] for r in REPLIES}) == len(REPLIES)
    counts = {o: sum(1 for r in REPLIES if r[3] is o) for o in Outcome}
    assert min(counts.values()) >= 8, counts


@pytest.mark.parametrize(("name", "body", "files", "expected"), REPLIES,
                         ids=[r[0] for r in REPLIES])
def test_reply(name: str, body: str, files: tuple[str, ...], expected: Outcome) -> None:
    reading = read_confirmation(parse_mail(_raw(body, files, html=False)))
    assert reading.outcome is expected, (reading, own_words(body))
    assert is_confirmation(parse_mail(_raw(body, files, html=False))) is (expected is C)
    assert reading.reason("zh") and reading.reason("en")


# the same replies as Outlook and QQ Mail send them without a text part: HTML only
HTML_ONES = ["hi-then-confirmed", "zh-greeting-line", "agree-but-earlier", "zh-bare-received",
             "en-however", "file-with-comments", "zh-no-objection", "en-ok-then-more"]


@pytest.mark.parametrize("name", HTML_ONES)
def test_html_only_reply(name: str) -> None:
    _, body, files, expected = next(r for r in REPLIES if r[0] == name)
    reading = read_confirmation(parse_mail(_raw(body, files, html=True)))
    assert reading.outcome is expected, reading


def test_reasons_name_what_decided() -> None:
    read = {r[0]: read_confirmation(parse_mail(_raw(r[1], r[2], html=False))) for r in REPLIES}
    assert read["agree-but-earlier"].evidence == "但是交期需要提前"
    assert "但是交期需要提前" in read["agree-but-earlier"].reason("zh")
    assert read["file-with-comments"].why == "change_file"
    assert "客户需求确认函-修改意见.docx" in read["file-with-comments"].reason("en")
    assert read["hi-then-confirmed"] == Reading(C, "yes", "Confirmed")
    assert read["zh-bare-received"] == Reading(U, "ack", "收到")
    assert read["en-ok-then-more"].why == "weak_more"
    assert read["file-unsigned-letter"] == Reading(U, "file_only", "客户需求确认函.pdf")
    assert read["zh-question-ma"].why == "question"
    assert read["zh-question-fullwidth"].why == "change"  # 提前: a change asked as a question
    assert read["zh-internal-later"].why == "not_yet"


def test_own_words_skip_greeting_quote_and_signature() -> None:
    body = "马经理，您好：\n\n方案确认无误，请按此方案执行。" + SIGNATURE_ZH + FOXMAIL
    assert own_words(body) == "方案确认无误,请按此方案执行。"  # NFKC: full-width ， is ,
    assert own_words("Hi Wang Fang,\n\nConfirmed, thank you." + OUTLOOK_EN) \
        == "Confirmed, thank you."
    assert own_words("Dear Alice,\nGood morning!\nAgreed." + SIGNATURE_EN) == "Agreed."
    assert own_words("确认" + IPHONE + "王建国") == "确认"
    assert own_words("") == ""


def test_hostile_input_gets_an_answer() -> None:
    for text in ("\x00\x01确认\u202e", "确认" * 50_000, "?" * 10_000, " \n" * 10_000,
                 "Hi" + " " * 10_000 + ",", "谢谢\n" * 1000):
        reading = read_confirmation(parse_mail(_raw(text, (), html=False)))
        assert isinstance(reading.outcome, Outcome)
    long = read_confirmation(parse_mail(_raw("确认。" + "细节说明。" * 5000, (), html=False)))
    assert long.outcome is U and long.why == "long"


# -- the letter that asks the account manager ---------------------------------------------------

GOLDEN = Path(__file__).resolve().parents[1] / "golden"
letters = Letters()


@pytest.mark.parametrize("language", ["zh", "en"])
def test_confirm_unsure_letter_matches_its_golden(language: str) -> None:
    """Regenerate deliberately: ``MAILD_REGEN_GOLDEN=1 scripts/test -k golden``."""
    r = letters.render(UNSURE_LETTER, language, letters.sample(UNSURE_LETTER))
    for path, text in ((GOLDEN / f"{UNSURE_LETTER}.{language}.txt",
                        f"Subject: {r.subject}\n\n{r.text}"),
                       (GOLDEN / f"{UNSURE_LETTER}.{language}.html", r.html)):
        if os.environ.get("MAILD_REGEN_GOLDEN") == "1" or not path.exists():
            path.write_text(text, encoding="utf-8")
        assert text == path.read_text(encoding="utf-8"), f"{path.name} differs from its golden"


@pytest.mark.parametrize(("process", "step", "party", "on_behalf"), [
    ("customer", "solution", "wang@huaxin.example.cn", ""),  # #advance waits for the yes
    ("customer", "aftersales", "wang@huaxin.example.cn", "#advance"),
    ("supplier", "order", "sales@hengda.example.cn", ""),
])
def test_unsure_letter_has_exactly_the_sample_keys(process: str, step: str, party: str,
                                                   on_behalf: str) -> None:
    s, number = at_step(process, step)
    mark = len(s.sent)
    s.reply(number, party, "收到")
    assert s.case(number).step == step
    [sent] = [x for x in s.sent[mark:] if x.letter == UNSURE_LETTER]
    assert set(sent.context) == set(letters.sample(UNSURE_LETTER))
    assert sent.to == (s.case(number).data["contact"],)
    assert sent.context["confirm_with"] == on_behalf
    assert sent.context["message"] == "收到"
    assert "reply_notice" not in [x.letter for x in s.sent[mark:]]


def test_a_definition_with_confirm_lets_the_contact_confirm_for_the_customer(
        tmp_path: Path) -> None:
    procs = tmp_path / "processes"
    shutil.copytree(DEFAULT_PROCESSES, procs)
    customer = procs / "customer.toml"
    text = customer.read_text(encoding="utf-8")
    solution = 'revise = ["contact"]\nadvance = ["contact"]'
    assert text.count(solution) == 1
    customer.write_text(text.replace(solution, 'revise = ["contact"]\nconfirm = ["contact"]\n'
                                               'advance = ["contact"]'), encoding="utf-8")
    s = Sim(f'[processes]\ndir = "{procs}"\n')
    s.send("王经理 <wang@huaxin.example.cn>", "定制工控主板询价", INQUIRY)
    number = s.only_case()
    s.reply(number, "ma@corp.example.test", SOLUTION)
    mark = len(s.sent)
    s.reply(number, "wang@huaxin.example.cn", "收到，我们看一下")
    [asked] = [x for x in s.sent[mark:] if x.letter == UNSURE_LETTER]
    assert asked.context["confirm_with"] == "#confirm"
    assert "第一行写 #confirm，即代对方确认" in asked.rendered.text
    s.reply(number, "ma@corp.example.test", "#confirm\n客户电话确认")
    assert s.case(number).step == "contract"
