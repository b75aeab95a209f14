"""The external supplier process (外部供应商协同): intent to settlement.

What is specific here: the buyer's intent form (supplier, scope, qualification, delivery
standard, reply deadline) that becomes the 《合作意向函》, the supplier's quote and files as
the step's answer, the purchase order's fields that ``#advance`` carries out of the
evaluation (selection notice and order go together; given with the quote's ``#advance``
they are kept, and all of them select the supplier at once), delays (``#delay`` or the supplier
saying so) with the 《延期说明》 request and its answer, acceptance and the invoice.
"""

from __future__ import annotations

import re
from functools import partial

from maild.calendar.durations import WorkingDuration
from maild.engine.definitions import Step
from maild.engine.effects import Decision
from maild.engine.operations import end_of_day, reply, today
from maild.engine.workflow import Hooks, Work, open_case
from maild.handlers import common
from maild.handlers.base import Handler
from maild.mail.commands import Command, parse_date
from maild.mail.forms import Field, FormSpec, parse_form
from maild.mail.intents import explains_delay, is_invoice, mentions_delay

FIRST_STEP = "intent"
#: chases this handler sets by itself (each needs a label in the definition's [chases])
CHASES = ("delay_explanation",)
INTENT_FORM = FormSpec("合作意向", (
    Field("供应商", ("供应商邮箱", "supplier")),
    Field("合作范围", ("采购内容", "采购需求", "scope")),
    Field("资质要求", ("资质", "qualification"), required=False),
    Field("交付标准", ("交付要求", "质量标准", "standard"), required=False),
    Field("回复期限", ("报价期限", "截止日期", "reply by"), required=False),
))
ORDER_FORM = FormSpec("采购订单", (
    Field("规格", ("产品规格", "服务规格", "型号", "specification")),
    Field("数量", ("采购数量", "quantity")),
    Field("交货日期", ("交货时间", "交期", "delivery date")),
    Field("验收标准", ("验收要求", "acceptance")),
    Field("单价", ("价格", "金额", "price"), required=False),
))


def _open(work: Work) -> Decision | None:
    mail, directory = work.mail, work.ctx.directory
    facts = common.facts(work)
    if facts["opened_by"] == "staff":
        form = parse_form(mail.text, INTENT_FORM)
        value = form.values.get("供应商", "")
        named = common.party_named(directory.config.suppliers, value)
        external = common.outsiders(work, common.addresses_in(value)
                                    or list(named.addresses if named else ())
                                    or [a.addr for a in (*mail.to, *mail.cc)])
        missing = [f for f in form.missing if f != "供应商" or not external]
        if missing:
            return work.letter_only(work.proc.letters["more_info"], "supplier intent misses fields",
                                    refusals=[{"command": mail.subject, "reason": work.t(
                                        f"请补充：{'、'.join(missing)}（如一行「合作范围：…」）",
                                        f"please add: {', '.join(missing)}")}])
        work.data["intent"] = {k: v for k, v in form.values.items() if k != "供应商"}
        contact = work.actor.lower()
        party = named or directory.lookup(external[0]).party
        work.language = party.language if party and party.language else work.ctx.language
    else:
        external = [work.reply_to.lower()]
        party = work.cls.sender.party
        contact = common.contact_for(work, party)
        work.language = common.language_for(mail, work.cls, work.ctx)
    work.data.update(facts, contact=contact, external=external,
                     supplier=party.name if party else (mail.from_.name or external[0]))
    work.parties = list(external)
    return None


def _on_enter(work: Work, step: Step) -> None:
    if step.id != work.proc.first.id:
        return
    if work.data.get("opened_by") == "party":
        work.answered()  # the supplier wrote first: that is their quote
        common.output(work, "供应商资质文件及报价", work.text)
        return
    reply_by = parse_date(work.data.get("intent", {}).get("回复期限", ""))
    if reply_by and reply_by[0] >= today(work) and step.chase is not None:
        work.timer("chase", end_of_day(work, reply_by[0]), step.chase.what,
                   {"to": list(work.roles.addresses("external")), "what": step.chase.what})


def _external(work: Work) -> None:
    if work.step == "intent":
        common.output(work, "供应商资质文件及报价", work.text)
    elif work.step == "order" and work.confirmed():
        work.data["schedule"] = work.text
        common.output(work, "供应商排期计划", work.text)
    elif work.step == "fulfilment":
        _supplier_on_delay(work)
    elif work.step == "acceptance" and is_invoice(work.mail):
        work.data["invoice"] = {"by": work.actor, "at": work.ctx.now.isoformat(),
                                "text": work.text[:2000]}
        common.output(work, "发票", work.text)
        work.answered()
        work.event("invoice")


def _supplier_on_delay(work: Work) -> None:
    delays = work.data.setdefault("delays", [])
    waiting = [d for d in delays if not d.get("explained")]
    if waiting:
        waiting[-1].update(explained=True, explanation=work.text[:4000])
        common.output(work, "延期说明", work.text)
        work.cancel("chase", key="delay_explanation")
        work.answered()
        work.event("delay explained")
        return
    if not mentions_delay(work.mail.text):
        common.output(work, "进度跟踪记录", work.text)
        return
    new_date = _first_date(work.text)
    if explains_delay(work.mail.text):
        _record_delay(work, new_date, work.text[:200], explained=True)
        common.output(work, "延期说明", work.text)
    else:
        _record_delay(work, new_date, work.text[:200], explained=False)
        _ask_for_explanation(work)


def _first_date(text: str) -> str:
    for m in re.finditer(r"\d{4}\s*[-/.年]\s*\d{1,2}\s*[-/.月]\s*\d{1,2}", text):
        parsed = parse_date(m.group(0))
        if parsed:
            return parsed[0].isoformat()
    return ""


