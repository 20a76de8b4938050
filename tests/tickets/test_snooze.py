"""Pending until a time (snooze): set, shown, cleared, reopened by the minute's sweep once, SLA intact.

Time is moved by passing ``at``/``now`` to the services, never waited for.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from django.utils import timezone
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from servicedesk.sla.models import BusinessCalendar, SlaPolicy, SlaTarget
from servicedesk.tickets.events import Actor
from servicedesk.tickets.inbound import InboundMessage, SenderIdentity
from servicedesk.tickets.models import Ticket, TicketEvent, TicketTarget
from servicedesk.tickets.services.followups import (
    InvalidPendingUntil,
    ticket_pending_until_set,
    ticket_snooze,
    ticket_snoozes_due_reopen,
)
from servicedesk.tickets.services.intake import inbound_message_receive
from servicedesk.tickets.services.tickets import (
    InvalidStatusTransition,
    ticket_delete_set,
    ticket_status_change,
)
from servicedesk.tickets.tasks import snoozes_due_reopen_task
from tests.factories import AgentFactory, QueueFactory, ticket_make

pytestmark = pytest.mark.django_db

T0 = datetime(2025, 10, 20, 9, 0, tzinfo=UTC)


def hours(n: float) -> timedelta:
    return timedelta(hours=n)


@pytest.fixture
def ticket(customer, queue):
    return ticket_make(customer=customer, queue=queue, subject="Printer", channel="email", at=T0)


def events(ticket, *kinds: str) -> list[tuple[str, object, object, str, int | None]]:
    return [
        (e.kind, e.before, e.after, e.source, e.actor_user_id)
        for e in TicketEvent.objects.filter(ticket=ticket, kind__in=kinds).order_by("at", "id")
    ]


def reload(ticket) -> Ticket:
    return Ticket.objects.get(pk=ticket.pk)


def write_again(ticket, external_id: str, at: datetime | None = None):
    return inbound_message_receive(
        inbound=InboundMessage(
            channel="web",
            external_id=external_id,
            sender=SenderIdentity(kind="email", value="alice@example.com", name="Alice Byrne"),
            text="Any news?",
            ticket_reference=ticket.reference,
            reference_trusted=True,
            received_at=at,
        )
    )


# --- Setting and clearing ----------------------------------------------------------


def test_snoozing_moves_to_pending_with_the_instant_and_records_both(ticket, agent):
    until = T0 + hours(5)
    ticket_snooze(ticket=ticket, until=until, actor=Actor.agent(agent), at=T0 + hours(1))
    ticket = reload(ticket)
    assert (ticket.status, ticket.pending_until) == ("pending", until)
    assert events(ticket, "status", "pending_until") == [
        ("status", "new", "pending", "ui", agent.pk),
        ("pending_until", None, {"until": until.isoformat(), "reason": "agent"}, "ui", agent.pk),
    ]


def test_snoozing_a_pending_ticket_again_only_moves_the_instant(ticket, agent):
    actor = Actor.agent(agent)
    ticket_snooze(ticket=ticket, until=T0 + hours(5), actor=actor, at=T0 + hours(1))
    ticket_snooze(ticket=ticket, until=T0 + hours(8), actor=actor, at=T0 + hours(2))
    assert reload(ticket).pending_until == T0 + hours(8)
    assert [e[0] for e in events(ticket, "status", "pending_until")] == ["status", "pending_until", "pending_until"]
    assert events(ticket, "pending_until")[1][1:3] == (
        (T0 + hours(5)).isoformat(),
        {"until": (T0 + hours(8)).isoformat(), "reason": "agent"},
    )


def test_clearing_leaves_the_ticket_pending_and_the_sweep_then_leaves_it_alone(ticket, agent):
    actor = Actor.agent(agent)
    ticket_snooze(ticket=ticket, until=T0 + hours(5), actor=actor, at=T0 + hours(1))
    ticket_pending_until_set(ticket=ticket, until=None, actor=actor, at=T0 + hours(2))
    ticket = reload(ticket)
    assert (ticket.status, ticket.pending_until) == ("pending", None)
    assert events(ticket, "pending_until")[-1][1:3] == ((T0 + hours(5)).isoformat(), {"until": None, "reason": "agent"})
    assert ticket_snoozes_due_reopen(now=T0 + hours(6)) == 0
    assert reload(ticket).status == "pending"
    # Clearing what is not set writes nothing.
    count = TicketEvent.objects.filter(ticket=ticket).count()
    ticket_pending_until_set(ticket=ticket, until=None, actor=actor, at=T0 + hours(7))
    assert TicketEvent.objects.filter(ticket=ticket).count() == count


@pytest.mark.parametrize("until", [T0, T0 - hours(1)])
def test_an_instant_not_in_the_future_is_refused_with_nothing_written(ticket, agent, until):
    before = TicketEvent.objects.filter(ticket=ticket).count()
    with pytest.raises(InvalidPendingUntil) as refused:
        ticket_snooze(ticket=ticket, until=until, actor=Actor.agent(agent), at=T0)
    assert refused.value.field == "pending_until"
    ticket = reload(ticket)
    assert (ticket.status, ticket.pending_until) == ("new", None)
    assert TicketEvent.objects.filter(ticket=ticket).count() == before


def test_only_a_pending_ticket_is_given_an_instant(ticket, agent):
    ticket_status_change(ticket=ticket, status="open", actor=Actor.agent(agent), at=T0)
    with pytest.raises(InvalidPendingUntil):
        ticket_pending_until_set(ticket=ticket, until=T0 + hours(5), actor=Actor.agent(agent), at=T0 + hours(1))
    assert (reload(ticket).status, reload(ticket).pending_until) == ("open", None)


def test_a_closed_ticket_cannot_be_snoozed(ticket, agent):
    ticket_status_change(ticket=ticket, status="closed", actor=Actor.agent(agent), at=T0)
    with pytest.raises(InvalidStatusTransition):
        ticket_snooze(ticket=ticket, until=T0 + hours(5), actor=Actor.agent(agent), at=T0 + hours(1))
    assert (reload(ticket).status, reload(ticket).pending_until) == ("closed", None)


def test_any_status_but_pending_ends_the_snooze(ticket, agent):
    ticket_snooze(ticket=ticket, until=T0 + hours(5), actor=Actor.agent(agent), at=T0 + hours(1))
    ticket_status_change(ticket=ticket, status="on_hold", actor=Actor.agent(agent), at=T0 + hours(2))
    assert (reload(ticket).status, reload(ticket).pending_until) == ("on_hold", None)
    assert ticket_snoozes_due_reopen(now=T0 + hours(6)) == 0
    assert reload(ticket).status == "on_hold"


# --- The sweep ------------------------------------------------------------------------


def test_the_sweep_reopens_when_the_time_has_come_and_not_before(ticket, agent):
    until = T0 + hours(5)
    ticket_snooze(ticket=ticket, until=until, actor=Actor.agent(agent), at=T0 + hours(1))
    assert ticket_snoozes_due_reopen(now=until - timedelta(seconds=1)) == 0
    assert reload(ticket).status == "pending"

    assert ticket_snoozes_due_reopen(now=until + timedelta(seconds=30)) == 1
    ticket = reload(ticket)
    assert (ticket.status, ticket.pending_until) == ("open", None)
    # The system's reopen: the reason first, then the status service's move.
    assert events(ticket, "status", "pending_until")[-2:] == [
        ("pending_until", until.isoformat(), {"until": None, "reason": "until_reached"}, "system", None),
        ("status", "pending", "open", "system", None),
    ]
    assert TicketEvent.objects.filter(ticket=ticket, kind="status").last().at == until + timedelta(seconds=30)


def test_the_sweep_run_twice_reopens_once(ticket, agent):
    ticket_snooze(ticket=ticket, until=T0 + hours(5), actor=Actor.agent(agent), at=T0 + hours(1))
    assert ticket_snoozes_due_reopen(now=T0 + hours(6)) == 1
    assert ticket_snoozes_due_reopen(now=T0 + hours(6)) == 0
    assert ticket_snoozes_due_reopen(now=T0 + hours(7)) == 0
    assert TicketEvent.objects.filter(ticket=ticket, kind="status", source="system").count() == 1
    assert reload(ticket).status == "open"


def test_the_beat_task_reopens_what_is_due_now_once(ticket, agent):
    now = timezone.now()
    ticket_snooze(ticket=ticket, until=now - hours(1), actor=Actor.agent(agent), at=now - hours(2))
    later = ticket_make(subject="Later", at=now - hours(2))
    ticket_snooze(ticket=later, until=now + hours(1), actor=Actor.agent(agent), at=now - hours(2))
    assert snoozes_due_reopen_task.apply().get() == 1
    assert snoozes_due_reopen_task.apply().get() == 0
    assert reload(ticket).status == "open"
    assert (reload(later).status, reload(later).pending_until) == ("pending", now + hours(1))


def test_a_deleted_ticket_loses_its_instant_but_is_not_reopened(ticket, agent, manager):
    ticket_snooze(ticket=ticket, until=T0 + hours(5), actor=Actor.agent(agent), at=T0 + hours(1))
    ticket_delete_set(ticket=ticket, deleted=True, actor=Actor.agent(manager), at=T0 + hours(2))
    assert ticket_snoozes_due_reopen(now=T0 + hours(6)) == 1
    ticket = reload(ticket)
    assert (ticket.status, ticket.pending_until) == ("pending", None)


def test_a_customer_reply_during_the_snooze_reopens_and_clears_the_instant(ticket, agent):
    ticket_snooze(ticket=ticket, until=T0 + hours(5), actor=Actor.agent(agent), at=T0 + hours(1))
    write_again(ticket, "reply-1", at=T0 + hours(2))
    ticket = reload(ticket)
    assert (ticket.status, ticket.pending_until) == ("open", None)
    assert events(ticket, "status")[-1][:4] == ("status", "pending", "open", "intake")
    # Nothing is left for the sweep.
    assert ticket_snoozes_due_reopen(now=T0 + hours(6)) == 0
    assert not TicketEvent.objects.filter(ticket=ticket, source="system", kind="status").exists()


# --- The SLA: pending pauses, the sweep's reopen resumes -------------------------


@pytest.fixture
def standard(db):
    calendar = BusinessCalendar.objects.create(slug="utc", name="UTC", time_zone="UTC", is_default=True)
    policy = SlaPolicy.objects.create(slug="standard", name="Standard", rank=10, calendar=calendar, match={})
    SlaTarget.objects.create(
        policy=policy, priority="normal", first_reply_minutes=60, resolution_minutes=240, hours="calendar"
    )
    return policy


def sla_events(ticket, target: str) -> list[tuple[str, str, datetime]]:
    return [
        (e.kind, e.after["state"], e.at)
        for e in TicketEvent.objects.filter(ticket=ticket, kind__startswith="sla_").order_by("at", "id")
        if e.after["target"] == target
    ]


def test_the_snooze_pauses_the_resolution_target_and_the_sweeps_reopen_resumes_it(standard, ticket, agent):
    ticket.refresh_from_db()
    resolution = TicketTarget.objects.get(ticket=ticket, kind="resolution")
    assert (resolution.state, resolution.due_at) == ("active", T0 + hours(4))

    ticket_snooze(ticket=ticket, until=T0 + hours(3), actor=Actor.agent(agent), at=T0 + hours(1))
    resolution.refresh_from_db()
    assert (resolution.state, resolution.due_at, resolution.elapsed_seconds) == ("paused", None, 3600.0)
    # Pending does not pause the first reply.
    assert TicketTarget.objects.get(ticket=ticket, kind="first_reply").state == "active"

    assert ticket_snoozes_due_reopen(now=T0 + hours(3)) == 1
    resolution.refresh_from_db()
    # An hour measured before the snooze, three left from the reopen: due at +6 h.
    assert (resolution.state, resolution.due_at) == ("active", T0 + hours(6))
    assert sla_events(ticket, "resolution") == [
        ("sla_applied", "active", T0),
        ("sla_paused", "paused", T0 + hours(1)),
        ("sla_resumed", "active", T0 + hours(3)),
    ]
    # The same figures as a pending spell ended by hand.
    other = ticket_make(subject="By hand", channel="email", at=T0)
    ticket_status_change(ticket=other, status="pending", actor=Actor.agent(agent), at=T0 + hours(1))
    ticket_status_change(ticket=other, status="open", actor=Actor.agent(agent), at=T0 + hours(3))
    by_hand = TicketTarget.objects.get(ticket=other, kind="resolution")
    assert (by_hand.state, by_hand.due_at) == (resolution.state, resolution.due_at)


def test_a_customer_reply_during_the_snooze_resumes_the_target_at_the_reply(standard, ticket, agent):
    ticket_snooze(ticket=ticket, until=T0 + hours(5), actor=Actor.agent(agent), at=T0 + hours(1))
    write_again(ticket, "reply-2", at=T0 + hours(2))
    resolution = TicketTarget.objects.get(ticket=ticket, kind="resolution")
    assert (resolution.state, resolution.due_at) == ("active", T0 + hours(5))
    assert ticket_snoozes_due_reopen(now=T0 + hours(6)) == 0
    assert [kind for kind, _state, _at in sla_events(ticket, "resolution")] == [
        "sla_applied",
        "sla_paused",
        "sla_resumed",
    ]


# --- The API: PATCH with pending_until ----------------------------------------------


@pytest.fixture
def api(agent):
    return APIClient(HTTP_AUTHORIZATION=f"Token {Token.objects.get_or_create(user=agent)[0].key}")


def future(hours_ahead: float = 5) -> datetime:
    return (timezone.now() + hours(hours_ahead)).replace(microsecond=0)


def test_the_api_snoozes_with_status_pending_and_answers_the_instant(api, ticket):
    until = future()
    answer = api.patch(
        f"/api/v1/tickets/{ticket.reference}/", {"status": "pending", "pending_until": until.isoformat()}, format="json"
    )
    assert answer.status_code == 200, answer.content
    assert answer.json()["status"] == "pending"
    assert datetime.fromisoformat(answer.json()["pending_until"]) == until
    assert reload(ticket).pending_until == until
    # And clears it with null, the ticket staying pending.
    answer = api.patch(f"/api/v1/tickets/{ticket.reference}/", {"pending_until": None}, format="json")
    assert answer.status_code == 200
    assert (answer.json()["status"], answer.json()["pending_until"]) == ("pending", None)


@pytest.mark.parametrize(
    "body",
    [
        {"status": "pending", "pending_until": "2020-01-01T00:00:00Z"},
        {"status": "open", "pending_until": "FUTURE"},
        {"pending_until": "FUTURE"},
        {"status": "pending", "pending_until": "tomorrow"},
        {"status": "pending", "pending_until": 12},
    ],
)
def test_the_api_refuses_bad_instants_with_a_field_error_and_writes_nothing(api, ticket, body):
    body = {key: (future().isoformat() if value == "FUTURE" else value) for key, value in body.items()}
    before = TicketEvent.objects.filter(ticket=ticket).count()
    answer = api.patch(f"/api/v1/tickets/{ticket.reference}/", body, format="json")
    assert answer.status_code == 400, answer.content
    assert "pending_until" in answer.json()
    ticket = reload(ticket)
    assert (ticket.status, ticket.pending_until) == ("new", None)
    assert TicketEvent.objects.filter(ticket=ticket).count() == before


def test_the_api_hides_tickets_of_other_queues(ticket):
    stranger = AgentFactory(username="sam", queues=[QueueFactory(slug="billing")])
    api = APIClient(HTTP_AUTHORIZATION=f"Token {Token.objects.get_or_create(user=stranger)[0].key}")
    answer = api.patch(
        f"/api/v1/tickets/{ticket.reference}/",
        {"status": "pending", "pending_until": future().isoformat()},
        format="json",
    )
    assert answer.status_code == 404
    assert reload(ticket).pending_until is None


# --- The pages ----------------------------------------------------------------------


def test_the_ticket_page_and_the_inbox_show_the_instant_and_the_agent_clears_it(client, agent, ticket):
    agent.time_zone = "Europe/Dublin"
    agent.save(update_fields=["time_zone"])
    client.force_login(agent)
    # 10:30 in Dublin, typed without a zone, is the agent's own time.
    day = (timezone.now() + timedelta(days=3)).date()
    answer = client.post(f"/desk/notifications/tickets/{ticket.reference}/pending-until/", {"until": f"{day}T10:30"})
    assert answer.status_code == 302 and answer.url == f"/desk/tickets/{ticket.reference}/"
    ticket = reload(ticket)
    assert ticket.status == "pending"
    local = ticket.pending_until.astimezone(ZoneInfo("Europe/Dublin"))
    assert (local.date(), local.hour, local.minute) == (day, 10, 30)

    page = client.get(f"/desk/tickets/{ticket.reference}/").content.decode()
    assert '<p class="pending-until">' in page and "Pending; reopens by itself at" in page
    assert f"{day} 10:30" in page
    inbox = client.get("/desk/").content.decode()
    assert 'class="muted pending-until"' in inbox and f"until {day} 10:30" in inbox

    answer = client.post(f"/desk/notifications/tickets/{ticket.reference}/pending-until/", {"clear": "1"})
    assert answer.status_code == 302
    assert (reload(ticket).status, reload(ticket).pending_until) == ("pending", None)
    assert '<p class="pending-until">' not in client.get(f"/desk/tickets/{ticket.reference}/").content.decode()


@pytest.mark.parametrize("value", ["2020-01-01T10:00", "not a time", ""])
def test_the_page_refuses_a_bad_time_with_its_reason(client, agent, ticket, value):
    client.force_login(agent)
    answer = client.post(
        f"/desk/notifications/tickets/{ticket.reference}/pending-until/", {"until": value}, follow=True
    )
    assert answer.status_code == 200
    assert answer.redirect_chain == [(f"/desk/tickets/{ticket.reference}/", 302)]
    shown = answer.content.decode()
    assert "must be in the future" in shown or "Enter a valid date/time" in shown or "This field is required" in shown
    assert (reload(ticket).status, reload(ticket).pending_until) == ("new", None)


def test_the_page_hides_tickets_of_other_queues(client, ticket):
    stranger = AgentFactory(username="sam", queues=[QueueFactory(slug="billing")])
    client.force_login(stranger)
    answer = client.post(
        f"/desk/notifications/tickets/{ticket.reference}/pending-until/",
        {"until": f"{(timezone.now() + timedelta(days=3)).date()}T10:30"},
    )
    assert answer.status_code == 404
    assert reload(ticket).pending_until is None
