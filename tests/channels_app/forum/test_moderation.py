"""Moderation (docs/community.md, "Moderation"): trust levels, holds, limits for new members, flags, and
every moderator action recorded with who and when; nothing changed on refusal."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from channels_app.forum.models import (
    Category,
    Flag,
    Member,
    ModerationAction,
    Post,
    State,
    Topic,
)
from channels_app.forum.moderation import (
    ModerationRefused,
    RateLimited,
    member_suspend,
    member_unsuspend,
    post_approve,
    post_flag,
    post_hide,
    post_reject,
    post_unhide,
    topic_lock_set,
    topic_merge,
    topic_move,
    topic_pin_set,
    trust_level_for,
)
from channels_app.forum.services import ForumRefused, post_create, post_edit, topic_create
from servicedesk.core.errors import ApplicationError
from tests.channels_app.forum.helpers import reply_make, topic_make
from tests.channels_app.forum.test_services import snapshot
from tests.channels_app.web.helpers import sign_in
from tests.factories import CustomerFactory, UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def forum_settings(settings):
    """Change some of the community's moderation settings for one test."""

    def change(**values: object) -> None:
        settings.SERVICEDESK = {**settings.SERVICEDESK, **{f"FORUM_{k}": v for k, v in values.items()}}

    return change


def actions() -> list[tuple[str, int | None, int | None, int | None]]:
    return list(ModerationAction.objects.order_by("pk").values_list("action", "actor_id", "topic_id", "post_id"))


def member_from(name: str) -> Member:
    from channels_app.forum.services import member_ensure

    return member_ensure(customer=CustomerFactory(name=name))


# ---------------------------------------------------------------- trust levels and holds


def test_trust_levels_follow_approved_posts_days_and_likes(forum_settings, alice):
    forum_settings(TRUST_POSTS=[3, 20, 100], TRUST_DAYS=[0, 15, 60], TRUST_LIKES=[0, 5, 30])
    now = timezone.now()
    alice.created_at = now - timedelta(days=20)
    alice.posts_count, alice.likes_received = 2, 0
    assert trust_level_for(alice, at=now) == 0
    alice.posts_count = 3
    assert trust_level_for(alice, at=now) == 1
    alice.posts_count, alice.likes_received = 25, 5
    assert trust_level_for(alice, at=now) == 2
    # A hundred posts and thirty likes, but not sixty days yet.
    alice.posts_count, alice.likes_received = 100, 30
    assert trust_level_for(alice, at=now) == 2
    assert trust_level_for(alice, at=now + timedelta(days=41)) == 3


def test_the_level_rises_as_posts_are_published(public, alice, bob):
    topic = topic_make(alice, public)
    for n in range(3):
        reply_make(bob, topic, f"Reply {n}")
    bob.refresh_from_db()
    assert (bob.posts_count, bob.trust_level) == (3, 1)


def test_a_new_members_first_posts_are_held_and_count_nowhere_until_approved(
    client, forum_settings, public, alice, agent, django_capture_on_commit_callbacks
):
    forum_settings(NEW_HELD_POSTS=1)
    topic = topic_make(alice, public, title="Held printer question")
    topic.refresh_from_db()
    opening = topic.posts.get()
    public.refresh_from_db()
    alice.refresh_from_db()
    assert (topic.state, opening.state, opening.hold_reason) == ("held", "held", "new_member")
    assert (topic.posts_count, topic.escalation_due_at, public.topics_count, public.posts_count) == (0, None, 0, 0)
    assert (alice.topics_count, alice.posts_count) == (0, 0)
    assert actions() == [("hold", None, topic.pk, opening.pk)]
    # Nobody but its author and staff reads it, on any path.
    for path in (f"/community/t/{topic.pk}-{topic.slug}/", f"/community/t/{topic.pk}/", f"/community/p/{opening.pk}/"):
        assert client.get(path, follow=True).status_code == 404
    assert "Held printer question" not in client.get("/community/c/questions/").content.decode()

    with django_capture_on_commit_callbacks(execute=True):
        assert post_approve(agent=agent, post=opening, reason="Fine") is True
    assert post_approve(agent=agent, post=opening) is False  # approved already: nothing recorded
    topic.refresh_from_db()
    public.refresh_from_db()
    alice.refresh_from_db()
    assert (topic.state, topic.posts_count, public.topics_count, public.posts_count) == ("visible", 1, 1, 1)
    assert (alice.topics_count, alice.posts_count) == (1, 1)
    assert actions()[-1] == ("approve", agent.pk, topic.pk, opening.pk)
    assert ModerationAction.objects.get(action="approve").reason == "Fine"
    assert client.get(f"/community/t/{topic.pk}-{topic.slug}/").status_code == 200
    # One post approved: the next one is published at once.
    assert reply_make(alice, topic, "More details").state == "visible"


