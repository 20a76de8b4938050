"""/api/v1/tickets/<reference>/messages/: the conversation, and writing on it."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from django.core import mail

from servicedesk.tickets.inbound import InboundAttachment, InboundMessage, SenderIdentity
from servicedesk.tickets.models import Attachment, Message, Ticket, TicketEvent
from servicedesk.tickets.services.intake import inbound_message_receive
from servicedesk.tickets.services.replies import ticket_note_create, ticket_reply_create

pytestmark = pytest.mark.django_db

T0 = datetime(2025, 3, 1, 9, 0, tzinfo=UTC)


@pytest.fixture
def conversation(queue, customer, agent, django_capture_on_commit_callbacks):
    """Alice writes by email with a file (acknowledged), Ann notes internally, then replies."""
    with django_capture_on_commit_callbacks(execute=True):
        result = inbound_message_receive(
            inbound=InboundMessage(
                channel="email",
                external_id="<m1@example.com>",
                sender=SenderIdentity("email", "alice@example.com", "Alice Byrne"),
                subject="Invoice twice",
                text="I was charged twice.",
                attachments=(InboundAttachment("invoice.txt", "text/plain", b"Invoice 12: 40 EUR"),),
                received_at=T0,
            )
        )
        note = ticket_note_create(ticket=result.ticket, author=agent, text="Check the payment log.")
        reply = ticket_reply_create(ticket=result.ticket, author=agent, text="Refunded.")
    mail.outbox.clear()
    ack = Message.objects.get(purpose="acknowledgement")
    return {"ticket": result.ticket, "first": result.message, "ack": ack, "note": note, "reply": reply}


def ids(response) -> list[int]:  # type: ignore[no-untyped-def]
    assert response.status_code == 200, response.content
    return [item["id"] for item in response.json()["results"]]


def test_agent_sees_every_message_with_downloads(agent_api, conversation, customer, agent):
    c = conversation
    attachment = Attachment.objects.get()

    response = agent_api.get(f"/api/v1/tickets/{c['ticket'].reference}/messages/")

    assert ids(response) == [c["first"].pk, c["ack"].pk, c["note"].pk, c["reply"].pk]
    first, ack, note, reply = response.json()["results"]
    assert first == {
        "id": c["first"].pk,
        "kind": "public_enduser",
        "channel": "email",
        "author": {"type": "customer", "id": customer.pk, "name": "Alice Byrne"},
        "text": "I was charged twice.",
        "html": "",
        "created_at": "2025-03-01T09:00:00Z",
        "delivery_status": "",
        "delivery_error": "",
        "attachments": [
            {
                "filename": "invoice.txt",
                "content_type": "text/plain",
                "size": 18,
                "url": f"http://testserver/desk/attachments/{attachment.key}/",
            }
        ],
        "dropped_attachments": [],
    }
    assert (ack["kind"], ack["author"], ack["delivery_status"]) == (
        "system",
        {"type": "system", "id": None, "name": "Service desk"},
        "sent",
    )
    assert (note["kind"], note["author"], note["text"]) == (
        "internal",
        {"type": "agent", "id": agent.pk, "name": "Ann"},
        "Check the payment log.",
    )
    assert (reply["kind"], reply["delivery_status"]) == ("public_agent", "sent")


def test_customer_sees_public_messages_without_download_links(customer_api, conversation):
    c = conversation

    response = customer_api.get(f"/api/v1/tickets/{c['ticket'].reference}/messages/")

    assert ids(response) == [c["first"].pk, c["ack"].pk, c["reply"].pk]
    assert response.json()["results"][0]["attachments"] == [
        {"filename": "invoice.txt", "content_type": "text/plain", "size": 18}
    ]


def test_messages_are_paginated(agent_api, conversation):
    response = agent_api.get(f"/api/v1/tickets/{conversation['ticket'].reference}/messages/?page_size=2")

    body = response.json()
    assert (body["count"], len(body["results"]), body["previous"]) == (4, 2, None)
    assert body["next"] == (
        f"http://testserver/api/v1/tickets/{conversation['ticket'].reference}/messages/?page=2&page_size=2"
    )


def test_agent_reply_is_sent_and_can_change_status(agent_api, agent, conversation, django_capture_on_commit_callbacks):
    ticket = conversation["ticket"]
    with django_capture_on_commit_callbacks(execute=True):
        response = agent_api.post(
            f"/api/v1/tickets/{ticket.reference}/messages/",
            {"kind": "reply", "text": "Anything else?", "status": "pending"},
            format="json",
        )

    assert response.status_code == 201, response.content
    message = Message.objects.get(text="Anything else?")
    body = response.json()
    assert (body["id"], body["kind"], body["author"], body["delivery_status"]) == (
        message.pk,
        "public_agent",
        {"type": "agent", "id": agent.pk, "name": "Ann"},
        "queued",
    )
    message.refresh_from_db()
    assert message.delivery_status == "sent"
    assert [m.to for m in mail.outbox] == [["Alice Byrne <alice@example.com>"]]
    assert mail.outbox[0].body == "Anything else?\n\nSee all your requests: http://127.0.0.1:8000/help/sign-in/\n"
    assert Ticket.objects.get(pk=ticket.pk).status == "pending"
    status_event = TicketEvent.objects.filter(ticket=ticket, kind="status").latest("id")
    assert (status_event.before, status_event.after, status_event.source) == ("new", "pending", "api")


def test_agent_note_is_not_sent(agent_api, conversation, django_capture_on_commit_callbacks):
    ticket = conversation["ticket"]
    with django_capture_on_commit_callbacks(execute=True):
        response = agent_api.post(
            f"/api/v1/tickets/{ticket.reference}/messages/", {"kind": "note", "text": "Internal only."}, format="json"
        )

    assert response.status_code == 201, response.content
    assert (response.json()["kind"], response.json()["delivery_status"]) == ("internal", "")
    assert mail.outbox == []


def test_agent_reply_with_idempotency_key_is_written_once(agent_api, conversation, django_capture_on_commit_callbacks):
    url = f"/api/v1/tickets/{conversation['ticket'].reference}/messages/"
    with django_capture_on_commit_callbacks(execute=True):
        first = agent_api.post(url, {"text": "Once."}, format="json", headers={"Idempotency-Key": "r-1"})
    with django_capture_on_commit_callbacks(execute=True):
        second = agent_api.post(url, {"text": "Once."}, format="json", headers={"Idempotency-Key": "r-1"})

    assert (first.status_code, second.status_code) == (201, 200)
    assert first.json()["id"] == second.json()["id"]
    assert Message.objects.filter(text="Once.").count() == 1
    assert len(mail.outbox) == 1


@pytest.mark.parametrize(
    ("data", "errors"),
    [
        ({"kind": "reply", "text": ""}, {"text": ["This field may not be blank."]}),
        ({"kind": "shout", "text": "Hi"}, {"kind": ['"shout" is not a valid choice.']}),
        ({"text": "Hi", "status": "gone"}, {"status": ['"gone" is not a valid choice.']}),
    ],
)
def test_invalid_message_is_400(agent_api, conversation, data, errors):
    before = Message.objects.count()

    response = agent_api.post(f"/api/v1/tickets/{conversation['ticket'].reference}/messages/", data, format="json")

    assert response.status_code == 400
    assert response.json() == {"detail": "Invalid input.", **errors}
    assert Message.objects.count() == before


def test_reply_with_invalid_transition_writes_nothing(agent_api, conversation):
    ticket = conversation["ticket"]
    agent_api.patch(f"/api/v1/tickets/{ticket.reference}/", {"status": "closed"}, format="json")
    before = Message.objects.count()

    response = agent_api.post(
        f"/api/v1/tickets/{ticket.reference}/messages/", {"text": "Hi", "status": "pending"}, format="json"
    )

    assert response.status_code == 400
    assert response.json() == {
        "detail": "A ticket cannot go from Closed to Pending.",
        "status": ["A ticket cannot go from Closed to Pending."],
    }
    assert Message.objects.count() == before


def test_customer_posts_to_own_ticket(customer_api, customer, conversation, django_capture_on_commit_callbacks):
    ticket = conversation["ticket"]
    url = f"/api/v1/tickets/{ticket.reference}/messages/"
    with django_capture_on_commit_callbacks(execute=True):
        response = customer_api.post(url, {"text": "Thanks, received.", "kind": "note"}, format="json")

    assert response.status_code == 201, response.content
    message = Message.objects.get(text="Thanks, received.")
    assert response.json()["author"] == {"type": "customer", "id": customer.pk, "name": "Alice Byrne"}
    assert (message.kind, message.channel, message.ticket_id, message.author_customer_id) == (
        "public_enduser",
        "api",
        ticket.pk,
        customer.pk,
    )
    assert Ticket.objects.get(pk=ticket.pk).status == "new"
    assert mail.outbox == []


def test_customer_message_with_idempotency_key_is_stored_once(customer_api, conversation):
    url = f"/api/v1/tickets/{conversation['ticket'].reference}/messages/"

    first = customer_api.post(url, {"text": "Hello?"}, format="json", headers={"Idempotency-Key": "c-1"})
    second = customer_api.post(url, {"text": "Hello?"}, format="json", headers={"Idempotency-Key": "c-1"})

    assert (first.status_code, second.status_code) == (201, 200)
    assert first.json()["id"] == second.json()["id"]
    assert Message.objects.filter(text="Hello?").count() == 1


def test_customer_empty_message_is_400(customer_api, conversation):
    response = customer_api.post(
        f"/api/v1/tickets/{conversation['ticket'].reference}/messages/", {"text": "  "}, format="json"
    )

    assert response.status_code == 400
    assert response.json() == {"detail": "Invalid input.", "text": ["This field may not be blank."]}


def test_agent_reply_can_quote_the_earlier_conversation(agent_api, conversation, django_capture_on_commit_callbacks):
    ticket = conversation["ticket"]
    with django_capture_on_commit_callbacks(execute=True):
        response = agent_api.post(
            f"/api/v1/tickets/{ticket.reference}/messages/",
            {"kind": "reply", "text": "Anything else?", "quote_history": True},
            format="json",
        )
    assert response.status_code == 201, response.content
    assert Message.objects.get(pk=response.json()["id"]).quote_history is True
    body = mail.outbox[0].body.splitlines()
    assert body[0] == "Anything else?"
    assert body[2] == "See all your requests: http://127.0.0.1:8000/help/sign-in/"
    assert body[4].endswith(", Ann wrote:") and body[5] == "> Refunded."
    assert body[7].endswith(", Alice Byrne wrote:") and body[8] == "> I was charged twice."
    assert "Check the payment log." not in mail.outbox[0].body  # notes are never quoted


@pytest.mark.parametrize(
    ("language", "message"),
    [("en", "setup.exe is not a file type we accept."), ("zh-hans", "setup.exe 不是我们接受的文件类型。")],
)
def test_dropped_attachment_is_named_with_the_reason(agent_api, queue, language, message):
    result = inbound_message_receive(
        inbound=InboundMessage(
            channel="email",
            external_id="<files@example.com>",
            sender=SenderIdentity("email", "alice@example.com", "Alice Byrne"),
            subject="Installer",
            text="Here it is.",
            attachments=(InboundAttachment("setup.exe", "application/octet-stream", b"MZ"),),
            drop_rejected_attachments=True,
        )
    )

    response = agent_api.get(f"/api/v1/tickets/{result.ticket.reference}/messages/", HTTP_ACCEPT_LANGUAGE=language)

    first = response.json()["results"][0]
    assert (first["attachments"], first["dropped_attachments"]) == (
        [],
        [{"filename": "setup.exe", "reason": "type", "message": message}],
    )
