"""The community's pages: canonical addresses, the accepted answer under the question, structured data,
forms that answer 400 on bad input, hostile text shown as text, and a constant number of queries."""

from __future__ import annotations

import json
import re
from xml.etree import ElementTree

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from channels_app.forum.models import Post, Topic
from channels_app.forum.services import member_profile_update, post_accept, post_like, topic_vote
from tests.channels_app.forum.helpers import XSS_CORPUS, active_markup, reply_make, topic_make
from tests.channels_app.web.helpers import sign_in

pytestmark = pytest.mark.django_db


def page_of(topic: Topic) -> str:
    return f"/community/t/{topic.pk}-{topic.slug}/"


def test_a_wrong_or_missing_slug_redirects_to_the_canonical_address(client, settings, public, alice):
    topic = topic_make(alice, public, title="Printer on fire")
    for path in (f"/community/t/{topic.pk}/", f"/community/t/{topic.pk}-old-title/", f"/community/t/{topic.pk}-/"):
        response = client.get(path)
        assert response.status_code == 301 and response["Location"] == f"/community/t/{topic.pk}-printer-on-fire/"
    assert client.get(f"/community/t/{topic.pk}-x/?page=2")["Location"].endswith("-printer-on-fire/?page=2")
    settings.SITE_URL = "https://help.example"
    page = client.get(page_of(topic)).content.decode()
    assert f'<link rel="canonical" href="https://help.example/community/t/{topic.pk}-printer-on-fire/">' in page
    assert client.get("/community/t/999999-nothing/").status_code == 404


def test_the_accepted_answer_is_shown_right_under_the_question_with_the_staff_badge(client, public, alice, bob, staff):
    topic = topic_make(alice, public, body="How do I stop the fire?")
    reply_make(bob, topic, "Pour water on it.")
    answer = reply_make(staff, topic, "Unplug it first, then call us.")
    post_accept(member=alice, post=answer)
    page = client.get(page_of(topic)).content.decode()
    page = page[page.index("<main") :]  # the structured data in the head repeats the answer
    question_at = page.index("How do I stop the fire?")
    accepted_at = page.index("Accepted answer")
    replies_at = page.index("replies-heading")
    assert question_at < accepted_at < page.index("Unplug it first") < replies_at < page.index("Pour water on it.")
    assert (
        page.count('<span class="badge">Staff</span>') == 2
    )  # the accepted answer, and the same post among the replies


def test_an_answered_question_carries_qa_structured_data_escaped_for_a_script_element(client, public, alice, bob):
    topic = topic_make(alice, public, title="Why </script><script>alert(1)</script>?", body="Body & more")
    answer = reply_make(bob, topic, "Because </script> <!-- & -->")
    page = client.get(page_of(topic)).content.decode()
    assert "application/ld+json" not in page  # no accepted answer yet
    post_accept(member=alice, post=answer)
    page = client.get(page_of(topic)).content.decode()
    found = re.search(r'<script type="application/ld\+json">(.*?)</script>', page, re.DOTALL)
    assert found is not None
    raw = found.group(1)
    assert "<" not in raw and ">" not in raw and "&" not in raw
    data = json.loads(raw)
    assert data["@type"] == "QAPage"
    question = data["mainEntity"]
    assert question["name"] == "Why </script><script>alert(1)</script>?" and question["answerCount"] == 1
    assert question["acceptedAnswer"][0]["text"] == "Because </script> <!-- & -->"
    assert question["acceptedAnswer"][0]["url"].endswith(f"/community/p/{answer.pk}/")


def test_replies_are_paginated_and_a_post_link_finds_its_page(client, public, alice, bob):
    topic = topic_make(alice, public)
    posts = [reply_make(bob, topic, f"Reply number {n}") for n in range(1, 23)]
    first = client.get(page_of(topic)).content.decode()
    assert "Reply number 20" in first and "Reply number 21" not in first and "Page 1 of 2" in first
    assert "Reply number 21" in client.get(page_of(topic) + "?page=2").content.decode()
    response = client.get(f"/community/p/{posts[21].pk}/")
    assert response["Location"] == page_of(topic) + "?page=2#post-23"
    assert client.get(page_of(topic) + "?page=3").status_code == 404
    assert client.get(page_of(topic) + "?page=x").status_code == 404


def test_the_category_list_puts_pinned_topics_first_then_latest_activity_and_filters_by_kind(
    client, public, alice, bob
):
    old = topic_make(alice, public, title="Old pinned topic")
    idea = topic_make(alice, public, kind="idea", title="An idea topic")
    busy = topic_make(alice, public, title="Busy question topic")
    reply_make(bob, busy)
    Topic.objects.filter(pk=old.pk).update(pinned=True)
    page = client.get("/community/c/questions/").content.decode()
    assert page.index("Old pinned topic") < page.index("Busy question topic") < page.index("An idea topic")
    ideas = client.get("/community/c/questions/?kind=idea").content.decode()
    assert "An idea topic" in ideas and "Busy question topic" not in ideas
    # An unknown kind is no filter, not an error.
    assert "Busy question topic" in client.get("/community/c/questions/?kind=<b>").content.decode()
    assert idea.kind == "idea"


