"""The community in the desk: the moderation queue, the log and the moderator forms are the agents'
alone (404 for anyone else, sign-in for a visitor), POST with CSRF, hostile text shown as text; the
reader's flag form and the staff forms on the topic page."""

from __future__ import annotations

import pytest
from django.test import Client

from channels_app.forum.models import Flag, Member, ModerationAction, Post, Topic
from tests.channels_app.forum.helpers import XSS_CORPUS, active_markup, reply_make, topic_make
from tests.channels_app.forum.test_services import snapshot
from tests.channels_app.web.helpers import sign_in
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def held_settings(settings):
    settings.SERVICEDESK = {**settings.SERVICEDESK, "FORUM_NEW_HELD_POSTS": 5}


def desk_paths(topic: Topic, post: Post, member: Member) -> list[tuple[str, dict[str, str]]]:
    return [
        (f"/desk/community/posts/{post.pk}/approve/", {}),
        (f"/desk/community/posts/{post.pk}/hide/", {}),
        (f"/desk/community/posts/{post.pk}/escalate/", {}),
        (f"/desk/community/topics/{topic.pk}/lock/", {}),
        (f"/desk/community/topics/{topic.pk}/pin/", {}),
        (f"/desk/community/topics/{topic.pk}/move/", {"category": "1"}),
        (f"/desk/community/topics/{topic.pk}/merge/", {"into": str(topic.pk)}),
        (f"/desk/community/topics/{topic.pk}/escalate/", {}),
        (f"/desk/community/members/{member.pk}/suspend/", {"days": "3"}),
    ]


def test_nobody_but_agents_reaches_the_moderation_pages_or_actions(client, public, alice, bob):
    topic = topic_make(alice, public)
    post = reply_make(bob, topic)
    before = snapshot()
    # A visitor: the desk's sign-in.
    assert client.get("/desk/community/").status_code == 302
    # A customer signed in to the help centre, and a desk user without an agent role: not found.
    sign_in(client, bob.customer)
    assert client.get("/desk/community/").status_code == 302
    client.force_login(UserFactory(username="outsider"))
    assert client.get("/desk/community/").status_code == 404
    assert client.get("/desk/community/log/").status_code == 404
    for path, data in desk_paths(topic, post, bob):
        assert client.post(path, data).status_code == 404, path
    assert snapshot() == before
    assert not ModerationAction.objects.exists()


def test_the_queue_lists_held_and_flagged_posts_with_hostile_text_as_text(
    client, held_settings, public, alice, bob, agent
):
    Member.objects.filter(pk=alice.pk).update(trust_level=1)
    alice.refresh_from_db()
    topic = topic_make(alice, public, title="A visible question")
    held = [reply_make(bob, topic, body) for body in XSS_CORPUS[:5]]
    flagged = reply_make(alice, topic, XSS_CORPUS[5])
    Flag.objects.create(
        post=flagged, member=bob, kind="spam", message="<script>alert(2)</script>", created_at=flagged.created_at
    )
    client.force_login(agent)
    page = client.get("/desk/community/").content.decode()
    assert active_markup(page[page.index("<main") : page.index("</main>")]) == []
    for post in held:
        assert f'data-post="{post.pk}"' in page
    assert f'data-post="{flagged.pk}"' in page and "&lt;script&gt;alert(2)&lt;/script&gt;" in page
    assert "5 posts waiting for approval" in page


def test_an_agent_approves_from_the_queue_with_a_csrf_token_and_it_is_logged(held_settings, public, alice, bob, agent):
    topic = topic_make(alice, public)
    held = topic.posts.get()
    client = Client(enforce_csrf_checks=True)
    client.force_login(agent)
    assert client.get("/desk/community/").status_code == 200
    token = client.cookies["csrftoken"].value
    assert client.post(f"/desk/community/posts/{held.pk}/approve/", {}).status_code == 403
    assert Post.objects.get(pk=held.pk).state == "held"
    response = client.post(
        f"/desk/community/posts/{held.pk}/approve/",
        {"reason": "Looks fine", "csrfmiddlewaretoken": token, "next": "https://evil.example/"},
    )
    assert response.status_code == 302 and response["Location"] == "/desk/community/"
    assert Post.objects.get(pk=held.pk).state == "visible"
    log = client.get("/desk/community/log/").content.decode()
    assert "Approved" in log and "Looks fine" in log
    # Malformed forms are 400, unknown actions 404; nothing changes.
    assert (
        client.post(
            f"/desk/community/topics/{topic.pk}/move/", {"category": "x", "csrfmiddlewaretoken": token}
        ).status_code
        == 400
    )
    assert (
        client.post(
            f"/desk/community/members/{bob.pk}/suspend/", {"days": "-1", "csrfmiddlewaretoken": token}
        ).status_code
        == 400
    )
    assert client.post(f"/desk/community/posts/{held.pk}/explode/", {"csrfmiddlewaretoken": token}).status_code == 404
    assert ModerationAction.objects.filter(action="approve").count() == 1


