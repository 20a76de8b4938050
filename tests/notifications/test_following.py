"""Following a ticket, and who is told of assignments, customer messages and status changes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.core import mail
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from servicedesk.notifications.models import Notification
from servicedesk.tickets.events import Actor
from servicedesk.tickets.inbound import InboundMessage, SenderIdentity
from servicedesk.tickets.models import TicketFollower
from servicedesk.tickets.services.followups import (
    InvalidFollower,
    ticket_follow,
    ticket_snooze,
    ticket_snoozes_due_reopen,
    ticket_unfollow,
)
from servicedesk.tickets.services.intake import inbound_message_receive
from servicedesk.tickets.services.tickets import ticket_assign, ticket_status_change
from tests.factories import AgentFactory, QueueFactory, UserFactory, ticket_make

pytestmark = pytest.mark.django_db
T0 = datetime(2025, 10, 20, 9, 0, tzinfo=UTC)


@pytest.fixture
def bob(queue):
    return AgentFactory(username="bob", display_name="Bob", queues=[queue])


@pytest.fixture
def ticket(customer, queue):
    return ticket_make(customer=customer, queue=queue, subject="Printer", channel="email", at=T0)


def api_for(user) -> APIClient:
    return APIClient(HTTP_AUTHORIZATION=f"Token {Token.objects.get_or_create(user=user)[0].key}")


def write_again(ticket, external_id: str, *, channel: str = "web", automatic: bool = False):
    return inbound_message_receive(
        inbound=InboundMessage(
            channel=channel,
            external_id=external_id,
            sender=SenderIdentity(kind="email", value="alice@example.com", name="Alice Byrne"),
            text="It is still broken.",
            ticket_reference=ticket.reference,
            reference_trusted=True,
            is_automatic=automatic,
        )
    ).message


def notices(kind: str | None = None) -> list[tuple[str, str, str]]:
    rows = Notification.objects.order_by("user__username", "pk")
    if kind is not None:
        rows = rows.filter(kind=kind)
    return [(n.user.username, n.kind, n.key) for n in rows]


# --- Following ----------------------------------------------------------------------


def test_following_is_once_and_unfollowing_twice_changes_nothing(ticket, bob):
    assert ticket_follow(ticket=ticket, user=bob) is True
    assert ticket_follow(ticket=ticket, user=bob) is False
    assert TicketFollower.objects.filter(ticket=ticket).count() == 1
    assert ticket_unfollow(ticket=ticket, user=bob) is True
    assert ticket_unfollow(ticket=ticket, user=bob) is False
    assert not TicketFollower.objects.exists()


def test_only_agents_who_may_see_the_ticket_follow_it(ticket):
    stranger = AgentFactory(username="sam", queues=[QueueFactory(slug="billing")])
    for user in (stranger, UserFactory(username="visitor")):
        with pytest.raises(InvalidFollower):
            ticket_follow(ticket=ticket, user=user)
    assert not TicketFollower.objects.exists()


def test_the_api_follows_and_unfollows_and_hides_other_queues_tickets(ticket, bob):
    api = api_for(bob)
    url = f"/api/v1/tickets/{ticket.reference}/follow/"
    assert api.get(url).json() == {"reference": ticket.reference, "following": False}
    first = api.post(url)
    assert (first.status_code, first.json()) == (201, {"reference": ticket.reference, "following": True})
    assert api.post(url).status_code == 200
    assert api.get(url).json()["following"] is True
    assert api.delete(url).status_code == 204
    assert api.delete(url).status_code == 204
    assert not TicketFollower.objects.exists()

    stranger = api_for(AgentFactory(username="sam", queues=[QueueFactory(slug="billing")]))
    for method in ("get", "post", "delete"):
        assert getattr(stranger, method)(url).status_code == 404
    assert api_for(bob).post("/api/v1/tickets/SD-999999/follow/").status_code == 404
    assert not TicketFollower.objects.exists()


def test_customers_cannot_follow_through_the_api(ticket, customer):
    user = UserFactory(username="alice")
    customer.user = user
    customer.save()
    assert api_for(user).post(f"/api/v1/tickets/{ticket.reference}/follow/").status_code == 403
    assert not TicketFollower.objects.exists()


def test_the_page_button_follows_and_unfollows(client, ticket, bob):
    client.force_login(bob)
    page = client.get(f"/desk/tickets/{ticket.reference}/").content.decode()
    assert 'class="follow-form"' in page and ">Follow</button>" in page
    answer = client.post(f"/desk/notifications/tickets/{ticket.reference}/follow/", {"follow": "1"})
    assert answer.status_code == 302
    assert TicketFollower.objects.filter(ticket=ticket, user=bob).exists()
    assert ">Unfollow</button>" in client.get(f"/desk/tickets/{ticket.reference}/").content.decode()
    client.post(f"/desk/notifications/tickets/{ticket.reference}/follow/", {"follow": "0"})
    assert not TicketFollower.objects.exists()


def test_the_page_hides_other_queues_tickets(client, ticket):
    client.force_login(AgentFactory(username="sam", queues=[QueueFactory(slug="billing")]))
    assert client.post(f"/desk/notifications/tickets/{ticket.reference}/follow/", {"follow": "1"}).status_code == 404
    assert not TicketFollower.objects.exists()


# --- Customer messages ---------------------------------------------------------------


def test_followers_and_the_assignee_hear_of_a_customer_message_once_each(
    ticket, agent, bob, manager, django_capture_on_commit_callbacks
):
    ticket_assign(ticket=ticket, assignee=agent, actor=Actor.system())
    ticket_follow(ticket=ticket, user=bob)
    ticket_follow(ticket=ticket, user=manager)
    # The assignee also following is still told once.
    ticket_follow(ticket=ticket, user=agent)
    with django_capture_on_commit_callbacks(execute=True):
        message = write_again(ticket, "w-1")
    key = f"message:{message.pk}"
    assert notices("customer_message") == [
        ("ann", "customer_message", key),
        ("bob", "customer_message", key),
        ("max", "customer_message", key),
    ]
    assert Notification.objects.get(user=bob).title == f"[{ticket.reference}] New message from Alice Byrne"
    assert sorted(m.to[0] for m in mail.outbox) == ["ann@corp.example", "bob@corp.example", "max@corp.example"]


def test_a_follower_who_lost_the_ticket_is_not_told(ticket, bob, queue, django_capture_on_commit_callbacks):
    ticket_follow(ticket=ticket, user=bob)
    queue.members.remove(bob)
    with django_capture_on_commit_callbacks(execute=True):
        write_again(ticket, "w-2")
    assert notices() == []


def test_chat_lines_and_auto_replies_tell_followers_nothing(ticket, bob, django_capture_on_commit_callbacks):
    ticket_follow(ticket=ticket, user=bob)
    with django_capture_on_commit_callbacks(execute=True):
        write_again(ticket, "auto-1", automatic=True)
        write_again(ticket, "chat-1", channel="chat")
    assert notices() == []


def test_without_followers_no_task_is_enqueued(ticket, bob, django_capture_on_commit_callbacks, monkeypatch):
    from servicedesk.notifications import follow

    started: list[tuple[str, int]] = []
    monkeypatch.setattr(follow, "_enqueue", lambda what, object_id: started.append((what, object_id)))
    with django_capture_on_commit_callbacks(execute=True):
        write_again(ticket, "w-3")
    assert started == []
    ticket_follow(ticket=ticket, user=bob)
    with django_capture_on_commit_callbacks(execute=True):
        message = write_again(ticket, "w-4")
    assert started == [("followers_message", message.pk)]


# --- Status changes and assignment ----------------------------------------------------


def test_followers_and_the_assignee_hear_of_status_changes_by_others_not_their_own(
    ticket, agent, bob, django_capture_on_commit_callbacks
):
    ticket_assign(ticket=ticket, assignee=agent, actor=Actor.agent(agent))
    ticket_follow(ticket=ticket, user=bob)
    with django_capture_on_commit_callbacks(execute=True):
        ticket_status_change(ticket=ticket, status="solved", actor=Actor.agent(bob))
    # Bob did it: only Ann, the assignee, is told.
    assert [(u, k) for u, k, _key in notices("ticket_status")] == [("ann", "ticket_status")]
    assert Notification.objects.get(kind="ticket_status").title == f"[{ticket.reference}] Status set to Solved by Bob"
    with django_capture_on_commit_callbacks(execute=True):
        ticket_status_change(ticket=ticket, status="open", actor=Actor.agent(agent))
    assert [u for u, _k, _key in notices("ticket_status")] == ["ann", "bob"]


def test_a_customer_message_that_reopens_is_told_as_the_message_only(
    ticket, agent, bob, django_capture_on_commit_callbacks
):
    ticket_follow(ticket=ticket, user=bob)
    ticket_status_change(ticket=ticket, status="solved", actor=Actor.agent(agent))
    Notification.objects.all().delete()
    with django_capture_on_commit_callbacks(execute=True):
        write_again(ticket, "w-6")
    assert [k for _u, k, _key in notices()] == ["customer_message"]


def test_the_sweeps_reopen_tells_followers_why(ticket, agent, bob, django_capture_on_commit_callbacks):
    ticket_follow(ticket=ticket, user=bob)
    ticket_snooze(ticket=ticket, until=T0 + timedelta(hours=2), actor=Actor.agent(agent), at=T0)
    Notification.objects.all().delete()
    with django_capture_on_commit_callbacks(execute=True):
        assert ticket_snoozes_due_reopen(now=T0 + timedelta(hours=3)) == 1
    notice = Notification.objects.get()
    assert (notice.user, notice.kind) == (bob, "ticket_status")
    assert notice.title == f"[{ticket.reference}] Reopened: its pending time has come"


def test_an_agent_assigned_by_someone_else_is_told_not_when_taking_it_themself(
    ticket, agent, bob, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        ticket_assign(ticket=ticket, assignee=agent, actor=Actor.agent(agent))
    assert notices("assigned") == []
    with django_capture_on_commit_callbacks(execute=True):
        event_ticket = ticket_assign(ticket=ticket, assignee=bob, actor=Actor.agent(agent))
    notice = Notification.objects.get(kind="assigned")
    assert (notice.user, notice.title, notice.url) == (
        bob,
        f"[{event_ticket.reference}] Assigned to you by Ann",
        f"/desk/tickets/{ticket.reference}/",
    )
    assert [m.to for m in mail.outbox] == [["bob@corp.example"]]
    # Unassigning tells nobody.
    with django_capture_on_commit_callbacks(execute=True):
        ticket_assign(ticket=ticket, assignee=None, actor=Actor.agent(agent))
    assert Notification.objects.filter(kind="assigned").count() == 1


def test_the_assignment_task_run_twice_tells_once(ticket, agent, bob, django_capture_on_commit_callbacks):
    from servicedesk.notifications.tasks import ticket_assigned_notify_task
    from servicedesk.tickets.models import TicketEvent

    with django_capture_on_commit_callbacks(execute=True):
        ticket_assign(ticket=ticket, assignee=bob, actor=Actor.agent(agent))
    event = TicketEvent.objects.get(ticket=ticket, kind="assignee")
    assert ticket_assigned_notify_task.apply(args=[event.pk]).get() is False
    assert Notification.objects.filter(kind="assigned").count() == 1
