"""The administrator's tools on SQLite and PostgreSQL: case actions recorded as admin
actions with timers following the status, reprocessing a quarantined mail, opening a case
from triage, the export zip, and backup with restore."""

from __future__ import annotations

import json
import subprocess
import zipfile
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest
from deciding import Deciding
from support import NOW, mail, open_store, pg_database

from maild.adapters.letters import LetterError, Letters
from maild.runners.reprocess import open_from_triage, reprocess
from maild.store import Store
from maild.store.admin import (
    AdminError,
    backup_site,
    case_action,
    export_case,
    find_inbound,
    inbound_rows,
    restore_site,
)
from maild.store.models import Case, Message, Outbox, TimelineEntry, Timer

REQUEST = ("发起部门/人：技术部 李\n接收部门/人：市场部\n沟通目标：讲解\n"
           "核心内容：讲解新品参数\n需协助事项：安排讲师\n期望完成时间：2026-12-10\n"
           "紧急程度：一般\n")
LATER = NOW + timedelta(hours=1)


async def _admin(kind: str, number: str) -> list[tuple[str, str]]:
    return [(t.actor, t.text) for t in await TimelineEntry.filter(case__number=number,
                                                                  kind=kind)]


async def test_close_reopen_note_follow_the_status_as_mail_does(store: Store,
                                                                 tmp_path: Path) -> None:
    d = Deciding(store, tmp_path)
    _, number = await d.feed(mail("li@corp.example.test", "[跨部门] 讲解支持", REQUEST))
    assert number == "2026-市-001"
    # the step's deadline and its early warning
    assert sorted(await Timer.filter(case__number=number, state="pending").values_list(
        "kind", flat=True)) == ["deadline", "warning"]

    done = await case_action(store, d.site, number, "close", "重复的请求", LATER, "alice")
    assert (done.status, done.letters) == ("closed", ("case_closed",))
    case = await Case.get(number=number)
    assert case.status == "closed" and case.closed_at is not None and case.due_at is None
    assert await Timer.filter(case=case, state="pending").count() == 0
    assert await _admin("admin", number) == [("alice", "管理员关闭: 重复的请求")]
    # one letter, as one copy per recipient (each copy's Message-ID carries its reply token)
    copies = await Outbox.filter(case=case, letter="case_closed")
    assert all(len(c.rcpt) == 1 for c in copies)
    assert len({c.rcpt[0] for c in copies}) == len(copies) >= 1
    assert await TimelineEntry.filter(case=case, kind="letter",
                                      text__startswith="案件关闭 → ").count() == 1

    with pytest.raises(AdminError, match="reopen it first"):
        await case_action(store, d.site, number, "close", "", LATER, "alice")

    await case_action(store, d.site, number, "note", "客户来电确认", LATER, "bob")
    reopened = await case_action(store, d.site, number, "reopen", "", LATER, "alice")
    assert reopened.status == "open"
    case = await Case.get(number=number)
    assert case.closed_at is None and case.due_at is not None  # the step's deadline again
    [timer] = await Timer.filter(case=case, state="pending", kind="deadline")
    assert timer.due_at == case.due_at
    assert await Timer.filter(case=case, state="pending", kind="warning").count() == 1
    assert [t for _, t in await _admin("admin", number)][1:] == [
        "客户来电确认", "管理员重新打开"]
    with pytest.raises(AdminError, match="not closed"):
        await case_action(store, d.site, number, "reopen", "", LATER, "alice")


async def test_unknown_case_and_empty_note_are_refused(store: Store, tmp_path: Path) -> None:
    d = Deciding(store, tmp_path)
    with pytest.raises(AdminError, match="no case 2026-市-999"):
        await case_action(store, d.site, "2026-市-999", "close", "", LATER)
    _, number = await d.feed(mail("li@corp.example.test", "[跨部门] 讲解支持", REQUEST))
    with pytest.raises(AdminError, match="needs some text"):
        await case_action(store, d.site, number or "", "note", "", LATER)
    assert await _admin("admin", number or "") == []