def test_a_rejected_topic_stays_hidden_from_everyone_but_its_author_and_staff(
    client, forum_settings, public, bob, agent
):
    forum_settings(NEW_HELD_POSTS=1)
    topic = topic_make(bob, public)
    opening = topic.posts.get()
    assert post_reject(agent=agent, post=opening, reason="Spam") is True
    topic.refresh_from_db()
    assert (topic.state, Post.objects.get(pk=opening.pk).state) == ("hidden", "hidden")
    assert client.get(f"/community/t/{topic.pk}/", follow=True).status_code == 404
    sign_in(client, bob.customer)
    assert client.get(f"/community/t/{topic.pk}/", follow=True).status_code == 200
    assert actions()[-1][:2] == ("reject", agent.pk)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("See https://a.example https://b.example and https://c.example", "at most 2 links"),
        ("Ask @ann, @bob and @carl", "mention at most 2 people"),
    ],
)
def test_a_new_member_over_the_link_or_mention_limit_is_refused_and_nothing_is_written(public, alice, body, message):
    topic = topic_make(alice, public)
    before = snapshot()
    with pytest.raises(ApplicationError) as refused:
        post_create(member=alice, topic=topic, body=body)
    assert refused.value.field == "body" and message in refused.value.message
    with pytest.raises(ApplicationError):
        topic_make(alice, public, title="Another question", body=body)
    assert snapshot() == before


def test_a_trusted_member_may_add_more_links(public, alice):
    Member.objects.filter(pk=alice.pk).update(trust_level=1)
    alice.refresh_from_db()
    topic = topic_make(alice, public, body="See https://a.example https://b.example and https://c.example")
    assert topic.state == "visible"


def test_the_hourly_rate_for_new_members_is_a_clear_429(client, forum_settings, public, alice, bob):
    forum_settings(NEW_POSTS_PER_HOUR=2, TRUST_POSTS=[100, 200, 300])
    topic = topic_make(alice, public)
    start = timezone.now()
    post_create(member=bob, topic=topic, body="One", at=start)
    post_create(member=bob, topic=topic, body="Two", at=start + timedelta(minutes=1))
    before = snapshot()
    with pytest.raises(RateLimited) as refused:
        post_create(member=bob, topic=topic, body="Three", at=start + timedelta(minutes=2))
    assert refused.value.status_code == 429 and "2 posts an hour" in refused.value.message
    assert snapshot() == before
    # Through the page: 429 with the reason, the text kept, nothing written.
    sign_in(client, bob.customer)
    response = client.post(f"/community/t/{topic.pk}/reply/", {"body": "Three again"})
    assert response.status_code == 429
    page = response.content.decode()
    assert "posts an hour" in page and "Three again" in page
    assert snapshot() == before
    # An hour after the first, one more fits.
    assert post_create(member=bob, topic=topic, body="Later", at=start + timedelta(minutes=61)).position == 4


def test_hold_words_and_domains_hold_anyones_post_but_not_staffs(forum_settings, public, alice, bob, staff):
    forum_settings(HOLD_WORDS=["casino"], HOLD_DOMAINS=["evil.example"])
    Member.objects.filter(pk__in=[alice.pk, bob.pk]).update(trust_level=3)
    alice.refresh_from_db()
    bob.refresh_from_db()
    topic = topic_make(alice, public)
    by_word = reply_make(bob, topic, "Try the CASINO downstairs")
    by_link = reply_make(bob, topic, "Look at https://www.evil.example/fix")
    plain = reply_make(bob, topic, "Casinos and evil.example.com are fine")
    by_staff = reply_make(staff, topic, "No casino here, see https://evil.example/")
    assert [(p.state, p.hold_reason) for p in (by_word, by_link, plain, by_staff)] == [
        ("held", "word"),
        ("held", "link"),
        ("visible", ""),
        ("visible", ""),
    ]
    held_title = topic_make(alice, public, title="Casino night question")
    assert held_title.state == "held"
    topic.refresh_from_db()
    assert (topic.posts_count, topic.last_position) == (3, 5)


