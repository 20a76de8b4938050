""" "Log a call": a call recorded by hand writes the same call, session and entry as a reported one."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from channels_app.phone.models import Call
from servicedesk.tickets.models import Message, MessageKind, Session, Ticket
from tests.factories import AgentFactory, CustomerFactory, QueueFactory, ticket_make

pytestmark = pytest.mark.django_db

URL = "/desk/calls/log/"


@pytest.fixture(autouse=True)
def _region(settings):
    settings.SERVICEDESK = {**settings.SERVICEDESK, "PHONE_REGION": "IE"}


@pytest.fixture
def desk(client):
    support = QueueFactory(slug="support")
    agent = AgentFactory(username="ann", queues=[support])
    customer = CustomerFactory(name="Maeve Byrne")
    ticket = ticket_make(customer=customer, queue=support)
    client.force_login(agent)
    return agent, customer, ticket


def started(minutes_ago: int = 30) -> str:
    return timezone.localtime(timezone.now() - timedelta(minutes=minutes_ago)).strftime("%Y-%m-%dT%H:%M")


def test_logging_a_call_on_a_ticket_writes_the_call_its_session_entry_and_note(client, desk):
    agent, customer, ticket = desk
    form = client.get(URL, {"ticket": ticket.reference})
    assert form.status_code == 200 and "Log a call" in form.content.decode()
    response = client.post(
        URL,
        {
            "ticket": ticket.reference,
            "number": "086 123 4567",
            "direction": "in",
            "started_at": started(),
            "duration": "4:30",
            "outcome": "answered",
            "note": "Asked about the invoice",
        },
    )
    assert response.status_code == 302 and response["Location"].endswith(f"/desk/tickets/{ticket.reference}/")
    call = Call.objects.get()
    assert (call.number, call.direction, call.outcome, call.agent_id, call.logged_by_id, call.ticket_id) == (
        "+353861234567",
        "in",
        "answered",
        agent.pk,
        agent.pk,
        ticket.pk,
    )
    assert call.line_id is None
    assert (call.ended_at - call.answered_at) == timedelta(minutes=4, seconds=30)
    session = Session.objects.get(pk=call.session_id)
    assert (session.channel, session.customer_id, session.ticket_id, session.agent_id) == (
        "phone",
        customer.pk,
        ticket.pk,
        agent.pk,
    )
    assert session.answered_at == call.answered_at and session.ended_at == call.ended_at
    entry = Message.objects.get(external_id=f"call:{call.pk}", channel="phone")
    assert (entry.ticket_id, entry.kind, entry.facts["talk_seconds"], entry.facts["logged"]) == (
        ticket.pk,
        MessageKind.PUBLIC_ENDUSER,
        270,
        True,
    )
    assert Message.objects.filter(ticket=ticket, kind="internal", text="Asked about the invoice").exists()
    page = client.get(f"/desk/tickets/{ticket.reference}/").content.decode()
    assert "Inbound call from +353861234567" in page and "logged by hand" in page


def test_logging_a_call_from_the_customer_opens_a_new_phone_ticket(client, desk):
    _agent, customer, _ticket = desk
    response = client.post(
        URL,
        {
            "customer": customer.pk,
            "number": "",
            "direction": "out",
            "started_at": started(),
            "duration": "2",
            "outcome": "not_answered",
        },
    )
    assert response.status_code == 302
    call = Call.objects.get()
    ticket = Ticket.objects.get(pk=call.ticket_id)
    assert (ticket.channel, ticket.initiator, ticket.customer_id) == ("phone", "outbound", customer.pk)
    assert Session.objects.get(pk=call.session_id).abandoned_at is None  # an outbound call is never abandoned
    assert Message.objects.get(external_id=f"call:{call.pk}").kind == MessageKind.INTERNAL


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("number", "not a number"),
        ("duration", "four minutes"),
        ("duration", "25:00:00"),
        ("started_at", "yesterday"),
        ("started_at", "1900-01-01T10:00"),
        ("outcome", "exploded"),
        ("direction", "sideways"),
    ],
)
def test_bad_input_is_refused_with_the_fields_error_and_nothing_stored(client, desk, field, value):
    _agent, _customer, ticket = desk
    data = {
        "ticket": ticket.reference,
        "number": "+353861234567",
        "direction": "in",
        "started_at": started(),
        "duration": "1:00",
        "outcome": "answered",
    }
    data[field] = value
    response = client.post(URL, data)
    assert response.status_code == 400
    assert 'class="errorlist' in response.content.decode()
    assert not Call.objects.exists() and not Session.objects.exists()


def test_a_call_in_the_future_is_refused(client, desk):
    _agent, _customer, ticket = desk
    future = timezone.localtime(timezone.now() + timedelta(hours=2)).strftime("%Y-%m-%dT%H:%M")
    response = client.post(
        URL,
        {"ticket": ticket.reference, "direction": "in", "started_at": future, "duration": "1", "outcome": "answered"},
    )
    assert response.status_code == 400
    assert not Call.objects.exists()


def test_a_ticket_or_customer_the_agent_may_not_see_is_not_found(client, desk):
    other_queue = QueueFactory(slug="billing")
    hidden = ticket_make(queue=other_queue)
    assert client.get(URL, {"ticket": hidden.reference}).status_code == 404
    assert client.get(URL, {"customer": hidden.customer_id}).status_code == 404
    assert client.get(URL, {"customer": "x"}).status_code == 404
    response = client.post(
        URL,
        {
            "ticket": hidden.reference,
            "direction": "in",
            "started_at": started(),
            "duration": "1",
            "outcome": "answered",
        },
    )
    assert response.status_code == 404
    assert not Call.objects.exists()


def test_the_ticket_page_offers_log_a_call_and_a_tel_link(client, desk):
    from servicedesk.tickets.models import Identity, IdentityKind

    _agent, customer, ticket = desk
    Identity.objects.create(customer=customer, kind=IdentityKind.PHONE, value="+353861234567")
    page = client.get(f"/desk/tickets/{ticket.reference}/").content.decode()
    assert 'href="tel:+353861234567"' in page
    assert f"/desk/calls/log/?ticket={ticket.reference}&amp;number=%2B353861234567&amp;direction=out" in page
    prefilled = client.get(URL, {"ticket": ticket.reference, "number": "+353861234567", "direction": "out"})
    html = prefilled.content.decode()
    assert 'value="+353861234567"' in html and '<option value="out" selected>' in html
