"""The forum's services: exact values written, and nothing changed on refusal (docs/community.md)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from channels_app.forum.models import (
    Category,
    Kind,
    Like,
    Member,
    MeToo,
    Post,
    PostRevision,
    State,
    Subscription,
    Topic,
    Vote,
)
from channels_app.forum.services import (
    ForumRefused,
    member_ensure,
    member_profile_update,
    mentioned_handles,
    post_accept,
    post_edit,
    post_like,
    post_unaccept,
    subscription_set,
    subscription_unsubscribe,
    topic_create,
    topic_me_too,
    topic_vote,
)
from servicedesk.core.errors import ApplicationError, NotFound
from servicedesk.sla.calendars import calendar_spec, due_instant
from servicedesk.sla.models import BusinessCalendar, OpeningWindow
from tests.channels_app.forum.helpers import reply_make, topic_make
from tests.factories import AgentFactory, CustomerFactory

pytestmark = pytest.mark.django_db


def snapshot(*objects):  # type: ignore[no-untyped-def]
    """Every row of the forum's tables as values, to compare before and after a refusal."""
    tables = (Category, Member, Topic, Post, PostRevision, Vote, MeToo, Like, Subscription)
    return {model.__name__: list(model.objects.order_by("pk").values()) for model in tables}


def test_a_topic_is_opened_with_its_opening_post_counters_and_the_authors_subscription(public, alice):
    topic = topic_create(member=alice, category=public, kind="question", title="  Printer on fire ", body="**Help**")
    topic.refresh_from_db()
    assert (topic.title, topic.slug, topic.kind, topic.state) == (
        "Printer on fire",
        "printer-on-fire",
        "question",
        "visible",
    )
    assert topic.customer_id == alice.customer_id and topic.author_id == alice.pk
    assert (topic.posts_count, topic.last_position, topic.accepted_count) == (1, 1, 0)
    assert topic.created_at == topic.last_post_at and topic.escalation_due_at is None
    post = topic.posts.get()
    assert (post.position, post.is_staff, post.body, post.body_html, post.body_text) == (
        1,
        False,
        "**Help**",
        "<p><strong>Help</strong></p>\n",
        "Help",
    )
    public.refresh_from_db()
    alice.refresh_from_db()
    assert (public.topics_count, public.posts_count, public.last_post_at) == (1, 1, topic.created_at)
    assert (alice.topics_count, alice.posts_count) == (1, 1)
    assert list(Subscription.objects.values_list("member_id", "topic_id", "unsubscribed_at")) == [
        (alice.pk, topic.pk, None)
    ]


def test_a_chinese_title_gets_a_plain_slug(public, alice):
    assert topic_make(alice, public, title="打印机着火了怎么办").slug == "topic"


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"title": "Hi"}, "title"),
        ({"title": "x" * 201}, "title"),
        ({"body": "   "}, "body"),
        ({"body": "\x00\x01 \n"}, "body"),
        ({"kind": "poll"}, "kind"),
        ({"kind": "announcement"}, "kind"),
    ],
)
def test_a_bad_topic_is_refused_on_its_field_and_nothing_is_written(public, alice, changes, field):
    before = snapshot()
    data = {"kind": "question", "title": "Printer on fire", "body": "It burns.", **changes}
    with pytest.raises(ApplicationError) as refused:
        topic_create(member=alice, category=public, **data)
    if field:
        assert refused.value.field == field
    assert snapshot() == before


def test_a_customer_outside_the_organization_cannot_write_in_its_category(acme_only, bob, alice):
    before = snapshot()
    with pytest.raises(NotFound):
        topic_make(bob, acme_only)
    assert snapshot() == before
    assert topic_make(alice, acme_only).category_id == acme_only.pk


def test_a_suspended_member_is_refused(public, alice):
    Member.objects.filter(pk=alice.pk).update(suspended_until=timezone.now() + timedelta(days=1))
    alice.refresh_from_db()
    before = snapshot()
    with pytest.raises(ForumRefused):
        topic_make(alice, public)
    assert snapshot() == before


