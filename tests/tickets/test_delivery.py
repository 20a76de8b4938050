"""Acknowledgement content and headers; at-most-once delivery; retries and failures."""

from __future__ import annotations

import smtplib
from datetime import UTC, datetime
from email import message_from_bytes, policy

import pytest
from django.core import mail

from channels_app.email.outbound import message_id_for, message_id_is_ours
from servicedesk.tickets import outbound
from servicedesk.tickets.inbound import InboundMessage, SenderIdentity
from servicedesk.tickets.models import Message, TicketEvent
from servicedesk.tickets.services.acknowledgements import ticket_acknowledgement_create
from servicedesk.tickets.services.delivery import DeliveryOutcome, message_deliver
from servicedesk.tickets.services.intake import inbound_message_receive
from servicedesk.tickets.services.replies import ticket_note_create, ticket_reply_create
from servicedesk.tickets.tasks import message_deliver_task
from servicedesk.tickets.threading import reply_token_for

pytestmark = pytest.mark.django_db


def receive(subject: str = "Invoice twice", **kwargs):
    return inbound_message_receive(
        inbound=InboundMessage(
            channel="web",
            external_id=kwargs.pop("external_id", "w-1"),
            sender=SenderIdentity("email", "alice@example.com", kwargs.pop("name", "Alice Byrne")),
            subject=subject,
            text="Charged twice",
            received_at=datetime(2025, 10, 24, 15, 30, tzinfo=UTC),
            **kwargs,
        )
    )


def parsed(email_message) -> object:
    return message_from_bytes(email_message.message().as_bytes(), policy=policy.default)


def test_acknowledgement_content_and_headers(queue, settings, django_capture_on_commit_callbacks):
    settings.SERVICEDESK = {**settings.SERVICEDESK, "DEFAULT_FIRST_REPLY_HOURS": 8}
    settings.SITE_URL = "https://help.example.com"
    with django_capture_on_commit_callbacks(execute=True):
        result = receive()
    ref = result.ticket.reference
    assert len(mail.outbox) == 1
    msg = parsed(mail.outbox[0])
    assert msg["To"] == "Alice Byrne <alice@example.com>"
    assert msg["Subject"] == f"[{ref}] Invoice twice"
    assert msg["Auto-Submitted"] == "auto-replied"
    assert msg["X-Auto-Response-Suppress"] == "All"
    # Replies come back to a per-ticket address that names this ticket.
    assert msg["Reply-To"] == f"support+{reply_token_for(result.ticket)}@servicedesk.example"
    ack = Message.objects.get(purpose="acknowledgement")
    assert msg["Message-ID"] == ack.rfc_message_id == message_id_for(ack)
    assert message_id_is_ours(ack.rfc_message_id)
    body = msg.get_content()
    assert f"opened ticket {ref}." in body
    assert "Subject: Invoice twice" in body
    # 15:30 UTC + 8 hours, in the site's time zone (UTC in tests).
    assert "We will answer by 2025-10-24 23:30 UTC (UTC)." in body
    assert "https://help.example.com/help/tickets/" in body
    assert ack.delivery_status == "sent" and ack.sent_at is not None
    assert ack.recipients == ["alice@example.com"]


