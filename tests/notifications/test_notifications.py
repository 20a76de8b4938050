"""In-app notifications: stored once per user and key, emailed once, listed and marked read by their owner only."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from django.core import mail
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from servicedesk.accounts.models import User
from servicedesk.notifications.models import Notification
from servicedesk.notifications.services import notification_email, notification_mark_read, notification_send
from tests.factories import AgentFactory, CustomerFactory, ticket_make

pytestmark = pytest.mark.django_db
AT = datetime(2025, 10, 20, 9, 0, tzinfo=UTC)
LIST = "/desk/notifications/"


def send(user, key, *, title="Ticket due soon", at=AT, **kwargs):
    return notification_send(user=user, kind="sla_warning", key=key, title=title, body="Body", at=at, **kwargs)


def rows(response) -> list[str]:
    import re

    return re.findall(r'<tr class="notification-row[^"]*" data-id="(\d+)"', response.content.decode())


def test_the_same_notice_is_stored_and_emailed_once(agent, django_capture_on_commit_callbacks):
    ticket = ticket_make()
    with django_capture_on_commit_callbacks(execute=True):
        first = send(agent, "sla:1:warning", ticket=ticket, url=f"/desk/tickets/{ticket.reference}/")
    with django_capture_on_commit_callbacks(execute=True):
        second = send(agent, "sla:1:warning", ticket=ticket)
    assert first is not None and second is None
    assert Notification.objects.count() == 1
    assert len(mail.outbox) == 1
    assert mail.outbox[0].to == ["ann@corp.example"]
    assert mail.outbox[0].subject == "Ticket due soon"
    assert mail.outbox[0].body == f"Body\n\nhttp://127.0.0.1:8000/desk/tickets/{ticket.reference}/\n"
    first.refresh_from_db()
    assert first.emailed_at is not None
    # The email task delivered again sends nothing.
    assert notification_email(notification_id=first.pk) is False
    assert len(mail.outbox) == 1


def test_another_user_gets_their_own_copy(agent, manager, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        send(agent, "k")
        send(manager, "k")
    assert sorted(Notification.objects.values_list("user__username", flat=True)) == ["ann", "max"]
    assert len(mail.outbox) == 2


def test_no_email_without_an_address(django_capture_on_commit_callbacks, monkeypatch):
    from servicedesk.notifications import services

    enqueued: list[int] = []
    monkeypatch.setattr(services, "notification_email_enqueue", lambda **kw: enqueued.append(kw["notification_id"]))
    nobody = AgentFactory(username="nomail", email="")
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        assert send(nobody, "k") is not None
    # Only the bell's push waits for the commit; no email task.
    assert len(callbacks) == 1
    assert enqueued == []
    assert mail.outbox == []


def test_the_page_lists_only_the_agents_own_notifications(client, agent, manager):
    mine = [send(agent, f"k{n}", title=f"Mine {n}", at=AT.replace(minute=n)) for n in range(3)]
    send(manager, "k0", title="Not yours")
    client.force_login(agent)
    response = client.get(LIST)
    assert response.status_code == 200
    assert rows(response) == [str(n.pk) for n in reversed(mine)]
    content = response.content.decode()
    assert "Not yours" not in content
    assert 'data-unread="3"' in content


def test_mark_one_and_then_all_as_read(client, agent, manager):
    first, second = send(agent, "a"), send(agent, "b")
    theirs = send(manager, "a")
    client.force_login(agent)
    response = client.post(reverse("notifications:read", args=[first.pk]))
    assert response.status_code == 302
    first.refresh_from_db()
    second.refresh_from_db()
    assert first.read_at is not None and second.read_at is None
    assert 'data-unread="1"' in client.get(LIST).content.decode()

    read_at = first.read_at
    client.post(reverse("notifications:read", args=[first.pk]))
    first.refresh_from_db()
    assert first.read_at == read_at

    assert client.post(reverse("notifications:read_all")).status_code == 302
    assert Notification.objects.filter(user=agent, read_at__isnull=True).count() == 0
    theirs.refresh_from_db()
    assert theirs.read_at is None
    assert "data-unread" not in client.get(LIST).content.decode()


def test_someone_elses_notification_cannot_be_marked(client, agent, manager):
    theirs = send(manager, "a")
    client.force_login(agent)
    assert client.post(reverse("notifications:read", args=[theirs.pk])).status_code == 404
    assert client.post(reverse("notifications:read", args=[999999])).status_code == 404
    theirs.refresh_from_db()
    assert theirs.read_at is None


def test_marking_needs_a_post(client, agent):
    mine = send(agent, "a")
    client.force_login(agent)
    assert client.get(reverse("notifications:read", args=[mine.pk])).status_code == 405
    assert client.get(reverse("notifications:read_all")).status_code == 405


def test_customers_and_visitors_are_refused(client, agent):
    mine = send(agent, "a")
    response = client.get(LIST)
    assert response.status_code == 302
    assert response["Location"].startswith("/desk/login/")
    assert client.post(reverse("notifications:read", args=[mine.pk])).status_code == 302

    user = User.objects.create_user(username="carla", email="carla@example.com", password="pass-word-123")
    CustomerFactory(name="Carla", user=user)
    send(user, "x")
    client.force_login(user)
    assert client.get(LIST).status_code == 404
    assert client.post(reverse("notifications:read", args=[mine.pk])).status_code == 404
    mine.refresh_from_db()
    assert mine.read_at is None


def test_the_bell_is_in_the_workspace_header(client, agent):
    send(agent, "a")
    send(agent, "b")
    client.force_login(agent)
    content = client.get("/desk/").content.decode()
    assert 'id="desk-bell"' in content
    assert 'href="/desk/notifications/"' in content
    assert 'data-unread="2"' in content


def test_the_page_makes_the_same_number_of_queries_for_3_and_30(client, agent):
    for n in range(3):
        send(agent, f"k{n}")
    client.force_login(agent)
    with CaptureQueriesContext(connection) as few:
        assert client.get(LIST).status_code == 200
    for n in range(3, 30):
        send(agent, f"k{n}")
    with CaptureQueriesContext(connection) as many:
        assert client.get(LIST).status_code == 200
    assert len(many) == len(few)


def test_mark_read_service_refuses_an_unknown_id(agent):
    from servicedesk.core.errors import NotFound

    with pytest.raises(NotFound):
        notification_mark_read(user=agent, notification_id=123456)
    assert notification_mark_read(user=agent) == 0