async def test_assign_moves_the_step_and_its_deadline(store: Store, tmp_path: Path) -> None:
    d = Deciding(store, tmp_path)
    _, internal = await d.feed(mail("li@corp.example.test", "[跨部门] 讲解支持", REQUEST))
    await case_action(store, d.site, internal or "", "assign", "zhang@corp.example.test",
                      LATER, "alice")
    case = await Case.get(number=internal)
    assert case.owner == ["zhang@corp.example.test"]
    timers = await Timer.filter(case=case, state="pending").order_by("kind")
    assert [t.kind for t in timers] == ["deadline", "warning"]
    assert all(t.data["owner"] == ["zhang@corp.example.test"] for t in timers)
    with pytest.raises(AdminError, match="neither an address nor a department"):
        await case_action(store, d.site, internal or "", "assign", "无此部门", LATER)

    _, customer = await d.feed(mail("王经理 <wang@huaxin.example.cn>", "产品询价"))
    done = await case_action(store, d.site, customer or "", "assign", "技术部", LATER, "alice")
    assert done.letters == ("assigned_notice",)  # the new contact is told, as by #assign
    case = await Case.get(number=customer)
    assert case.data["contact"] == "zhang@corp.example.test"
    assert case.owner == ["zhang@corp.example.test"]
    assert await _admin("admin", customer or "") == [
        ("alice", "管理员指派给 zhang@corp.example.test")]


async def test_a_quarantined_mail_is_decided_again_once_its_cause_is_fixed(
        store: Store, tmp_path: Path) -> None:
    bad = tmp_path / "tpl"
    bad.mkdir()
    (bad / "ack.zh.txt.j2").write_text("Subject: x\n\n{{ no_such_variable }}\n")
    (bad / "ack.zh.html.j2").write_text("<p>x</p>")
    broken = Deciding(store, tmp_path, Letters(bad))
    raw = mail("wang@huaxin.example.cn", "询价", msgid="<q1@huaxin.example.cn>")
    with pytest.raises(LetterError):
        await broken.feed(raw)
    # as the intake quarantines it: never parsed into the row, no Message-ID there
    row = await Message.get(direction="in")
    await store.finish(row, "quarantined", "Quarantine", "cannot store: LetterError")
    with pytest.raises(AdminError, match="cannot be stored"):
        await reprocess(store, broken.site, row, LATER, actor="alice")
    assert (await Message.get(id=row.id)).state == "quarantined"

    good = Deciding(store, tmp_path)
    found = await find_inbound(store, "q1@huaxin.example.cn")
    assert found.id == row.id
    quarantined = await inbound_rows(store, triage_folder="Triage",
                                     quarantine_folder="Quarantine", quarantined=True)
    assert [(r["id"], r["message_id"]) for r in quarantined] == [
        (row.id, "<q1@huaxin.example.cn>")]
    done = await reprocess(store, good.site, found, LATER, actor="alice")
    assert done.case == "2026-客-001" and done.folder == "Quarantine"
    assert done.letters == ("ack",)
    row = await Message.get(id=row.id)
    assert (row.state, row.route, row.reason) == ("processed", "Quarantine", None)
    assert await Case.filter(messages__id=row.id).count() == 1
    [(actor, text)] = await _admin("admin", "2026-客-001")
    assert actor == "alice" and text.startswith("管理员重新处理（原为已隔离: cannot store")
    with pytest.raises(AdminError, match="already filed on 2026-客-001"):
        await reprocess(store, good.site, row, LATER)
    assert await Case.all().count() == 1


