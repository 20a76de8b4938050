"""Notification preferences: each kind in the workspace and/or by email, for every kind of notice,
the SLA's and the webhooks' pauses included; read and changed on the page and through the API."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from django.core import mail
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from servicedesk.notifications.models import Notification, NotificationPreference
from servicedesk.notifications.preferences import (
    KINDS,
    InvalidPreference,
    kinds_for,
    notification_preferences_set,
    preferences_of,
)
from servicedesk.notifications.selectors import notification_list, notification_unread_count
from servicedesk.notifications.services import notification_mark_read, notification_send
from servicedesk.tickets.events import Actor
from servicedesk.tickets.services.tickets import ticket_assign
from tests.factories import AgentFactory, UserFactory, ticket_make

pytestmark = pytest.mark.django_db
AT = datetime(2025, 10, 20, 9, 0, tzinfo=UTC)
# What a manager or admin is offered: every kind, the webhooks' pause last.
ALL_KINDS = [
    "assigned",
    "customer_message",
    "mention",
    "ticket_status",
    "reminder",
    "sla_warning",
    "sla_breach",
    "webhook_paused",
]
AGENT_KINDS = ALL_KINDS[:-1]


def send(user, kind="sla_warning", key="k"):
    return notification_send(user=user, kind=kind, key=key, title="Due soon", body="Body", at=AT)


def api_for(user) -> APIClient:
    return APIClient(HTTP_AUTHORIZATION=f"Token {Token.objects.get_or_create(user=user)[0].key}")


def test_every_kind_comes_both_ways_until_changed(agent, manager):
    assert list(KINDS) == ALL_KINDS
    assert [(p.kind, p.in_app, p.email) for p in preferences_of(manager)] == [(kind, True, True) for kind in ALL_KINDS]
    # Only managers and admins are told of a paused webhook endpoint: an agent is not offered it.
    assert [(p.kind, p.in_app, p.email) for p in preferences_of(agent)] == [(kind, True, True) for kind in AGENT_KINDS]
    admin = AgentFactory(username="ada", role="admin")
    superuser = UserFactory(username="root", is_superuser=True)
    assert kinds_for(admin) == kinds_for(superuser) == tuple(ALL_KINDS)


def test_an_agent_cannot_choose_for_a_kind_only_managers_are_sent(agent):
    with pytest.raises(InvalidPreference, match="webhook_paused is sent to managers and admins only"):
        notification_preferences_set(user=agent, changes={"webhook_paused": {"email": False}})
    assert not NotificationPreference.objects.exists()


# --- The webhooks' pause (servicedesk/webhooks/services.py, webhook_paused_notify) ------------------


def test_the_webhook_pause_notice_follows_each_managers_choice(manager, django_capture_on_commit_callbacks):
    from servicedesk.webhooks.models import WebhookEndpoint
    from servicedesk.webhooks.services import webhook_endpoint_create, webhook_endpoint_pause

    admin = AgentFactory(username="ada", role="admin")
    email_only = AgentFactory(username="eve", role="manager")
    neither = AgentFactory(username="ned", role="manager")
    notification_preferences_set(user=manager, changes={"webhook_paused": {"email": False}})
    notification_preferences_set(user=email_only, changes={"webhook_paused": {"in_app": False}})
    notification_preferences_set(user=neither, changes={"webhook_paused": {"in_app": False, "email": False}})
    endpoint = webhook_endpoint_create(
        actor=admin, url="http://127.0.0.1:9/hooks", event_types=["ticket.created"], allow_private_addresses=True
    ).endpoint

    with django_capture_on_commit_callbacks(execute=True):
        webhook_endpoint_pause(endpoint=endpoint, at=AT, reason=WebhookEndpoint.PausedReason.FAILING)

    notices = {n.user.username: n for n in Notification.objects.filter(kind="webhook_paused").select_related("user")}
    assert set(notices) == {"ada", "max", "eve"}
    # Email off: in the bell, never mailed.
    assert (notices["max"].in_app, notices["max"].email_owed_since, notices["max"].emailed_at) == (True, None, None)
    assert notification_unread_count(user=manager) == 1
    # Workspace off: mailed, kept out of the bell.
    assert (notices["eve"].in_app, notices["eve"].emailed_at is not None) == (False, True)
    assert notification_unread_count(user=email_only) == 0
    # Never changed: both ways.
    assert (notices["ada"].in_app, notices["ada"].emailed_at is not None) == (True, True)
    assert sorted(m.to[0] for m in mail.outbox) == ["ada@corp.example", "eve@corp.example"]
    assert {m.subject for m in mail.outbox} == {"Webhook endpoint paused: http://127.0.0.1:9/hooks"}


def test_email_only_is_emailed_but_kept_out_of_the_bell_and_the_list(agent, django_capture_on_commit_callbacks):
    notification_preferences_set(user=agent, changes={"sla_warning": {"in_app": False}})
    with django_capture_on_commit_callbacks(execute=True):
        notice = send(agent)
    assert notice is not None and notice.in_app is False
    assert [m.subject for m in mail.outbox] == ["Due soon"]
    assert notification_unread_count(user=agent) == 0
    assert list(notification_list(user=agent)) == []
    assert notification_mark_read(user=agent) == 0
    # Still keyed once: sending again stores and mails nothing.
    with django_capture_on_commit_callbacks(execute=True):
        assert send(agent) is None
    assert len(mail.outbox) == 1


def test_workspace_only_is_shown_and_not_emailed(agent, django_capture_on_commit_callbacks):
    notification_preferences_set(user=agent, changes={"sla_warning": {"email": False}})
    with django_capture_on_commit_callbacks(execute=True):
        notice = send(agent)
    assert notice is not None and notice.in_app is True and notice.email_owed_since is None
    assert mail.outbox == []
    assert notification_unread_count(user=agent) == 1


def test_neither_stores_nothing(agent, django_capture_on_commit_callbacks):
    notification_preferences_set(user=agent, changes={"sla_warning": {"email": False, "in_app": False}})
    with django_capture_on_commit_callbacks(execute=True):
        assert send(agent) is None
    assert not Notification.objects.exists() and mail.outbox == []
    # Other kinds are not affected.
    with django_capture_on_commit_callbacks(execute=True):
        assert send(agent, kind="sla_breach", key="other") is not None
    assert len(mail.outbox) == 1


def test_the_sla_breach_notice_follows_the_agents_choice(agent, queue, django_capture_on_commit_callbacks):
    from servicedesk.sla.breach import sla_notices_send
    from servicedesk.sla.models import BusinessCalendar, SlaPolicy, SlaTarget
    from servicedesk.tickets.models import TicketTarget

    calendar = BusinessCalendar.objects.create(slug="utc", name="UTC", time_zone="UTC", is_default=True)
    policy = SlaPolicy.objects.create(slug="standard", name="Standard", rank=10, calendar=calendar, match={})
    SlaTarget.objects.create(
        policy=policy, priority="normal", first_reply_minutes=60, resolution_minutes=240, hours="calendar"
    )
    ticket = ticket_make(queue=queue, subject="Printer", channel="email", at=AT)
    ticket_assign(ticket=ticket, assignee=agent, actor=Actor.system())
    target = TicketTarget.objects.get(ticket=ticket, kind="first_reply")
    notification_preferences_set(user=agent, changes={"sla_warning": {"email": False}})
    with django_capture_on_commit_callbacks(execute=True):
        assert sla_notices_send(notices=[[target.pk, "warning", []]]) == 1
    notice = Notification.objects.get(kind="sla_warning")
    assert (notice.user, notice.in_app, notice.emailed_at) == (agent, True, None)
    assert mail.outbox == []


def test_the_assignment_notice_follows_the_agents_choice(agent, manager, queue, django_capture_on_commit_callbacks):
    ticket = ticket_make(queue=queue, subject="Printer")
    notification_preferences_set(user=agent, changes={"assigned": {"in_app": False, "email": False}})
    with django_capture_on_commit_callbacks(execute=True):
        ticket_assign(ticket=ticket, assignee=agent, actor=Actor.agent(manager))
    assert not Notification.objects.exists() and mail.outbox == []


# --- The API ----------------------------------------------------------------------------


URL = "/api/v1/me/notification-preferences/"


def test_the_api_reads_and_changes_only_what_is_sent(agent):
    api = api_for(agent)
    body = api.get(URL).json()
    assert [item["kind"] for item in body["preferences"]] == AGENT_KINDS
    assert body["preferences"][0] == {
        "kind": "assigned",
        "label": "Ticket assigned to you",
        "in_app": True,
        "email": True,
    }

    answer = api.patch(URL, {"preferences": [{"kind": "mention", "email": False}]}, format="json")
    assert answer.status_code == 200
    mention = next(item for item in answer.json()["preferences"] if item["kind"] == "mention")
    assert (mention["in_app"], mention["email"]) == (True, False)
    api.patch(URL, {"preferences": [{"kind": "mention", "in_app": False}]}, format="json")
    assert NotificationPreference.objects.filter(user=agent).values_list("kind", "in_app", "email").get() == (
        "mention",
        False,
        False,
    )


@pytest.mark.parametrize(
    "body",
    [
        {"preferences": [{"kind": "nonsense", "email": False}]},
        {"preferences": [{"kind": "mention", "email": "perhaps"}]},
        {"preferences": [{"kind": "mention", "email": False}, {"kind": "mention", "in_app": False}]},
        {"preferences": "all"},
        {},
    ],
)
def test_the_api_refuses_bad_input_with_field_errors_and_changes_nothing(agent, body):
    answer = api_for(agent).patch(URL, body, format="json")
    assert answer.status_code == 400, answer.content
    assert "preferences" in answer.json()
    assert not NotificationPreference.objects.exists()


def test_a_manager_chooses_for_the_webhooks_pause_through_the_api(agent, manager):
    api = api_for(manager)
    body = api.get(URL).json()
    assert [item["kind"] for item in body["preferences"]] == ALL_KINDS
    assert body["preferences"][-1] == {
        "kind": "webhook_paused",
        "label": "Webhook endpoint paused after failing",
        "in_app": True,
        "email": True,
    }
    answer = api.patch(URL, {"preferences": [{"kind": "webhook_paused", "email": False}]}, format="json")
    assert answer.status_code == 200
    assert answer.json()["preferences"][-1]["email"] is False
    assert NotificationPreference.objects.values_list("user", "kind", "in_app", "email").get() == (
        manager.pk,
        "webhook_paused",
        True,
        False,
    )
    # An agent who is told of no pause: a 400 naming the field, nothing changed.
    refused = api_for(agent).patch(URL, {"preferences": [{"kind": "webhook_paused", "email": False}]}, format="json")
    assert refused.status_code == 400
    assert refused.json()["preferences"] == ["webhook_paused is sent to managers and admins only."]
    assert not NotificationPreference.objects.filter(user=agent).exists()


def test_the_api_and_page_are_for_agents_only(client):
    visitor = UserFactory(username="visitor")
    assert api_for(visitor).get(URL).status_code == 403
    client.force_login(visitor)
    assert client.get("/desk/notifications/preferences/").status_code == 404


def test_the_page_shows_and_saves_the_choices(client, agent):
    client.force_login(agent)
    page = client.get("/desk/notifications/preferences/").content.decode()
    for kind in AGENT_KINDS:
        assert f'data-kind="{kind}"' in page
    assert 'data-kind="webhook_paused"' not in page
    assert 'name="mention-email" id="id_mention-email" checked' in page
    # Unticked boxes are off: here only the mention's email is left on.
    answer = client.post("/desk/notifications/preferences/", {"mention-email": "on"})
    assert answer.status_code == 302
    chosen = {p.kind: (p.in_app, p.email) for p in preferences_of(agent)}
    assert chosen["mention"] == (False, True)
    assert chosen["reminder"] == (False, False)
    assert not NotificationPreference.objects.filter(user=agent, kind="webhook_paused").exists()


def test_a_manager_sets_the_webhooks_pause_on_the_page(client, manager):
    client.force_login(manager)
    page = client.get("/desk/notifications/preferences/").content.decode()
    assert 'data-kind="webhook_paused"' in page
    assert "Webhook endpoint paused after failing" in page
    assert 'name="webhook_paused-email" id="id_webhook_paused-email" checked' in page
    form = {f"{kind}-{channel}": "on" for kind in ALL_KINDS for channel in ("in_app", "email")}
    del form["webhook_paused-email"]
    assert client.post("/desk/notifications/preferences/", form).status_code == 302
    chosen = {p.kind: (p.in_app, p.email) for p in preferences_of(manager)}
    assert chosen["webhook_paused"] == (True, False)
    assert chosen["mention"] == (True, True)
