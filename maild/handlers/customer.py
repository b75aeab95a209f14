"""The external customer process (外部客户对接): requirements to archive.

What is specific here: the requirements list read from the first mail, the contact (the
customer's account manager, else the head of the intake department), the solution that
``#advance`` carries into the 《客户需求确认函》 and the versions ``#revise`` sends (each a
round), the customer's feedback, progress reports while executing and the satisfaction
survey. The customer's confirmation itself is generic (``confirm_by = "external"``).
"""

from __future__ import annotations

import re
from datetime import UTC, timedelta
from functools import partial

from maild.engine.effects import Decision
from maild.engine.operations import reply
from maild.engine.workflow import Hooks, Work, open_case
from maild.handlers import common
from maild.handlers.base import Handler
from maild.mail import satisfaction
from maild.mail.commands import Command, parse_date
from maild.mail.forms import Field, FormSpec, parse_form

FIRST_STEP = "requirements"
STAFF_FORM = FormSpec("客户", (Field("客户", ("客户邮箱", "客户联系人", "customer")),))
_ITEM = re.compile(r"^\s*(?:\d{1,2}[.、)）]|[（(]\d{1,2}[)）]|[-•·*]|[一二三四五六七八九十][、.])"
                   r"\s*(.+)$")
_DELIVERY = re.compile(r"(交付|交货|到货|上线|delivery|deliver)", re.IGNORECASE)
_GREETING = re.compile(r"^(您好|你好|尊敬的|各位|hello|hi|dear)|[：:,，]$", re.IGNORECASE)
MAX_REQUIREMENTS = 20  # items of the 《客户需求清单》 read from the first mail
MAX_ITEM = 300  # characters of one item
_CLOSING = re.compile(r"^(谢谢|此致|祝好|best|regards|thanks|thank you)", re.IGNORECASE)


def requirements_of(text: str) -> list[str]:
    """Numbered or bulleted lines; else the sentences between greeting and closing. At most
    20 items of 300 characters: the list goes into the case and the staff's letters."""
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    items = [m.group(1).strip() for ln in lines if (m := _ITEM.match(ln))]
    if not items:
        for ln in lines:
            if _CLOSING.match(ln):
                break
            if not _GREETING.search(ln):
                items.append(ln)
    return [i if len(i) <= MAX_ITEM else i[: MAX_ITEM - 1] + "…"
            for i in items[:MAX_REQUIREMENTS]]


def delivery_of(text: str) -> str:
    for ln in text.splitlines():
        if _DELIVERY.search(ln):
            for m in re.finditer(r"\d{4}\s*[-/.年]\s*\d{1,2}\s*[-/.月]\s*\d{1,2}", ln):
                parsed = parse_date(m.group(0))
                if parsed:
                    return parsed[0].isoformat()
            return ln.strip()[:80]
    return ""


def _open(work: Work) -> Decision | None:
    mail, directory = work.mail, work.ctx.directory
    facts = common.facts(work)
    if facts["opened_by"] == "staff":
        value = parse_form(mail.text, STAFF_FORM).values.get("客户", "")
        named = common.party_named(directory.config.customers, value)
        external = common.outsiders(work, common.addresses_in(value)
                                    or list(named.addresses if named else ())
                                    or [a.addr for a in (*mail.to, *mail.cc)])
        if not external:
            return work.letter_only(work.proc.letters["more_info"],
                                    "customer case by staff without a customer address",
                                    refusals=[{"command": mail.subject, "reason": work.t(
                                        "请注明客户邮箱，如一行「客户：name@company.com」，或抄送客户",
                                        "name the customer: a line 'customer: name@company.com'"
                                        " or Cc them")}])
        contact = work.actor.lower()
        party = directory.lookup(external[0]).party
        language = party.language if party and party.language else work.ctx.language
    else:
        external = [work.reply_to.lower()]
        party = work.cls.sender.party
        contact = common.contact_for(work, party)
        language = common.language_for(mail, work.cls, work.ctx)
    work.language = language
    work.data.update(facts, contact=contact, external=external,
                     customer=party.name if party else (mail.from_.name or external[0]),
                     requirements=requirements_of(work.text),
                     expected_delivery=delivery_of(work.text), version=0, rounds=0)
    work.parties = list(external)
    return None


def _solution(work: Work, command: Command) -> str | None:
    """``#advance`` on the requirements: the text is the solution the customer confirms."""
    if not work.text and not work.mail.attachments:
        return work.t("请在 #advance 下方写上方案要点，它将写进《客户需求确认函》",
                      "write the solution below #advance: it goes into the confirmation letter")
    work.data.update(solution=work.text, version=1, rounds=1)
    common.output(work, "客户需求确认函 v1", work.text)
    work.advance()
    return None


def _revise(work: Work, command: Command) -> str | None:
    """A new version of the confirmation letter: another round with the customer."""
    text = work.text or command.arg
    if not text:
        return work.t("请在 #revise 下方写上修订后的方案",
                      "write the revised solution below #revise")
    d = work.data
    d.update(solution=text, version=int(d.get("version", 0)) + 1,
             rounds=int(d.get("rounds", 0)) + 1)
    d.setdefault("confirmations", {}).pop(work.step, None)
    common.output(work, f"客户需求确认函 v{d['version']}", text)
    work.send(work.proc.letters["confirmation"], work.roles.addresses("external"),
              cc=work.roles.addresses("contact"), language=work.language)
    work.status = "waiting"
    work.event(f"confirmation letter v{d['version']}")
    return None


def _external(work: Work) -> None:
    step = work.step_def
    if work.step == "aftersales":
        _satisfaction(work)
    if step.confirm_by == "external" and work.confirmed():
        work.data["confirmed_version"] = work.data.get("version", 0)
        if work.step == "solution":
            common.output(work, f"客户需求确认函 v{work.data['confirmed_version']}（客户确认）",
                          work.text)
        return  # the generic part recorded the confirmation
    if work.step == "aftersales":
        common.output(work, "满意度调研反馈", work.text)
    elif work.step in ("solution", "execution"):
        work.data.setdefault("feedback", []).append(
            {"at": work.ctx.now.isoformat(), "version": work.data.get("version", 0),
             "text": work.text[:2000]})
        common.output(work, "客户反馈记录", work.text)


def _satisfaction(work: Work) -> None:
    """The survey's answer: its score on the case (``satisfaction``, which the digest
    averages) and on the timeline, or no score and why."""
    score = satisfaction.parse(work.text)
    work.data["satisfaction"] = {
        "score": score.value, "basis": score.basis[:200], "reason": score.reason,
        "at": work.ctx.now.astimezone(UTC).isoformat(), "by": work.actor}
    work.note("satisfaction", score.text(work.ctx.language))


def _staff_text(work: Work) -> None:
    """A staff mail in the execution step (the customer in copy) is a progress report."""
    step = work.step_def
    if step.progress_days and work.text:
        common.output(work, "进度报告", work.text)
        work.timer("progress", work.ctx.now + timedelta(days=step.progress_days), "",
                   {"cadence_days": step.progress_days, "to": list(work.owner)})


def _assign(work: Work, command: Command) -> str | None:
    return common.assign_contact(work, command.arg)


HOOKS = Hooks(
    open=_open, external=_external, staff_text=_staff_text,
    steps=("requirements", "solution", "execution", "aftersales"),
    letters=("reply_notice", "confirmation", "assigned", "more_info"),
    ops={
        ("*", "assign"): _assign,
        ("requirements", "advance"): _solution,
        ("solution", "revise"): _revise,
    })
HANDLER = Handler("customer", partial(open_case, HOOKS), partial(reply, HOOKS))
