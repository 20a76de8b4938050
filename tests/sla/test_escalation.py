"""Escalation rules: raise the priority, move the queue, notify a manager; once per target, without looping."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.urls import reverse

from servicedesk.celery import app
from servicedesk.notifications.models import Notification
from servicedesk.sla.breach import BreachCheckCounts, sla_breach_check
from servicedesk.sla.models import Escalation, EscalationRule
from servicedesk.tickets.events import Actor
from servicedesk.tickets.models import Ticket, TicketEvent
from servicedesk.tickets.services.tickets import ticket_queue_change
from tests.sla.conftest import T0, agent_make, minutes, open_ticket, queue_make, targets

pytestmark = pytest.mark.django_db


def check(at, capture):
    with capture(execute=True):
        return sla_breach_check(now=at)


def events(ticket, kind):
    return list(
        TicketEvent.objects.filter(ticket=ticket, kind=kind)
        .order_by("id")
        .values_list("before", "after", "source", "at")
    )


def test_raise_priority_at_the_warning_takes_the_new_terms_and_does_not_loop(
    standard, support, ann, max_manager, django_capture_on_commit_callbacks
):
    EscalationRule.objects.create(policy=standard, threshold="warning", action="raise_priority", priority="high")
    ticket = open_ticket(support, assignee=ann)
    now = T0 + minutes(45)

    counts = check(now, django_capture_on_commit_callbacks)
    # The warning raises the priority; high allows 20 minutes for a first reply, so the
    # new first-reply target is already breached and its notice goes out in the same run.
    assert counts == BreachCheckCounts(tickets=1, warnings=1, breaches=1, escalations=1)
    ticket.refresh_from_db()
    assert ticket.priority == "high"
    assert events(ticket, "priority") == [("normal", "high", "sla", now)]
    first, resolution = targets(ticket)["first_reply"], targets(ticket)["resolution"]
    assert (first.priority, first.minutes, first.state) == ("high", 20, "breached")
    assert (first.breached_at, first.breach_notified_at, first.next_check_at) == (T0 + minutes(20), now, None)
    assert (resolution.priority, resolution.minutes, resolution.state) == ("high", 120, "active")
    assert (resolution.due_at, resolution.warning_at) == (T0 + minutes(120), T0 + minutes(90))
    assert (resolution.warning_notified_at, resolution.next_check_at) == (None, T0 + minutes(90))
    # The inbox sorts on the earliest due instant of a running target: the breached first reply.
    assert ticket.sla_due_at == T0 + minutes(20)
    assert sorted(Notification.objects.values_list("user__username", "key")) == [
        ("ann", f"sla:{first.pk}:breach"),
        ("ann", f"sla:{first.pk}:warning"),
        ("max", f"sla:{first.pk}:breach"),
    ]

    assert check(now, django_capture_on_commit_callbacks) == BreachCheckCounts()
    assert check(now + minutes(1), django_capture_on_commit_callbacks) == BreachCheckCounts()
    # The resolution warning applies the rule to that target too; the priority is already high.
    counts = check(T0 + minutes(90), django_capture_on_commit_callbacks)
    assert counts == BreachCheckCounts(tickets=1, warnings=1, escalations=1)
    assert len(events(ticket, "priority")) == 1
    assert Escalation.objects.count() == 2


def test_move_queue_on_breach_happens_once_even_when_moved_back(
    standard, support, ann, max_manager, django_capture_on_commit_callbacks
):
    escalated = queue_make("escalated")
    EscalationRule.objects.create(
        policy=standard, threshold="breach", target_kind="first_reply", action="move_queue", queue=escalated
    )
    ticket = open_ticket(support, assignee=ann)
    now = T0 + minutes(61)

    assert check(now, django_capture_on_commit_callbacks) == BreachCheckCounts(tickets=1, breaches=1, escalations=1)
    ticket.refresh_from_db()
    assert ticket.queue == escalated
    # Ann does not work in the escalation queue: the move unassigns her.
    assert ticket.assignee is None
    assert events(ticket, "queue") == [("support", "escalated", "sla", now)]
    assert events(ticket, "assignee") == [(ann.pk, None, "sla", now)]

    ticket_queue_change(ticket=ticket, queue=support, actor=Actor.agent(max_manager), at=now + minutes(5))
    for later in (6, 7, 200):
        check(now + minutes(later), django_capture_on_commit_callbacks)
    assert Ticket.objects.get(pk=ticket.pk).queue == support
    assert len(events(ticket, "queue")) == 2


def test_resolution_only_rule_leaves_the_first_reply_alone(standard, support, ann, django_capture_on_commit_callbacks):
    escalated = queue_make("escalated")
    EscalationRule.objects.create(
        policy=standard, threshold="breach", target_kind="resolution", action="move_queue", queue=escalated
    )
    ticket = open_ticket(support, assignee=ann)
    check(T0 + minutes(61), django_capture_on_commit_callbacks)
    assert Ticket.objects.get(pk=ticket.pk).queue == support
    assert check(T0 + minutes(241), django_capture_on_commit_callbacks).escalations == 1
    assert Ticket.objects.get(pk=ticket.pk).queue == escalated


def test_notify_manager_at_the_warning_once(standard, support, ann, django_capture_on_commit_callbacks):
    lead = agent_make(username="lead", role="manager")
    agent_make(username="other-manager", role="manager")
    EscalationRule.objects.create(policy=standard, threshold="warning", action="notify_manager", user=lead)
    ticket = open_ticket(support, assignee=ann)
    first = targets(ticket)["first_reply"]
    for _run in range(2):
        check(T0 + minutes(45), django_capture_on_commit_callbacks)
    key = f"sla:{first.pk}:warning"
    # Managers hear of warnings only through a rule.
    assert sorted(Notification.objects.values_list("user__username", "kind", "key")) == [
        ("ann", "sla_warning", key),
        ("lead", "sla_warning", key),
    ]
    assert Escalation.objects.count() == 1


def test_a_rule_of_another_policy_does_not_apply(
    standard, utc_calendar, support, ann, django_capture_on_commit_callbacks
):
    from servicedesk.sla.models import SlaPolicy

    other = SlaPolicy.objects.create(slug="other", name="Other", rank=50, calendar=utc_calendar, match={"queue": "x"})
    EscalationRule.objects.create(policy=other, threshold="warning", action="raise_priority", priority="urgent")
    ticket = open_ticket(support, assignee=ann)
    assert check(T0 + minutes(45), django_capture_on_commit_callbacks) == BreachCheckCounts(tickets=1, warnings=1)
    assert Ticket.objects.get(pk=ticket.pk).priority == "normal"


def test_raise_never_lowers_the_priority(standard, support, ann, django_capture_on_commit_callbacks):
    EscalationRule.objects.create(policy=standard, threshold="breach", action="raise_priority", priority="normal")
    ticket = open_ticket(support, assignee=ann, priority="high")
    assert check(T0 + minutes(21), django_capture_on_commit_callbacks).breaches == 1
    assert Ticket.objects.get(pk=ticket.pk).priority == "high"
    assert events(ticket, "priority") == []


def test_a_rule_needs_the_field_of_its_action(standard):
    with pytest.raises(ValidationError) as raised:
        EscalationRule(policy=standard, threshold="warning", action="move_queue").full_clean()
    assert "queue" in raised.value.message_dict
    with pytest.raises(ValidationError) as raised:
        EscalationRule(policy=standard, threshold="warning", action="notify_manager").full_clean()
    assert "user" in raised.value.message_dict
    with pytest.raises(ValidationError) as raised:
        EscalationRule(policy=standard, threshold="warning", action="raise_priority").full_clean()
    assert "priority" in raised.value.message_dict
    with pytest.raises(IntegrityError), transaction.atomic():
        EscalationRule.objects.create(policy=standard, threshold="warning", action="raise_priority")


def test_rules_are_edited_inline_on_the_policy(admin_client, standard, support):
    EscalationRule.objects.create(policy=standard, threshold="breach", action="move_queue", queue=support, order=2)
    response = admin_client.get(reverse("admin:sla_slapolicy_change", args=[standard.pk]))
    assert response.status_code == 200
    content = response.content.decode()
    assert 'name="escalation_rules-TOTAL_FORMS" value="1"' in content
    assert 'name="escalation_rules-0-action"' in content


def test_beat_runs_the_breach_check_every_minute():
    entry = settings.CELERY_BEAT_SCHEDULE["sla-breach-check"]
    assert (entry["task"], entry["schedule"]) == ("sla.breach_check", timedelta(minutes=1))
    app.loader.import_default_modules()
    assert {"sla.breach_check", "sla.notices_send", "notifications.email"} <= set(app.tasks)
