"""Generated documents (DOCX from ``maild/data/templates/documents/``) and the blank form on
request (``#form``, a subject asking for the 申请表): what the documents hold, the admin's
templates, broken templates refused at start-up and by ``config check``, and which mails are
requests for the form."""

from __future__ import annotations

import argparse
import io
import zipfile
from datetime import UTC, datetime
from pathlib import Path

import pytest
from docx import Document
from support import mail, make_config

from maild.adapters.documents import DOCX, Documents, docx_bytes
from maild.adapters.letters import Letters
from maild.classify.formrequest import FORM, form_request
from maild.classify.rules import Known
from maild.cli.check import check
from maild.cli.exits import EXIT_CONFIG
from maild.config import ConfigError
from maild.engine.effects import OpenCase, SendLetter
from maild.mail.forms import REQUEST_FORM, parse_form
from maild.mail.parse import parse_mail
from maild.site import Site

NOW = datetime(2026, 12, 2, 2, 0, tzinfo=UTC)
LETTERS = Letters()
FIELDS = [f.name for f in REQUEST_FORM.fields if f.required]


def _doc(data: bytes) -> tuple[dict[str, str], list[str]]:
    doc = Document(io.BytesIO(data))
    cells = {r.cells[0].text: r.cells[1].text for t in doc.tables for r in t.rows}
    return cells, [p.text for p in doc.paragraphs]


def _sample(letter: str) -> dict[str, object]:
    return {**LETTERS.sample(letter), "number": "2026-客-007"}


@pytest.mark.parametrize("lang", ["zh", "en"])
def test_each_document_opens_and_holds_its_fields(lang: str) -> None:
    docs = Documents()
    confirmation = docs.build("customer_confirmation", lang, _sample("customer_confirmation"))
    cells, paragraphs = _doc(confirmation.data)
    assert confirmation.content_type == DOCX and confirmation.size == len(confirmation.data)
    assert "华信集团" in cells.values() and "2026-客-007" in cells.values()
    assert any("两路 RS-485 接口" in p for p in paragraphs)  # each requirement
    assert any("X86 工控主板 K7" in p for p in paragraphs)  # the solution

    order = docs.build("purchase_order", lang, _sample("purchase_order"))
    cells, _ = _doc(order.data)
    for f in LETTERS.sample("purchase_order")["order"]:  # type: ignore[attr-defined]
        assert cells[f["name"]] == f["value"]

    notice = docs.build("acceptance_notice", lang, _sample("acceptance_notice"))
    cells, _ = _doc(notice.data)
    assert "恒达材料" in cells.values()

    form = docs.build("form", lang, _sample("request_form"))
    cells, _ = _doc(form.data)
    assert {k: v for k, v in cells.items() if k in FIELDS} == dict.fromkeys(FIELDS, "")
    assert list(cells)[: len(FIELDS)] == FIELDS


def test_file_names_come_from_the_heading_and_the_case_number() -> None:
    docs = Documents()
    assert docs.build("customer_confirmation", "zh", _sample("customer_confirmation")).name \
        == "客户需求确认函-2026-客-007.docx"
    assert docs.build("purchase_order", "en", _sample("purchase_order")).name \
        == "Purchase Order-2026-客-007.docx"
    assert docs.build("form", "zh", {**_sample("request_form"), "number": ""}).name \
        == "跨部门沟通需求申请表.docx"
    odd = docs.build("acceptance_notice", "zh", {**_sample("acceptance_notice"),
                                                 "number": "a/b\\c:d"})
    assert "/" not in odd.name and "\\" not in odd.name and ":" not in odd.name


def test_every_style_names_a_chinese_font_and_no_theme_font() -> None:
    data, title = docx_bytes("# 标题\n字段：值\n正文")
    assert title == "标题"
    styles = zipfile.ZipFile(io.BytesIO(data)).read("word/styles.xml").decode("utf-8")
    assert 'w:eastAsia="宋体"' in styles
    assert "eastAsiaTheme" not in styles and "asciiTheme" not in styles
    doc = Document(io.BytesIO(data))
    assert doc.styles["Normal"].font.name == "SimSun"
    assert doc.core_properties.title == "标题"


def test_lines_become_headings_table_rows_and_paragraphs() -> None:
    text = ("# 主标题\n\n甲方：华信集团\n日期：\nKey: value\n\n## 小节\n"
            "见 https://example.test/a:b\n一段正文，没有冒号\n\n乙：二\n")
    doc = Document(io.BytesIO(docx_bytes(text)[0]))
    tables = [[(r.cells[0].text, r.cells[1].text) for r in t.rows] for t in doc.tables]
    assert tables == [[("甲方", "华信集团"), ("日期", ""), ("Key", "value")], [("乙", "二")]]
    assert [(p.style.name, p.text) for p in doc.paragraphs] == [
        ("Heading 1", "主标题"), ("Heading 2", "小节"),
        ("Normal", "见 https://example.test/a:b"), ("Normal", "一段正文，没有冒号")]