def test_staff_post_announcements_with_the_staff_flag(public, staff):
    topic = topic_create(member=staff, category=public, kind=Kind.ANNOUNCEMENT, title="Maintenance", body="Sunday.")
    assert topic.kind == "announcement" and topic.customer_id is None
    assert topic.posts.get().is_staff is True


def test_replies_take_positions_and_move_the_counters(public, alice, bob, staff):
    topic = topic_make(alice, public)
    first = reply_make(bob, topic, "Unplug it.")
    second = reply_make(staff, topic, "We are on it.")
    own = reply_make(alice, topic, "Thanks")
    assert [first.position, second.position, own.position] == [2, 3, 4]
    assert (first.is_staff, second.is_staff) == (False, True)
    topic.refresh_from_db()
    assert (topic.posts_count, topic.last_position, topic.last_post_at) == (4, 4, own.created_at)
    assert topic.first_reply_at == first.created_at and topic.first_staff_reply_at == second.created_at
    public.refresh_from_db()
    bob.refresh_from_db()
    assert (public.topics_count, public.posts_count) == (1, 4)
    assert (bob.posts_count, bob.topics_count, bob.last_posted_at) == (1, 0, first.created_at)
    # Each replier follows the topic, once.
    assert sorted(Subscription.objects.values_list("member_id", flat=True)) == sorted([alice.pk, bob.pk, staff.pk])


def test_replying_again_does_not_follow_a_topic_the_member_left(public, alice, bob):
    topic = topic_make(alice, public)
    reply_make(bob, topic)
    subscription_set(member=bob, topic=topic, on=False)
    reply_make(bob, topic, "Another thought")
    assert Subscription.objects.get(member=bob, topic=topic).unsubscribed_at is not None


def test_a_locked_topic_takes_replies_from_staff_only(public, alice, bob, staff):
    topic = topic_make(alice, public)
    Topic.objects.filter(pk=topic.pk).update(locked=True)
    topic.refresh_from_db()
    before = snapshot()
    with pytest.raises(ForumRefused):
        reply_make(bob, topic)
    assert snapshot() == before
    assert reply_make(staff, topic).position == 2


def test_a_hidden_topic_is_not_found_for_others_and_takes_no_reply_from_its_author(public, alice, bob):
    topic = topic_make(alice, public)
    Topic.objects.filter(pk=topic.pk).update(state=State.HIDDEN)
    topic.refresh_from_db()
    before = snapshot()
    with pytest.raises(NotFound):
        reply_make(bob, topic)
    with pytest.raises(ForumRefused):
        reply_make(alice, topic)
    assert snapshot() == before


def test_an_edit_keeps_the_earlier_text_as_a_revision(public, alice, bob):
    topic = topic_make(alice, public, title="Printer on fire", body="It burns.")
    opening = topic.posts.get(position=1)
    post_edit(member=alice, post=opening, body="It *really* burns.", title="Printer still on fire")
    post_edit(member=alice, post=opening, body="It *really* burns.", title="Printer still on fire")  # unchanged
    opening.refresh_from_db()
    topic.refresh_from_db()
    assert (opening.body, opening.body_html, opening.revisions_count) == (
        "It *really* burns.",
        "<p>It <em>really</em> burns.</p>\n",
        1,
    )
    assert (topic.title, topic.slug) == ("Printer still on fire", "printer-still-on-fire")
    assert list(PostRevision.objects.values_list("number", "title", "body", "editor_id")) == [
        (1, "Printer on fire", "It burns.", alice.pk)
    ]
    before = snapshot()
    with pytest.raises(ForumRefused):
        post_edit(member=bob, post=opening, body="Mine now")
    assert snapshot() == before


def test_staff_edit_anyones_post(public, alice, staff):
    post = topic_make(alice, public).posts.get()
    post_edit(member=staff, post=post, body="Tidied")
    assert PostRevision.objects.get().editor_id == staff.pk