def _record_delay(work: Work, new_date: str, reason: str, *, explained: bool) -> None:
    work.data.setdefault("delays", []).append({
        "date": new_date, "reason": reason, "by": work.actor, "at": work.ctx.now.isoformat(),
        "explained": explained})
    work.note("delay", f"{new_date or '?'} {reason}".strip())
    work.event(f"delay {new_date}")


def _ask_for_explanation(work: Work) -> None:
    work.send(work.proc.letters["delay"], work.roles.addresses("external"),
              cc=work.roles.addresses("contact"), language=work.language)
    work.status = "waiting"
    wait = WorkingDuration.parse(str(work.proc.extra.get("delay_chase_after", "2 working days")))
    work.timer("chase", wait.after(work.ctx.calendar, work.ctx.now), "delay_explanation",
               {"to": list(work.roles.addresses("external")), "what": "delay_explanation"})


def _delay(work: Work, command: Command) -> str | None:
    parsed = parse_date(command.arg)
    if parsed is None:
        return work.t("格式应为：#delay 2026-12-20 原因", "use: #delay 2026-12-20 reason")
    day, reason = parsed
    if day < today(work):
        return work.t(f"新的日期 {day} 已经过去", f"{day} is in the past")
    _record_delay(work, day.isoformat(), reason, explained=False)
    _ask_for_explanation(work)
    return None


def _order(work: Work) -> tuple[dict[str, str], list[str], dict[str, str]]:
    """The purchase order's fields: this mail's over those kept from the quote's
    ``#advance`` (``order_draft``); (values, missing, other lines)."""
    form = parse_form(work.mail.text, ORDER_FORM)
    values = {**work.data.get("order_draft", {}), **form.values}
    missing = [f.name for f in ORDER_FORM.fields if f.required and not values.get(f.name)]
    return values, missing, dict(form.other)


def _bad_delivery(work: Work, values: dict[str, str]) -> str | None:
    when = parse_date(values["交货日期"])
    if when is None:
        return work.t(f"交货日期「{values['交货日期']}」无效，请写成 2026-12-20",
                      f"delivery date {values['交货日期']!r} is not like 2026-12-20")
    if when[0] < today(work):
        return work.t(f"交货日期 {when[0]} 已经过去", f"delivery date {when[0]} is in the past")
    return None


def _quoted(work: Work, command: Command) -> str | None:
    """``#advance`` after the quote: on to the evaluation. The purchase order's fields given
    with it are kept; all of them select the supplier at once (selection notice and order
    go out), some of them wait in the evaluation for the rest."""
    values, missing, _ = _order(work)
    if values and not missing:
        reason = _bad_delivery(work, values)
        if reason is not None:
            return reason
    work.advance()
    if values and not missing:
        return _select(work, command)
    if values:
        work.data["order_draft"] = values
        work.remarks.append(work.t(
            f"已记下采购订单的：{'、'.join(values)}；还缺：{'、'.join(missing)}"
            "（回复 #advance 并每项一行写明，即发出选定通知和采购订单）",
            f"purchase order fields kept: {', '.join(values)}; still missing: "
            f"{', '.join(missing)} (reply #advance with them, one per line, to send the "
            "selection notice and the order)"))
    else:
        work.remarks.append(work.t(
            "评估后回复 #advance，并每项一行写明采购订单的规格、数量、交货日期、验收标准，"
            "即发出选定通知和采购订单",
            "after the evaluation, reply #advance with the order's specification, quantity, "
            "delivery date and acceptance criteria, one per line, to send the selection "
            "notice and the order"))
    return None


def _select(work: Work, command: Command) -> str | None:
    """``#advance`` out of the evaluation: the purchase order's fields select the supplier."""
    values, missing, other = _order(work)
    if missing:
        return work.t(f"请在邮件中写明采购订单的：{'、'.join(missing)}"
                      "（每项一行，如「数量：500」）",
                      f"the purchase order needs: {', '.join(missing)} (one per line)")
    reason = _bad_delivery(work, values)
    if reason is not None:
        return reason
    work.data["order"] = dict(values)
    work.data["order_draft"] = {}  # used: the case's data is merged, so emptied
    evaluation = "\n".join(f"{k}：{v}" for k, v in other.items())
    common.output(work, "供应商评估报告", evaluation or work.text)
    work.advance()
    return None


def _accept(work: Work, command: Command) -> str | None:
    """``#confirm`` in acceptance: quality accepted; the supplier is asked to invoice."""
    depts = work.roles.departments_of(work.actor)
    reason = work.confirm(work.actor, depts[0].name if depts else work.actor)
    if reason is not None:
        return reason
    common.output(work, "验收报告", work.text)
    work.send(work.proc.letters["accepted"], work.roles.addresses("external"),
              cc=work.roles.addresses("contact"), language=work.language)
    work.status = "waiting"
    return None


def _assign(work: Work, command: Command) -> str | None:
    return common.assign_contact(work, command.arg)


HOOKS = Hooks(
    open=_open, external=_external, on_enter=_on_enter,
    steps=("intent", "order", "fulfilment", "acceptance"),
    letters=("reply_notice", "more_info", "assigned", "delay", "accepted"),
    ops={
        ("*", "assign"): _assign,
        ("intent", "advance"): _quoted,
        ("evaluation", "advance"): _select,
        ("fulfilment", "delay"): _delay,
        ("acceptance", "confirm"): _accept,
    })
HANDLER = Handler("supplier", partial(open_case, HOOKS), partial(reply, HOOKS))
