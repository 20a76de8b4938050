"""The statement budget of each intake path (docs/architecture.md, "Intake: statement budgets").

Each test counts every statement one contact sends to the database, as
Django's ``assertNumQueries`` does: in these tests the intake's transaction
is a savepoint of the test's, so ``SAVEPOINT`` / ``RELEASE`` stand where a
deployment sends ``BEGIN`` / ``COMMIT``, and count the same. A change that
adds a statement to a path fails here; the budgets are the figures the
architecture document lists.

The configuration (queues, topics, SLA policies and calendars, routing) is
read once per process (``core/process_cache.py``): each test sends one contact
first, so what is counted is the steady state of a running desk.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from channels_app.chat import services as chat_services
from channels_app.chat.models import ChatConversation
from channels_app.email.models import InboundEmail
from channels_app.email.services import IngestOutcome, email_ingest
from servicedesk.routing.services import agent_profile_ensure, queue_routing_set
from servicedesk.sla.models import BusinessCalendar, SlaPolicy, SlaTarget
from servicedesk.tickets.inbound import InboundMessage, IntakeOutcome, SenderIdentity
from servicedesk.tickets.models import Message, MessageKind, Ticket, TicketEvent, TicketTarget
from servicedesk.tickets.services.intake import inbound_message_receive
from servicedesk.tickets.statuses import Status
from tests.channels_app.chat.helpers import chat_agent, start, widget_make
from tests.channels_app.email.test_ingest import mail
from tests.factories import AgentFactory, CustomerFactory

pytestmark = pytest.mark.django_db

# The targets: at most 12 for a new ticket, 8 for a reply. Each budget is the
# count today, so any statement added to a path shows here.
NEW_TICKET = 11
REPLY = 8
DUPLICATE = 6
CHAT_MESSAGE = 7
# A visitor's line in a live chat, its transaction whole (channels_app/chat/services.py):
# the conversation and its ticket locked in one statement, the message, its event, the
# ticket's time, the conversation's sequence number, the line.
CHAT_LINE = 8
# Beyond those paths, held all the same: a reply that moves the ticket back to
# open (a status event and the SLA clock resumed), and a new ticket in a queue
# that assigns automatically (the agents locked and counted).
REOPENING_REPLY = 11
NEW_ROUTED_TICKET = 21


@contextmanager
def statements(budget: int, label: str) -> Iterator[CaptureQueriesContext]:
    with CaptureQueriesContext(connection) as captured:
        yield captured
    sent = [query["sql"] for query in captured.captured_queries]
    listing = "\n".join(f"  {n}. {sql[:150]}" for n, sql in enumerate(sent, 1))
    assert len(sent) <= budget, f"{label}: {len(sent)} statements, budget {budget}:\n{listing}"


@pytest.fixture
def desk(queue):
    """A desk as configured in production: a 24x7 SLA policy and a known customer, configuration warm."""
    calendar = BusinessCalendar.objects.create(slug="utc", name="UTC", time_zone="UTC", is_default=True)
    policy = SlaPolicy.objects.create(slug="standard", name="Standard", rank=10, calendar=calendar, match={})
    SlaTarget.objects.create(
        policy=policy, priority="normal", first_reply_minutes=60, resolution_minutes=240, hours="calendar"
    )
    CustomerFactory(name="Alice Byrne", email="alice@example.com")
    assert email_ingest(raw=mail(message_id="<warm@example.com>"), source="pipe").outcome is IngestOutcome.STORED
    return queue


def test_a_new_ticket_from_a_known_customer(desk):
    with statements(NEW_TICKET, "new ticket, known customer"):
        result = email_ingest(raw=mail(message_id="<n1@example.com>", subject="Invoice missing"), source="pipe")

    # Everything the guarantees promise is there: ticket, message, acknowledgement, events, SLA, row.
    ticket = Ticket.objects.get(reference=result.reference)
    assert result.outcome is IngestOutcome.STORED and ticket.customer.name == "Alice Byrne"
    assert ticket.sla_policy is not None and ticket.sla_due_at is not None
    assert sorted(TicketTarget.objects.filter(ticket=ticket).values_list("kind", flat=True)) == [
        "first_reply",
        "resolution",
    ]
    assert list(ticket.events.order_by("id").values_list("kind", flat=True)) == [
        "created",
        "sla_applied",
        "sla_applied",
        "message",
        "acknowledged",
    ]
    ack = ticket.messages.get(purpose=Message.Purpose.ACKNOWLEDGEMENT)
    assert ack.delivery_status == "queued" and ticket.reference in ack.text
    assert InboundEmail.objects.get(raw_sha256=result.inbound_email.raw_sha256).message == result.inbound_email.message


def test_a_new_customers_first_mail(desk):
    with statements(NEW_TICKET, "new customer"):
        result = email_ingest(raw=mail(message_id="<c1@example.com>", sender="Bo Chen <bo@example.com>"), source="pipe")

    ticket = Ticket.objects.get(reference=result.reference)
    assert ticket.customer.name == "Bo Chen" and ticket.customer.identities.get().value == "bo@example.com"
    assert ticket.messages.filter(purpose=Message.Purpose.ACKNOWLEDGEMENT).count() == 1


def test_a_threaded_reply(desk):
    first = email_ingest(raw=mail(message_id="<t1@example.com>"), source="pipe")
    reply = mail(
        message_id="<t2@example.com>", subject="Re: Printer is on fire", extra="In-Reply-To: <t1@example.com>\r\n"
    )

    with statements(REPLY, "threaded reply"):
        result = email_ingest(raw=reply, source="pipe")

    assert result.outcome is IngestOutcome.STORED and result.reference == first.reference
    ticket = Ticket.objects.get(reference=first.reference)
    assert ticket.messages.filter(kind=MessageKind.PUBLIC_ENDUSER).count() == 2
    assert ticket.version == 2 and ticket.events.filter(kind=TicketEvent.Kind.MESSAGE).count() == 2


def test_a_reply_that_reopens_a_pending_ticket(desk):
    first = email_ingest(raw=mail(message_id="<p1@example.com>"), source="pipe")
    Ticket.objects.filter(reference=first.reference).update(status=Status.PENDING)
    reply = mail(message_id="<p2@example.com>", subject="Re: Printer", extra="In-Reply-To: <p1@example.com>\r\n")

    with statements(REOPENING_REPLY, "reply reopening a pending ticket"):
        email_ingest(raw=reply, source="pipe")

    assert Ticket.objects.get(reference=first.reference).status == Status.OPEN


def test_a_duplicate_delivery(desk):
    raw = mail(message_id="<d1@example.com>")
    first = email_ingest(raw=raw, source="pipe")

    with statements(DUPLICATE, "duplicate delivery"):
        again = email_ingest(raw=raw, source="pipe")

    assert again.outcome is IngestOutcome.DUPLICATE and again.inbound_email.pk == first.inbound_email.pk
    assert (Ticket.objects.filter(reference=first.reference).count(), InboundEmail.objects.count()) == (1, 2)


def chat_line(n: int, reference: str) -> InboundMessage:
    return InboundMessage(
        channel="chat",
        external_id=f"chat-{n}",
        sender=SenderIdentity(kind="email", value="alice@example.com"),
        text=f"And one more thing ({n})",
        ticket_reference=reference,
        reference_trusted=True,
    )


def test_a_chat_sized_message_on_an_open_ticket(desk):
    reference = email_ingest(raw=mail(message_id="<o1@example.com>"), source="pipe").reference
    assert reference is not None
    Ticket.objects.filter(reference=reference).update(status=Status.OPEN)
    inbound_message_receive(inbound=chat_line(0, reference))

    with statements(CHAT_MESSAGE, "chat message"):
        result = inbound_message_receive(inbound=chat_line(1, reference))

    assert result.outcome is IntakeOutcome.APPENDED and result.ticket.reference == reference
    assert result.ticket.messages.filter(channel="chat").count() == 2


def test_a_visitors_line_in_a_live_chat(desk):
    widget = widget_make(queue=desk)
    agent = chat_agent(desk)
    conversation = start(widget).conversation
    chat_services.chat_accept(conversation_id=conversation.pk, agent=agent)
    chat_services.chat_visitor_message(conversation_id=conversation.pk, client_id=uuid.uuid4(), text="warm")

    with statements(CHAT_LINE, "chat line") as captured:
        line, new = chat_services.chat_visitor_message(
            conversation_id=conversation.pk, client_id=uuid.uuid4(), text="Where is my parcel?"
        )

    assert new and line.message.ticket_id == conversation.ticket_id
    assert line.message.author_customer_id == conversation.customer_id
    assert line.seq == ChatConversation.objects.get(pk=conversation.pk).last_seq
    assert "FOR UPDATE OF" in captured.captured_queries[1]["sql"]
    event = TicketEvent.objects.get(message=line.message)
    assert (event.kind, event.actor_customer_id) == (TicketEvent.Kind.MESSAGE, conversation.customer_id)


def test_a_new_ticket_in_a_routed_queue(desk):
    queue_routing_set(queue=desk, mode="round_robin")
    agent = AgentFactory(username="ann", queues=[desk])
    agent_profile_ensure(user=agent, availability="online", capacity=10)
    email_ingest(raw=mail(message_id="<r0@example.com>"), source="pipe")

    with statements(NEW_ROUTED_TICKET, "new ticket, routed queue"):
        result = email_ingest(raw=mail(message_id="<r1@example.com>"), source="pipe")

    ticket = Ticket.objects.get(reference=result.reference)
    assert ticket.assignee == agent
    kinds = list(ticket.events.order_by("id").values_list("kind", flat=True))
    assert kinds == ["created", "sla_applied", "sla_applied", "assignee", "message", "acknowledged"]


def test_a_configuration_change_reaches_the_next_contact(desk):
    """The cached policies are dropped when a policy changes: no stale SLA."""
    calendar = BusinessCalendar.objects.get(slug="utc")
    urgent = SlaPolicy.objects.create(slug="urgent", name="Urgent", rank=1, calendar=calendar, match={})
    SlaTarget.objects.create(
        policy=urgent, priority="normal", first_reply_minutes=5, resolution_minutes=30, hours="calendar"
    )
    result = email_ingest(raw=mail(message_id="<cfg@example.com>"), source="pipe")

    ticket = Ticket.objects.get(reference=result.reference)
    assert ticket.sla_policy == urgent
    due = TicketTarget.objects.get(ticket=ticket, kind="first_reply").due_at
    assert due is not None and due - ticket.created_at == timedelta(minutes=5)
    assert ticket.created_at <= timezone.now()
