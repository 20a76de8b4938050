"""POST /api/v1/tickets/: agents open tickets inbound or outbound; customers open their own."""

from __future__ import annotations

import pytest
from django.core import mail

from servicedesk.tickets.models import Customer, Identity, Message, Ticket, TicketEvent
from tests.api.conftest import client_for
from tests.factories import AgentFactory, CustomerFactory, QueueFactory, TopicFactory, ticket_make

pytestmark = pytest.mark.django_db


@pytest.fixture
def known(customer, queue):
    """Alice, with an earlier ticket in the agent's queue: agents see the customers of their queues."""
    earlier = ticket_make(customer=customer, queue=queue, subject="Earlier")
    return customer, earlier


def post(client, data, **headers):  # type: ignore[no-untyped-def]
    return client.post("/api/v1/tickets/", data, format="json", headers=headers)


def test_agent_inbound_with_new_email_creates_customer_and_acknowledges(
    agent_api, agent, queue, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        response = post(
            agent_api,
            {
                "customer_email": "Dora@Example.com",
                "customer_name": "Dora Lind",
                "subject": "Parcel lost",
                "text": "My parcel never arrived.",
                "priority": "high",
                "acknowledge": True,
            },
        )

    assert response.status_code == 201, response.content
    ticket = Ticket.objects.get()
    customer = Customer.objects.get()
    body = response.json()
    assert body["reference"] == ticket.reference
    assert (body["subject"], body["status"], body["priority"], body["channel"], body["initiator"], body["queue"]) == (
        "Parcel lost",
        "new",
        "high",
        "api",
        "inbound",
        "support",
    )
    assert body["customer"] == {
        "id": customer.pk,
        "name": "Dora Lind",
        "identities": [{"kind": "email", "value": "dora@example.com"}],
    }
    assert body["messages_url"] == f"http://testserver/api/v1/tickets/{ticket.reference}/messages/"
    first = Message.objects.get(kind="public_enduser")
    assert (first.text, first.channel, first.author_customer_id) == ("My parcel never arrived.", "api", customer.pk)
    # The ticket opens with the priority the agent gave: no separate change.
    created = TicketEvent.objects.get(ticket=ticket, kind="created")
    assert created.after["priority"] == "high"
    assert not TicketEvent.objects.filter(ticket=ticket, kind="priority").exists()
    assert len(mail.outbox) == 1
    assert mail.outbox[0].to == ["Dora Lind <dora@example.com>"]
    assert mail.outbox[0].subject == f"[{ticket.reference}] Parcel lost"
    assert Message.objects.get(purpose="acknowledgement").delivery_status == "sent"


def test_agent_inbound_for_existing_customer_without_acknowledgement(
    agent_api, queue, known, django_capture_on_commit_callbacks
):
    customer, earlier = known
    with django_capture_on_commit_callbacks(execute=True):
        response = post(agent_api, {"customer": customer.pk, "subject": "Question", "text": "How do I export?"})

    assert response.status_code == 201, response.content
    ticket = Ticket.objects.exclude(pk=earlier.pk).get()
    assert (ticket.customer_id, ticket.initiator, ticket.priority) == (customer.pk, "inbound", "normal")
    assert list(Message.objects.values_list("kind", "text")) == [("public_enduser", "How do I export?")]
    assert Customer.objects.count() == 1
    assert mail.outbox == []
    assert not TicketEvent.objects.filter(kind="priority").exists()


def test_agent_outbound_sends_first_reply_to_customer(
    agent_api, agent, queue, known, django_capture_on_commit_callbacks
):
    customer, earlier = known
    topic = TopicFactory(slug="renewal")
    with django_capture_on_commit_callbacks(execute=True):
        response = post(
            agent_api,
            {
                "customer": customer.pk,
                "subject": "Your renewal",
                "text": "Your plan renews next week.",
                "initiator": "outbound",
                "topic": "renewal",
                "queue": "support",
            },
        )

    assert response.status_code == 201, response.content
    ticket = Ticket.objects.exclude(pk=earlier.pk).get()
    assert (ticket.initiator, ticket.channel, ticket.topic_id, ticket.queue_id) == (
        "outbound",
        "api",
        topic.pk,
        queue.pk,
    )
    reply = Message.objects.get()
    assert (reply.kind, reply.text, reply.author_user_id, reply.delivery_status) == (
        "public_agent",
        "Your plan renews next week.",
        agent.pk,
        "sent",
    )
    assert ticket.first_reply_at == reply.created_at
    assert response.json()["first_reply_at"] is not None
    assert len(mail.outbox) == 1
    assert mail.outbox[0].to == ["Alice Byrne <alice@example.com>"]
    assert mail.outbox[0].subject == f"Re: [{ticket.reference}] Your renewal"
    assert (
        mail.outbox[0].body
        == "Your plan renews next week.\n\nSee all your requests: http://127.0.0.1:8000/help/sign-in/\n"
    )
    created = TicketEvent.objects.get(ticket=ticket, kind="created")
    assert (created.actor_user_id, created.source, created.after["initiator"]) == (agent.pk, "api", "outbound")


def test_agent_outbound_to_new_email_creates_customer(agent_api, queue, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        response = post(
            agent_api,
            {"customer_email": "eve@example.com", "subject": "Welcome", "text": "Hello Eve.", "initiator": "outbound"},
        )

    assert response.status_code == 201, response.content
    assert list(Identity.objects.values_list("kind", "value")) == [("email", "eve@example.com")]
    assert [m.to for m in mail.outbox] == [["eve@example.com"]]


def test_idempotency_key_inbound_twice_gives_one_ticket(agent_api, queue, known, django_capture_on_commit_callbacks):
    customer, _earlier = known
    data = {"customer": customer.pk, "subject": "Dup", "text": "Once only.", "acknowledge": True}
    with django_capture_on_commit_callbacks(execute=True):
        first = post(agent_api, data, **{"Idempotency-Key": "order-77"})
    with django_capture_on_commit_callbacks(execute=True):
        second = post(agent_api, data, **{"Idempotency-Key": "order-77"})

    assert (first.status_code, second.status_code) == (201, 200)
    assert first.json()["reference"] == second.json()["reference"]
    assert Ticket.objects.count() == 2
    assert Message.objects.filter(kind="public_enduser").count() == 1
    assert len(mail.outbox) == 1


def test_idempotency_key_outbound_twice_gives_one_ticket(agent_api, queue, known, django_capture_on_commit_callbacks):
    customer, _earlier = known
    data = {"customer": customer.pk, "subject": "Dup", "text": "Sent once.", "initiator": "outbound"}
    with django_capture_on_commit_callbacks(execute=True):
        first = post(agent_api, data, **{"Idempotency-Key": "call-9"})
    with django_capture_on_commit_callbacks(execute=True):
        second = post(agent_api, data, **{"Idempotency-Key": "call-9"})

    assert (first.status_code, second.status_code) == (201, 200)
    assert first.json()["reference"] == second.json()["reference"]
    assert (Ticket.objects.count(), Message.objects.count(), len(mail.outbox)) == (2, 1, 1)


def test_idempotency_keys_are_per_caller(agent_api, queue, known):
    customer, _earlier = known
    other = client_for(AgentFactory(username="bea", queues=[queue]))
    data = {"customer": customer.pk, "subject": "Same key", "text": "Hi."}

    first = post(agent_api, data, **{"Idempotency-Key": "k-1"})
    second = post(other, data, **{"Idempotency-Key": "k-1"})

    assert (first.status_code, second.status_code) == (201, 201)
    assert first.json()["reference"] != second.json()["reference"]
    assert Ticket.objects.count() == 3


@pytest.mark.parametrize(
    ("data", "errors"),
    [
        ({"subject": "S", "text": "T"}, {"customer": ["Give a customer id or a customer_email."]}),
        (
            {"customer_email": "not-an-email", "subject": "S", "text": "T"},
            {"customer_email": ["Enter an email address with one @, such as name@example.com."]},
        ),
        (
            {"customer_email": "x@example.com", "subject": "", "text": ""},
            {
                "subject": ["This field may not be blank."],
                "text": ["This field may not be blank."],
            },
        ),
        ({"customer_email": "x@example.com", "text": "T"}, {"subject": ["This field is required."]}),
        ({"customer": 999999, "subject": "S", "text": "T"}, {"customer": ["Unknown customer: 999999."]}),
        ({"customer": "abc", "subject": "S", "text": "T"}, {"customer": ["Give the customer's id."]}),
        ({"customer": 1.5, "subject": "S", "text": "T"}, {"customer": ["Give the customer's id."]}),
        ({"customer": "1.5", "subject": "S", "text": "T"}, {"customer": ["Give the customer's id."]}),
        ({"customer": True, "subject": "S", "text": "T"}, {"customer": ["Give the customer's id."]}),
        ({"customer": 2**70, "subject": "S", "text": "T"}, {"customer": ["Give the customer's id."]}),
        ({"customer": -1, "subject": "S", "text": "T"}, {"customer": ["Give the customer's id."]}),
        ({"customer": "unseen", "subject": "S", "text": "T"}, {}),
        (
            {"customer_email": "x@example.com", "subject": "S", "text": "T", "queue": "billing"},
            {"queue": ["Unknown queue, or not one of your queues: billing."]},
        ),
        (
            {"customer_email": "x@example.com", "subject": "S", "text": "T", "priority": "asap"},
            {"priority": ['"asap" is not a valid choice.']},
        ),
        (
            {"customer_email": "x@example.com", "subject": "S", "text": "T", "topic": "nope"},
            {"topic": ["Unknown topic: nope."]},
        ),
        (
            {"customer_email": "x@example.com", "subject": "S", "text": "T", "initiator": "sideways"},
            {"initiator": ['"sideways" is not a valid choice.']},
        ),
        (
            {"customer_email": "x@example.com", "subject": "S" * 301, "text": "T"},
            {"subject": ["Ensure this field has no more than 300 characters."]},
        ),
    ],
)
def test_invalid_input_is_400_with_field_messages_and_nothing_written(agent_api, queue, data, errors):
    QueueFactory(slug="billing")
    unseen = CustomerFactory(name="Only in billing")
    ticket_make(customer=unseen, queue=QueueFactory(slug="billing"))
    if data.get("customer") == "unseen":
        data = {**data, "customer": unseen.pk}
        errors = {"customer": [f"Unknown customer: {unseen.pk}."]}
    tickets_before = Ticket.objects.count()
    messages_before = Message.objects.count()
    customers_before = Customer.objects.count()

    response = post(agent_api, data)

    assert response.status_code == 400
    assert response.json() == {"detail": "Invalid input.", **errors}
    assert (Ticket.objects.count(), Message.objects.count(), Customer.objects.count()) == (
        tickets_before,
        messages_before,
        customers_before,
    )


def test_both_customer_and_email_is_400(agent_api, queue, known):
    customer, _earlier = known
    response = post(agent_api, {"customer": customer.pk, "customer_email": "a@b.example", "subject": "S", "text": "T"})

    assert response.status_code == 400
    assert response.json() == {
        "detail": "Invalid input.",
        "customer_email": ["Give either customer or customer_email, not both."],
    }


def test_customer_without_email_is_400(agent_api, queue):
    customer = CustomerFactory(name="Phone only")
    Identity.objects.filter(customer=customer).update(kind="phone", value="+4930123456")
    ticket_make(customer=customer, queue=queue)
    ticket_count = Ticket.objects.count()

    response = post(agent_api, {"customer": customer.pk, "subject": "S", "text": "T"})

    assert response.status_code == 400
    assert response.json() == {"detail": "Invalid input.", "customer": ["This customer has no email address."]}
    assert Ticket.objects.count() == ticket_count


def test_agent_outside_the_default_queue_must_choose_a_queue(queue):
    QueueFactory(slug="billing")
    billing_agent = AgentFactory(username="bill", queues=[QueueFactory(slug="billing")])

    missing = post(client_for(billing_agent), {"customer_email": "x@example.com", "subject": "S", "text": "T"})
    chosen = post(
        client_for(billing_agent), {"customer_email": "x@example.com", "subject": "S", "text": "T", "queue": "billing"}
    )

    assert missing.status_code == 400
    assert missing.json() == {"detail": "Invalid input.", "queue": ["Choose one of your queues for this ticket."]}
    assert chosen.status_code == 201
    assert chosen.json()["queue"] == "billing"
    assert Ticket.objects.count() == 1


def test_customer_opens_own_ticket_and_is_acknowledged(
    customer_api, customer, queue, django_capture_on_commit_callbacks
):
    TopicFactory(slug="secret", is_public=False)
    TopicFactory(slug="orders", is_public=True)
    with django_capture_on_commit_callbacks(execute=True):
        response = post(
            customer_api,
            {"subject": "Where is my order?", "text": "Order 12 is late.", "topic": "orders", "priority": "urgent"},
        )

    assert response.status_code == 201, response.content
    ticket = Ticket.objects.get()
    assert (ticket.customer_id, ticket.channel, ticket.priority, ticket.topic.slug) == (
        customer.pk,
        "api",
        "normal",
        "orders",
    )
    assert Message.objects.get(kind="public_enduser").author_customer_id == customer.pk
    assert [m.to for m in mail.outbox] == [["Alice Byrne <alice@example.com>"]]
    hidden_topic = post(customer_api, {"subject": "S", "text": "T", "topic": "secret"})
    assert hidden_topic.status_code == 400
    assert hidden_topic.json() == {"detail": "Invalid input.", "topic": ["Unknown topic: secret."]}


def test_user_without_role_or_customer_record_cannot_create(queue):
    nobody = client_for(AgentFactory(username="nobody", role="visitor"))

    response = post(nobody, {"customer_email": "x@example.com", "subject": "S", "text": "T"})

    assert response.status_code == 403
    assert response.json() == {"detail": "Only agents and customers can do this."}
    assert Ticket.objects.count() == 0


def test_key_used_for_a_reply_cannot_open_a_ticket(agent_api, queue, customer):
    earlier = ticket_make(customer=customer, queue=queue, channel="api", subject="Earlier by API")
    agent_api.post(
        f"/api/v1/tickets/{earlier.reference}/messages/",
        {"text": "A reply."},
        format="json",
        headers={"Idempotency-Key": "k-9"},
    )
    messages_before = Message.objects.count()
    message = (
        "This Idempotency-Key was already used with a different request (method, address or body). "
        "Send the same request to repeat it, or use a new key for a new request."
    )

    outbound = post(
        agent_api,
        {"customer": customer.pk, "subject": "New", "text": "Hi.", "initiator": "outbound"},
        **{"Idempotency-Key": "k-9"},
    )
    inbound = post(agent_api, {"customer": customer.pk, "subject": "New", "text": "Hi."}, **{"Idempotency-Key": "k-9"})

    assert (outbound.status_code, inbound.status_code) == (422, 422)
    assert outbound.json() == inbound.json() == {"detail": message, "Idempotency-Key": [message]}
    assert (Ticket.objects.count(), Message.objects.count()) == (1, messages_before)


def test_overlong_idempotency_key_is_400(agent_api, queue):
    response = post(
        agent_api, {"customer_email": "x@example.com", "subject": "S", "text": "T"}, **{"Idempotency-Key": "k" * 201}
    )

    assert response.status_code == 400
    message = "The Idempotency-Key header is longer than 200 characters."
    assert response.json() == {"detail": message, "Idempotency-Key": [message]}
    assert Ticket.objects.count() == 0


def test_agent_opens_a_ticket_for_an_internationalised_address(agent_api, queue, django_capture_on_commit_callbacks):
    """The address as given in the A-label form is stored and answered in its one canonical form."""
    with django_capture_on_commit_callbacks(execute=True):
        response = post(
            agent_api,
            {
                "customer_email": "JOSÉ@xn--bcher-kva.example",
                "customer_name": "José Núñez",
                "subject": "Pedido",
                "text": "Mi pedido no ha llegado.",
                "acknowledge": True,
            },
        )
        again = post(agent_api, {"customer_email": "josé@bücher.example", "subject": "Otro", "text": "Y otro."})

    assert (response.status_code, again.status_code) == (201, 201), response.content
    customer = Customer.objects.get()
    assert response.json()["customer"] == {
        "id": customer.pk,
        "name": "José Núñez",
        "identities": [{"kind": "email", "value": "josé@bücher.example"}],
    }
    assert list(Ticket.objects.values_list("customer_id", flat=True)) == [customer.pk, customer.pk]
    # The domain goes out in its ASCII form (channels_app/email/smtp.py).
    assert [sent.to for sent in mail.outbox] == [["José Núñez <josé@xn--bcher-kva.example>"]]


@pytest.mark.parametrize(
    ("address", "error"),
    [
        ("josé@bü cher.example", "The domain after the @ is not a valid domain name."),
        ("jo\u0007sé@example.com", "The part before the @ contains a space or a character not allowed there."),
        ("josé@xn--zz.example", "The domain after the @ is not a valid domain name."),
    ],
)
def test_an_address_that_is_none_is_a_field_error(agent_api, queue, address, error):
    response = post(agent_api, {"customer_email": address, "subject": "S", "text": "T"})

    assert response.status_code == 400
    assert response.json() == {"detail": "Invalid input.", "customer_email": [error]}
    assert (Ticket.objects.count(), Customer.objects.count()) == (0, 0)
