"""A phone number several customers share (a household's landline, an office's switchboard)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import IntegrityError, transaction
from django.test import Client
from django.utils import timezone

from channels_app.phone.models import Call, PhoneLine
from channels_app.phone.services import CallEventIn, call_event_receive
from servicedesk.tickets.events import Actor
from servicedesk.tickets.models import Customer, Identity, IdentityKind, Message, Session, Ticket
from servicedesk.tickets.services.customers import InvalidIdentity, customer_identity_add, customer_merge
from tests.channels_app.phone.test_events import CALLER, LINE_NUMBER, SECRET
from tests.channels_app.phone.test_pop import answer, post_event, ring
from tests.concurrency import run_at_once
from tests.factories import AgentFactory, CustomerFactory, QueueFactory


@pytest.fixture(autouse=True)
def _secret(settings):
    settings.SERVICEDESK = {**settings.SERVICEDESK, "PHONE_WEBHOOK_SECRET": SECRET, "PHONE_REGION": "IE"}


@pytest.mark.django_db
def test_a_phone_number_may_be_several_customers_but_an_email_address_only_one():
    aoife, brian = CustomerFactory(name="Aoife"), CustomerFactory(name="Brian")
    customer_identity_add(customer=aoife, kind=IdentityKind.PHONE, value="01 234 5678")
    customer_identity_add(customer=brian, kind=IdentityKind.PHONE, value="+353 1 234 5678")
    assert Identity.objects.filter(kind=IdentityKind.PHONE, value="+35312345678").count() == 2
    # Once per customer.
    customer_identity_add(customer=brian, kind=IdentityKind.PHONE, value="012345678")
    assert Identity.objects.filter(customer=brian, kind=IdentityKind.PHONE).count() == 1
    with pytest.raises(IntegrityError), transaction.atomic():
        Identity.objects.create(customer=brian, kind=IdentityKind.PHONE, value="+35312345678")
    with pytest.raises(InvalidIdentity):
        customer_identity_add(customer=brian, kind=IdentityKind.EMAIL, value=aoife.identities.get(kind="email").value)


@pytest.mark.django_db
def test_merging_two_customers_who_share_a_number_keeps_it_once():
    aoife, brian = CustomerFactory(name="Aoife"), CustomerFactory(name="Brian")
    for customer in (aoife, brian):
        customer_identity_add(customer=customer, kind=IdentityKind.PHONE, value=CALLER)
    customer_merge(source=brian, target=aoife, actor=Actor.system())
    assert list(Identity.objects.filter(kind=IdentityKind.PHONE).values_list("customer_id", flat=True)) == [aoife.pk]


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("postgres_only")
def test_first_calls_from_one_new_number_at_the_same_moment_make_one_customer():
    line = PhoneLine.objects.create(key="default", name="Default line")
    at = timezone.now().replace(microsecond=0) - timedelta(minutes=5)

    def ring_once(i: int) -> object:
        sent = {"event": "newCall", "call_id": f"first-{i}", "at": at.isoformat()}
        event = CallEventIn(
            kind="newCall",
            call_id=f"first-{i}",
            direction="in",
            from_number=CALLER,
            to_number=LINE_NUMBER,
            at=at,
            sent=sent,
        )
        return call_event_receive(line=line, event=event)

    run_at_once(6, ring_once)
    assert Call.objects.count() == 6
    assert Identity.objects.filter(kind=IdentityKind.PHONE, value=CALLER).count() == 1
    assert Customer.objects.count() == 1
    assert set(Call.objects.values_list("customer_id", flat=True)) == {Customer.objects.get().pk}


@pytest.mark.django_db
def test_the_pop_shows_everyone_with_the_number_and_the_agent_says_who_calls(client):
    support = QueueFactory(slug="support")
    PhoneLine.objects.create(key="default", name="Main line", number=LINE_NUMBER, queue=support)
    ann = AgentFactory(username="ann", email="ann@example.com", queues=[support])
    aoife, brian = CustomerFactory(name="Aoife Walsh"), CustomerFactory(name="Brian Walsh")
    for customer in (aoife, brian):
        customer_identity_add(customer=customer, kind=IdentityKind.PHONE, value=CALLER)
    stranger = CustomerFactory(name="Someone Else")

    post_event(ring("s-1", ["ann@example.com"]))
    post_event(answer("s-1", "ann@example.com"))
    call = Call.objects.get(call_id="s-1")
    assert call.customer_id == aoife.pk  # the first to have the number
    client.force_login(ann)
    html = client.get(f"/desk/calls/{call.pk}/pop/").content.decode()
    assert "Aoife Walsh" in html and "Others with this number:" in html
    assert f'data-customer="{brian.pk}"' in html and "This is the caller" in html

    # Someone without the number cannot be chosen.
    client.post(f"/desk/calls/{call.pk}/caller/", {"customer": stranger.pk})
    call.refresh_from_db()
    assert call.customer_id == aoife.pk

    response = client.post(f"/desk/calls/{call.pk}/caller/", {"customer": brian.pk})
    assert response.status_code == 302
    call.refresh_from_db()
    assert call.customer_id == brian.pk
    assert Session.objects.get(pk=call.session_id).customer_id == brian.pk
    # The ticket the call opened on answer is Brian's now, with its entry.
    ticket = Ticket.objects.get(pk=call.ticket_id)
    assert ticket.customer_id == brian.pk
    assert Message.objects.get(external_id=f"call:{call.pk}").author_customer_id == brian.pk
    assert ticket.events.filter(kind="customer").exists()
    # A later event of the call does not undo the choice.
    post_event({"event": "hangup", "call_id": "s-1", "cause": "normalClearing", "at": timezone.now().isoformat()})
    call.refresh_from_db()
    assert call.customer_id == brian.pk

    # An agent who may not see the call cannot choose for it.
    eve = Client()
    eve.force_login(AgentFactory(username="eve", queues=[QueueFactory(slug="billing")]))
    assert eve.post(f"/desk/calls/{call.pk}/caller/", {"customer": aoife.pk}).status_code == 404
    call.refresh_from_db()
    assert call.customer_id == brian.pk
