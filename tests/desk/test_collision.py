"""Collision hold: a reply written while the customer wrote again is not sent until the agent decides."""

import pytest
from django.core import mail

from servicedesk.tickets.inbound import InboundMessage, SenderIdentity
from servicedesk.tickets.models import HeldReply, Message, ReplyDraft
from servicedesk.tickets.services.intake import inbound_message_receive
from tests.api.conftest import client_for

pytestmark = pytest.mark.django_db


def customer_writes(external_id, text, ticket=None):
    return inbound_message_receive(
        inbound=InboundMessage(
            channel="email",
            external_id=external_id,
            sender=SenderIdentity(kind="email", value="alice@example.com", name="Alice Byrne"),
            subject="Printer on fire" if ticket is None else f"Re: [{ticket.reference}] Printer on fire",
            text=text,
            queue="support",
            ticket_reference=None if ticket is None else ticket.reference,
            reference_trusted=ticket is not None,
        )
    )


@pytest.fixture
def email_ticket(queue, customer):
    return customer_writes("<c1@example.com>", "Smoke is coming out of the printer.").ticket


def first_message_id(ticket):
    return Message.objects.filter(ticket=ticket, kind="public_enduser").order_by("pk").values_list("pk", flat=True)[0]


def test_the_form_carries_the_newest_customer_message(agent_client, email_ticket):
    page = agent_client.get(f"/desk/tickets/{email_ticket.reference}/").content.decode()

    assert f'<input type="hidden" name="after_message" value="{first_message_id(email_ticket)}">' in page


def test_a_reply_written_while_the_customer_wrote_is_held(
    agent_client, agent, email_ticket, django_capture_on_commit_callbacks
):
    seen = first_message_id(email_ticket)
    newer = customer_writes("<c2@example.com>", "Now it is really burning!", ticket=email_ticket).message
    assert newer.ticket_id == email_ticket.pk
    mail.outbox.clear()

    with django_capture_on_commit_callbacks(execute=True):
        response = agent_client.post(
            f"/desk/tickets/{email_ticket.reference}/reply/",
            {"text": "Please unplug it.", "kind": "reply", "after_message": seen, "priority": "high"},
        )

    assert response.status_code == 409
    page = response.content.decode()
    assert "The customer wrote again while you were typing." in page
    assert f'id="collision-{newer.pk}">Now it is really burning!</blockquote>' in page
    assert 'name="force" value="1">Send anyway</button>' in page
    assert f'href="/desk/tickets/{email_ticket.reference}/#message-{newer.pk}">Review</a>' in page
    # "Send anyway" is sent with the newest message seen now.
    assert f'<input type="hidden" name="after_message" value="{newer.pk}">' in page
    assert ">\nPlease unplug it.</textarea>" in page
    assert Message.objects.filter(ticket=email_ticket, kind="public_agent").count() == 0
    assert mail.outbox == []
    email_ticket.refresh_from_db()
    assert email_ticket.priority != "high"
    # "Review" keeps the draft.
    assert list(ReplyDraft.objects.values_list("agent", "kind", "text")) == [(agent.pk, "reply", "Please unplug it.")]
    review = agent_client.get(f"/desk/tickets/{email_ticket.reference}/").content.decode()
    assert ">\nPlease unplug it.</textarea>" in review


def test_send_anyway_sends(agent_client, email_ticket, django_capture_on_commit_callbacks):
    seen = first_message_id(email_ticket)
    customer_writes("<c3@example.com>", "Hello?", ticket=email_ticket)
    mail.outbox.clear()

    with django_capture_on_commit_callbacks(execute=True):
        response = agent_client.post(
            f"/desk/tickets/{email_ticket.reference}/reply/",
            {"text": "Please unplug it.", "kind": "reply", "after_message": seen, "force": "1"},
        )

    assert response.status_code == 302
    assert list(Message.objects.filter(kind="public_agent").values_list("text", flat=True)) == ["Please unplug it."]
    assert len(mail.outbox) == 1
    assert ReplyDraft.objects.count() == 0


def test_a_collision_holds_before_the_undo_window(agent_client, email_ticket, settings):
    settings.SERVICEDESK = {**settings.SERVICEDESK, "UNDO_SEND_SECONDS": 10}
    seen = first_message_id(email_ticket)
    customer_writes("<c4@example.com>", "Again", ticket=email_ticket)

    response = agent_client.post(
        f"/desk/tickets/{email_ticket.reference}/reply/",
        {"text": "Answer", "kind": "reply", "after_message": seen},
    )

    assert response.status_code == 409
    assert HeldReply.objects.count() == 0


def test_notes_are_not_held_by_a_collision(agent_client, email_ticket):
    seen = first_message_id(email_ticket)
    customer_writes("<c5@example.com>", "Again", ticket=email_ticket)

    response = agent_client.post(
        f"/desk/tickets/{email_ticket.reference}/reply/",
        {"text": "Note to self", "kind": "note", "after_message": seen},
    )

    assert response.status_code == 302
    assert Message.objects.filter(kind="internal", text="Note to self").count() == 1


def test_a_bad_after_message_is_a_400(agent_client, email_ticket):
    response = agent_client.post(
        f"/desk/tickets/{email_ticket.reference}/reply/",
        {"text": "Answer", "kind": "reply", "after_message": "x1"},
    )

    assert response.status_code == 400
    assert Message.objects.filter(kind="public_agent").count() == 0


def test_the_api_answers_409_with_the_newer_messages_unless_forced(agent, email_ticket):
    api = client_for(agent)
    seen = first_message_id(email_ticket)
    newer = customer_writes("<c6@example.com>", "Anyone there?", ticket=email_ticket).message
    url = f"/api/v1/tickets/{email_ticket.reference}/messages/"

    refused = api.post(url, {"kind": "reply", "text": "Yes.", "after_message": seen}, format="json")
    current = api.post(url, {"kind": "reply", "text": "Yes, here.", "after_message": newer.pk}, format="json")
    forced = api.post(url, {"kind": "reply", "text": "Forced.", "after_message": seen, "force": True}, format="json")

    assert refused.status_code == 409
    body = refused.json()
    assert [(m["id"], m["text"]) for m in body["messages"]] == [(newer.pk, "Anyone there?")]
    assert current.status_code == 201
    assert forced.status_code == 201
    assert list(Message.objects.filter(kind="public_agent").order_by("pk").values_list("text", flat=True)) == [
        "Yes, here.",
        "Forced.",
    ]


def test_the_api_refuses_a_bad_after_message_with_the_field(agent, email_ticket):
    response = client_for(agent).post(
        f"/api/v1/tickets/{email_ticket.reference}/messages/",
        {"kind": "reply", "text": "Yes.", "after_message": "latest"},
        format="json",
    )

    assert response.status_code == 400
    assert "after_message" in response.json()
    assert Message.objects.filter(kind="public_agent").count() == 0