def test_staff_act_on_a_topic_from_its_page(client, public, members_only, alice, bob, agent):
    topic = topic_make(alice, public)
    client.force_login(agent)
    page = client.get(f"/community/t/{topic.pk}-{topic.slug}/").content.decode()
    assert f'formaction="/desk/community/topics/{topic.pk}/lock/"' in page
    assert f'action="/desk/community/topics/{topic.pk}/move/"' in page
    back = f"/community/t/{topic.pk}-{topic.slug}/"
    assert client.post(f"/desk/community/topics/{topic.pk}/lock/", {"next": back})["Location"] == back
    assert (
        client.post(f"/desk/community/topics/{topic.pk}/move/", {"category": members_only.pk, "next": back}).status_code
        == 302
    )
    topic.refresh_from_db()
    assert (topic.locked, topic.category_id) == (True, members_only.pk)
    assert list(ModerationAction.objects.order_by("pk").values_list("action", flat=True)) == ["lock", "move"]
    # Customers see none of it.
    client.logout()
    sign_in(client, bob.customer)
    page = client.get(f"/community/t/{topic.pk}-{topic.slug}/").content.decode()
    assert "/desk/community/" not in page


def test_a_reader_flags_a_post_from_the_topic_page(client, public, alice, bob):
    topic = topic_make(alice, public)
    answer = reply_make(alice, topic, "Self promotion")
    sign_in(client, bob.customer)
    page = client.get(f"/community/t/{topic.pk}-{topic.slug}/").content.decode()
    # Each post links to its flag form; the author's own post has none.
    assert f'href="/community/p/{answer.pk}/flag/"' in page
    form = client.get(f"/community/p/{answer.pk}/flag/")
    assert form.status_code == 200
    assert '<select name="kind"' in form.content.decode() and "Self promotion" in form.content.decode()
    assert client.post(f"/community/p/{answer.pk}/flag/", {"kind": "nonsense"}).status_code == 400
    for _ in range(2):
        assert client.post(f"/community/p/{answer.pk}/flag/", {"kind": "spam", "message": "Ads"}).status_code == 302
    assert list(Flag.objects.values_list("member_id", "kind", "message")) == [(bob.pk, "spam", "Ads")]
    client.logout()
    client.cookies.clear()
    assert client.post(f"/community/p/{answer.pk}/flag/", {"kind": "spam"})["Location"] == "/help/sign-in/"
    assert client.get(f"/community/p/{answer.pk}/flag/")["Location"] == "/help/sign-in/"
    assert Flag.objects.count() == 1


def test_a_post_hidden_from_a_reader_has_no_flag_form_for_them(client, public, alice, bob, agent):
    from channels_app.forum.moderation import post_hide

    topic = topic_make(alice, public)
    answer = reply_make(alice, topic, "Gone soon")
    post_hide(agent=agent, post=answer, reason="rude")
    sign_in(client, bob.customer)
    assert client.get(f"/community/p/{answer.pk}/flag/").status_code == 404
    page = client.get(f"/community/t/{topic.pk}-{topic.slug}/").content.decode()
    assert f"/community/p/{answer.pk}/flag/" not in page


@pytest.mark.parametrize("hostile", XSS_CORPUS)
def test_hostile_reasons_titles_and_replies_are_text_in_the_desk(client, public, alice, agent, manager, hostile):
    from channels_app.forum.escalation import topic_escalate
    from channels_app.forum.moderation import post_hide
    from servicedesk.tickets.events import Actor
    from servicedesk.tickets.services.replies import ticket_reply_create

    topic = topic_make(alice, public, title=f"Help {hostile}", body=f"Body {hostile}")
    post_hide(agent=agent, post=reply_make(alice, topic, f"Reply {hostile}"), reason=hostile)
    ticket = topic_escalate(topic=topic, agent=agent)
    ticket_reply_create(ticket=ticket, author=agent, text=f"Answer {hostile}", actor=Actor.agent(agent))
    client.force_login(manager)
    for path in ("/desk/community/log/", f"/desk/customers/{alice.customer_id}/", f"/desk/tickets/{ticket.reference}/"):
        page = client.get(path).content.decode()
        found = active_markup(page[page.index("<main") : page.index("</main>")])
        # The ticket page's own history is a <details> element; an attribute on it would be listed apart.
        assert [item for item in found if item != "<details>"] == [], path
        assert found.count("<details>") == (1 if path.startswith("/desk/tickets/") else 0), path
