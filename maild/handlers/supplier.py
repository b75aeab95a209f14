"""The external supplier process (外部供应商协同): opened on first contact, acknowledged."""

from __future__ import annotations

from functools import partial

from maild.handlers import common
from maild.handlers.base import Handler

FIRST_STEP = "intent"

HANDLER = Handler("supplier", partial(common.open_and_acknowledge, "supplier", FIRST_STEP),
                  common.reply_recorded)