def test_only_the_configured_letters_carry_their_document() -> None:
    letter = SendLetter("purchase_order", ("sales@hengda.example.cn",),
                        LETTERS.sample("purchase_order"), "zh")
    context = _sample("purchase_order")
    out, remark = Documents().for_letter(letter, context)
    assert [f.name for f in out.files] == ["采购订单-2026-客-007.docx"] and remark == ""
    out, _ = Documents(attach=("customer_confirmation",)).for_letter(letter, context)
    assert out.files == ()
    out, _ = Documents(attach=()).for_letter(letter, context)
    assert out.files == ()
    other = SendLetter("ack", ("a@b.example",), {}, "zh")
    assert Documents().for_letter(other, {})[0] is other


def test_a_document_that_cannot_be_made_leaves_the_letter_without_it() -> None:
    letter = SendLetter("purchase_order", ("sales@hengda.example.cn",), {}, "zh")
    out, remark = Documents().for_letter(letter, {"number": "2026-供-001"})  # no fields
    assert out.files == ()
    assert "purchase_order" in remark and "未能生成" in remark


def _admin_templates(tmp_path: Path, text: str) -> Path:
    folder = tmp_path / "documents"
    folder.mkdir()
    (folder / "customer_confirmation.zh.j2").write_text(text, encoding="utf-8")
    return folder


def test_an_admin_template_is_used_and_the_rest_stay_built_in(tmp_path: Path) -> None:
    _admin_templates(tmp_path, "# 需求确认单\n\n客户名称：{{ party }}\n盖章处：\n")
    cfg = make_config(tmp_path, '[documents]\ntemplates = "documents"\n')
    site = Site.build(cfg)
    assert site.documents is not None
    made = site.documents.build("customer_confirmation", "zh", _sample("customer_confirmation"))
    assert made.name == "需求确认单-2026-客-007.docx"
    assert _doc(made.data)[0] == {"客户名称": "华信集团", "盖章处": ""}
    # English and the other documents: the built-in templates
    assert site.documents.build("customer_confirmation", "en",
                                _sample("customer_confirmation")).name.startswith("Customer")
    assert site.documents.build("purchase_order", "zh", _sample("purchase_order")).name \
        .startswith("采购订单")


@pytest.mark.parametrize("text, said", [
    ("# 确认函\n{{ party }", "customer_confirmation.zh.j2"),  # a syntax error
    ("# 确认函\n{{ no_such_field }}\n", "no_such_field"),  # a variable letters lack
])
def test_a_broken_template_is_a_configuration_error(tmp_path: Path, text: str,
                                                    said: str, capsys: pytest.CaptureFixture[str]
                                                    ) -> None:
    _admin_templates(tmp_path, text)
    extra = '[documents]\ntemplates = "documents"\n'
    cfg = make_config(tmp_path, extra)
    with pytest.raises(ConfigError, match=said):
        Site.build(cfg)
    toml = tmp_path / "maild.toml"
    from support import DIRECTORY_TOML, with_security
    toml.write_text(with_security(DIRECTORY_TOML + extra), encoding="utf-8")
    assert check(argparse.Namespace(config=str(toml))) == EXIT_CONFIG
    err = capsys.readouterr().err
    assert "[documents]" in err and said in err


def test_a_broken_template_of_a_document_not_attached_is_not_checked(tmp_path: Path) -> None:
    _admin_templates(tmp_path, "{{ broken")
    cfg = make_config(tmp_path, '[documents]\ntemplates = "documents"\n'
                      'attach = ["purchase_order"]\n')
    assert Site.build(cfg).documents is not None


def test_a_missing_template_folder_is_a_configuration_error(tmp_path: Path) -> None:
    cfg = make_config(tmp_path, '[documents]\ntemplates = "nowhere"\n')
    with pytest.raises(ConfigError, match="nowhere"):
        Site.build(cfg)


def test_an_unknown_document_name_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError):
        make_config(tmp_path, '[documents]\nattach = ["invoice"]\n')


# -- the blank form on request ----------------------------------------------------------


@pytest.mark.parametrize("subject, body, language", [
    ("申请表", "您好", "zh"),
    ("请发申请表模板", "如题", "zh"),
    ("麻烦发一份空白的《跨部门沟通需求申请表》，谢谢！", "", "zh"),
    ("Re: 申请表模板", "", "zh"),
    ("[紧急] 请提供申请表", "", "zh"),
    ("request form", "", "en"),
    ("Please send me the request form template", "", "en"),
    ("Form template?", "", "en"),
    ("随便什么主题", "您好\n#form\n谢谢", ""),
    ("随便什么主题", "#申请表模板", "zh"),
    ("新需求", "＃申请表", "zh"),
])
def test_requests_for_the_form(subject: str, body: str, language: str) -> None:
    asked = form_request(parse_mail(mail("li@corp.example.test", subject, body or "您好")))
    assert asked is not None and asked[1] == language