def test_writing_through_the_pages(client, public, bob):
    sign_in(client, bob.customer)
    assert client.get("/community/c/questions/new/").status_code == 200
    response = client.post(
        "/community/c/questions/new/", {"kind": "question", "title": "Paper jam again", "body": "Tray 2 *jams*."}
    )
    topic = Topic.objects.get(title="Paper jam again")
    assert response.status_code == 302 and response["Location"] == page_of(topic)
    response = client.post(f"/community/t/{topic.pk}/reply/", {"body": "Same here, any news?"})
    reply = Post.objects.get(topic=topic, position=2)
    assert response["Location"] == f"/community/p/{reply.pk}/"
    response = client.post(f"/community/p/{reply.pk}/edit/", {"body": "Same here."})
    assert response.status_code == 302
    reply.refresh_from_db()
    assert reply.body == "Same here." and reply.revisions_count == 1
    assert client.post(f"/community/t/{topic.pk}/subscribe/", {"on": "0"}).status_code == 302
    assert "Follow by email" in client.get(page_of(topic)).content.decode()


@pytest.mark.parametrize(
    ("path", "data"),
    [
        ("/community/c/questions/new/", {"kind": "question", "title": "", "body": "x"}),
        ("/community/c/questions/new/", {"kind": "poll", "title": "A good title", "body": "x"}),
        ("/community/c/questions/new/", {"kind": "question", "title": "Hi", "body": "Some text"}),
        ("/community/c/questions/new/", {"kind": "announcement", "title": "Not staff", "body": "x"}),
        ("/community/c/questions/new/", {"kind": "question", "title": "A good title", "body": "\x01"}),
        ("/community/c/questions/new/", {"kind": "question", "title": "A good title", "body": "x" * 50_001}),
        ("/community/profile/", {"display_name": ""}),
        ("/community/profile/", {"display_name": "x" * 81}),
    ],
)
def test_bad_input_answers_400_with_the_error_and_writes_nothing(client, public, bob, path, data):
    sign_in(client, bob.customer)
    before = (Topic.objects.count(), Post.objects.count(), bob.display_name)
    response = client.post(path, data)
    assert response.status_code == 400
    assert 'class="errorlist' in response.content.decode()
    bob.refresh_from_db()
    assert (Topic.objects.count(), Post.objects.count(), bob.display_name) == before


def test_bad_reaction_and_reply_forms_answer_400(client, public, alice, bob):
    topic = topic_make(alice, public)
    sign_in(client, bob.customer)
    assert client.post(f"/community/t/{topic.pk}/vote/", {"on": "maybe"}).status_code == 400
    assert client.post(f"/community/t/{topic.pk}/reply/", {"body": ""}).status_code == 400
    assert client.post(f"/community/t/{topic.pk}/reply/", {"body": " \x02 "}).status_code == 400
    assert Topic.objects.get(pk=topic.pk).posts_count == 1


@pytest.mark.parametrize("hostile", XSS_CORPUS)
def test_hostile_titles_bodies_and_names_are_shown_as_text(client, public, alice, bob, hostile):
    member_profile_update(member=bob, display_name=hostile)
    topic = topic_make(bob, public, title=f"Help {hostile}", body=f"Body {hostile}")
    answer = reply_make(bob, topic, f"Reply {hostile}")
    reply_make(alice, topic, f"Thanks @{bob.handle} {hostile}")
    post_accept(member=bob, post=answer)
    sign_in(client, alice.customer)
    # The layout's own language menu (it submits on change) is all that may run.
    layout = ["select onchange"]
    for path in (page_of(topic), "/community/c/questions/", "/community/", "/community/profile/"):
        assert active_markup(client.get(path).content.decode()) == layout, path
    # The feed and the sitemap stay well-formed XML with the text in it.
    # Our own pages, not untrusted XML.
    feed = ElementTree.fromstring(client.get("/community/c/questions/feed/").content)  # noqa: S314
    atom = "{http://www.w3.org/2005/Atom}"
    assert [entry.findtext(f"{atom}title") for entry in feed.iter(f"{atom}entry")] == [f"Help {hostile}".strip()]
    ElementTree.fromstring(client.get("/community/sitemap-1.xml").content)  # noqa: S314
    for html in Post.objects.filter(topic=topic).values_list("body_html", flat=True):
        assert active_markup(html) == []


def _queries(client, path: str) -> int:  # type: ignore[no-untyped-def]
    with CaptureQueriesContext(connection) as captured:
        assert client.get(path).status_code == 200
    return len(captured.captured_queries)


def test_pages_run_a_constant_number_of_queries(client, public, alice, bob, staff, django_assert_num_queries):
    small = topic_make(alice, public, title="Small topic")
    reply_make(bob, small)
    big = topic_make(alice, public, kind="idea", title="Big topic")
    for n in range(25):
        post = reply_make(staff if n % 2 else bob, big, f"Reply {n}")
        post_like(member=alice, post=post)
    topic_vote(member=bob, topic=big)
    for n in range(5):
        topic_make(alice, public, title=f"Filler topic {n}")
    # A visitor: the topic, its question and accepted answers, the replies' count and page, their files.
    with django_assert_num_queries(5):
        client.get(page_of(small))
    with django_assert_num_queries(5):
        client.get(page_of(big))
    with django_assert_num_queries(3):
        client.get("/community/c/questions/")
    with django_assert_num_queries(1):
        client.get("/community/")
    with django_assert_num_queries(3):
        client.get("/community/c/questions/feed/")
    # Signed in: the session and the member, what they liked on the page, their vote and subscription.
    sign_in(client, alice.customer)
    assert _queries(client, page_of(small)) == _queries(client, page_of(big)) == 9
    with django_assert_num_queries(6):
        client.get("/community/c/questions/")