def test_the_author_and_staff_accept_one_or_more_answers(public, alice, bob, staff):
    topic = topic_make(alice, public)
    first, second = reply_make(bob, topic), reply_make(staff, topic)
    assert post_accept(member=alice, post=first) is True
    assert post_accept(member=alice, post=first) is False
    assert post_accept(member=staff, post=second) is True
    topic.refresh_from_db()
    first.refresh_from_db()
    bob.refresh_from_db()
    assert (topic.accepted_count, topic.answered_at) == (2, first.accepted_at)
    assert (first.accepted, first.accepted_by_id, bob.accepted_count) == (True, alice.pk, 1)
    assert post_unaccept(member=alice, post=first) is True
    assert post_unaccept(member=alice, post=first) is False
    topic.refresh_from_db()
    assert (topic.accepted_count, topic.answered_at is not None) == (1, True)
    post_unaccept(member=staff, post=second)
    topic.refresh_from_db()
    assert (topic.accepted_count, topic.answered_at) == (0, None)


def test_only_the_author_and_staff_accept_and_not_the_opening_post(public, alice, bob):
    topic = topic_make(alice, public)
    answer = reply_make(bob, topic)
    before = snapshot()
    with pytest.raises(ForumRefused):
        post_accept(member=bob, post=answer)
    with pytest.raises(ForumRefused):
        post_accept(member=alice, post=topic.posts.get(position=1))
    assert snapshot() == before


def test_votes_on_ideas_count_once_per_member(public, alice, bob):
    idea = topic_make(alice, public, kind="idea", title="Dark mode please")
    assert topic_vote(member=bob, topic=idea) is True
    assert topic_vote(member=bob, topic=idea) is False
    assert topic_vote(member=alice, topic=idea) is True
    idea.refresh_from_db()
    assert idea.votes_count == 2
    assert topic_vote(member=bob, topic=idea, on=False) is True
    assert topic_vote(member=bob, topic=idea, on=False) is False
    idea.refresh_from_db()
    assert idea.votes_count == 1 and list(Vote.objects.values_list("member_id", flat=True)) == [alice.pk]
    question = topic_make(alice, public)
    before = snapshot()
    with pytest.raises(ForumRefused):
        topic_vote(member=bob, topic=question)
    assert snapshot() == before


def test_me_too_on_questions_not_by_their_author(public, alice, bob):
    question = topic_make(alice, public)
    assert topic_me_too(member=bob, topic=question) is True
    assert topic_me_too(member=bob, topic=question) is False
    question.refresh_from_db()
    assert question.me_too_count == 1
    before = snapshot()
    with pytest.raises(ForumRefused):
        topic_me_too(member=alice, topic=question)
    assert snapshot() == before


def test_likes_count_on_the_post_the_topic_and_its_author(public, alice, bob, staff):
    topic = topic_make(alice, public)
    answer = reply_make(bob, topic)
    assert post_like(member=alice, post=answer) is True
    assert post_like(member=alice, post=answer) is False
    assert post_like(member=staff, post=answer) is True
    answer.refresh_from_db()
    topic.refresh_from_db()
    bob.refresh_from_db()
    assert (answer.likes_count, topic.likes_count, bob.likes_received) == (2, 2, 2)
    assert post_like(member=alice, post=answer, on=False) is True
    answer.refresh_from_db()
    assert answer.likes_count == 1
    before = snapshot()
    with pytest.raises(ForumRefused):
        post_like(member=bob, post=answer)
    assert snapshot() == before


def test_subscriptions_to_a_category_and_one_click_unsubscribe(public, members_only, bob):
    subscription = subscription_set(member=bob, category=public)
    again = subscription_set(member=bob, category=public)
    assert subscription is not None and again is not None and again.key == subscription.key
    assert Subscription.objects.filter(member=bob).count() == 1
    assert subscription_unsubscribe(key=subscription.key).unsubscribed_at is not None  # type: ignore[union-attr]
    stopped = Subscription.objects.get().unsubscribed_at
    assert subscription_unsubscribe(key=subscription.key).unsubscribed_at == stopped  # type: ignore[union-attr]
    assert subscription_unsubscribe(key="nope") is None
    subscription_set(member=bob, category=public)
    assert Subscription.objects.get().unsubscribed_at is None


