"""Acknowledgement content and headers; at-most-once delivery; retries and failures."""

from __future__ import annotations

import smtplib
from datetime import UTC, datetime, timedelta
from email import message_from_bytes, policy

import pytest
from django.core import mail
from django.utils import timezone

from channels_app.email.outbound import message_id_for, message_id_is_ours
from servicedesk.core.errors import ApplicationError
from servicedesk.tickets import outbound
from servicedesk.tickets.events import Actor
from servicedesk.tickets.inbound import InboundMessage, SenderIdentity
from servicedesk.tickets.models import Message, TicketEvent
from servicedesk.tickets.services.acknowledgements import ticket_acknowledgement_create
from servicedesk.tickets.services.delivery import (
    INTERRUPTED,
    UNEXPECTED_ERROR,
    DeliveryOutcome,
    message_deliver,
    message_delivery_expire_stale,
    message_delivery_retry,
)
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


def test_permanent_failure_keeps_the_servers_reason(queue, agent, settings, monkeypatch):
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    result = receive(acknowledge=False)
    reply = ticket_reply_create(ticket=result.ticket, author=agent, text="Hi", deliver=False)
    Message.objects.filter(pk=reply.pk).update(delivery_status="queued")

    def refusing(mail):
        raise smtplib.SMTPDataError(550, b"5.1.1 mailbox unavailable")

    import channels_app.email.outbound as email_outbound

    monkeypatch.setattr(email_outbound, "connection_send", refusing)
    assert message_deliver(message_id=reply.pk) is DeliveryOutcome.FAILED
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


# --- Nothing stays "sending" ---------------------------------------------------------


def _queued_reply(agent, **kwargs):
    result = receive(acknowledge=False, **kwargs)
    reply = ticket_reply_create(ticket=result.ticket, author=agent, text="Hi", deliver=False)
    Message.objects.filter(pk=reply.pk).update(delivery_status="queued")
    return reply


def test_an_unexpected_error_in_the_deliverer_ends_failed_with_a_reason(queue, agent, monkeypatch):
    reply = _queued_reply(agent)
    monkeypatch.setitem(outbound._registry, "web", _failing_deliverer(UnicodeEncodeError("ascii", "é", 0, 1, "no")))

    assert message_deliver(message_id=reply.pk) is DeliveryOutcome.FAILED

    reply.refresh_from_db()
    assert (reply.delivery_status, reply.delivery_error, reply.delivery_attempts) == ("failed", UNEXPECTED_ERROR, 1)
    event = TicketEvent.objects.get(kind="delivery", message=reply)
    assert event.after == {"status": "failed", "error": UNEXPECTED_ERROR[:500]}


def test_a_claim_older_than_the_lease_ends_failed_as_interrupted(queue, agent, settings):
    settings.SERVICEDESK = {**settings.SERVICEDESK, "OUTBOUND_SENDING_LEASE_SECONDS": 600}
    now = timezone.now()
    stale = _queued_reply(agent, external_id="w-stale")
    fresh = _queued_reply(agent, external_id="w-fresh")
    Message.objects.filter(pk=stale.pk).update(
        delivery_status="sending", delivery_claimed_at=now - timedelta(seconds=601)
    )
    Message.objects.filter(pk=fresh.pk).update(
        delivery_status="sending", delivery_claimed_at=now - timedelta(seconds=599)
    )

    assert message_delivery_expire_stale(now=now) == 1
    assert message_delivery_expire_stale(now=now) == 0  # a second run moves nothing

    stale.refresh_from_db()
    fresh.refresh_from_db()
    assert (stale.delivery_status, stale.delivery_error) == ("failed", INTERRUPTED)
    assert (fresh.delivery_status, fresh.delivery_error) == ("sending", "")
    event = TicketEvent.objects.get(kind="delivery", message=stale)
    assert (event.before, event.after, event.at) == (
        "sending",
        {"status": "failed", "error": INTERRUPTED},
        now,
    )
    # Nor does the beat's re-dispatch send it: only queued messages are claimed.
    assert message_deliver(message_id=stale.pk) is DeliveryOutcome.SKIPPED
    assert mail.outbox == []


def test_a_message_left_sending_before_claims_were_stamped_expires_by_its_age(queue, agent):
    old = _queued_reply(agent)
    Message.objects.filter(pk=old.pk).update(
        delivery_status="sending", delivery_claimed_at=None, created_at=timezone.now() - timedelta(days=1)
    )
    assert message_delivery_expire_stale() == 1
    old.refresh_from_db()
    assert (old.delivery_status, old.delivery_error) == ("failed", INTERRUPTED)


def test_a_late_report_of_the_same_claim_still_counts(queue, agent, monkeypatch):
    """A worker slower than the lease that did send: "sent" replaces "interrupted"."""
    reply = _queued_reply(agent)

    def slow(message):
        message_delivery_expire_stale(now=timezone.now() + timedelta(days=1))
        return outbound.DeliveryReceipt(rfc_message_id="<late@example.com>", recipients=("alice@example.com",))

    monkeypatch.setitem(outbound._registry, "web", slow)
    assert message_deliver(message_id=reply.pk) is DeliveryOutcome.SENT
    reply.refresh_from_db()
    assert (reply.delivery_status, reply.delivery_error, reply.rfc_message_id) == ("sent", "", "<late@example.com>")
    assert [e.after["status"] for e in TicketEvent.objects.filter(kind="delivery", message=reply).order_by("pk")] == [
        "failed",
        "sent",
    ]


def test_an_agent_sends_a_failed_message_again_once(queue, agent, django_capture_on_commit_callbacks):
    reply = _queued_reply(agent)
    Message.objects.filter(pk=reply.pk).update(
        delivery_status="failed", delivery_error=INTERRUPTED, delivery_attempts=5
    )

    with django_capture_on_commit_callbacks(execute=True):
        message_delivery_retry(message=reply, actor=Actor.agent(agent))
    with pytest.raises(ApplicationError) as refused:
        message_delivery_retry(message=reply, actor=Actor.agent(agent))

    assert refused.value.message == "Only a message whose delivery failed can be sent again."
    reply.refresh_from_db()
    assert (reply.delivery_status, reply.delivery_error, reply.delivery_attempts) == ("sent", "", 1)
    assert len(mail.outbox) == 1
    assert mail.outbox[0].extra_headers["Message-ID"] == message_id_for(reply)
    kinds = [
        (e.before, e.after["status"]) for e in TicketEvent.objects.filter(kind="delivery", message=reply).order_by("pk")
    ]
    assert kinds == [("failed", "queued"), ("sending", "sent")]
    requeue = TicketEvent.objects.filter(kind="delivery", message=reply).order_by("pk").first()
    assert requeue.actor_user == agent and requeue.source == "ui"


def test_the_acknowledgement_and_every_reply_offer_all_the_customers_requests(
    queue, agent, settings, django_capture_on_commit_callbacks
):
    settings.SITE_URL = "https://help.example.com"
    with django_capture_on_commit_callbacks(execute=True):
        result = receive()
    assert "https://help.example.com/help/sign-in/" in mail.outbox[0].body
    mail.outbox.clear()
    with django_capture_on_commit_callbacks(execute=True):
        ticket_reply_create(ticket=result.ticket, author=agent, text="Refunded.", html="<p>Refunded.</p>")
    sent = mail.outbox[0]
    assert "See all your requests: https://help.example.com/help/sign-in/" in sent.body
    html = sent.alternatives[0][0]
    assert '<a href="https://help.example.com/help/sign-in/"' in html and html.startswith("<p>Refunded.</p>")
