"""``manage.py seed_community``: the demo's community, through the services, once."""

from __future__ import annotations

import io

import pytest
from django.core.management import CommandError, call_command

from channels_app.forum.models import Category, ModerationAction, Post, Topic

pytestmark = pytest.mark.django_db


def test_the_demo_community_is_written_once_and_reads_on_its_pages(client, settings):
    # As in the product: a new member's first post waits for a moderator, whom the demo's agent plays.
    settings.SERVICEDESK = {**settings.SERVICEDESK, "FORUM_NEW_HELD_POSTS": 1}
    with pytest.raises(CommandError):
        call_command("seed_community", stdout=io.StringIO())  # the demo's people come first
    call_command("seed_demo", stdout=io.StringIO(), stderr=io.StringIO())
    call_command("seed_community", stdout=io.StringIO())
    counts = (Category.objects.count(), Topic.objects.count(), Post.objects.count())
    assert counts == (2, 3, 6)
    assert Topic.objects.filter(accepted_count=1).count() == 2
    assert not Post.objects.exclude(state="visible").exists()
    assert ModerationAction.objects.filter(action="approve").count() == 2  # the two customers' first posts
    assert Post.objects.get(accepted=True, is_staff=True).topic.title.startswith("How do I change the email")
    call_command("seed_community", stdout=io.StringIO())
    assert (Category.objects.count(), Topic.objects.count(), Post.objects.count()) == counts
    page = client.get("/community/c/questions/").content.decode()
    assert "退款需要多长时间" in page and "How do I change the email address" in page
    assert Category.objects.get(slug="questions").queue.slug == "support"
