"""``/api/v1/community/...``: the pages' rules through the API, for every kind of caller."""

from __future__ import annotations

import pytest
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from channels_app.forum.models import Post, State, Topic
from channels_app.forum.services import post_accept
from servicedesk.tickets.models import Ticket
from tests.channels_app.forum.helpers import XSS_CORPUS, active_markup, reply_make, topic_make
from tests.channels_app.web.helpers import sign_in

pytestmark = pytest.mark.django_db

TOPICS = "/api/v1/community/topics/"


def as_agent(agent) -> APIClient:  # type: ignore[no-untyped-def]
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=agent).key}")
    return client


def as_customer(member) -> APIClient:  # type: ignore[no-untyped-def]
    client = APIClient(enforce_csrf_checks=True)
    sign_in(client, member.customer)
    return client


def csrf(client: APIClient) -> dict[str, str]:
    """The CSRF token a help-centre page hands its scripts (the cookie and the header)."""
    client.get("/community/")
    token = client.cookies["csrftoken"].value
    return {"HTTP_X_CSRFTOKEN": token}


@pytest.fixture
def world(public, members_only, acme_only, alice, bob, staff):
    topics = {
        "public": topic_make(alice, public, title="Public printer question"),
        "signed_in": topic_make(alice, members_only, title="Members printer question"),
        "acme": topic_make(alice, acme_only, title="Acme printer question"),
        "hidden": topic_make(bob, public, title="Hidden printer question"),
    }
    Topic.objects.filter(pk=topics["hidden"].pk).update(state=State.HIDDEN)
    return topics


def titles(response) -> set[str]:  # type: ignore[no-untyped-def]
    assert response.status_code == 200, response.content
    return {topic["title"] for topic in response.json()["results"]}


def test_each_caller_lists_reads_and_is_refused_exactly_what_the_pages_allow(world, alice, bob, agent):
    callers = {
        "anonymous": (APIClient(), {"Public printer question"}),
        "bob": (as_customer(bob), {"Public printer question", "Members printer question"}),
        "alice": (as_customer(alice), {"Public printer question", "Members printer question", "Acme printer question"}),
        "agent": (
            as_agent(agent),
            {"Public printer question", "Members printer question", "Acme printer question", "Hidden printer question"},
        ),
    }
    for name, (client, expected) in callers.items():
        assert titles(client.get(TOPICS)) == expected, name
        for key, topic in world.items():
            posts = client.get(f"{TOPICS}{topic.pk}/posts/")
            readable = topic.title in expected or (name == "bob" and key == "hidden")
            assert posts.status_code == (200 if readable else 404), (name, key)
        slugs = {c["slug"] for c in client.get("/api/v1/community/categories/").json()}
        assert slugs == {"anonymous": {"questions"}, "bob": {"questions", "members"}}.get(
            name, {"questions", "members", "acme"}
        ), name


def test_a_topics_accepted_answer_carries_its_page_address(world, alice, bob, staff):
    topic = world["public"]
    reply_make(bob, topic, "Try the other tray.")
    answer = reply_make(staff, topic, "Unplug it first.")
    post_accept(member=alice, post=answer)
    listed = APIClient().get(TOPICS, {"category": "questions"}).json()["results"]
    shown = next(t for t in listed if t["id"] == topic.pk)
    assert shown["answer"]["id"] == answer.pk
    assert shown["answer"]["url"].endswith(f"/community/p/{answer.pk}/")
    assert shown["answer"]["author"]["staff"] is True
    assert shown["url"].endswith(f"/community/t/{topic.pk}-{topic.slug}/")
    # The answer's address leads to it on its topic's page.
    landed = APIClient().get(f"/community/p/{answer.pk}/")
    assert landed.status_code in (301, 302) and landed["Location"].startswith(f"/community/t/{topic.pk}-")


def test_the_list_takes_the_same_number_of_queries_for_one_topic_and_for_twenty(
    world, alice, bob, public, django_assert_num_queries
):
    client = APIClient()
    with django_assert_num_queries(4) as one:
        client.get(TOPICS, {"category": "questions"})
    for n in range(20):
        topic = topic_make(alice, public, title=f"Question {n}")
        answer = reply_make(bob, topic)
        post_accept(member=alice, post=answer)
    with django_assert_num_queries(len(one.captured_queries)):
        response = client.get(TOPICS, {"category": "questions"})
    assert sum(1 for t in response.json()["results"] if t["answer"]) == 20


def test_a_customer_opens_a_topic_and_replies_with_the_pages_csrf_token(world, bob, public):
    client = as_customer(bob)
    body = {"category": "questions", "kind": "question", "title": "Paper jam", "body": "It jams **every** time."}
    refused = client.post(TOPICS, body, format="json")
    assert refused.status_code == 403  # a cookie travels with any site's request: the token is needed
    headers = csrf(client)
    created = client.post(TOPICS, body, format="json", **headers)
    assert created.status_code == 201, created.content
    topic = Topic.objects.get(pk=created.json()["id"])
    assert (topic.title, topic.author, topic.kind) == ("Paper jam", bob, "question")
    opening = client.get(f"{TOPICS}{topic.pk}/posts/").json()["results"][0]
    assert "<strong>every</strong>" in opening["body_html"]
    reply = client.post(f"{TOPICS}{topic.pk}/posts/", {"body": "Still jams."}, format="json", **headers)
    assert reply.status_code == 201, reply.content
    assert reply.json()["position"] == 2 and reply.json()["author"] == {"name": bob.display_name, "staff": False}