# ---------------------------------------------------------------- flags


def test_enough_flags_hide_a_post_until_reviewed(public, alice, bob, agent, forum_settings):
    forum_settings(FLAGS_TO_HIDE=3)
    topic = topic_make(alice, public)
    answer = reply_make(bob, topic, "Buy my pills")
    carl, dora, eve = member_from("Carl Reader"), member_from("Dora Reader"), member_from("Eve Reader")
    assert post_flag(member=carl, post=answer, kind="spam") is True
    assert post_flag(member=carl, post=answer, kind="spam") is False  # once per member
    assert post_flag(member=dora, post=answer, kind="inappropriate", message="Rude") is True
    answer.refresh_from_db()
    topic.refresh_from_db()
    assert (answer.state, answer.flags_count, topic.posts_count) == ("visible", 2, 2)
    assert post_flag(member=eve, post=answer, kind="off_topic") is True
    answer.refresh_from_db()
    topic.refresh_from_db()
    public.refresh_from_db()
    bob.refresh_from_db()
    assert (answer.state, answer.flags_count, topic.posts_count, public.posts_count) == ("hidden", 3, 1, 1)
    assert bob.flags_received == 3
    assert actions() == [("hide", None, topic.pk, answer.pk)]
    # Flags stay open for the moderator; showing it again dismisses them.
    assert Flag.objects.filter(resolved_at__isnull=True).count() == 3
    assert post_unhide(agent=agent, post=answer) is True
    answer.refresh_from_db()
    topic.refresh_from_db()
    assert (answer.state, topic.posts_count) == ("visible", 2)
    assert set(Flag.objects.values_list("resolution", "resolved_by_id")) == {("dismissed", agent.pk)}
    assert actions()[-1] == ("unhide", agent.pk, topic.pk, answer.pk)


def test_a_staff_flag_hides_at_once_and_refusals_change_nothing(public, alice, bob, staff, agent):
    topic = topic_make(alice, public)
    answer = reply_make(bob, topic)
    before = snapshot()
    with pytest.raises(ModerationRefused):
        post_flag(member=bob, post=answer, kind="spam")  # their own post
    with pytest.raises(ApplicationError):
        post_flag(member=alice, post=answer, kind="boring")
    assert snapshot() == before and not Flag.objects.exists()
    assert post_flag(member=staff, post=answer, kind="spam") is True
    answer.refresh_from_db()
    assert answer.state == "hidden"
    assert actions() == [("hide", agent.pk, topic.pk, answer.pk)]


# ---------------------------------------------------------------- moderator actions


def test_hiding_the_opening_post_hides_the_topic_on_every_path(client, public, alice, bob, agent):
    topic = topic_make(alice, public, title="Soon hidden topic")
    reply = reply_make(bob, topic)
    opening = topic.posts.get(position=1)
    assert post_hide(agent=agent, post=opening, reason="Off topic") is True
    assert post_hide(agent=agent, post=opening) is False
    topic.refresh_from_db()
    public.refresh_from_db()
    assert (topic.state, public.topics_count, public.posts_count) == ("hidden", 0, 0)
    sign_in(client, bob.customer)
    for path in (
        f"/community/t/{topic.pk}-{topic.slug}/",
        f"/community/t/{topic.pk}/",
        f"/community/p/{opening.pk}/",
        f"/community/p/{reply.pk}/",
    ):
        assert client.get(path, follow=True).status_code == 404, path
    for path in ("reply", "vote", "me-too", "subscribe"):
        assert client.post(f"/community/t/{topic.pk}/{path}/", {"on": "1", "body": "x"}).status_code == 404
    assert client.post(f"/community/p/{reply.pk}/flag/", {"kind": "spam"}).status_code == 404
    assert "Soon hidden topic" not in client.get("/community/c/questions/feed/").content.decode()
    assert post_unhide(agent=agent, post=opening) is True
    public.refresh_from_db()
    assert (public.topics_count, public.posts_count) == (1, 2)
    assert [a[0] for a in actions()] == ["hide", "unhide"]


