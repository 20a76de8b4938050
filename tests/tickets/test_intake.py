"""The intake service: customers, threading, idempotency, events, acknowledgement."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from django.core import mail

from servicedesk.core.errors import ApplicationError
from servicedesk.tickets.events import Actor
from servicedesk.tickets.inbound import InboundAttachment, InboundMessage, IntakeOutcome, SenderIdentity
from servicedesk.tickets.models import Attachment, Customer, Identity, Message, Ticket, TicketEvent
from servicedesk.tickets.services.intake import inbound_message_receive
from servicedesk.tickets.services.tickets import ticket_status_change

pytestmark = pytest.mark.django_db

AT = datetime(2025, 10, 24, 15, 30, tzinfo=UTC)


def inbound(external_id: str = "w-1", email: str = "alice@example.com", **kwargs) -> InboundMessage:
    defaults = dict(
        channel="web",
        external_id=external_id,
        sender=SenderIdentity("email", email, "Alice Byrne"),
        subject="Invoice twice",
        text="I was charged twice.",
        received_at=AT,
    )
    defaults.update(kwargs)
    return InboundMessage(**defaults)


def test_first_contact_creates_customer_ticket_message_and_events(queue, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        result = inbound_message_receive(inbound=inbound(email="Alice@Example.COM"))

    assert result.outcome is IntakeOutcome.CREATED
    ticket = Ticket.objects.get()
    assert ticket.reference == f"SD-{ticket.pk + 1000}"
    assert (ticket.subject, ticket.channel, ticket.initiator, ticket.status, ticket.priority) == (
        "Invoice twice",
        "web",
        "inbound",
        "new",
        "normal",
    )
    assert ticket.created_at == AT and ticket.queue.slug == "support"
    assert Identity.objects.get().value == "alice@example.com"
    assert ticket.customer.name == "Alice Byrne"
    customer_message = Message.objects.get(kind="public_enduser")
    assert (customer_message.text, customer_message.external_id, customer_message.created_at) == (
        "I was charged twice.",
        "w-1",
        AT,
    )
    kinds = list(TicketEvent.objects.filter(ticket=ticket).values_list("kind", flat=True))
    assert kinds == ["created", "message", "acknowledged", "delivery"]
    created = TicketEvent.objects.get(ticket=ticket, kind="created")
    assert created.actor_customer == ticket.customer and created.at == AT
    assert created.after["status"] == "new"
    # The acknowledgement went out once, by email, after commit.
    assert len(mail.outbox) == 1
    ack = Message.objects.get(purpose="acknowledgement")
    assert ack.kind == "system" and ack.delivery_status == "sent"
    assert mail.outbox[0].extra_headers["Message-ID"] == ack.rfc_message_id


def test_same_external_id_twice_is_one_message_and_says_duplicate(queue, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        first = inbound_message_receive(inbound=inbound())
    with django_capture_on_commit_callbacks(execute=True):
        second = inbound_message_receive(inbound=inbound())

    assert second.outcome is IntakeOutcome.DUPLICATE and second.duplicate
    assert second.message.pk == first.message.pk and second.ticket.pk == first.ticket.pk
    assert Message.objects.filter(kind="public_enduser").count() == 1
    assert Ticket.objects.count() == 1
    assert len(mail.outbox) == 1


def test_same_external_id_on_another_channel_is_a_new_message(queue):
    inbound_message_receive(inbound=inbound())
    result = inbound_message_receive(inbound=inbound(channel="email"))
    assert result.outcome is IntakeOutcome.CREATED
    assert Message.objects.filter(kind="public_enduser").count() == 2


def test_known_identity_reuses_the_customer_across_channels(queue):
    first = inbound_message_receive(inbound=inbound())
    second = inbound_message_receive(inbound=inbound(external_id="w-2", subject="Another question"))
    assert second.outcome is IntakeOutcome.CREATED
    assert second.customer.pk == first.customer.pk
    assert Customer.objects.count() == 1


def test_reference_from_the_customer_appends_and_reopens(queue, django_capture_on_commit_callbacks):
    first = inbound_message_receive(inbound=inbound())
    ticket_status_change(ticket=first.ticket, status="solved", actor=Actor.system())
    mail.outbox.clear()
    with django_capture_on_commit_callbacks(execute=True):
        second = inbound_message_receive(
            inbound=inbound(
                external_id="w-2", subject="Re: Invoice", ticket_reference=first.ticket.reference, received_at=None
            )
        )
    assert second.outcome is IntakeOutcome.APPENDED
    assert second.ticket.pk == first.ticket.pk
    second.ticket.refresh_from_db()
    assert second.ticket.status == "open" and second.ticket.solved_at is None
    reopen = TicketEvent.objects.filter(ticket=first.ticket, kind="status").last()
    assert (reopen.before, reopen.after, reopen.actor_customer_id) == ("solved", "open", first.customer.pk)
    assert mail.outbox == []  # no second acknowledgement


def test_reference_from_a_stranger_opens_a_new_ticket(queue):
    first = inbound_message_receive(inbound=inbound())
    stranger = inbound_message_receive(
        inbound=inbound(external_id="w-2", email="mallory@example.net", ticket_reference=first.ticket.reference)
    )
    assert stranger.outcome is IntakeOutcome.CREATED
    assert stranger.ticket.pk != first.ticket.pk
    assert first.ticket.messages.filter(kind="public_enduser").count() == 1


def test_thread_key_joins_the_ticket_and_follows_merges(queue):
    from servicedesk.tickets.services.tickets import ticket_merge

    first = inbound_message_receive(inbound=inbound(rfc_message_id="<a@example.com>"))
    target = inbound_message_receive(inbound=inbound(external_id="w-2", subject="Dup"))
    ticket_merge(source=first.ticket, target=target.ticket, actor=Actor.system())
    reply = inbound_message_receive(inbound=inbound(external_id="w-3", thread_keys=("<a@example.com>",)))
    assert reply.outcome is IntakeOutcome.APPENDED
    assert reply.ticket.pk == target.ticket.pk


def test_pending_ticket_returns_to_open_when_the_customer_writes(queue):
    first = inbound_message_receive(inbound=inbound())
    ticket_status_change(ticket=first.ticket, status="pending", actor=Actor.system())
    inbound_message_receive(inbound=inbound(external_id="w-2", ticket_reference=first.ticket.reference))
    first.ticket.refresh_from_db()
    assert first.ticket.status == "open"


def test_automatic_message_is_stored_but_not_acknowledged_and_changes_no_status(
    queue, django_capture_on_commit_callbacks
):
    first = inbound_message_receive(inbound=inbound())
    ticket_status_change(ticket=first.ticket, status="pending", actor=Actor.system())
    with django_capture_on_commit_callbacks(execute=True):
        auto = inbound_message_receive(
            inbound=inbound(external_id="w-2", ticket_reference=first.ticket.reference, is_automatic=True)
        )
        new_auto = inbound_message_receive(
            inbound=inbound(external_id="w-3", email="bot@example.org", is_automatic=True)
        )
    first.ticket.refresh_from_db()
    assert auto.outcome is IntakeOutcome.APPENDED and first.ticket.status == "pending"
    assert new_auto.outcome is IntakeOutcome.CREATED
    assert not Message.objects.filter(ticket=new_auto.ticket, purpose="acknowledgement").exists()


def test_refusals_write_nothing(queue, settings):
    settings.SERVICEDESK = {**settings.SERVICEDESK, "ATTACHMENT_MAX_BYTES": 10}
    with pytest.raises(ApplicationError):
        inbound_message_receive(inbound=inbound(text="   ", html=""))
    with pytest.raises(ApplicationError):
        inbound_message_receive(inbound=inbound(email="not-an-address"))
    with pytest.raises(ApplicationError):
        inbound_message_receive(inbound=inbound(attachments=(InboundAttachment("big.txt", "text/plain", b"x" * 11),)))
    assert (Ticket.objects.count(), Customer.objects.count(), Message.objects.count(), Attachment.objects.count()) == (
        0,
        0,
        0,
        0,
    )


def test_attachments_are_stored_under_generated_keys(queue, settings):
    png = b"\x89PNG\r\n\x1a\n" + b"\x00" * 20
    result = inbound_message_receive(
        inbound=inbound(attachments=(InboundAttachment("../../etc/\u202escreen.png", "image/png", png),))
    )
    attachment = Attachment.objects.get()
    assert attachment.message == result.message and attachment.ticket == result.ticket
    assert attachment.filename == "screen.png"
    assert attachment.content_type == "image/png" and attachment.size == len(png)
    assert attachment.file.name == f"attachments/{attachment.key[:2]}/{attachment.key}"
    assert "screen" not in attachment.file.name
    with attachment.file.open("rb") as fh:
        assert fh.read() == png


def test_html_is_sanitised(queue):
    result = inbound_message_receive(
        inbound=inbound(html='<p onclick="x()">Hi<script>alert(1)</script><a href="javascript:x">l</a></p>')
    )
    assert result.message.html == '<p>Hi<a rel="noopener noreferrer nofollow">l</a></p>'


def test_failure_after_files_were_written_leaves_no_file(queue, monkeypatch, settings, tmp_path):
    import servicedesk.tickets.services.intake as intake

    def explode(*args, **kwargs):
        raise RuntimeError("database went away")

    monkeypatch.setattr(intake, "event_build", explode)
    with pytest.raises(RuntimeError):
        inbound_message_receive(inbound=inbound(attachments=(InboundAttachment("notes.txt", "text/plain", b"hello"),)))
    assert Ticket.objects.count() == 0 and Attachment.objects.count() == 0
    assert [p for p in settings.MEDIA_ROOT.rglob("*") if p.is_file()] == []


def test_trimmed_text_is_shown_and_the_whole_text_kept(queue, agent, client):
    full = "Still broken.\n\nOn Mon, Ann wrote:\n> Try again\n"
    result = inbound_message_receive(inbound=inbound(text=full, display_text="Still broken.\n"))
    message = result.message
    assert (message.text, message.display_text, message.shown_text, message.is_trimmed) == (
        full,
        "Still broken.\n",
        "Still broken.\n",
        True,
    )
    untrimmed = inbound_message_receive(inbound=inbound(external_id="w-2", text="Short", display_text="Short"))
    assert (untrimmed.message.display_text, untrimmed.message.is_trimmed) == ("", False)
    client.force_login(agent)
    page = client.get(f"/desk/tickets/{result.ticket.reference}/").content.decode()
    assert "Show the whole message" in page and "&gt; Try again" in page
