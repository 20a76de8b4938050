"""The acknowledgement of an email ticket answers the customer's own mail."""

from __future__ import annotations

from email import message_from_bytes, policy

import pytest
from django.core import mail

from channels_app.email.services import email_ingest

pytestmark = pytest.mark.django_db


def test_acknowledgement_replies_to_the_customers_mail(queue, django_capture_on_commit_callbacks):
    raw = (
        b"From: Alice Byrne <alice@example.com>\r\nTo: support@servicedesk.example\r\n"
        b"Subject: =?utf-8?q?Invoice_twice=0D=0ABcc:_x@evil.example?=\r\n"
        b"Message-ID: <CAF-ack-1@mail.example.com>\r\nReferences: <older@mail.example.com>\r\n\r\n"
        b"I was charged twice.\r\n"
    )
    with django_capture_on_commit_callbacks(execute=True):
        result = email_ingest(raw=raw, source="pipe")
    [ack] = mail.outbox
    msg = message_from_bytes(ack.message().as_bytes(), policy=policy.default)
    assert msg["In-Reply-To"] == "<CAF-ack-1@mail.example.com>"
    assert msg["References"] == "<CAF-ack-1@mail.example.com>"
    assert msg["Auto-Submitted"] == "auto-replied" and msg["X-Auto-Response-Suppress"] == "All"
    assert msg["Subject"] == f"[{result.reference}] Invoice twice Bcc: x@evil.example"
    assert msg["Bcc"] is None and ack.bcc == []
    assert [a.addr_spec for a in msg["To"].addresses] == ["alice@example.com"]