def test_lock_and_pin_are_recorded_once(public, alice, bob, agent):
    topic = topic_make(alice, public)
    assert topic_lock_set(agent=agent, topic=topic, locked=True, reason="Heated") is True
    assert topic_lock_set(agent=agent, topic=topic, locked=True) is False
    with pytest.raises(ForumRefused):
        reply_make(bob, Topic.objects.select_related("category").get(pk=topic.pk))
    assert topic_pin_set(agent=agent, topic=topic, pinned=True) is True
    assert topic_lock_set(agent=agent, topic=topic, locked=False) is True
    topic.refresh_from_db()
    assert (topic.locked, topic.pinned) == (False, True)
    assert [(a, actor) for a, actor, _t, _p in actions()] == [
        ("lock", agent.pk),
        ("pin", agent.pk),
        ("unlock", agent.pk),
    ]
    assert ModerationAction.objects.get(action="lock").reason == "Heated"


def test_moving_a_topic_moves_the_counters(public, members_only, alice, bob, agent):
    topic = topic_make(alice, public)
    reply_make(bob, topic)
    assert topic_move(agent=agent, topic=topic, category=members_only) is True
    assert topic_move(agent=agent, topic=topic, category=members_only) is False
    public.refresh_from_db()
    members_only.refresh_from_db()
    assert (public.topics_count, public.posts_count, members_only.topics_count, members_only.posts_count) == (
        0,
        0,
        1,
        2,
    )
    assert ModerationAction.objects.get().details == {"category": [public.pk, members_only.pk]}


def test_a_question_moved_into_a_support_category_starts_its_target(public, alice, agent):
    support = Category.objects.create(slug="support", name="Support", is_support=True)
    topic = topic_make(alice, public)
    at = timezone.now()
    topic_move(agent=agent, topic=topic, category=support, at=at)
    topic.refresh_from_db()
    assert topic.escalation_due_at == at + timedelta(hours=24)


def test_merging_moves_the_posts_and_the_old_address_redirects(client, public, alice, bob, agent):
    target = topic_make(alice, public, title="The printer question")
    reply_make(bob, target, "First answer")
    source = topic_make(bob, public, title="Printer again")
    moved_reply = reply_make(alice, source, "Same here")
    assert topic_merge(agent=agent, topic=source, into=target, reason="Duplicate") is True
    assert topic_merge(agent=agent, topic=source, into=target) is False
    with pytest.raises(ModerationRefused):
        topic_merge(agent=agent, topic=target, into=target)
    target.refresh_from_db()
    source.refresh_from_db()
    public.refresh_from_db()
    assert list(target.posts.order_by("position").values_list("position", "body")) == [
        (1, "It burns."),
        (2, "First answer"),
        (3, "It burns."),
        (4, "Same here"),
    ]
    assert (target.posts_count, target.last_position, source.posts_count, source.merged_into_id) == (4, 4, 0, target.pk)
    assert (public.topics_count, public.posts_count) == (1, 4)
    response = client.get(f"/community/t/{source.pk}-{source.slug}/")
    assert response.status_code == 301 and response["Location"] == f"/community/t/{target.pk}-{target.slug}/"
    assert client.get(f"/community/p/{moved_reply.pk}/")["Location"].startswith(f"/community/t/{target.pk}-")
    assert "Printer again" not in client.get("/community/c/questions/").content.decode()
    assert ModerationAction.objects.get().details == {"into": target.pk, "posts": 2}