@pytest.mark.parametrize("subject, body", [
    ("关于申请表的问题", "紧急程度怎么填？"),
    ("申请表填写问题", "您好"),
    ("【申请表】新品推广会技术支持", "您好"),  # a tagged request, not a request for the form
    ("Question about the request form", "Hi"),
    ("purchase request form", "Hi"),
    ("新品推广技术支持", "我们需要一个申请表之外的流程"),
    ("表单", "#formula 不是命令"),
    ("申请表", "沟通目标：推广会讲解\n核心内容：宽温设计"),  # a filled-in form is a request
    ("Re: 推广会", "> #form\n> 引用的内容"),  # a quoted command is not the sender's
])
def test_not_requests_for_the_form(subject: str, body: str) -> None:
    assert form_request(parse_mail(mail("li@corp.example.test", subject, body))) is None


def _decide(tmp_path: Path, sender: str, subject: str, body: str = "您好"):  # type: ignore[no-untyped-def]
    site = Site.build(make_config(tmp_path))
    m = parse_mail(mail(sender, subject, body))
    cls = site.classify(m, Known())
    return cls, site.decide(m, cls, None, NOW)


def test_staff_get_the_form_as_one_letter_and_no_case(tmp_path: Path) -> None:
    cls, decision = _decide(tmp_path, "李娜 <li@corp.example.test>", "请发申请表模板")
    assert cls.process == FORM and cls.route == "form (sent, no case)"
    assert [h.rule for h in cls.hits if h.outcome == "hit" and h.stage == "route"] == [
        "form_request"]
    assert not any(isinstance(e, OpenCase) for e in decision.effects)
    [letter] = decision.letters()
    assert (letter.letter, letter.to, letter.language, letter.automatic) == (
        "request_form", ("li@corp.example.test",), "zh", True)
    assert [f["name"] for f in letter.context["fields"]] == FIELDS
    assert "form sent" in decision.summary


def test_a_staff_domain_address_gets_it_in_english_when_asked_in_english(tmp_path: Path
                                                                         ) -> None:
    cls, decision = _decide(tmp_path, "new.hire@corp.example.test", "Request form please")
    assert cls.process == FORM
    assert decision.letters()[0].language == "en"


@pytest.mark.parametrize("sender", ["buyer@huaxin.example.cn", "stranger@elsewhere.example"])
def test_outsiders_asking_for_the_form_are_handled_as_before(tmp_path: Path,
                                                             sender: str) -> None:
    cls, decision = _decide(tmp_path, sender, "请发申请表模板")
    assert cls.process == "customer"
    assert any(isinstance(e, OpenCase) for e in decision.effects)


def test_the_form_letter_filled_in_makes_a_complete_request() -> None:
    context = LETTERS.sample("request_form")
    text = LETTERS.render("request_form", "zh", context).text
    lines = [ln for ln in text.splitlines() if ln.rstrip("：") in FIELDS and ln.endswith("：")]
    assert [ln.rstrip("：") for ln in lines] == FIELDS
    filled = "\n".join(f"{ln}示例" for ln in lines)
    assert parse_form(filled, REQUEST_FORM).complete


def test_the_form_command_on_a_request_with_a_suppress_header_sends_nothing(
        tmp_path: Path) -> None:
    site = Site.build(make_config(tmp_path))
    m = parse_mail(mail("li@corp.example.test", "申请表", "您好",
                        X_Auto_Response_Suppress="All"))
    cls = site.classify(m, Known())
    decision = site.decide(m, cls, None, NOW)
    assert decision.letters() == () and "no automatic reply" in decision.summary


def test_characters_xml_cannot_hold_do_not_stop_the_document() -> None:
    context = {**_sample("customer_confirmation"), "solution": "方案\x00\x0b要点\ud800完"}
    made = Documents().build("customer_confirmation", "zh", context)
    assert any("方案" in p and "完" in p for p in _doc(made.data)[1])


def test_a_letters_folder_without_the_form_letter_is_refused(tmp_path: Path) -> None:
    import shutil

    from maild.data import templates_dir

    letters = tmp_path / "letters"
    shutil.copytree(templates_dir(), letters)
    for p in letters.glob("request_form.*"):
        p.unlink()
    with pytest.raises(ConfigError, match="request_form"):
        Site.build(make_config(tmp_path, '[letters]\ntemplates = "letters"\n'))


def test_a_template_failing_on_the_sample_is_reported_not_raised(tmp_path: Path) -> None:
    _admin_templates(tmp_path, "# 确认函\n{{ version + '版' }}\n")  # int + str: TypeError
    with pytest.raises(ConfigError, match="TypeError"):
        Site.build(make_config(tmp_path, '[documents]\ntemplates = "documents"\n'))


def test_the_form_letter_sample_holds_exactly_what_the_code_provides(tmp_path: Path) -> None:
    _, decision = _decide(tmp_path, "li@corp.example.test", "申请表")
    [letter] = decision.letters()
    assert {*letter.context, "number"} == set(LETTERS.sample("request_form"))
    for lang in ("zh", "en"):  # and it renders, with the number the store adds
        LETTERS.render("request_form", lang, {**letter.context, "number": ""})
