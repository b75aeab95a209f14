"""The blank request form and the generated documents on the real stack: ``maild run
--once`` against Dovecot and the SMTP sink.

``#form`` and a subject asking for the 申请表 bring a member of staff the blank form as
text and as a Word document, and nothing else: no case, no number drawn. An outsider asking
the same opens a case as any mail of theirs would. The confirmation letter carries the
《客户需求确认函》 generated with the case's fields, and a field-by-field edit of the
admin's own template shows in the next one.
"""

from __future__ import annotations

import io
import json
from email.message import EmailMessage
from pathlib import Path

import pytest
from docx import Document
from servers import DovecotServer, SmtpSink
from support import mail
from test_processes_e2e import Site, body_of, reply

pytestmark = pytest.mark.slow
DOCX = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
FIELDS = ("发起部门/人", "接收部门/人", "沟通目标", "核心内容", "需协助事项", "期望完成时间",
          "紧急程度")


@pytest.fixture
def site(tmp_path: Path, dovecot: DovecotServer, smtp_sink: SmtpSink) -> Site:
    return Site(tmp_path, dovecot, smtp_sink)


def _documents(m: EmailMessage) -> dict[str, bytes]:
    return {str(a.get_filename()): a.get_content() for a in m.iter_attachments()
            if a.get_content_type() == DOCX}


def _cells(data: bytes) -> dict[str, str]:
    doc = Document(io.BytesIO(data))
    return {row.cells[0].text: row.cells[1].text for t in doc.tables for row in t.rows}


def _texts(data: bytes) -> list[str]:
    return [p.text for p in Document(io.BytesIO(data)).paragraphs]


def test_form_command_and_subject_send_the_blank_form_without_a_case(site: Site) -> None:
    d = site
    d.deliver(mail("王芳 <wang@corp.example.test>", "表格", "#form\n谢谢"),
              mail("李娜 <li@corp.example.test>", "请发申请表模板", "如题，谢谢。"))
    assert d.cycle() == [("request_form", ["wang@corp.example.test"]),
                         ("request_form", ["li@corp.example.test"])]
    for addr in ("wang@corp.example.test", "li@corp.example.test"):
        letter = d.letter("跨部门沟通需求申请表", addr)
        text = body_of(letter)
        for f in FIELDS:
            assert f"{f}：" in text
        assert "没有创建任何案件" in text
        assert "X-Maild-Case" not in letter
        (name, data), = _documents(letter).items()
        assert name == "跨部门沟通需求申请表.docx"
        assert _cells(data) == dict.fromkeys(FIELDS, "")  # blank, the fields maild reads
    assert d.cases() == []
    assert d.db("select count(*) from cases") == [(0,)]
    assert d.db("select count(*) from counters") == [(0,)]  # no number drawn
    rows = d.db("select sender, state, case_id, rules from messages where direction = 'in' "
                "order by id")
    assert [(r[0], r[1], r[2]) for r in rows] == [
        ("wang@corp.example.test", "processed", None), ("li@corp.example.test", "processed",
                                                        None)]
    assert all(json.loads(str(r[3]))["route"] == "form (sent, no case)" for r in rows)

    # the form filled in, as a reply to the form letter, opens a complete request
    form = d.letter("跨部门沟通需求申请表", "wang@corp.example.test")
    d.deliver(reply(form, "王芳 <wang@corp.example.test>",
                    "发起部门/人：市场部/王芳\n接收部门/人：技术部/张伟\n沟通目标：推广会讲解\n"
                    "核心内容：宽温设计\n需协助事项：派工程师\n期望完成时间：2026-12-10\n"
                    "紧急程度：一般\n"))
    sent = d.cycle()
    assert all(letter != "request_form" for letter, _ in sent)
    [case] = d.cases()
    [(department, data)] = d.db("select department, data from cases")
    facts = json.loads(str(data))
    assert department == "技术部" and facts["missing"] == [], facts
    assert facts["form"]["沟通目标"] == "推广会讲解"


def test_explain_says_form_sent(site: Site, tmp_path: Path) -> None:
    eml = tmp_path / "ask.eml"
    eml.write_bytes(mail("王芳 <wang@corp.example.test>", "申请表", "您好"))
    out = json.loads(site.run("explain", "-c", str(site.config), str(eml), "--json").stdout)
    assert "form sent" in out["decision"], out
    assert out["case"] is None or not out["case"].get("number"), out


def test_an_outsider_asking_for_the_form_gets_nothing_special(site: Site) -> None:
    d = site
    d.deliver(mail("客户 <buyer@outside.example.org>", "请发申请表模板", "您好"))
    sent = d.cycle()
    assert ("request_form", ["buyer@outside.example.org"]) not in sent
    assert [letter for letter, _ in sent][0] == "ack"  # a customer case, as before
    assert len(d.cases()) == 1


def test_a_subject_about_the_form_opens_a_case(site: Site) -> None:
    d = site
    d.deliver(mail("王芳 <wang@corp.example.test>", "[技术部] 关于申请表的问题",
                   "申请表里的紧急程度怎么填？"))
    sent = d.cycle()
    assert all(letter != "request_form" for letter, _ in sent)
    assert len(d.cases()) == 1


def test_the_confirmation_letter_carries_the_generated_document(site: Site) -> None:
    d = site
    d.deliver(mail("王经理 <wang@huaxin.example.cn>", "定制工控主板询价",
                   "您好：我司计划采购定制工控主板 200 套，要求宽温。\n华信集团 王经理\n"))
    d.cycle()
    notice = d.letter("新案件", "ma@corp.example.test")
    number = d.cases()[0]["number"]
    d.deliver(reply(notice, "ma@corp.example.test",
                    "#advance\n方案要点：K7 宽温工控主板，板载两路 RS-485。"))
    assert ("customer_confirmation", ["ma@corp.example.test",
                                      "wang@huaxin.example.cn"]) in d.cycle()
    letter = d.letter("客户需求确认函", "wang@huaxin.example.cn")
    (name, data), = _documents(letter).items()
    assert name == f"客户需求确认函-{number}.docx"
    cells = _cells(data)
    assert cells["编号"] == number and cells["项目"] == "定制工控主板询价"
    assert cells["版本"] == "第 1 版"
    assert any("K7 宽温工控主板" in t for t in (*_texts(data), *cells.values()))
    timeline = d.case(str(number))["timeline"]
    assert any("客户需求确认函 → " in str(e["text"]) and name in str(e["text"])
               for e in timeline), timeline
