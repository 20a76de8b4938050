"""Reminders: set, listed and cancelled by their agent only, delivered once when their time comes,
and not at all on a ticket the agent may no longer see."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core import mail
from django.utils import timezone
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from servicedesk.core.errors import NotFound
from servicedesk.notifications.models import Notification, Reminder
from servicedesk.notifications.reminders import (
    InvalidReminder,
    reminder_cancel,
    reminder_create,
    reminder_deliver,
    reminders_due_send,
)
from servicedesk.notifications.tasks import reminders_due_send_task
from tests.factories import AgentFactory, QueueFactory, ticket_make

pytestmark = pytest.mark.django_db


@pytest.fixture
def now():
    return timezone.now().replace(microsecond=0)


@pytest.fixture
def ticket(customer, queue):
    return ticket_make(customer=customer, queue=queue, subject="Printer")


@pytest.fixture
def bob(queue):
    return AgentFactory(username="bob", queues=[queue])


def api_for(user) -> APIClient:
    return APIClient(HTTP_AUTHORIZATION=f"Token {Token.objects.get_or_create(user=user)[0].key}")


def test_a_reminder_is_delivered_once_when_its_time_comes(agent, ticket, now, django_capture_on_commit_callbacks):
    reminder = reminder_create(
        user=agent, ticket=ticket, remind_at=now + timedelta(hours=1), note="Call them back", at=now
    )
    assert reminders_due_send(now=now + timedelta(minutes=59)) == 0
    with django_capture_on_commit_callbacks(execute=True):
        assert reminders_due_send(now=now + timedelta(hours=1)) == 1
    with django_capture_on_commit_callbacks(execute=True):
        assert reminders_due_send(now=now + timedelta(hours=2)) == 0
        assert reminder_deliver(reminder_id=reminder.pk, now=now + timedelta(hours=2)) is False

    notice = Notification.objects.get()
    assert (notice.user, notice.kind, notice.key, notice.ticket_id) == (
        agent,
        "reminder",
        f"reminder:{reminder.pk}",
        ticket.pk,
    )
    assert notice.title == f"[{ticket.reference}] Reminder: Printer"
    assert notice.body == "Call them back"
    assert [m.to for m in mail.outbox] == [["ann@corp.example"]]
    reminder.refresh_from_db()
    assert (reminder.delivered_at, reminder.outcome) == (now + timedelta(hours=1), "sent")


def test_the_beat_task_delivers_what_is_due(agent, ticket, now):
    reminder = reminder_create(user=agent, ticket=ticket, remind_at=now + timedelta(seconds=1), at=now - timedelta(1))
    Reminder.objects.filter(pk=reminder.pk).update(remind_at=now - timedelta(minutes=1))
    assert reminders_due_send_task.apply().get() == 1
    assert reminders_due_send_task.apply().get() == 0
    assert Notification.objects.get().body == "You asked to be reminded of this ticket."


def test_a_reminder_on_a_ticket_the_agent_no_longer_sees_is_not_delivered(agent, ticket, queue, now):
    reminder = reminder_create(user=agent, ticket=ticket, remind_at=now + timedelta(hours=1), at=now)
    queue.members.remove(agent)
    assert reminders_due_send(now=now + timedelta(hours=1)) == 0
    assert not Notification.objects.exists()
    reminder.refresh_from_db()
    assert (reminder.delivered_at, reminder.outcome) == (now + timedelta(hours=1), "not_visible")
    # Taken back into the queue later: the closed reminder stays closed.
    queue.members.add(agent)
    assert reminders_due_send(now=now + timedelta(hours=2)) == 0


@pytest.mark.parametrize(
    ("remind_at", "note", "field"),
    [
        (timedelta(0), "", "remind_at"),
        (timedelta(hours=-1), "", "remind_at"),
        (timedelta(days=800), "", "remind_at"),
        (timedelta(hours=1), "x" * 501, "note"),
    ],
)
def test_refusals_name_the_field_and_write_nothing(agent, ticket, now, remind_at, note, field):
    with pytest.raises(InvalidReminder) as refused:
        reminder_create(user=agent, ticket=ticket, remind_at=now + remind_at, note=note, at=now)
    assert refused.value.field == field
    assert not Reminder.objects.exists()


def test_nobody_sets_a_reminder_on_a_ticket_they_may_not_see(ticket, now):
    stranger = AgentFactory(username="sam", queues=[QueueFactory(slug="billing")])
    with pytest.raises(NotFound):
        reminder_create(user=stranger, ticket=ticket, remind_at=now + timedelta(hours=1), at=now)
    assert not Reminder.objects.exists()


def test_only_the_owner_cancels(agent, bob, ticket, now):
    reminder = reminder_create(user=agent, ticket=ticket, remind_at=now + timedelta(hours=1), at=now)
    with pytest.raises(NotFound):
        reminder_cancel(user=bob, reminder_id=reminder.pk)
    reminder_cancel(user=agent, reminder_id=reminder.pk)
    with pytest.raises(NotFound):
        reminder_cancel(user=agent, reminder_id=reminder.pk)
    assert not Reminder.objects.exists()
    assert reminders_due_send(now=now + timedelta(hours=2)) == 0


# --- The API ----------------------------------------------------------------------------


def test_the_api_sets_lists_and_cancels_own_reminders(agent, bob, ticket, now):
    api = api_for(agent)
    url = f"/api/v1/tickets/{ticket.reference}/reminders/"
    when = now + timedelta(days=1)
    created = api.post(url, {"remind_at": when.isoformat(), "note": "Chase the invoice"}, format="json")
    assert created.status_code == 201, created.content
    body = created.json()
    assert (body["ticket"], body["note"], body["delivered_at"], body["outcome"]) == (
        ticket.reference,
        "Chase the invoice",
        None,
        "",
    )
    reminder_create(user=bob, ticket=ticket, remind_at=when, note="Bob's own", at=now)
    listed = api.get(url).json()
    assert [item["note"] for item in listed] == ["Chase the invoice"]

    assert api_for(bob).delete(f"/api/v1/reminders/{body['id']}/").status_code == 404
    assert api.delete(f"/api/v1/reminders/{body['id']}/").status_code == 204
    assert api.delete(f"/api/v1/reminders/{body['id']}/").status_code == 404
    assert api.get(url).json() == []


@pytest.mark.parametrize(
    "body",
    [
        {"remind_at": "2020-01-01T10:00:00Z"},
        {"remind_at": "soon"},
        {},
        {"remind_at": "FUTURE", "note": "x" * 501},
        {"remind_at": "FUTURE", "note": ["a list"]},
    ],
)
def test_the_api_refuses_bad_input_with_field_errors(agent, ticket, now, body):
    body = {k: ((now + timedelta(hours=2)).isoformat() if v == "FUTURE" else v) for k, v in body.items()}
    answer = api_for(agent).post(f"/api/v1/tickets/{ticket.reference}/reminders/", body, format="json")
    assert answer.status_code == 400, answer.content
    assert {"remind_at", "note"} & set(answer.json())
    assert not Reminder.objects.exists()


def test_every_reminder_path_is_404_for_a_ticket_the_agent_may_not_see(agent, ticket, now):
    stranger = api_for(AgentFactory(username="sam", queues=[QueueFactory(slug="billing")]))
    url = f"/api/v1/tickets/{ticket.reference}/reminders/"
    assert stranger.get(url).status_code == 404
    assert stranger.post(url, {"remind_at": (now + timedelta(hours=2)).isoformat()}, format="json").status_code == 404
    # A reminder of one's own on a ticket one may no longer see is not found either.
    reminder = reminder_create(user=agent, ticket=ticket, remind_at=now + timedelta(hours=1), at=now)
    ticket.queue.members.remove(agent)
    assert api_for(agent).delete(f"/api/v1/reminders/{reminder.pk}/").status_code == 404
    assert api_for(agent).get(url).status_code == 404


# --- The page ----------------------------------------------------------------------------


def test_the_ticket_page_sets_shows_and_cancels_reminders(client, agent, bob, ticket):
    client.force_login(agent)
    day = (timezone.now() + timedelta(days=2)).date()
    answer = client.post(
        f"/desk/notifications/tickets/{ticket.reference}/reminders/", {"remind_at": f"{day}T09:15", "note": "Call"}
    )
    assert answer.status_code == 302
    reminder = Reminder.objects.get()
    page = client.get(f"/desk/tickets/{ticket.reference}/").content.decode()
    assert f'data-reminder="{reminder.pk}"' in page and "Call" in page

    client.force_login(bob)
    assert client.post(f"/desk/notifications/reminders/{reminder.pk}/cancel/").status_code == 404
    assert f'data-reminder="{reminder.pk}"' not in client.get(f"/desk/tickets/{ticket.reference}/").content.decode()
    client.force_login(agent)
    assert client.post(f"/desk/notifications/reminders/{reminder.pk}/cancel/").status_code == 302
    assert not Reminder.objects.exists()


def test_the_page_refuses_a_past_time_with_its_reason(client, agent, ticket):
    client.force_login(agent)
    answer = client.post(
        f"/desk/notifications/tickets/{ticket.reference}/reminders/", {"remind_at": "2020-01-01T09:15"}, follow=True
    )
    assert "The reminder&#x27;s time must be in the future." in answer.content.decode()
    assert not Reminder.objects.exists()