def test_a_subscription_needs_a_category_the_member_reads(acme_only, bob):
    with pytest.raises(NotFound):
        subscription_set(member=bob, category=acme_only)
    assert not Subscription.objects.exists()


def test_members_are_made_once_with_a_handle_and_the_first_name_only(db):
    customer = CustomerFactory(name="Alice Byrne")
    member = member_ensure(customer=customer)
    assert member_ensure(customer=customer).pk == member.pk
    assert (member.display_name, member.handle, member.trust_level) == ("Alice", "alice", 0)
    twin = member_ensure(customer=CustomerFactory(name="Alice Other"))
    assert twin.handle != "alice" and twin.handle.startswith("alice")
    agent = member_ensure(user=AgentFactory(username="ann", display_name="Ann Agent"))
    assert (agent.display_name, agent.handle) == ("Ann Agent", "ann_agent")
    chinese = member_ensure(customer=CustomerFactory(name="王小明"))
    assert (chinese.display_name, chinese.handle) == ("王小明", "member")


def test_a_display_name_is_one_clean_line(alice):
    member_profile_update(member=alice, display_name="  Alice\u202e B.\n ")
    alice.refresh_from_db()
    assert alice.display_name == "Alice B."
    with pytest.raises(ApplicationError) as refused:
        member_profile_update(member=alice, display_name="   ")
    assert refused.value.field == "display_name"
    alice.refresh_from_db()
    assert alice.display_name == "Alice B."


def test_mentions_are_found_outside_code_and_addresses():
    text = "Hi @Bob and @bob, ask @ann_agent. Not `@code`, not mail@example.com.\n```\n@block\n```"
    assert mentioned_handles(text) == ["bob", "ann_agent"]


def test_a_support_question_escalates_after_the_target_in_business_hours(db, alice):
    calendar = BusinessCalendar.objects.create(slug="office", name="Office", time_zone="UTC")
    for weekday in range(5):
        OpeningWindow.objects.create(calendar=calendar, weekday=weekday, start_minute=9 * 60, end_minute=17 * 60)
    support = Category.objects.create(
        slug="support", name="Support", is_support=True, target_hours=8, calendar=calendar
    )
    question = topic_make(alice, support)
    opened = question.created_at
    # Eight business hours later on a Monday-to-Friday, 9-to-5 calendar in UTC.
    assert question.escalation_due_at == due_instant(calendar_spec(calendar), opened, 8 * 3600)
    assert question.escalation_due_at > opened
    idea = topic_make(alice, support, kind="idea", title="An idea for support")
    assert idea.escalation_due_at is None
    # Without a calendar of its own or a default one: around the clock.
    around_the_clock = Category.objects.create(slug="help", name="Help", is_support=True)
    later = topic_make(alice, around_the_clock)
    assert later.escalation_due_at == later.created_at + timedelta(hours=24)


def test_a_staff_reply_or_an_accepted_answer_stops_the_escalation(db, alice, bob, staff):
    support = Category.objects.create(slug="support", name="Support", is_support=True)
    by_staff = topic_make(alice, support)
    assert by_staff.escalation_due_at is not None
    reply_make(bob, by_staff)
    by_staff.refresh_from_db()
    assert by_staff.escalation_due_at is not None
    reply_make(staff, by_staff)
    by_staff.refresh_from_db()
    assert by_staff.escalation_due_at is None
    accepted = topic_make(alice, support, title="Another question")
    post_accept(member=alice, post=reply_make(bob, accepted))
    accepted.refresh_from_db()
    assert accepted.escalation_due_at is None
