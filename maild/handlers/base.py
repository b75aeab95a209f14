"""The interface every process handler offers."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from maild.classify.rules import Classification
from maild.engine.effects import CaseView, Context, Decision
from maild.mail.message import ParsedMail


@dataclass(frozen=True)
class Handler:
    name: str
    #: a mail that starts a new case
    open: Callable[[ParsedMail, Classification, Context], Decision]
    #: a mail that belongs to an existing case
    reply: Callable[[CaseView, ParsedMail, Classification, Context], Decision]
