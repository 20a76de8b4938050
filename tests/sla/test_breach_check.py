"""The breach check: warnings at the policy's share of a target, breach notices, each once per target."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core import mail
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from servicedesk.notifications.models import Notification
from servicedesk.sla.breach import BreachCheckCounts, _batch, _due, _RuleCache, sla_breach_check, sla_notices_send
from servicedesk.sla.models import SlaPolicy, SlaTarget
from servicedesk.sla.tasks import sla_breach_check_task
from servicedesk.tickets.events import Actor
from servicedesk.tickets.models import TicketEvent, TicketTarget
from servicedesk.tickets.services.replies import ticket_reply_create
from servicedesk.tickets.services.sla import SpecCache
from servicedesk.tickets.services.tickets import ticket_status_change
from tests.sla.conftest import T0, agent_make, minutes, open_ticket, queue_make, targets

pytestmark = pytest.mark.django_db


def check(at, capture):
    with capture(execute=True):
        return sla_breach_check(now=at)


def notices() -> list[tuple[str, str, str]]:
    return sorted((n.user.username, n.kind, n.key) for n in Notification.objects.select_related("user"))


def test_warning_exactly_at_75_percent_of_the_target(standard, support, ann, django_capture_on_commit_callbacks):
    ticket = open_ticket(support, assignee=ann)
    first = targets(ticket)["first_reply"]
    assert (first.warning_at, first.due_at, first.next_check_at) == (
        T0 + minutes(45),
        T0 + minutes(60),
        T0 + minutes(45),
    )

    assert (
        check(T0 + minutes(45) - timedelta(microseconds=1), django_capture_on_commit_callbacks) == BreachCheckCounts()
    )
    assert Notification.objects.count() == 0

    counts = check(T0 + minutes(45), django_capture_on_commit_callbacks)
    assert counts == BreachCheckCounts(tickets=1, warnings=1)
    first.refresh_from_db()
    assert (first.state, first.warning_notified_at, first.breach_notified_at) == ("active", T0 + minutes(45), None)
    assert first.next_check_at == T0 + minutes(60) + timedelta(microseconds=1)
    assert notices() == [("ann", "sla_warning", f"sla:{first.pk}:warning")]
    notification = Notification.objects.get()
    assert notification.ticket == ticket
    assert notification.title == f"[{ticket.reference}] First reply target due soon"
    assert notification.body == (
        f"75% of the first reply target of ticket {ticket.reference} (Printer on fire) has elapsed. "
        "It falls due at 2025-10-20 10:00 UTC."
    )
    assert notification.url == f"/desk/tickets/{ticket.reference}/"
    assert len(mail.outbox) == 1
    email = mail.outbox[0]
    assert email.to == ["ann@corp.example"]
    assert email.subject == f"[{ticket.reference}] First reply target due soon"
    assert email.body == f"{notification.body}\n\nhttp://127.0.0.1:8000/desk/tickets/{ticket.reference}/\n"


def test_a_policy_with_its_own_warning_share(standard, utc_calendar, ann, django_capture_on_commit_callbacks):
    billing = queue_make("billing")
    billing.members.add(ann)
    half = SlaPolicy.objects.create(
        slug="billing", name="Billing", rank=5, calendar=utc_calendar, match={"queue": "billing"}, warning_percent=50
    )
    SlaTarget.objects.create(policy=half, priority="normal", first_reply_minutes=60, hours="calendar")
    ticket = open_ticket(billing, assignee=ann)
    first = targets(ticket)["first_reply"]
    assert (first.warning_percent, first.warning_at) == (50, T0 + minutes(30))

    assert check(T0 + minutes(29), django_capture_on_commit_callbacks) == BreachCheckCounts()
    assert check(T0 + minutes(30), django_capture_on_commit_callbacks) == BreachCheckCounts(tickets=1, warnings=1)
    assert Notification.objects.get().body.startswith("50% of the first reply target")


def test_breach_notice_sent_once_to_assignee_and_managers(
    standard, support, ann, max_manager, django_capture_on_commit_callbacks
):
    ticket = open_ticket(support, assignee=ann)
    first = targets(ticket)["first_reply"]
    check(T0 + minutes(45), django_capture_on_commit_callbacks)

    counts = check(T0 + minutes(61), django_capture_on_commit_callbacks)
    assert counts == BreachCheckCounts(tickets=1, breaches=1)
    first.refresh_from_db()
    assert (first.state, first.breached_at, first.breach_notified_at) == (
        "breached",
        T0 + minutes(60),
        T0 + minutes(61),
    )
    assert first.next_check_at is None
    key = f"sla:{first.pk}:breach"
    assert notices() == [
        ("ann", "sla_breach", key),
        ("ann", "sla_warning", f"sla:{first.pk}:warning"),
        ("max", "sla_breach", key),
    ]
    breach_mail = [m for m in mail.outbox if "breached" in m.subject]
    assert sorted(m.to[0] for m in breach_mail) == ["ann@corp.example", "max@corp.example"]
    assert breach_mail[0].body.startswith(
        f"The first reply target of ticket {ticket.reference} (Printer on fire) was breached at 2025-10-20 10:00 UTC."
    )

    sent = len(mail.outbox)
    for later in (61, 62, 120):
        assert check(T0 + minutes(later), django_capture_on_commit_callbacks) == BreachCheckCounts()
    assert Notification.objects.count() == 3
    assert len(mail.outbox) == sent
    assert TicketEvent.objects.filter(ticket=ticket, kind="sla_breached").count() == 1


def test_a_check_that_comes_late_sends_the_breach_without_a_warning(
    standard, support, ann, django_capture_on_commit_callbacks
):
    ticket = open_ticket(support, assignee=ann)
    counts = check(T0 + minutes(90), django_capture_on_commit_callbacks)
    assert counts == BreachCheckCounts(tickets=1, breaches=1)
    first, resolution = targets(ticket)["first_reply"], targets(ticket)["resolution"]
    # The first reply breached, so its warning is no longer owed; the resolution warning comes at 180 min.
    assert (first.state, first.warning_notified_at, first.breach_notified_at) == ("breached", None, T0 + minutes(90))
    assert (resolution.state, resolution.warning_notified_at) == ("active", None)
    assert resolution.next_check_at == T0 + minutes(180)
    assert notices() == [("ann", "sla_breach", f"sla:{first.pk}:breach")]


def test_the_beat_task_run_twice_notifies_once(standard, support, ann, max_manager, django_capture_on_commit_callbacks):
    now = timezone.now()
    ticket = open_ticket(support, at=now - minutes(70), assignee=ann)
    with django_capture_on_commit_callbacks(execute=True):
        first_run = sla_breach_check_task.apply().get()
    with django_capture_on_commit_callbacks(execute=True):
        second_run = sla_breach_check_task.apply().get()
    assert first_run == {"tickets": 1, "warnings": 0, "breaches": 1, "escalations": 0, "skipped": 0, "failed": 0}
    assert second_run == {"tickets": 0, "warnings": 0, "breaches": 0, "escalations": 0, "skipped": 0, "failed": 0}
    target = targets(ticket)["first_reply"]
    assert notices() == [
        ("ann", "sla_breach", f"sla:{target.pk}:breach"),
        ("max", "sla_breach", f"sla:{target.pk}:breach"),
    ]
    assert len(mail.outbox) == 2


def test_the_notice_task_delivered_twice_sends_once(standard, support, ann, django_capture_on_commit_callbacks):
    ticket = open_ticket(support, assignee=ann)
    check(T0 + minutes(45), django_capture_on_commit_callbacks)
    target = targets(ticket)["first_reply"]
    with django_capture_on_commit_callbacks(execute=True):
        assert sla_notices_send(notices=[[target.pk, "warning", []]]) == 0
    assert Notification.objects.count() == 1
    assert len(mail.outbox) == 1


def test_unassigned_ticket_warns_the_queue_and_a_breach_adds_the_managers(
    standard, support, ann, max_manager, django_capture_on_commit_callbacks
):
    bea = agent_make(username="bea", queues=[support])
    agent_make(username="cal", queues=[queue_make("other")])
    agent_make(username="gone", queues=[support], is_active=False)
    ticket = open_ticket(support)
    first = targets(ticket)["first_reply"]
    check(T0 + minutes(45), django_capture_on_commit_callbacks)
    warning_key = f"sla:{first.pk}:warning"
    assert notices() == [("ann", "sla_warning", warning_key), ("bea", "sla_warning", warning_key)]
    check(T0 + minutes(60) + timedelta(seconds=1), django_capture_on_commit_callbacks)
    breach_key = f"sla:{first.pk}:breach"
    assert notices() == [
        ("ann", "sla_breach", breach_key),
        ("ann", "sla_warning", warning_key),
        ("bea", "sla_breach", breach_key),
        ("bea", "sla_warning", warning_key),
        ("max", "sla_breach", breach_key),
    ]
    assert bea.email in {m.to[0] for m in mail.outbox}


def test_targets_not_yet_due_are_not_touched(standard, support, ann, django_capture_on_commit_callbacks):
    tickets = [open_ticket(support, at=T0 + minutes(n), assignee=ann) for n in range(5)]
    before = list(TicketTarget.objects.order_by("pk").values_list("pk", "evaluated_at", "next_check_at"))
    with CaptureQueriesContext(connection) as queries:
        assert check(T0 + minutes(44), django_capture_on_commit_callbacks) == BreachCheckCounts()
    # One indexed read of the due rows, nothing else.
    assert len(queries) == 1
    assert "next_check_at" in queries[0]["sql"]
    assert list(TicketTarget.objects.order_by("pk").values_list("pk", "evaluated_at", "next_check_at")) == before

    # At 45 min only the first ticket's warning is due; the others stay as they were.
    assert check(T0 + minutes(45), django_capture_on_commit_callbacks) == BreachCheckCounts(tickets=1, warnings=1)
    after = dict(
        (pk, (evaluated, next_check))
        for pk, evaluated, next_check in TicketTarget.objects.exclude(ticket=tickets[0]).values_list(
            "pk", "evaluated_at", "next_check_at"
        )
    )
    assert after == {pk: (evaluated, next_check) for pk, evaluated, next_check in before if pk in after}
    assert len(after) == 8


def test_paused_targets_are_never_notified(utc_calendar, support, ann, django_capture_on_commit_callbacks):
    policy = SlaPolicy.objects.create(slug="res", name="Resolution only", rank=1, calendar=utc_calendar, match={})
    SlaTarget.objects.create(policy=policy, priority="normal", resolution_minutes=60, hours="calendar")
    ticket = open_ticket(support, assignee=ann)
    ticket_status_change(ticket=ticket, status="pending", actor=Actor.agent(ann), at=T0 + minutes(10))
    resolution = targets(ticket)["resolution"]
    assert (resolution.state, resolution.next_check_at) == ("paused", None)
    for later in (45, 60, 61, 600):
        assert check(T0 + minutes(later), django_capture_on_commit_callbacks) == BreachCheckCounts()
    assert Notification.objects.count() == 0
    assert len(mail.outbox) == 0


def test_achieved_targets_are_never_notified(standard, support, ann, django_capture_on_commit_callbacks):
    ticket = open_ticket(support, assignee=ann)
    check(T0 + minutes(45), django_capture_on_commit_callbacks)
    ticket_reply_create(ticket=ticket, author=ann, text="On it", actor=Actor.agent(ann), at=T0 + minutes(50))
    first = targets(ticket)["first_reply"]
    assert (first.state, first.next_check_at) == ("achieved", None)
    assert check(T0 + minutes(61), django_capture_on_commit_callbacks) == BreachCheckCounts()
    ticket_status_change(ticket=ticket, status="solved", actor=Actor.agent(ann), at=T0 + minutes(100))
    assert check(T0 + minutes(600), django_capture_on_commit_callbacks) == BreachCheckCounts()
    assert notices() == [("ann", "sla_warning", f"sla:{first.pk}:warning")]


def test_warning_dropped_when_the_target_was_fulfilled_before_the_notices_went_out(
    standard, support, ann, django_capture_on_commit_callbacks
):
    ticket = open_ticket(support, assignee=ann)
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        sla_breach_check(now=T0 + minutes(45))
    ticket_reply_create(ticket=ticket, author=ann, text="On it", actor=Actor.agent(ann), at=T0 + minutes(46))
    with django_capture_on_commit_callbacks(execute=True):
        for callback in callbacks:
            callback()
    assert Notification.objects.count() == 0


def test_a_recipient_time_zone_and_language_shape_the_notice(standard, support, django_capture_on_commit_callbacks):
    zoe = agent_make(username="zoe", queues=[support], time_zone="Asia/Shanghai", language="zh-hans")
    ticket = open_ticket(support, assignee=zoe)
    check(T0 + minutes(45), django_capture_on_commit_callbacks)
    notification = Notification.objects.get()
    assert notification.user == zoe
    assert "2025-10-20 18:00 CST" in notification.body
    assert ticket.reference in mail.outbox[0].subject


def test_a_run_that_locks_a_ticket_another_run_has_just_checked_leaves_it(
    standard, support, ann, django_capture_on_commit_callbacks
):
    ticket = open_ticket(support, assignee=ann)
    now = T0 + minutes(70)
    # Run B reads the due rows; run A checks the ticket and commits before B takes the lock.
    stale = sorted({ticket_id for _at, _pk, ticket_id in _due(now=now, after=None, limit=10)})
    assert stale == [ticket.pk]
    assert check(now, django_capture_on_commit_callbacks).breaches == 1
    counts = BreachCheckCounts()
    with django_capture_on_commit_callbacks(execute=True):
        _batch(stale, now=now, specs=SpecCache(), rules=_RuleCache(), counts=counts)
    # B finds nothing due any more: no second check, no second notice.
    assert counts == BreachCheckCounts()
    assert Notification.objects.filter(kind="sla_breach").count() == 1
