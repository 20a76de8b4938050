"""Calls dialled from the desk: a ``tel:`` link clicked on a ticket page records the outbound call,
which is the agent's pop until they end it; ending it records the contact as "Log a call" does."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from channels_app.phone import views
from channels_app.phone.models import Call, CallState
from servicedesk.tickets.models import Identity, IdentityKind, Initiator, Message, MessageKind, Session, Ticket
from tests.factories import AgentFactory, CustomerFactory, QueueFactory, ticket_make

pytestmark = pytest.mark.django_db

DIAL = "/desk/calls/dial/"
NUMBER = "+353861234567"


@pytest.fixture(autouse=True)
def _region(settings):
    settings.SERVICEDESK = {**settings.SERVICEDESK, "PHONE_REGION": "IE"}


@pytest.fixture
def desk(client):
    support = QueueFactory(slug="support")
    agent = AgentFactory(username="ann", queues=[support])
    customer = CustomerFactory(name="Maeve Byrne")
    Identity.objects.create(customer=customer, kind=IdentityKind.PHONE, value=NUMBER)
    ticket = ticket_make(customer=customer, queue=support, subject="Router keeps dropping")
    client.force_login(agent)
    return agent, customer, ticket


def end(client, call: Call, **form: str):  # type: ignore[no-untyped-def]
    return client.post(f"/desk/calls/{call.pk}/dial-end/", {"outcome": "answered", "note": "", "status": "", **form})


def test_the_ticket_pages_tel_link_carries_what_the_dial_needs(client, desk):
    _agent, _customer, ticket = desk
    page = client.get(f"/desk/tickets/{ticket.reference}/").content.decode()
    assert f'href="tel:{NUMBER}" class="tel-link" data-ticket="{ticket.reference}" data-number="{NUMBER}"' in page
    assert 'data-dial="/desk/calls/dial/"' in page and 'data-csrf="' in page


def test_a_dialled_call_is_the_agents_pop_until_they_end_it_then_a_contact_on_the_ticket(client, desk):
    agent, customer, ticket = desk
    response = client.post(DIAL, {"ticket": ticket.reference, "number": "086 123 4567"})
    assert response.status_code == 201
    call = Call.objects.get(pk=response.json()["call"])
    assert (call.direction, call.state, call.number, call.agent_id, call.customer_id, call.ticket_id, call.line_id) == (
        "out",
        CallState.RINGING,
        NUMBER,
        agent.pk,
        customer.pk,
        ticket.pk,
        None,
    )
    # Nothing is counted yet: no session (a waiting phone session would be a caller in the queue).
    assert not Session.objects.exists()
    # A second click on the link is the same call.
    again = client.post(DIAL, {"ticket": ticket.reference, "number": NUMBER})
    assert again.status_code == 200 and again.json() == {"call": call.pk}
    pop = client.get(f"/desk/calls/{call.pk}/pop/")
    assert pop.status_code == 200
    html = pop.content.decode()
    assert "Calling" in html and "Maeve Byrne" in html and f"/desk/calls/{call.pk}/dial-end/" in html
    assert f'data-call="{call.pk}"' in client.get("/desk/calls/pops/").content.decode()
    Call.objects.filter(pk=call.pk).update(rang_at=timezone.now() - timedelta(minutes=7))
    response = end(client, call, note="Router replaced, customer happy", status="solved", next="/desk/")
    assert response.status_code == 302 and response["Location"] == "/desk/"
    call.refresh_from_db()
    assert (call.state, call.outcome) == (CallState.ENDED, "answered")
    assert 419 <= (call.ended_at - call.answered_at).total_seconds() <= 425
    assert call.wrapped_up_at is not None and call.note == "Router replaced, customer happy"
    session = Session.objects.get(pk=call.session_id)
    assert (session.channel, session.agent_id, session.ticket_id, session.abandoned_at) == (
        "phone",
        agent.pk,
        ticket.pk,
        None,
    )
    assert session.requested_at == call.rang_at and session.ended_at == call.ended_at
    entry = Message.objects.get(external_id=f"call:{call.pk}", channel="phone")
    assert entry.ticket_id == ticket.pk and entry.facts["direction"] == "out"
    assert Message.objects.filter(
        ticket=ticket, kind=MessageKind.INTERNAL, text="Router replaced, customer happy"
    ).exists()
    assert Ticket.objects.get(pk=ticket.pk).status == "solved"
    # The pop is gone, and ending it again changes nothing.
    assert client.get(f"/desk/calls/{call.pk}/pop/").status_code == 204
    end(client, call, outcome="not_answered")
    assert Call.objects.get(pk=call.pk).outcome == "answered" and Session.objects.count() == 1


def test_a_dialled_call_nobody_answered_is_an_outbound_attempt_without_an_answer(client, desk):
    _agent, _customer, ticket = desk
    call = Call.objects.get(pk=client.post(DIAL, {"ticket": ticket.reference, "number": NUMBER}).json()["call"])
    end(client, call, outcome="not_answered")
    call.refresh_from_db()
    session = Session.objects.get(pk=call.session_id)
    assert (call.outcome, call.answered_at, session.answered_at, session.abandoned_at, session.agent_id) == (
        "not_answered",
        None,
        None,
        None,
        None,
    )
    # No answer, no agent reply: the ticket's first reply is still to come.
    assert not Message.objects.filter(ticket=ticket, kind=MessageKind.PUBLIC_AGENT).exists()


def test_a_dial_from_a_ticket_without_one_opens_nothing_new_and_the_ticket_keeps_its_initiator(client, desk):
    _agent, _customer, ticket = desk
    call = Call.objects.get(pk=client.post(DIAL, {"ticket": ticket.reference, "number": NUMBER}).json()["call"])
    end(client, call)
    assert Ticket.objects.count() == 1
    assert Ticket.objects.get().initiator == Initiator.INBOUND


def test_bad_dials_are_refused_with_the_reason_and_nothing_stored(client, desk):
    _agent, customer, ticket = desk
    cases = [
        ({"ticket": ticket.reference, "number": "not a number"}, 400, "number"),
        ({"ticket": ticket.reference, "number": "+353861111111"}, 400, "number"),
        ({"ticket": ticket.reference}, 400, "number"),
    ]
    for form, status, field in cases:
        response = client.post(DIAL, form)
        assert response.status_code == status and field in response.json(), form
    assert client.post(DIAL, {"ticket": "NOPE-1", "number": NUMBER}).status_code == 404
    assert client.get(DIAL).status_code == 405
    other = ticket_make(customer=customer, queue=ticket.queue)
    Ticket.objects.filter(pk=other.pk).update(merged_into=ticket)
    assert client.post(DIAL, {"ticket": other.reference, "number": NUMBER}).status_code == 409
    assert not Call.objects.exists()


def test_a_bad_outcome_ends_nothing(client, desk):
    _agent, _customer, ticket = desk
    call = Call.objects.get(pk=client.post(DIAL, {"ticket": ticket.reference, "number": NUMBER}).json()["call"])
    for form in ({"outcome": "missed"}, {"outcome": "answered", "status": "exploded"}, {"outcome": ""}):
        assert end(client, call, **form).status_code == 302
        assert Call.objects.get(pk=call.pk).state == CallState.RINGING
    assert not Session.objects.exists()


def test_only_the_dialling_agent_ends_it_and_other_queues_see_nothing(client, desk):
    _agent, _customer, ticket = desk
    call = Call.objects.get(pk=client.post(DIAL, {"ticket": ticket.reference, "number": NUMBER}).json()["call"])
    colleague = AgentFactory(username="bob", queues=[ticket.queue])
    client.force_login(colleague)
    assert client.get(f"/desk/calls/{call.pk}/pop/").status_code == 204
    end(client, call)
    assert Call.objects.get(pk=call.pk).state == CallState.RINGING
    stranger = AgentFactory(username="eve", queues=[QueueFactory(slug="billing")])
    client.force_login(stranger)
    assert client.post(DIAL, {"ticket": ticket.reference, "number": NUMBER}).status_code == 404
    assert client.get(f"/desk/calls/{call.pk}/pop/").status_code == 404
    assert end(client, call).status_code == 404
    assert Call.objects.get(pk=call.pk).state == CallState.RINGING
    client.logout()
    assert client.post(DIAL, {"ticket": ticket.reference, "number": NUMBER}).status_code in (302, 403)
    assert Call.objects.count() == 1


def test_dialling_is_limited_per_agent(client, desk, monkeypatch):
    _agent, _customer, ticket = desk
    monkeypatch.setattr(views, "DIALS_PER_MINUTE", 2)
    monkeypatch.setattr(views, "DIAL_AGAIN_WITHIN", timedelta(0))
    # The three in one minute: the rate limits' clock is held still (tests/conftest.py).
    answers = [client.post(DIAL, {"ticket": ticket.reference, "number": NUMBER}) for _ in range(3)]
    assert [a.status_code for a in answers] == [201, 201, 429]
    assert int(answers[-1]["Retry-After"]) >= 1
    assert Call.objects.count() == 2
