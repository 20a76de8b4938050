"""@mentions in internal notes: who a name reaches, what is stored, who is told, and what the writer is shown."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Group
from django.core import mail
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from servicedesk.notifications.models import Notification
from servicedesk.tickets.events import Actor
from servicedesk.tickets.followups import tickets_mentioning
from servicedesk.tickets.models import MessageMention
from servicedesk.tickets.services.mentions import mention_names, mentions_resolve
from servicedesk.tickets.services.replies import ticket_note_create, ticket_reply_create
from tests.factories import AgentFactory, CustomerFactory, QueueFactory, UserFactory, ticket_make

pytestmark = pytest.mark.django_db


@pytest.fixture
def people(queue):
    """Ann writes; Bob works the queue; Cleo works another queue; Max manages; Dan has left."""
    return {
        "bob": AgentFactory(username="bob", display_name="Bob Stone", queues=[queue]),
        "cleo": AgentFactory(username="cleo", display_name="Cleo Park", queues=[QueueFactory(slug="billing")]),
        "max": AgentFactory(username="max", display_name="Max Power", role="manager"),
        "dan": AgentFactory(username="dan", display_name="Dan Gone", queues=[queue], is_active=False),
    }


@pytest.fixture
def ticket(queue, customer):
    return ticket_make(customer=customer, queue=queue, subject="Printer")


def note(ticket, author, text):
    return ticket_note_create(ticket=ticket, author=author, text=text, actor=Actor.agent(author))


@pytest.mark.parametrize(
    ("text", "names"),
    [
        ("@bob please look", ["bob"]),
        ('Ask @"Bob  Stone" and @max.', ["Bob Stone", "max"]),
        ("mail ann@example.com or @bob, @BOB again", ["bob"]),
        ("(@cleo) and @ alone and @@x", ["cleo"]),
        ("no mention here", []),
    ],
)
def test_names_are_read_as_written(text, names):
    assert mention_names(text) == names


def test_a_note_stores_the_mentions_of_people_who_may_see_the_ticket(ticket, agent, people):
    message = note(ticket, agent, '@bob and @"max power", not @cleo nor @dan nor @nobody; me: @ann')
    stored = sorted(MessageMention.objects.filter(message=message).values_list("user__username", flat=True))
    assert stored == ["bob", "max"]
    assert set(MessageMention.objects.values_list("ticket_id", flat=True)) == {ticket.pk}
    outcome = mentions_resolve(ticket=ticket, text=message.text, author=agent)
    assert outcome.unnotified == ["cleo", "dan", "nobody"]


def test_a_display_name_two_people_share_reaches_neither(ticket, agent, queue):
    AgentFactory(username="kim1", display_name="Kim Lee", queues=[queue])
    AgentFactory(username="kim2", display_name="Kim Lee", queues=[queue])
    message = note(ticket, agent, 'Over to @"Kim Lee", or @kim2')
    assert list(MessageMention.objects.filter(message=message).values_list("user__username", flat=True)) == ["kim2"]
    assert mentions_resolve(ticket=ticket, text=message.text, author=agent).unnotified == ["Kim Lee"]


def test_customers_are_never_mentioned(ticket, agent):
    user = UserFactory(username="alice")
    customer = CustomerFactory(name="Alice")
    customer.user = user
    customer.save()
    message = note(ticket, agent, "@alice")
    assert not MessageMention.objects.filter(message=message).exists()


def test_public_replies_store_and_notify_nobody(ticket, agent, people, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        ticket_reply_create(ticket=ticket, author=agent, text="@bob thanks", actor=Actor.agent(agent), deliver=False)
    assert not MessageMention.objects.exists()
    assert not Notification.objects.filter(kind="mention").exists()


def test_the_mentioned_agent_is_told_once_in_the_workspace_and_by_email(
    ticket, agent, people, django_capture_on_commit_callbacks
):
    from servicedesk.notifications.tasks import mentions_notify_task

    with django_capture_on_commit_callbacks(execute=True):
        message = note(ticket, agent, "@bob can you call them? @cleo too")
    notice = Notification.objects.get(kind="mention")
    assert (notice.user, notice.key, notice.ticket_id) == (people["bob"], f"mention:{message.pk}", ticket.pk)
    assert notice.title == f"[{ticket.reference}] Ann mentioned you"
    assert notice.url == f"/desk/tickets/{ticket.reference}/#message-{message.pk}"
    assert [m.to for m in mail.outbox] == [["bob@corp.example"]]
    # The task delivered again tells nobody twice; Cleo, who may not see the ticket, never.
    with django_capture_on_commit_callbacks(execute=True):
        assert mentions_notify_task.apply(args=[message.pk]).get() == 0
    assert Notification.objects.filter(kind="mention").count() == 1
    assert len(mail.outbox) == 1


def test_someone_who_lost_the_ticket_before_the_notice_is_not_told(
    ticket, agent, people, queue, django_capture_on_commit_callbacks
):
    from servicedesk.notifications.followups import mentions_notify

    message = note(ticket, agent, "@bob")
    queue.members.remove(people["bob"])
    assert mentions_notify(message_id=message.pk) == 0
    assert not Notification.objects.exists()


def test_tickets_mentioning_lists_the_visible_tickets_whose_notes_name_the_agent(queue, agent, people):
    first = ticket_make(queue=queue, subject="First")
    second = ticket_make(queue=queue, subject="Second")
    ticket_make(queue=queue, subject="Not mentioned")
    note(first, agent, "@bob")
    note(first, agent, "@bob again")
    note(second, agent, '@"Bob Stone"')
    assert sorted(t.subject for t in tickets_mentioning(people["bob"])) == ["First", "Second"]
    # Within a list the caller built; and gone once Bob leaves the queue.
    assert [
        t.subject for t in tickets_mentioning(people["bob"], within=first.__class__.objects.filter(pk=first.pk))
    ] == ["First"]
    queue.members.remove(people["bob"])
    assert list(tickets_mentioning(people["bob"])) == []
    assert list(tickets_mentioning(agent)) == []


def test_the_note_writer_is_told_on_the_page_which_names_were_not_notified(client, agent, people, ticket):
    client.force_login(agent)
    answer = client.post(
        f"/desk/tickets/{ticket.reference}/reply/",
        {"kind": "note", "text": '@bob @cleo @"No Body"', "action": "send"},
        follow=True,
    )
    assert answer.status_code == 200
    page = answer.content.decode()
    assert "Your internal note was added." in page
    assert "Not notified (unknown, ambiguous, or not allowed to see this ticket): @cleo, @&quot;No Body&quot;" in page
    assert list(MessageMention.objects.values_list("user__username", flat=True)) == ["bob"]


def test_notes_written_through_the_api_mention_too(agent, people, ticket, django_capture_on_commit_callbacks):
    api = APIClient(HTTP_AUTHORIZATION=f"Token {Token.objects.get_or_create(user=agent)[0].key}")
    with django_capture_on_commit_callbacks(execute=True):
        answer = api.post(
            f"/api/v1/tickets/{ticket.reference}/messages/", {"kind": "note", "text": "@max see this"}, format="json"
        )
    assert answer.status_code == 201
    assert list(Notification.objects.filter(kind="mention").values_list("user__username", flat=True)) == ["max"]


def test_a_superuser_without_a_role_is_staff_too(ticket, agent):
    boss = UserFactory(username="boss", is_superuser=True)
    assert not Group.objects.filter(user=boss).exists()
    message = note(ticket, agent, "@boss")
    assert list(MessageMention.objects.filter(message=message).values_list("user__username", flat=True)) == ["boss"]
