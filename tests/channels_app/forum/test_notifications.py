"""Mail to followers and mentioned members: after commit, at most once, readable only by those who may
read the topic, each with one-click unsubscribe (RFC 8058) that works."""

from __future__ import annotations

import pytest
from django.core import mail

from channels_app.forum.models import Member, Notice, Subscription
from channels_app.forum.services import post_notify, subscription_set
from tests.channels_app.forum.helpers import reply_make, topic_make

pytestmark = pytest.mark.django_db


@pytest.fixture
def https_site(settings):
    settings.SITE_URL = "https://help.example"


def test_a_reply_mails_the_topics_followers_with_one_click_unsubscribe(
    https_site, public, alice, bob, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        topic = topic_make(alice, public, title="Printer on fire")
    assert mail.outbox == []  # nobody follows the category yet
    with django_capture_on_commit_callbacks(execute=True):
        reply = reply_make(bob, topic, "Unplug it **now**.")
    assert len(mail.outbox) == 1
    message = mail.outbox[0]
    key = Subscription.objects.get(member=alice, topic=topic).key
    assert message.to == ["alice@example.com"]
    assert message.subject == 'New reply in "Printer on fire"'
    assert message.extra_headers["List-Unsubscribe"] == f"<https://help.example/community/unsubscribe/{key}/>"
    assert message.extra_headers["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert "Unplug it now." in message.body and f"https://help.example/community/p/{reply.pk}/" in message.body
    assert Notice.objects.get().sent_at is not None


def test_running_the_task_again_mails_nobody_twice(public, alice, bob, django_capture_on_commit_callbacks):
    topic = topic_make(alice, public)
    with django_capture_on_commit_callbacks(execute=True):
        reply = reply_make(bob, topic)
    assert len(mail.outbox) == 1
    assert post_notify(post_id=reply.pk) == 0
    assert len(mail.outbox) == 1 and Notice.objects.count() == 1


def test_the_one_click_post_unsubscribes_without_cookie_or_csrf_token(client, public, alice, bob):
    topic = topic_make(alice, public)
    key = Subscription.objects.get(member=alice).key
    # Opening the link (a mail scanner does) changes nothing.
    page = client.get(f"/community/unsubscribe/{key}/")
    assert page.status_code == 200 and Subscription.objects.get().unsubscribed_at is None
    from django.test import Client

    mail_program = Client(enforce_csrf_checks=True)
    response = mail_program.post(f"/community/unsubscribe/{key}/", {"List-Unsubscribe": "One-Click"})
    assert response.status_code == 200
    assert Subscription.objects.get().unsubscribed_at is not None
    assert mail_program.post(f"/community/unsubscribe/{key}/").status_code == 200  # twice is fine
    assert client.get("/community/unsubscribe/unknown/").status_code == 404
    reply_make(bob, topic)
    assert mail.outbox == []


def test_category_followers_and_mentioned_members_are_mailed_once_each(
    public, alice, bob, staff, django_capture_on_commit_callbacks
):
    subscription_set(member=bob, category=public)
    subscription_set(member=staff, category=public)
    with django_capture_on_commit_callbacks(execute=True):
        topic_make(alice, public, title="Ask @bob and @ann", body=f"@{bob.handle} and @{staff.handle}, help?")
    by_address = {message.to[0]: message for message in mail.outbox}
    assert sorted(by_address) == ["ann@corp.example", "bob@example.com"]
    assert by_address["bob@example.com"].subject == 'Alice mentioned you in "Ask @bob and @ann"'
    mention_key = Member.objects.get(pk=bob.pk).mentions_key
    assert (
        by_address["bob@example.com"]
        .extra_headers["List-Unsubscribe"]
        .endswith(f"/community/unsubscribe/m/{mention_key}/>")
    )
    assert sorted(Notice.objects.values_list("reason", flat=True)) == ["mention", "mention"]


def test_a_muted_member_is_not_mailed_for_mentions(client, public, alice, bob, django_capture_on_commit_callbacks):
    response = client.post(f"/community/unsubscribe/m/{bob.mentions_key}/")
    assert response.status_code == 200
    with django_capture_on_commit_callbacks(execute=True):
        topic_make(alice, public, body=f"Hello @{bob.handle}")
    assert mail.outbox == []


def test_nobody_is_mailed_about_a_topic_they_may_not_read(
    acme_only, alice, bob, members_only, django_capture_on_commit_callbacks
):
    # Bob followed the category while he could read it (say, before he left Acme): no more mail.
    Subscription.objects.create(member=bob, category=acme_only, created_at=acme_only.created_at)
    with django_capture_on_commit_callbacks(execute=True):
        topic_make(alice, acme_only, body=f"Private, @{bob.handle}")
    assert mail.outbox == [] and not Notice.objects.exists()


def test_an_edit_mails_only_the_members_it_mentions_for_the_first_time(
    public, alice, bob, staff, django_capture_on_commit_callbacks
):
    from channels_app.forum.services import post_edit

    topic = topic_make(alice, public)
    with django_capture_on_commit_callbacks(execute=True):
        reply = reply_make(bob, topic, "Thanks")
    assert [message.to for message in mail.outbox] == [["alice@example.com"]]  # she follows her topic
    mail.outbox.clear()
    # A change of text mails nobody; a first mention mails that member alone, once.
    for body in ("Thanks, really", f"Thanks, @{staff.handle} knows", f"Thanks, @{staff.handle} knows!"):
        with django_capture_on_commit_callbacks(execute=True):
            post_edit(member=bob, post=reply, body=body)
    assert [message.to for message in mail.outbox] == [["ann@corp.example"]]
    assert mail.outbox[0].subject.startswith("Bob mentioned you in")
    assert sorted(Notice.objects.filter(post=reply).values_list("member_id", "reason")) == sorted(
        [(alice.pk, "topic"), (staff.pk, "mention")]
    )