def test_a_suspended_member_is_told_until_when_and_writes_nothing(public, alice, bob, agent):
    topic = topic_make(alice, public)
    answer = reply_make(alice, topic, "Self reply")
    until = timezone.now() + timedelta(days=3)
    assert member_suspend(agent=agent, member=bob, until=until, reason="Rude") is True
    bob.refresh_from_db()
    before = snapshot()
    with pytest.raises(ForumRefused) as refused:
        reply_make(bob, topic)
    assert "suspended until" in refused.value.message
    with pytest.raises(ModerationRefused):
        post_flag(member=bob, post=answer, kind="spam")
    assert snapshot() == before
    with pytest.raises(ApplicationError):
        member_suspend(agent=agent, member=bob, until=timezone.now() - timedelta(days=1))
    assert member_unsuspend(agent=agent, member=bob) is True
    assert member_unsuspend(agent=agent, member=bob) is False
    bob.refresh_from_db()
    assert reply_make(bob, topic).position == 3
    assert [a[0] for a in actions()] == ["suspend", "unsuspend"]


def test_only_agents_moderate_and_a_refusal_changes_nothing(public, alice, bob, staff):
    topic = topic_make(alice, public)
    answer = reply_make(bob, topic)
    outsider = UserFactory(username="nobody")
    before = snapshot()
    for act in (
        lambda: post_hide(agent=outsider, post=answer),
        lambda: post_approve(agent=outsider, post=answer),
        lambda: topic_lock_set(agent=outsider, topic=topic, locked=True),
        lambda: topic_pin_set(agent=outsider, topic=topic, pinned=True),
        lambda: member_suspend(agent=outsider, member=bob, until=timezone.now() + timedelta(days=1)),
    ):
        with pytest.raises(ModerationRefused):
            act()
    with pytest.raises(ModerationRefused):
        member_suspend(agent=staff.user, member=staff, until=timezone.now() + timedelta(days=1))
    assert snapshot() == before and not ModerationAction.objects.exists()


def test_a_held_reply_is_approved_with_its_counters(forum_settings, public, alice, bob, agent):
    forum_settings(NEW_HELD_POSTS=1)
    Member.objects.filter(pk=alice.pk).update(trust_level=1)
    alice.refresh_from_db()
    topic = topic_make(alice, public)
    held = reply_make(bob, topic)
    topic.refresh_from_db()
    assert (held.state, topic.posts_count, topic.last_position, topic.first_reply_at) == ("held", 1, 2, None)
    post_approve(agent=agent, post=held)
    topic.refresh_from_db()
    public.refresh_from_db()
    assert (topic.posts_count, public.posts_count) == (2, 2)
    assert topic.first_reply_at is not None


def test_topic_create_and_post_create_take_the_instant(public, alice, bob):
    at = timezone.now() - timedelta(days=2)
    topic = topic_create(member=alice, category=public, kind="question", title="Printer on fire", body="Help", at=at)
    assert topic.created_at == at
    assert post_create(member=bob, topic=topic, body="Hi", at=at + timedelta(hours=1)).created_at == at + timedelta(
        hours=1
    )
    assert topic.state == State.VISIBLE


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("See https://a.example https://b.example and https://c.example", "at most 2 links"),
        ("Ask @ann, @bob and @carl", "mention at most 2 people"),
        ("Cheap pills here", "post it as a new reply"),
        ("See https://spam.example/offer", "post it as a new reply"),
    ],
)
def test_an_edit_is_screened_like_a_new_post_and_a_refused_one_keeps_the_text(
    forum_settings, public, alice, bob, body, message
):
    forum_settings(HOLD_WORDS=["pills"], HOLD_DOMAINS=["spam.example"])
    topic = topic_make(alice, public)
    reply = reply_make(bob, topic, "A fair answer")
    before = snapshot()
    with pytest.raises(ApplicationError) as refused:
        post_edit(member=bob, post=reply, body=body)
    assert refused.value.field == "body" and message in refused.value.message
    assert snapshot() == before


def test_staff_edits_are_not_screened(forum_settings, public, alice, staff):
    forum_settings(HOLD_WORDS=["pills"])
    reply = reply_make(staff, topic_make(alice, public), "Answer")
    post_edit(
        member=staff, post=reply, body="Do not buy pills from https://a.example https://b.example https://c.example"
    )
    assert Post.objects.get(pk=reply.pk).revisions_count == 1
