"""Reply tokens in our Message-IDs."""

from __future__ import annotations

import re

from maild.mail.tokens import make_message_id, verified

SECRET = b"k" * 32
DOMAIN = "example.test"


def test_a_token_verifies_for_its_case_and_recipient_only() -> None:
    mid = make_message_id(SECRET, "2026-技-001", "Zhang@corp.example.test", DOMAIN)
    assert re.fullmatch(r"<[a-z2-7]{16}\.[a-z2-7]{24}@example\.test>", mid)
    assert len(mid) < 80
    assert verified(SECRET, [mid], "2026-技-001", "zhang@corp.example.test", DOMAIN) == mid
    assert verified(SECRET, [mid], "2026-技-002", "zhang@corp.example.test", DOMAIN) is None
    assert verified(SECRET, [mid], "2026-技-001", "li@corp.example.test", DOMAIN) is None
    assert verified(b"x" * 32, [mid], "2026-技-001", "zhang@corp.example.test", DOMAIN) is None
    assert verified(SECRET, [mid], "2026-技-001", "zhang@corp.example.test", "other.test") is None
    assert verified(b"", [mid], "2026-技-001", "zhang@corp.example.test", DOMAIN) is None


def test_forged_and_foreign_ids_do_not_verify() -> None:
    mid = make_message_id(SECRET, "N1", "a@x.test", DOMAIN)
    nonce, _, rest = mid[1:].partition(".")
    forged = f"<{nonce}.{'a' * 24}@{DOMAIN}>"
    assert verified(SECRET, [forged], "N1", "a@x.test", DOMAIN) is None
    other = make_message_id(SECRET, "N1", "a@x.test", DOMAIN)
    swapped = f"<{other[1:].partition('.')[0]}.{rest}"  # a token moved to another nonce
    assert verified(SECRET, [swapped], "N1", "a@x.test", DOMAIN) is None
    assert verified(SECRET, ["<abc@example.test>", "garbage", mid], "N1", "a@x.test",
                    DOMAIN) == mid
    assert make_message_id(SECRET, "N1", "a@x.test", DOMAIN) != mid  # a fresh nonce each time
