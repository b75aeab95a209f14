"""Bounces: an RFC 3464 report (Postfix style) and the common text bounces, parsed."""

from __future__ import annotations

from maild.mail.parse import parse_mail

ORIGINAL = "<3f2a9c0d1e4b4f6a8c7d5e3b2a1f0e9d@example.com>"

POSTFIX = f"""\
Return-Path: <>
Received: by mx.example.com (Postfix) id 4F1C21A2B3; Tue,  1 Dec 2026 10:00:05 +0800 (CST)
Date: Tue,  1 Dec 2026 10:00:05 +0800 (CST)
From: MAILER-DAEMON@mx.example.com (Mail Delivery System)
Subject: Undelivered Mail Returned to Sender
To: service@example.com
Auto-Submitted: auto-replied
MIME-Version: 1.0
Content-Type: multipart/report; report-type=delivery-status;
\tboundary="4F1C21A2B3.1796090405/mx.example.com"
Message-Id: <20261201020005.4F1C21A2B3@mx.example.com>

This is a MIME-encapsulated message.

--4F1C21A2B3.1796090405/mx.example.com
Content-Description: Notification
Content-Type: text/plain; charset=us-ascii

This is the mail system at host mx.example.com.

I'm sorry to have to inform you that your message could not
be delivered to one or more recipients. It's attached below.

<wang@huaxin.example.cn>: host mx.huaxin.example.cn[203.0.113.7] said: 550
    5.1.1 <wang@huaxin.example.cn>: Recipient address rejected: User unknown
    (in reply to RCPT TO command)

--4F1C21A2B3.1796090405/mx.example.com
Content-Description: Delivery report
Content-Type: message/delivery-status

Reporting-MTA: dns; mx.example.com
X-Postfix-Queue-ID: 4F1C21A2B3
X-Postfix-Sender: rfc822; service@example.com
Arrival-Date: Tue,  1 Dec 2026 10:00:01 +0800 (CST)

Final-Recipient: rfc822; wang@huaxin.example.cn
Original-Recipient: rfc822;wang@huaxin.example.cn
Action: failed
Status: 5.1.1
Remote-MTA: dns; mx.huaxin.example.cn
Diagnostic-Code: smtp; 550 5.1.1 <wang@huaxin.example.cn>: Recipient address
    rejected: User unknown

Final-Recipient: rfc822; li@huaxin.example.cn
Action: delayed
Status: 4.4.1
Diagnostic-Code: X-Postfix; connect to mx2.huaxin.example.cn: Connection timed out

--4F1C21A2B3.1796090405/mx.example.com
Content-Description: Undelivered Message Headers
Content-Type: text/rfc822-headers

Return-Path: <service@example.com>
From: =?UTF-8?B?56S65L6L56eR5oqA?= <service@example.com>
To: wang@huaxin.example.cn
Subject: [2026-客-001] =?UTF-8?B?5bey5pS25Yiw?=
Message-ID: {ORIGINAL}

--4F1C21A2B3.1796090405/mx.example.com--
""".encode()

QMAIL = f"""\
Return-Path: <>
From: MAILER-DAEMON@mail.example.net
To: service@example.com
Subject: failure notice
Date: 1 Dec 2026 02:00:05 -0000
Message-ID: <1796090405.qmail@mail.example.net>

Hi. This is the qmail-send program at mail.example.net.
I'm afraid I wasn't able to deliver your message to the following addresses.
This is a permanent error; I've given up. Sorry it didn't work out.

<sales@hengda.example.cn>:
203.0.113.9 does not like recipient.
Remote host said: 550 5.1.1 Mailbox does not exist
Giving up on 203.0.113.9.

--- Below this line is a copy of the message.

Return-Path: <service@example.com>
From: service@example.com
To: sales@hengda.example.cn
Subject: [2026-供-001] 合作意向函
Message-ID: {ORIGINAL}

您好
""".encode()

EXCHANGE = """\
From: postmaster@corp.example.org
To: service@example.com
Subject: Undeliverable: [2026-客-002] hello
Date: Tue, 1 Dec 2026 10:00:05 +0800
Message-ID: <ex-1@corp.example.org>
Content-Type: text/plain; charset=us-ascii

Delivery has failed to these recipients or groups:

zhao@corp.example.org
The email address you entered couldn't be found. 550 5.1.10 RESOLVER.ADR.RecipientNotFound
""".encode()


def test_rfc3464_report_from_postfix() -> None:
    dsn = parse_mail(POSTFIX).dsn
    assert dsn is not None and dsn.standard
    assert dsn.original_id == ORIGINAL
    [failed] = dsn.failed
    assert (failed.addr, failed.action, failed.status) == (
        "wang@huaxin.example.cn", "failed", "5.1.1")
    assert failed.diagnostic.startswith("550 5.1.1 <wang@huaxin.example.cn>: Recipient")
    assert "User unknown" in failed.diagnostic
    [delayed] = dsn.delayed
    assert (delayed.addr, delayed.status) == ("li@huaxin.example.cn", "4.4.1")


def test_report_with_returned_message() -> None:
    raw = POSTFIX.replace(b"Content-Type: text/rfc822-headers",
                          b"Content-Type: message/rfc822")
    dsn = parse_mail(raw).dsn
    assert dsn is not None and dsn.original_id == ORIGINAL


def test_qmail_text_bounce() -> None:
    dsn = parse_mail(QMAIL).dsn
    assert dsn is not None and not dsn.standard
    assert dsn.original_id == ORIGINAL
    assert [(r.addr, r.action, r.status) for r in dsn.recipients] == [
        ("sales@hengda.example.cn", "failed", "5.1.1")]


def test_exchange_text_bounce() -> None:
    dsn = parse_mail(EXCHANGE).dsn
    assert dsn is not None
    assert [(r.addr, r.action, r.status) for r in dsn.recipients] == [
        ("zhao@corp.example.org", "failed", "5.1.10")]
    assert dsn.original_id == ""


def test_ordinary_mail_is_no_bounce() -> None:
    raw = (b"From: wang@huaxin.example.cn\nTo: service@example.com\nSubject: undeliverable "
           b"goods\n\nThe following addresses failed: a@b.example.cn 550\n")
    assert parse_mail(raw).dsn is None


def test_report_without_recipients_is_no_bounce() -> None:
    raw = (POSTFIX.replace(b"Final-Recipient", b"X-Final").replace(b"Original-Recipient", b"X-Orig")
           .replace(b"Return-Path: <>\n", b""))
    raw = raw.replace(b"MAILER-DAEMON@", b"reports@")
    assert parse_mail(raw).dsn is None