def test_subject_with_encoded_line_breaks_yields_no_extra_header(queue, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        receive(subject="Hello\r\nBcc: victim@example.net\nX-Evil: 1", name="Eve\r\nCc: x@example.net")
    raw = mail.outbox[0].message().as_bytes()
    msg = message_from_bytes(raw, policy=policy.default)
    assert msg["Bcc"] is None and msg["X-Evil"] is None and msg["Cc"] is None
    assert mail.outbox[0].bcc == [] and mail.outbox[0].cc == []
    assert "\r" not in msg["Subject"] and "\n" not in msg["Subject"]
    assert msg["Subject"].endswith("Hello Bcc: victim@example.net X-Evil: 1")
    assert [a.addr_spec for a in msg["To"].addresses] == ["alice@example.com"]
    assert msg["To"].addresses[0].display_name == "Eve Cc: x@example.net"


def test_acknowledgement_is_created_once_and_sent_once_even_if_tasks_run_twice(
    queue, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        result = receive()
    ack = Message.objects.get(purpose="acknowledgement")
    assert ticket_acknowledgement_create(ticket=result.ticket) is None
    message_deliver_task.delay(ack.pk)
    message_deliver_task.delay(ack.pk)
    assert message_deliver(message_id=ack.pk) is DeliveryOutcome.SKIPPED
    assert len(mail.outbox) == 1
    assert Message.objects.filter(purpose="acknowledgement").count() == 1


def test_acknowledgement_in_the_customers_language(queue, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        receive(language="zh-hans")
    body = parsed(mail.outbox[0]).get_content()
    assert "您好" in body and "我们已收到您的请求" in body


def test_agent_reply_threads_after_the_customer_message(queue, agent, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        result = receive(rfc_message_id="<cust-1@example.com>")
    ack = Message.objects.get(purpose="acknowledgement")
    mail.outbox.clear()
    with django_capture_on_commit_callbacks(execute=True):
        reply = ticket_reply_create(ticket=result.ticket, author=agent, text="Refunded.", status="solved")
    msg = parsed(mail.outbox[0])
    assert msg["Subject"] == f"Re: [{result.ticket.reference}] Invoice twice"
    assert msg["In-Reply-To"] == ack.rfc_message_id
    assert msg["References"] == f"<cust-1@example.com> {ack.rfc_message_id}"
    assert msg["Auto-Submitted"] is None
    reply.refresh_from_db()
    result.ticket.refresh_from_db()
    assert reply.delivery_status == "sent" and reply.kind == "public_agent"
    assert result.ticket.status == "solved" and result.ticket.first_reply_at == reply.created_at
    delivery = TicketEvent.objects.filter(ticket=result.ticket, kind="delivery", message=reply).get()
    assert delivery.after == {"status": "sent"}


def test_notes_are_never_delivered(queue, agent, django_capture_on_commit_callbacks):
    result = receive(acknowledge=False)
    with django_capture_on_commit_callbacks(execute=True):
        note = ticket_note_create(ticket=result.ticket, author=agent, text="Check with billing")
    assert note.delivery_status == "" and mail.outbox == []
    result.ticket.refresh_from_db()
    assert result.ticket.first_reply_at is None


def _failing_deliverer(exc: Exception):
    def deliver(message):
        raise exc

    return deliver


def test_temporary_failure_is_retried_then_sent(queue, agent, monkeypatch):
    result = receive(acknowledge=False)
    reply = ticket_reply_create(ticket=result.ticket, author=agent, text="Hi", deliver=False)
    Message.objects.filter(pk=reply.pk).update(delivery_status="queued")
    real = outbound.deliverer_for("web")
    monkeypatch.setitem(
        outbound._registry, "web", _failing_deliverer(outbound.DeliveryError("421 busy", temporary=True))
    )
    assert message_deliver(message_id=reply.pk) is DeliveryOutcome.RETRY
    reply.refresh_from_db()
    assert (reply.delivery_status, reply.delivery_error, reply.delivery_attempts) == ("queued", "421 busy", 1)
    monkeypatch.setitem(outbound._registry, "web", real)
    assert message_deliver(message_id=reply.pk) is DeliveryOutcome.SENT
    reply.refresh_from_db()
    assert (reply.delivery_status, reply.delivery_error, reply.delivery_attempts) == ("sent", "", 2)
    assert len(mail.outbox) == 1


def test_permanent_failure_keeps_the_servers_reason(queue, agent, settings):
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    result = receive(acknowledge=False)
    reply = ticket_reply_create(ticket=result.ticket, author=agent, text="Hi", deliver=False)
    Message.objects.filter(pk=reply.pk).update(delivery_status="queued")

    class Refusing:
        def __init__(self, *args, **kwargs):
            pass

        def send_messages(self, messages):
            raise smtplib.SMTPDataError(550, b"5.1.1 mailbox unavailable")

    import channels_app.email.outbound as email_outbound

    original = email_outbound.get_connection
    email_outbound.get_connection = lambda **kw: Refusing()
    try:
        assert message_deliver(message_id=reply.pk) is DeliveryOutcome.FAILED
    finally:
        email_outbound.get_connection = original
    reply.refresh_from_db()
    assert reply.delivery_status == "failed"
    assert reply.delivery_error == "550 5.1.1 mailbox unavailable"


def test_forged_message_ids_are_not_ours(queue):
    result = receive(acknowledge=False)
    real = message_id_for(result.message)
    assert message_id_is_ours(real)
    forged = real.replace(real.split(".")[2].split("@")[0], "0" * 16)
    assert not message_id_is_ours(forged)
    assert not message_id_is_ours("<random@example.com>")


def test_acknowledgements_are_capped_per_customer(queue, settings, django_capture_on_commit_callbacks):
    from datetime import timedelta

    from django.utils import timezone

    settings.SERVICEDESK = {**settings.SERVICEDESK, "ACK_MAX_PER_HOUR": 2, "ACK_MAX_PER_DAY": 3}
    with django_capture_on_commit_callbacks(execute=True):
        for n in range(3):
            receive(external_id=f"loop-{n}", subject=f"Auto reply {n}")
    assert len(mail.outbox) == 2
    third = Message.objects.get(external_id="loop-2").ticket
    assert not third.messages.filter(purpose="acknowledgement").exists()
    assert TicketEvent.objects.get(ticket=third, kind="acknowledged").after == {"suppressed": "per hour"}
    # An hour later the hourly cap has room again, and the daily one decides.
    Message.objects.filter(purpose="acknowledgement").update(created_at=timezone.now() - timedelta(hours=2))
    with django_capture_on_commit_callbacks(execute=True):
        receive(external_id="loop-3", subject="Auto reply 3")
        receive(external_id="loop-4", subject="Auto reply 4")
    assert len(mail.outbox) == 3
    fifth = Message.objects.get(external_id="loop-4").ticket
    assert TicketEvent.objects.get(ticket=fifth, kind="acknowledged").after == {"suppressed": "per day"}
