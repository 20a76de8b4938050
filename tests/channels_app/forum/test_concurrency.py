"""Two at once, against PostgreSQL: an escalation, a post-back and flags each happen once."""

from __future__ import annotations

import pytest

from channels_app.forum.escalation import ticket_reply_post_back, topic_escalate
from channels_app.forum.models import Flag, ModerationAction, Post, Topic
from channels_app.forum.moderation import ModerationRefused, post_flag
from channels_app.forum.services import member_ensure
from servicedesk.tickets.events import Actor
from servicedesk.tickets.models import Message, Ticket
from servicedesk.tickets.services.replies import ticket_reply_create
from tests.channels_app.forum.helpers import reply_make, topic_make
from tests.concurrency import run_at_once
from tests.factories import CustomerFactory

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("postgres_only")]


def test_two_escalations_at_once_open_one_ticket(public, alice, agent):
    topic = topic_make(alice, public)
    tickets = run_at_once(
        4, lambda i: topic_escalate(topic=Topic.objects.select_related("category").get(pk=topic.pk), agent=agent).pk
    )
    assert len(set(tickets)) == 1 and Ticket.objects.count() == 1
    assert Message.objects.filter(external_id=f"forum:topic:{topic.pk}").count() == 1
    assert Topic.objects.get(pk=topic.pk).escalated_ticket_id == tickets[0]


def test_a_reply_posted_back_twice_at_once_is_one_post(public, alice, agent):
    topic = topic_make(alice, public)
    ticket = topic_escalate(topic=topic, agent=agent)
    reply = ticket_reply_create(ticket=ticket, author=agent, text="Replace the fuser.", actor=Actor.agent(agent))
    member_ensure(user=agent)
    posts = run_at_once(
        3,
        lambda i: (
            ticket_reply_post_back(message=Message.objects.select_related("ticket").get(pk=reply.pk), agent=agent).pk
        ),
    )
    assert len(set(posts)) == 1 and Post.objects.filter(source_message=reply).count() == 1


def test_flags_at_once_hide_the_post_once(settings, public, alice, bob):
    settings.SERVICEDESK = {**settings.SERVICEDESK, "FORUM_FLAGS_TO_HIDE": 2}
    topic = topic_make(alice, public)
    answer = reply_make(bob, topic)
    readers = [member_ensure(customer=CustomerFactory(name=f"Reader {n}")) for n in range(3)]

    def flag(i: int) -> bool | None:
        post = Post.objects.select_related("topic__category").get(pk=answer.pk)
        try:
            return post_flag(member=readers[i], post=post, kind="spam")
        except ModerationRefused:
            return None  # it was hidden meanwhile: nothing left to flag

    results = run_at_once(3, flag)
    answer.refresh_from_db()
    topic.refresh_from_db()
    # Two flags hid it; the third found it hidden (refused) or came first. Counted once either way.
    assert answer.state == "hidden" and topic.posts_count == 1
    flags = Flag.objects.count()
    assert flags == results.count(True) and flags in (2, 3) and answer.flags_count == flags
    assert ModerationAction.objects.filter(action="hide").count() == 1