async def test_triage_open_with_a_process_or_on_a_case(store: Store, tmp_path: Path) -> None:
    d = Deciding(store, tmp_path)
    d.site = replace(d.site, cfg=d.cfg.model_copy(update={"routing": d.cfg.routing.model_copy(
        update={"default_process": "triage"})}))
    await d.feed(mail("someone@unknown.example.org", "合作咨询", "想了解合作方式",
                      msgid="<t1@unknown.example.org>"))
    await d.feed(mail("other@unknown.example.org", "补充", "另外还有一个问题",
                      msgid="<t2@unknown.example.org>"))
    # Deciding files everything under "Processed"; the intake under the triage folder
    await Message.filter(direction="in").update(route="Triage")
    rows = await inbound_rows(store, triage_folder="Triage", quarantine_folder="Quarantine")
    assert [r["message_id"] for r in rows] == ["<t1@unknown.example.org>",
                                               "<t2@unknown.example.org>"]
    first = await find_inbound(store, str(rows[0]["id"]))
    with pytest.raises(AdminError, match="needs its receiving --department"):
        await open_from_triage(store, d.site, first, LATER, process="internal")
    with pytest.raises(AdminError, match="no department"):
        await open_from_triage(store, d.site, first, LATER, process="internal",
                               department="无此部门")
    done = await open_from_triage(store, d.site, first, LATER, process="supplier",
                                  actor="alice")
    assert done.case == "2026-供-001" and done.folder == "Triage"
    assert done.letters == ("ack",)  # queued in the outbox as for any new case
    assert await Outbox.filter(case__number="2026-供-001", letter="ack").count() == 1
    second = await find_inbound(store, "<t2@unknown.example.org>")
    filed = await open_from_triage(store, d.site, second, LATER, case="2026-供-001",
                                   actor="alice")
    assert filed.case == "2026-供-001"
    assert await inbound_rows(store, triage_folder="Triage", quarantine_folder="Q") == []
    kinds = [(t.kind, t.text) for t in await TimelineEntry.filter(case__number="2026-供-001")
             if t.kind in ("admin", "reply")]
    assert kinds == [("admin", "管理员从待分拣邮件开案：外部供应商协同"),
                     ("admin", "管理员从待分拣邮件归入 2026-供-001"),
                     ("reply", "另外还有一个问题")]
    with pytest.raises(AdminError, match="already filed"):
        await open_from_triage(store, d.site, second, LATER, process="customer")


async def test_export_zip_holds_the_case_every_mail_and_file(store: Store,
                                                            tmp_path: Path) -> None:
    d = Deciding(store, tmp_path)
    _, number = await d.feed(mail("wang@huaxin.example.cn", "产品询价", "需要样机",
                                  attachments=(("规格 说明.pdf", b"%PDF spec"),
                                               ("a/b.txt", b"two"))))
    case = await store.case(number or "")
    assert case is not None
    path = await export_case(store, case, tmp_path / "out")
    assert path.name == "2026-客-001.zip"
    with zipfile.ZipFile(path) as z:
        names = z.namelist()
        assert json.loads(z.read("case.json"))["number"] == number
        mails = [n for n in names if n.startswith("mail/")]
        assert [n.split("-")[1] for n in mails] == ["in", "out"]
        assert z.read(mails[0]) == store.raw.get((await Message.get(direction="in")).raw_path)
        assert z.read("attachments/规格 说明.pdf") == b"%PDF spec"
        assert z.read("attachments/b.txt") == b"two"
        index = z.read("index.html").decode()
        assert "需要样机" in index and "规格 说明.pdf" in index


async def test_backup_and_restore_on_postgres(tmp_path: Path) -> None:
    """pg_dump in the backup, pg_restore into an empty database: the same cases."""
    async with open_store("postgres", tmp_path / "a") as s:
        d = Deciding(s, tmp_path / "a")
        await d.feed(mail("wang@huaxin.example.cn", "产品询价",
                          attachments=(("x.pdf", b"%PDF"),)))
        before = await s.cases()
        done = backup_site(s, tmp_path / "bk")
        assert done.pg_done and (tmp_path / "bk" / "maild.pgdump").stat().st_size > 0
        assert done.counts == {"raw files": 1, "attachment files": 1}
    async with pg_database() as url:
        target = Store(url, tmp_path / "b" / "raw", tmp_path / "b")
        restored = restore_site(target, tmp_path / "bk")
        assert restored.pg_command and "pg_restore" in restored.pg_command
        subprocess.run(["pg_restore", "--no-owner", "--exit-on-error", "--dbname", url,
                        str(tmp_path / "bk" / "maild.pgdump")], check=True)
        await target.open()
        try:
            assert await target.cases() == before
            row = await Message.get(direction="in")
            assert target.raw.get(row.raw_path)
        finally:
            await target.close()
