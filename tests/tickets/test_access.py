"""The one authorization rule per object kind (servicedesk/tickets/access.py)."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import AnonymousUser

from servicedesk.accounts.models import User
from servicedesk.core.errors import NotFound
from servicedesk.tickets.access import (
    attachment_get_for,
    attachment_get_for_portal,
    customers_visible_to,
    messages_visible_to,
    portal_token_for,
    ticket_for_portal_token,
    ticket_get_for,
    tickets_visible_to,
)
from servicedesk.tickets.events import Actor
from servicedesk.tickets.inbound import InboundAttachment
from servicedesk.tickets.services.customers import customer_merge
from servicedesk.tickets.services.replies import ticket_note_create, ticket_reply_create
from servicedesk.tickets.services.tickets import ticket_merge
from tests.factories import AgentFactory, CustomerFactory, QueueFactory, ticket_make

pytestmark = pytest.mark.django_db


@pytest.fixture
def world(queue, agent):
    billing = QueueFactory(slug="billing")
    alice = CustomerFactory(name="Alice", email="alice@example.com")
    bob = CustomerFactory(name="Bob", email="bob@example.com")
    alice_user = User.objects.create_user("alice-login", password="x")
    alice.user = alice_user
    alice.save()
    t_support = ticket_make(queue=queue, customer=alice, subject="support one")
    t_billing = ticket_make(queue=billing, customer=alice, subject="billing one")
    t_bob = ticket_make(queue=queue, customer=bob, subject="bob's")
    return {
        "billing": billing,
        "alice": alice,
        "bob": bob,
        "alice_user": alice_user,
        "t_support": t_support,
        "t_billing": t_billing,
        "t_bob": t_bob,
    }


def refs(qs) -> set[str]:
    return set(qs.values_list("reference", flat=True))


def test_agent_sees_only_their_queues(world, agent):
    assert refs(tickets_visible_to(agent)) == {world["t_support"].reference, world["t_bob"].reference}
    with pytest.raises(NotFound):
        ticket_get_for(agent, world["t_billing"].reference)
    assert set(customers_visible_to(agent)) == {world["alice"], world["bob"]}


def test_manager_and_admin_see_everything(world):
    manager = AgentFactory(username="max", role="manager")
    admin = AgentFactory(username="ada", role="admin")
    everything = {world[k].reference for k in ("t_support", "t_billing", "t_bob")}
    assert refs(tickets_visible_to(manager)) == everything
    assert refs(tickets_visible_to(admin)) == everything


def test_customer_sees_only_their_own(world):
    user = world["alice_user"]
    assert refs(tickets_visible_to(user)) == {world["t_support"].reference, world["t_billing"].reference}
    with pytest.raises(NotFound):
        ticket_get_for(user, world["t_bob"].reference)
    assert list(customers_visible_to(user)) == [world["alice"]]


def test_anonymous_and_staff_without_role_see_nothing(world):
    assert refs(tickets_visible_to(AnonymousUser())) == set()
    plain = User.objects.create_user("plain", password="x", is_staff=True)
    assert refs(tickets_visible_to(plain)) == set()


def test_customer_keeps_access_after_identity_merge(world):
    # Bob turns out to be Alice: his ticket joins her record.
    customer_merge(source=world["bob"], target=world["alice"], actor=Actor.system())
    assert world["t_bob"].reference in refs(tickets_visible_to(world["alice_user"]))


def test_customers_see_public_messages_only(world, agent):
    ticket = world["t_support"]
    reply = ticket_reply_create(ticket=ticket, author=agent, text="Public answer", deliver=False)
    note = ticket_note_create(ticket=ticket, author=agent, text="Internal only")
    visible = set(messages_visible_to(world["alice_user"], ticket))
    assert reply in visible and note not in visible
    assert note in set(messages_visible_to(agent, ticket))


def test_attachments_follow_ticket_and_message_visibility(world, agent):
    ticket = world["t_support"]
    public = ticket_reply_create(
        ticket=ticket,
        author=agent,
        text="See file",
        deliver=False,
        attachments=[InboundAttachment("a.txt", "text/plain", b"public")],
    )
    internal = ticket_note_create(
        ticket=ticket,
        author=agent,
        text="Secret file",
        attachments=[InboundAttachment("b.txt", "text/plain", b"secret")],
    )
    public_key = public.attachments.get().key
    internal_key = internal.attachments.get().key
    assert attachment_get_for(agent, internal_key).message == internal
    assert attachment_get_for(world["alice_user"], public_key).message == public
    with pytest.raises(NotFound):
        attachment_get_for(world["alice_user"], internal_key)
    bob_user = User.objects.create_user("bob-login", password="x")
    world["bob"].user = bob_user
    world["bob"].save()
    with pytest.raises(NotFound):
        attachment_get_for(bob_user, public_key)
    billing_agent = AgentFactory(username="bill", queues=[world["billing"]])
    with pytest.raises(NotFound):
        attachment_get_for(billing_agent, public_key)
    # Through a signed link: only that ticket's public attachments.
    assert attachment_get_for_portal(ticket, public_key).message == public
    with pytest.raises(NotFound):
        attachment_get_for_portal(ticket, internal_key)
    with pytest.raises(NotFound):
        attachment_get_for_portal(world["t_bob"], public_key)


def test_portal_token_opens_only_its_ticket_and_follows_merges(world, agent):
    token = portal_token_for(world["t_support"])
    assert ticket_for_portal_token(token) == world["t_support"]
    for bad in ("", "x", token[:-2] + "zz", token.replace(":", ";", 1)):
        with pytest.raises(NotFound):
            ticket_for_portal_token(bad)
    ticket_merge(source=world["t_support"], target=world["t_billing"], actor=Actor.agent(agent))
    assert ticket_for_portal_token(token) == world["t_billing"]


def test_rotating_the_portal_key_revokes_old_links(world):
    ticket = world["t_support"]
    token = portal_token_for(ticket)
    type(ticket).objects.filter(pk=ticket.pk).update(portal_key="0" * 32)
    with pytest.raises(NotFound):
        ticket_for_portal_token(token)
