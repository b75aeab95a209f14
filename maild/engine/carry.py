"""Which files a letter carries: the files of the mail that caused it, and the case's.

The files attached to a mail travel on in the letters that mail causes to be sent: a member
of staff's ``#advance`` with the quote or the contract attached sends the customer or the
supplier the letter *with* those files; a customer's or supplier's reply with a drawing or a
signed confirmation reaches the staff notice about it with the files attached. Automatic
replies (acknowledgements, refusals, ``#help``) and letters only to the mail's own sender
carry nothing. Letters named in ``CASE_FILE_LETTERS`` (legal's review) carry every file kept
on the case as well. Files travel by their SHA-256: the store reads the bytes it kept
(``maild.store.letter_files``), within ``limits.max_letter_attachment_bytes`` per letter.
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING

from maild.engine.effects import LetterFile
from maild.mail.message import ParsedMail

if TYPE_CHECKING:
    from maild.engine.workflow import Pending, Work

#: letters that carry every file kept on the case (legal reviews the contract as sent)
CASE_FILE_LETTERS = frozenset({"legal_review"})


def mail_files(mail: ParsedMail) -> tuple[LetterFile, ...]:
    """The mail's attachments as files a letter may carry (empty ones left out)."""
    return tuple(LetterFile(a.filename, a.content_type, a.size,
                            sha256=hashlib.sha256(a.payload).hexdigest())
                 for a in mail.attachments if a.payload)


def carried(work: Work, p: Pending) -> tuple[tuple[LetterFile, ...], bool]:
    """(files, case_files) for the pending letter ``p`` of the mail ``work`` decides."""
    case_files = p.letter in CASE_FILE_LETTERS
    if p.automatic or not work.mail.attachments:
        return (), case_files
    sender = (work.actor or "").lower()
    if all(a.lower() == sender for a in (*p.to, *p.cc)):
        return (), case_files
    return mail_files(work.mail), case_files
