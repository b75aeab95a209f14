"""A party's reply in a step that waits for their confirmation (``confirm_by = "external"``).

``maild.mail.intents.read_confirmation`` reads it; what each outcome does here:

``confirmed``
    the confirmation is recorded for the step (which advances when its definition says so);
``feedback``
    a timeline entry says why it is not a confirmation; the step stays where it is (the
    process handler keeps the words, e.g. the customer's 《客户反馈记录》);
``unsure``
    the step stays, and the account manager (the case's contact, else the step's owners, else
    the managers) gets the ``confirm_unsure`` letter: the reply, why maild cannot tell, and
    the command that confirms on the party's behalf when the step's definition has one.
"""

from __future__ import annotations

from typing import Any

from maild.engine.letter_context import case_context
from maild.engine.workflow import Work
from maild.mail.intents import Outcome, read_confirmation
from maild.mail.quoting import excerpt

__all__ = ["UNSURE_LETTER", "on_behalf", "take_reply"]

UNSURE_LETTER = "confirm_unsure"


def take_reply(work: Work, addr: str) -> bool:
    """Read the reply of ``addr``; True when the account manager was asked about it (their
    letter carries the reply, so the plain reply notice is not needed)."""
    reading = read_confirmation(work.mail)
    reason = reading.reason(work.ctx.language)
    if reading.outcome is Outcome.CONFIRMED:
        if work.confirm(addr, "external") is None:
            work.event(f"{addr} confirmed")
        return False
    if reading.outcome is Outcome.FEEDBACK:
        work.note("feedback", work.t(f"{addr} 的回复记为反馈，不作确认：{reason}",
                                     f"{addr}'s reply is feedback, not a confirmation: {reason}"))
        work.event(f"feedback from {addr}")
        return False
    to = work.roles.addresses("contact") or tuple(work.owner) or work.roles.managers()
    if not to:
        work.note("unsure", work.t(f"无法判断 {addr} 的回复是否为确认（{reason}），"
                                   "且本案没有对接人可询问",
                                   f"cannot tell whether {addr}'s reply confirms ({reason}), "
                                   "and the case has nobody to ask"))
        work.event(f"unsure reply from {addr}, nobody to ask")
        return False
    work.note("unsure", work.t(
        f"无法判断 {addr} 的回复是否为确认（{reason}），已请 {'、'.join(to)} 判断",
        f"cannot tell whether {addr}'s reply confirms ({reason}); asked {', '.join(to)}"))
    work.send(UNSURE_LETTER, to, context=_letter(work, to[0], reason))
    work.event(f"unsure reply from {addr}, asked {to[0]}")
    return True


def _letter(work: Work, addr: str, reason: str) -> dict[str, Any]:
    """The case's letter context (the keys every process letter gets), the reply, why it
    is unclear, and the commands ``addr`` can use now without being refused."""
    language = work.ctx.language
    context = case_context(work, work.step_def, language,
                           {"message": excerpt(work.mail.text, 1500)}, addr)
    blocked = bool(work.step_def.requires) and not work.condition(work.step_def.requires)
    context["commands"] = [c for c in context["commands"]
                           if not (blocked and c["usage"] == "#advance")]
    context.update(reason=reason, confirm_with=on_behalf(work, addr))
    return context


def on_behalf(work: Work, addr: str) -> str:
    """The command with which ``addr`` can confirm for the party in this step, per the
    process definition: ``#confirm`` when the step takes it from them, else ``#advance``
    when that is theirs and not held back by a condition; "" when neither."""
    step = work.step_def

    def may(name: str) -> bool:
        return any(work.roles.holds(addr, role) for role in step.commands.get(name, ()))

    if may("confirm"):
        return "#confirm"
    if may("advance") and not (step.requires and not work.condition(step.requires)):
        return "#advance"
    return ""
