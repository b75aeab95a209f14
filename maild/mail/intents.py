"""What external parties mean without commands: a confirmation, a delay, an invoice.

Customers and suppliers never give commands; their words are read for these few intents,
conservatively (a confirmation must *lead* the reply), and everything they write is kept.
"""

from __future__ import annotations

import re

from maild.mail.message import ParsedMail
from maild.mail.quoting import reply_top

_CONFIRM_WORDS = ("确认", "同意", "确定", "无异议", "confirmed", "confirm", "agreed", "agree",
                  "approved", "ok")
_CONFIRM_GO_ON = ("无误", "没问题", "没有问题", "无异议", "方案", "此方案", "该方案", "本方案",
                  "订单", "此订单", "该订单", "以上", "版本", "接受")
_SIGNED = re.compile(r"签字|签章|盖章|確認|确认|signed|confirm", re.IGNORECASE)
_DELAY = re.compile(r"延期|延迟|推迟|延后|晚于|无法按期|不能按期|delay|postpone|late",
                    re.IGNORECASE)
_EXPLAINED = (re.compile(r"原因|because|due to|reason", re.IGNORECASE),
              re.compile(r"计划|方案|安排|plan|schedule", re.IGNORECASE))
_INVOICE = re.compile(r"发票|invoice|fapiao", re.IGNORECASE)


def is_confirmation(mail: ParsedMail) -> bool:
    """A leading 确认/同意/confirmed line, or an attachment that looks signed."""
    if any(_SIGNED.search(a.filename) for a in mail.attachments):
        return True
    first = next((ln.strip() for ln in reply_top(mail.text).splitlines() if ln.strip()), "")
    low = first.casefold()
    for word in _CONFIRM_WORDS:
        if low.startswith(word):
            rest = first[len(word):].lstrip()
            if not rest or not rest[0].isalnum() or rest.startswith(_CONFIRM_GO_ON):
                return True
    return False


def mentions_delay(text: str) -> bool:
    return bool(_DELAY.search(reply_top(text)))


def explains_delay(text: str) -> bool:
    """The reason and an adjusted plan are both there."""
    top = reply_top(text)
    return all(p.search(top) for p in _EXPLAINED)


def is_invoice(mail: ParsedMail) -> bool:
    return bool(_INVOICE.search(reply_top(mail.text))) or any(
        _INVOICE.search(a.filename) for a in mail.attachments)
