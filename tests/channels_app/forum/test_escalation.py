"""Topics and tickets both ways (docs/community.md, "Topics and tickets"): escalation through the intake
(once), staff replies as the ticket's first reply, replies posted back once, the summary, the automatic
escalation at the target in business hours, and the reminder to accept an answer."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.core import mail
from django.utils import timezone

from channels_app.forum.escalation import (
    EscalationRefused,
    accept_reminders_send,
    post_escalate,
    staff_reply_record,
    ticket_reply_post_back,
    ticket_summary_post,
    topic_escalate,
    topics_escalate_due,
)
from channels_app.forum.models import Category, ModerationAction, Post, Topic
from channels_app.forum.services import ForumRefused, post_accept, post_create, topic_create
from servicedesk.sla.models import BusinessCalendar, OpeningWindow, SlaPolicy, SlaTarget
from servicedesk.tickets.events import Actor
from servicedesk.tickets.models import Message, Ticket, TicketTarget
from servicedesk.tickets.services.replies import ticket_reply_create
from servicedesk.tickets.services.tickets import ticket_status_change
from tests.channels_app.forum.helpers import reply_make, topic_make
from tests.factories import QueueFactory, UserFactory

pytestmark = pytest.mark.django_db

# A Friday afternoon, UTC.
FRIDAY_4PM = datetime(2026, 11, 27, 16, 0, tzinfo=UTC)


@pytest.fixture
def office(db):
    """Monday to Friday, 9 to 5, UTC."""
    calendar = BusinessCalendar.objects.create(slug="office", name="Office", time_zone="UTC")
    for weekday in range(5):
        OpeningWindow.objects.create(calendar=calendar, weekday=weekday, start_minute=9 * 60, end_minute=17 * 60)
    return calendar


@pytest.fixture
def support(db, office, queue):
    return Category.objects.create(slug="support", name="Support", is_support=True, target_hours=8, calendar=office)


@pytest.fixture
def forum_policy(db, office):
    """The SLA policy of channel forum: a first reply within an hour (calendar time)."""
    policy = SlaPolicy.objects.create(
        slug="forum", name="Community", rank=1, calendar=office, match={"channel": "forum"}
    )
    SlaTarget.objects.create(policy=policy, priority="normal", first_reply_minutes=60, hours="calendar")
    return policy


def test_an_agent_escalates_a_topic_once_through_the_intake(public, alice, agent, queue):
    topic = topic_make(alice, public, title="Printer on fire", body="It **burns**.")
    ticket = topic_escalate(topic=topic, agent=agent)
    again = topic_escalate(topic=Topic.objects.select_related("category").get(pk=topic.pk), agent=agent)
    assert again.pk == ticket.pk and Ticket.objects.count() == 1
    ticket.refresh_from_db()
    topic.refresh_from_db()
    assert (ticket.channel, ticket.customer_id, ticket.subject, ticket.queue_id) == (
        "forum",
        alice.customer_id,
        "Printer on fire",
        queue.pk,
    )
    assert (topic.escalated_ticket_id, topic.escalated_at is not None) == (ticket.pk, True)
    messages = list(ticket.messages.order_by("pk").values_list("kind", "external_id", "text"))
    link = f"/community/t/{topic.pk}-printer-on-fire/"
    assert messages[0][:2] == ("public_enduser", f"forum:topic:{topic.pk}")
    assert messages[0][2].startswith("It burns.") and link in messages[0][2]
    notes = [m for m in messages if m[0] == "internal"]
    assert len(notes) == 1 and link in notes[0][2] and "ann" in notes[0][2].lower()
    assert any(m[0] == "system" for m in messages)  # the acknowledgement, as for every new ticket
    assert list(ModerationAction.objects.values_list("action", "actor_id", "topic_id")) == [
        ("escalate", agent.pk, topic.pk)
    ]


def test_a_public_note_says_the_topic_moved_to_private_support(public, alice, agent, staff):
    topic = topic_make(alice, public)
    ticket = topic_escalate(topic=topic, agent=agent, public_note=True)
    note = Post.objects.get(topic=topic, position=2)
    assert note.is_staff and "private support" in note.body
    # Not the ticket's reply: the note is about the topic, not an answer to the customer.
    assert not ticket.messages.filter(kind="public_agent").exists()


def test_one_post_becomes_a_ticket_of_its_author_once(public, alice, bob, agent):
    topic = topic_make(alice, public)
    answer = reply_make(bob, topic, "Mine burns too, and I have a contract.")
    ticket = post_escalate(post=answer, agent=agent)
    assert post_escalate(post=answer, agent=agent).pk == ticket.pk
    answer.refresh_from_db()
    assert (ticket.customer_id, answer.escalated_ticket_id, Ticket.objects.count()) == (bob.customer_id, ticket.pk, 1)
    assert ticket.messages.filter(external_id=f"forum:post:{answer.pk}").exists()
    assert Topic.objects.get(pk=topic.pk).escalated_ticket_id is None


def test_what_cannot_become_a_ticket_is_refused_and_nothing_is_written(public, staff, agent, alice):
    by_staff = topic_create(member=staff, category=public, kind="discussion", title="Staff topic", body="Hello")
    with pytest.raises(EscalationRefused):
        topic_escalate(topic=by_staff, agent=agent)
    with pytest.raises(ForumRefused):
        topic_escalate(topic=topic_make(alice, public), agent=UserFactory(username="outsider"))
    assert not Ticket.objects.exists() and not ModerationAction.objects.exists()


def test_a_category_names_the_queue_of_its_tickets(public, alice, agent):
    billing = QueueFactory(slug="billing", name="Billing")
    public.queue = billing
    public.save()
    ticket = topic_escalate(topic=topic_make(alice, public), agent=agent)
    assert ticket.queue_id == billing.pk


def test_a_staff_reply_on_the_forum_is_the_tickets_first_reply(
    support, forum_policy, alice, staff, agent, django_capture_on_commit_callbacks
):
    topic = topic_create(
        member=alice, category=support, kind="question", title="Printer on fire", body="Help", at=FRIDAY_4PM
    )
    due = topic.escalation_due_at
    ticket = topic_escalate(topic=topic, agent=None, at=due)
    target = TicketTarget.objects.get(ticket=ticket, kind="first_reply")
    assert (target.policy_id, target.state) == (forum_policy.pk, "active")
    replied = due + timedelta(minutes=30)
    topic.refresh_from_db()
    with django_capture_on_commit_callbacks(execute=True):
        post = post_create(
            member=staff, topic=Topic.objects.select_related("category").get(pk=topic.pk), body="Unplug it.", at=replied
        )
    message = Message.objects.get(external_id=f"forum:reply:{post.pk}")
    assert (message.kind, message.author_user_id, message.created_at, message.delivery_status) == (
        "public_agent",
        agent.pk,
        replied,
        "",
    )
    assert message.text.startswith("Unplug it.")
    ticket.refresh_from_db()
    target.refresh_from_db()
    assert ticket.first_reply_at == replied
    assert (target.state, target.fulfilled_at) == ("achieved", replied)
    # The task again (a retry): no second message.
    assert staff_reply_record(post_id=post.pk).pk == message.pk  # type: ignore[union-attr]
    assert Message.objects.filter(ticket=ticket, kind="public_agent").count() == 1


def test_the_agents_reply_is_posted_back_to_the_topic_once(client, public, alice, agent):
    topic = topic_make(alice, public)
    ticket = topic_escalate(topic=topic, agent=agent)
    reply = ticket_reply_create(ticket=ticket, author=agent, text="Replace the fuser.", actor=Actor.agent(agent))
    messages_before = Message.objects.filter(ticket=ticket).count()
    first = ticket_reply_post_back(message=reply, agent=agent)
    second = ticket_reply_post_back(message=reply, agent=agent)
    assert first.pk == second.pk and Post.objects.filter(source_message=reply).count() == 1
    assert (first.is_staff, first.body, first.position) == (True, "Replace the fuser.", 2)
    # Not recorded on the ticket again.
    assert Message.objects.filter(ticket=ticket).count() == messages_before
    # The desk's button, pressed twice: still one post.
    client.force_login(agent)
    path = f"/desk/community/tickets/{ticket.reference}/messages/{reply.pk}/post-back/"
    for _ in range(2):
        assert client.post(path).status_code == 302
    assert Post.objects.filter(topic=topic).count() == 2
    # A customer's message is not a reply to post back.
    customer_message = ticket.messages.get(kind="public_enduser")
    assert (
        client.post(f"/desk/community/tickets/{ticket.reference}/messages/{customer_message.pk}/post-back/").status_code
        == 404
    )


def test_solving_prompts_for_a_summary_that_is_posted_and_accepted(client, public, alice, agent):
    topic = topic_make(alice, public)
    ticket = topic_escalate(topic=topic, agent=agent)
    client.force_login(agent)
    page = client.get(f"/desk/tickets/{ticket.reference}/").content.decode()
    assert topic.title in page and "forum-summary" not in page
    ticket_status_change(ticket=ticket, status="solved", actor=Actor.agent(agent))
    page = client.get(f"/desk/tickets/{ticket.reference}/").content.decode()
    assert f'action="/desk/community/tickets/{ticket.reference}/summary/"' in page
    response = client.post(f"/desk/community/tickets/{ticket.reference}/summary/", {"text": "Fixed by a new fuser."})
    assert response.status_code == 302
    summary = Post.objects.get(topic=topic, position=2)
    topic.refresh_from_db()
    assert (summary.body, summary.is_staff, summary.accepted, summary.accepted_by.user_id) == (  # type: ignore[union-attr]
        "Fixed by a new fuser.",
        True,
        True,
        agent.pk,
    )
    assert (topic.accepted_count, topic.answered_at) == (1, summary.accepted_at)
    assert client.post(f"/desk/community/tickets/{ticket.reference}/summary/", {"text": ""}).status_code == 400
    # The same summary again (a second click) is the same post; another text is another answer.
    response = client.post(f"/desk/community/tickets/{ticket.reference}/summary/", {"text": "Fixed by a new fuser."})
    assert response.status_code == 302 and Post.objects.filter(topic=topic).count() == 2
    assert ticket_summary_post(ticket=ticket, text="Fixed by a new fuser.", agent=agent).pk == summary.pk
    ticket_summary_post(ticket=ticket, text="One more", agent=agent)
    assert Topic.objects.get(pk=topic.pk).accepted_count == 2


def test_a_support_question_escalates_at_its_target_in_business_hours_and_once(support, forum_policy, alice, agent):
    topic = topic_create(
        member=alice, category=support, kind="question", title="Printer on fire", body="Help", at=FRIDAY_4PM
    )
    # One business hour on Friday, seven on Monday.
    assert topic.escalation_due_at == datetime(2026, 11, 30, 16, 0, tzinfo=UTC)
    due = topic.escalation_due_at
    assert topics_escalate_due(now=due - timedelta(minutes=1)) == 0
    assert not Ticket.objects.exists()
    assert topics_escalate_due(now=due) == 1
    assert topics_escalate_due(now=due + timedelta(minutes=1)) == 0
    ticket = Ticket.objects.get()
    topic.refresh_from_db()
    assert (ticket.channel, ticket.customer_id, ticket.created_at, topic.escalated_ticket_id, topic.escalated_at) == (
        "forum",
        alice.customer_id,
        due,
        ticket.pk,
        due,
    )
    assert TicketTarget.objects.get(ticket=ticket, kind="first_reply").policy_id == forum_policy.pk
    assert list(ModerationAction.objects.values_list("action", "actor_id")) == [("escalate", None)]
    # The ticket says where it came from.
    assert ticket.messages.filter(kind="internal", text__contains=f"/community/t/{topic.pk}-").exists()


def test_a_staff_reply_or_an_accepted_answer_in_time_escalates_nothing(support, alice, bob, staff):
    replied = topic_create(
        member=alice, category=support, kind="question", title="Staff answered", body="Help", at=FRIDAY_4PM
    )
    post_create(member=staff, topic=replied, body="On it", at=FRIDAY_4PM + timedelta(minutes=5))
    accepted = topic_create(
        member=alice, category=support, kind="question", title="Bob answered", body="Help", at=FRIDAY_4PM
    )
    post_accept(member=alice, post=post_create(member=bob, topic=accepted, body="Do this", at=FRIDAY_4PM))
    assert topics_escalate_due(now=FRIDAY_4PM + timedelta(days=10)) == 0
    assert not Ticket.objects.exists()


def test_the_author_of_an_answered_question_is_asked_once_to_accept_an_answer(public, alice, bob):
    now = timezone.now()
    waiting = topic_create(
        member=alice, category=public, kind="question", title="Still waiting", body="Help", at=now - timedelta(days=10)
    )
    post_create(member=bob, topic=waiting, body="Try this", at=now - timedelta(days=8))
    done = topic_create(
        member=alice, category=public, kind="question", title="Accepted one", body="Help", at=now - timedelta(days=10)
    )
    post_accept(member=alice, post=post_create(member=bob, topic=done, body="This", at=now - timedelta(days=8)))
    mail.outbox.clear()
    assert accept_reminders_send(now=now - timedelta(days=2)) == 0
    assert accept_reminders_send(now=now) == 1
    assert accept_reminders_send(now=now + timedelta(hours=1)) == 0
    assert len(mail.outbox) == 1
    message = mail.outbox[0]
    assert message.to == ["alice@example.com"] and "Still waiting" in message.subject
    assert f"/community/t/{waiting.pk}-still-waiting/" in message.body
    assert Topic.objects.get(pk=waiting.pk).accept_reminder_sent_at == now


def test_the_customer_page_lists_their_topics_beside_their_tickets(client, public, alice, manager):
    topic = topic_make(alice, public, title="Printer <b>question</b>")
    client.force_login(manager)
    page = client.get(f"/desk/customers/{alice.customer_id}/").content.decode()
    assert "Community topics" in page
    assert f'href="/community/t/{topic.pk}-printer-bquestionb/"' in page
    assert "Printer &lt;b&gt;question&lt;/b&gt;" in page
