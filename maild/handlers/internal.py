"""The internal cross-department request (跨部门协作沟通), numbered year-department-sequence."""

from __future__ import annotations

from dataclasses import replace

from maild.classify import Classification
from maild.effects import Context, Decision
from maild.handlers import common
from maild.handlers.base import Handler
from maild.message import ParsedMail

FIRST_STEP = "request"


def open_case(mail: ParsedMail, cls: Classification, ctx: Context) -> Decision:
    dept = ctx.directory.department_by_name(cls.department)
    if dept is None:
        # Without a receiving department there is no number to give: say so, open nothing.
        lang = common.language_for(mail, cls, ctx)
        ask = common.acknowledge(mail, cls, ctx, "internal", lang,
                                 {"departments": [d.name for d in
                                                  ctx.directory.config.departments]})
        return Decision((replace(ask, letter="need_department"),),
                        "internal request without a department: asked the sender which one")
    return common.open_and_acknowledge("internal", FIRST_STEP, mail, cls, ctx, dept.short)


HANDLER = Handler("internal", open_case, common.reply_recorded)
