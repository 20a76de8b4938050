"""Who reads what in the community, on every path: page, post link, feed, sitemap, writing
(anonymous, another customer, a member of the organization, an agent)."""

from __future__ import annotations

import pytest

from channels_app.forum.models import State, Topic
from tests.channels_app.forum.helpers import reply_make, topic_make
from tests.channels_app.web.helpers import sign_in

pytestmark = pytest.mark.django_db


def paths(topic: Topic, post_pk: int) -> list[str]:
    return [
        f"/community/t/{topic.pk}-{topic.slug}/",
        f"/community/t/{topic.pk}/",
        f"/community/p/{post_pk}/",
    ]


def category_paths(slug: str) -> list[str]:
    return [f"/community/c/{slug}/", f"/community/c/{slug}/feed/", f"/community/c/{slug}/new/"]


def listed(client, path: str) -> str:  # type: ignore[no-untyped-def]
    response = client.get(path)
    assert response.status_code == 200
    return response.content.decode()


@pytest.fixture
def world(public, members_only, acme_only, alice, bob, staff):
    """A public, a signed-in-only and an organization's topic by Alice (of Acme), and a hidden one."""
    topics = {
        "public": topic_make(alice, public, title="Public printer question"),
        "signed_in": topic_make(alice, members_only, title="Members printer question"),
        "acme": topic_make(alice, acme_only, title="Acme printer question"),
        "hidden": topic_make(alice, public, title="Hidden printer question"),
    }
    Topic.objects.filter(pk=topics["hidden"].pk).update(state=State.HIDDEN)
    topics["hidden"].refresh_from_db()
    return topics


EXPECTED = {
    # viewer: the topics they read
    "anonymous": {"public"},
    "bob": {"public", "signed_in"},
    "alice": {"public", "signed_in", "acme", "hidden"},
    "agent": {"public", "signed_in", "acme", "hidden"},
}


@pytest.mark.parametrize("viewer", sorted(EXPECTED))
def test_each_viewer_reaches_exactly_the_topics_they_may_read_on_every_path(client, world, alice, bob, agent, viewer):
    if viewer == "bob":
        sign_in(client, bob.customer)
    elif viewer == "alice":
        sign_in(client, alice.customer)
    elif viewer == "agent":
        client.force_login(agent)
    for name, topic in world.items():
        expected = 200 if name in EXPECTED[viewer] else 404
        opening = topic.posts.get(position=1)
        for path in paths(topic, opening.pk):
            response = client.get(path, follow=True)
            assert response.status_code == expected, (viewer, name, path)
        # Writing to what one may not read is not found either, whatever the form says.
        for action in ("reply", "vote", "me-too", "subscribe"):
            response = client.post(f"/community/t/{topic.pk}/{action}/", {"on": "1", "body": "Hello there"})
            if expected == 404:
                assert response.status_code == 404, (viewer, name, action)
        if expected == 404:
            assert client.post(f"/community/p/{opening.pk}/like/", {"on": "1"}).status_code == 404
    assert Topic.objects.get(pk=world["acme"].pk).posts_count == (2 if viewer in ("alice", "agent") else 1)


@pytest.mark.parametrize(
    ("viewer", "readable"),
    [("anonymous", {"questions"}), ("bob", {"questions", "members"}), ("alice", {"questions", "members", "acme"})],
)
def test_categories_and_their_feeds_by_visibility(client, world, alice, bob, viewer, readable):
    if viewer != "anonymous":
        sign_in(client, (alice if viewer == "alice" else bob).customer)
    home = listed(client, "/community/")
    for slug in ("questions", "members", "acme"):
        assert (f'href="/community/c/{slug}/"' in home) is (slug in readable)
        for path in category_paths(slug):
            status = client.get(path).status_code
            if slug not in readable:
                assert status == 404, path
            elif path.endswith("/new/") and viewer == "anonymous":
                assert status == 302
            else:
                assert status == 200, path


def test_lists_feeds_and_the_sitemap_leave_out_hidden_and_private_topics(client, world, agent):
    page = listed(client, "/community/c/questions/")
    feed = listed(client, "/community/c/questions/feed/")
    sitemap = listed(client, "/community/sitemap-1.xml")
    assert "Public printer question" in page and "Public printer question" in feed
    assert f"/community/t/{world['public'].pk}-" in sitemap
    for name in ("hidden", "signed_in", "acme"):
        assert world[name].title not in page and world[name].title not in feed
        assert f"/community/t/{world[name].pk}-" not in sitemap
    assert "/community/c/members/" not in sitemap and "/community/c/acme/" not in sitemap
    assert "<loc>http" in listed(client, "/community/sitemap.xml")
    assert client.get("/community/sitemap-2.xml").status_code == 404
    assert client.get("/community/sitemap-0.xml").status_code == 404
    # An agent signed in to the desk does not change what a crawler sees.
    client.force_login(agent)
    assert f"/community/t/{world['hidden'].pk}-" not in listed(client, "/community/sitemap-1.xml")


def test_a_held_reply_is_shown_to_its_author_and_staff_only(client, public, alice, bob, agent):
    from channels_app.forum.models import Post

    topic = topic_make(alice, public)
    held = reply_make(bob, topic, "Waiting for a moderator")
    Post.objects.filter(pk=held.pk).update(state=State.HELD)
    assert "Waiting for a moderator" not in listed(client, f"/community/t/{topic.pk}-{topic.slug}/")
    assert client.get(f"/community/p/{held.pk}/").status_code == 404
    sign_in(client, bob.customer)
    assert "Waiting for a moderator" in listed(client, f"/community/t/{topic.pk}-{topic.slug}/")
    client.logout()
    client.cookies.clear()
    client.force_login(agent)
    assert "Waiting for a moderator" in listed(client, f"/community/t/{topic.pk}-{topic.slug}/")


def test_visitors_are_sent_to_sign_in_and_nothing_is_written(client, world):
    topic = world["public"]
    response = client.post(f"/community/t/{topic.pk}/reply/", {"body": "Anonymous words"})
    assert response.status_code == 302 and response["Location"] == "/help/sign-in/"
    assert (
        client.post("/community/c/questions/new/", {"title": "x", "body": "y", "kind": "question"}).status_code == 302
    )
    assert Topic.objects.get(pk=topic.pk).posts_count == 1
    assert Topic.objects.count() == 4