def test_writing_is_refused_with_the_field_and_nothing_stored(world, bob):
    client = as_customer(bob)
    headers = csrf(client)
    before = (Topic.objects.count(), Post.objects.count())
    for body, field in [
        ({"category": "questions", "title": "", "body": "x"}, "title"),
        ({"category": "questions", "title": "Hi", "body": ""}, "body"),
        ({"category": "acme", "title": "Hi", "body": "x"}, "category"),  # a category Bob does not read
        ({"category": "questions", "kind": "announcement", "title": "Hi", "body": "x"}, None),
    ]:
        response = client.post(TOPICS, body, format="json", **headers)
        assert response.status_code in (400, 403), response.content
        if field:
            assert response.status_code == 400 and field in response.json(), response.json()
    assert APIClient().post(TOPICS, {"category": "questions", "title": "Hi", "body": "x"}).status_code == 401
    assert (Topic.objects.count(), Post.objects.count()) == before


def test_accepting_is_the_question_authors_or_an_agents(world, alice, bob, agent):
    topic = world["public"]
    answer = reply_make(bob, topic, "Unplug it.")
    url = f"/api/v1/community/posts/{answer.pk}/accept/"
    bob_client = as_customer(bob)
    assert bob_client.post(url, **csrf(bob_client)).status_code == 403
    alice_client = as_customer(alice)
    accepted = alice_client.post(url, **csrf(alice_client))
    assert accepted.status_code == 200 and accepted.json() == {"accepted": True}
    assert Post.objects.get(pk=answer.pk).accepted
    assert as_agent(agent).delete(url).json() == {"accepted": False}
    assert not Post.objects.get(pk=answer.pk).accepted
    hidden_answer = reply_make(alice, world["acme"], "Private answer.")
    assert bob_client.post(f"/api/v1/community/posts/{hidden_answer.pk}/accept/", **csrf(bob_client)).status_code == 404


def test_an_agent_escalates_a_topic_once_and_a_customer_may_not(world, alice, agent):
    topic = world["public"]
    url = f"{TOPICS}{topic.pk}/escalate/"
    customer = as_customer(alice)
    assert customer.post(url, **csrf(customer)).status_code in (401, 403)
    client = as_agent(agent)
    first = client.post(url, {"public_note": False}, format="json")
    assert first.status_code == 200, first.content
    again = client.post(url, format="json")
    assert again.json() == first.json()
    ticket = Ticket.objects.get(reference=first.json()["reference"])
    assert (ticket.channel, ticket.customer_id) == ("forum", alice.customer_id)
    assert Ticket.objects.filter(channel="forum").count() == 1


@pytest.mark.parametrize("hostile", XSS_CORPUS)
def test_hostile_titles_and_bodies_come_back_as_text_or_sanitised_html(world, bob, hostile):
    client = as_customer(bob)
    created = client.post(
        TOPICS, {"category": "questions", "title": hostile[:200], "body": hostile}, format="json", **csrf(client)
    )
    assert created.status_code == 201, created.content
    posts = client.get(f"{TOPICS}{created.json()['id']}/posts/").json()["results"]
    assert active_markup(posts[0]["body_html"]) == []
    assert created.json()["title"] == Topic.objects.get(pk=created.json()["id"]).title


def test_the_schema_describes_the_community_api(client):
    schema = client.get("/api/schema/").content.decode()
    for path in (
        "/api/v1/community/topics/",
        "/api/v1/community/topics/{id}/posts/",
        "/api/v1/community/posts/{id}/accept/",
        "/api/v1/community/topics/{id}/escalate/",
        "/api/v1/community/categories/",
    ):
        assert path in schema, path


def test_a_customer_with_an_api_token_reads_and_writes_as_themselves(world, alice):
    from servicedesk.accounts.models import User

    user = User.objects.create_user("alice-api", password="pass-word-123")
    customer = alice.customer
    customer.user = user
    customer.save()
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=user).key}")
    assert "Acme printer question" in titles(client.get(TOPICS))
    created = client.post(TOPICS, {"category": "acme", "title": "Toner", "body": "Which one?"}, format="json")
    assert created.status_code == 201, created.content
    assert Topic.objects.get(pk=created.json()["id"]).author == alice


def test_bad_input_is_a_4xx_with_a_reason_never_a_5xx(world, bob, agent):
    client = as_customer(bob)
    headers = csrf(client)
    cases = [
        ({"category": "questions", "title": "x" * 5000, "body": "y"}, "title"),
        ({"category": "questions", "title": "A long post", "body": "y" * 200_000}, "body"),
        ({"category": "questions", "kind": "poll", "title": "Hi", "body": "x"}, "kind"),
        ({"category": ["questions"], "title": {"a": 1}, "body": None}, None),
        ({"category": "no-such", "title": "Hi", "body": "x"}, "category"),
    ]
    for body, field in cases:
        response = client.post(TOPICS, body, format="json", **headers)
        assert 400 <= response.status_code < 500, (body, response.status_code)
        if field:
            assert field in response.json(), response.json()
    not_json = client.post(TOPICS, "{not json", content_type="application/json", **headers)
    assert not_json.status_code == 400
    for query in ({"kind": "poll"}, {"page": "9999"}, {"page": "x"}, {"category": "acme"}):
        assert APIClient().get(TOPICS, query).status_code in (400, 404), query
    assert APIClient().get(f"{TOPICS}999999/posts/").status_code == 404
    assert as_agent(agent).post(f"{TOPICS}999999/escalate/").status_code == 404
    assert client.post("/api/v1/community/posts/999999/accept/", **headers).status_code == 404
