"""The external customer process (外部客户对接): opened on first contact, acknowledged."""

from __future__ import annotations

from functools import partial

from maild.handlers import common
from maild.handlers.base import Handler

FIRST_STEP = "requirements"

HANDLER = Handler("customer", partial(common.open_and_acknowledge, "customer", FIRST_STEP),
                  common.reply_recorded)
