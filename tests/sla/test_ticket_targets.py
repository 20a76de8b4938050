"""SLA targets applied to tickets: states, due instants and events (docs/metrics.md#sla)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from servicedesk.sla.models import BusinessCalendar, Holiday, OpeningWindow, SlaPolicy, SlaTarget
from servicedesk.tickets.events import Actor
from servicedesk.tickets.models import Queue, Ticket, TicketEvent, TicketTarget
from servicedesk.tickets.services.replies import ticket_note_create, ticket_reply_create
from servicedesk.tickets.services.sla import ticket_sla_refresh
from servicedesk.tickets.services.tickets import (
    ticket_create,
    ticket_merge,
    ticket_priority_change,
    ticket_queue_change,
    ticket_status_change,
)
from tests.factories import CustomerFactory

pytestmark = pytest.mark.django_db

# Monday 20 October 2025, 10:00 in Dublin (IST, UTC+1).
MONDAY_10 = datetime(2025, 10, 20, 9, 0, tzinfo=UTC)
SYSTEM = Actor.system()


def hours(n: float) -> timedelta:
    return timedelta(hours=n)


@pytest.fixture
def dublin(db):
    calendar = BusinessCalendar.objects.create(slug="dublin", name="Dublin", time_zone="Europe/Dublin", is_default=True)
    for weekday in range(5):
        OpeningWindow.objects.create(calendar=calendar, weekday=weekday, start_minute=9 * 60, end_minute=17 * 60)
    # Monday 27 October 2025 is a bank holiday; the clocks go back on Sunday 26 October.
    Holiday.objects.create(calendar=calendar, date=date(2025, 10, 27), name="October bank holiday")
    return calendar


@pytest.fixture
def policy(dublin):
    policy = SlaPolicy.objects.create(slug="standard", name="Standard", rank=10, calendar=dublin, match={})
    SlaTarget.objects.create(
        policy=policy, priority="normal", first_reply_minutes=120, resolution_minutes=8 * 60, hours="business"
    )
    SlaTarget.objects.create(
        policy=policy, priority="urgent", first_reply_minutes=30, resolution_minutes=4 * 60, hours="calendar"
    )
    return policy


@pytest.fixture
def customer(db):
    return CustomerFactory(email="alice@example.com")


def new_ticket(customer, queue, *, at=MONDAY_10, **kwargs):
    return ticket_create(
        customer=customer,
        subject="Invoice",
        channel="email",
        actor=Actor.of_customer(customer),
        queue=queue,
        at=at,
        **kwargs,
    )


def targets(ticket) -> dict[str, TicketTarget]:
    return {target.kind: target for target in TicketTarget.objects.filter(ticket=ticket)}


def sla_events(ticket) -> list[tuple[str, str, str, datetime]]:
    return [
        (event.kind, event.after["target"], event.after["state"], event.at)
        for event in TicketEvent.objects.filter(ticket=ticket, kind__startswith="sla_").order_by("at", "id")
    ]


def test_targets_applied_on_creation_with_policy_and_calendar_snapshot(queue, policy, customer):
    ticket = new_ticket(customer, queue)
    first, resolution = targets(ticket)["first_reply"], targets(ticket)["resolution"]
    assert (first.state, first.minutes, first.hours, first.priority) == ("active", 120, "business", "normal")
    assert first.due_at == MONDAY_10 + hours(2)
    assert first.warning_at == MONDAY_10 + hours(1.5)
    assert first.next_check_at == first.warning_at
    # Eight business hours from Monday 10:00: Monday 7 h, then one hour on Tuesday.
    assert resolution.due_at == datetime(2025, 10, 21, 9, 0, tzinfo=UTC)
    ticket.refresh_from_db()
    assert (ticket.sla_policy, ticket.sla_calendar, ticket.sla_due_at) == (policy, policy.calendar, first.due_at)
    assert sla_events(ticket) == [
        ("sla_applied", "first_reply", "active", MONDAY_10),
        ("sla_applied", "resolution", "active", MONDAY_10),
    ]
    applied = TicketEvent.objects.filter(ticket=ticket, kind="sla_applied").first()
    assert applied.after == {
        "target": "first_reply",
        "state": "active",
        "policy": "standard",
        "calendar": "dublin",
        "priority": "normal",
        "minutes": 120,
        "hours": "business",
        "due_at": "2025-10-20T11:00:00+00:00",
        "elapsed_seconds": 0.0,
    }


def test_refresh_is_idempotent(queue, policy, customer):
    ticket = new_ticket(customer, queue)
    before = TicketEvent.objects.count()
    ticket_sla_refresh(ticket=ticket, at=MONDAY_10 + hours(1))
    ticket_sla_refresh(ticket=ticket, at=MONDAY_10 + hours(1))
    assert TicketEvent.objects.count() == before
    assert targets(ticket)["first_reply"].evaluated_at == MONDAY_10


def test_no_policy_no_targets(queue, customer):
    ticket = new_ticket(customer, queue)
    assert not TicketTarget.objects.exists()
    ticket.refresh_from_db()
    assert (ticket.sla_policy, ticket.sla_due_at) == (None, None)


def test_outbound_spam_and_deleted_tickets_carry_no_targets(queue, policy, customer):
    new_ticket(customer, queue, initiator="outbound")
    new_ticket(customer, queue, is_spam=True)
    new_ticket(customer, queue, is_deleted=True)
    assert not TicketTarget.objects.exists()


def test_reply_exactly_at_the_target_is_achieved(queue, policy, customer, agent):
    ticket = new_ticket(customer, queue)
    ticket_reply_create(ticket=ticket, author=agent, text="Hello", actor=Actor.agent(agent), at=MONDAY_10 + hours(2))
    first = targets(ticket)["first_reply"]
    assert (first.state, first.elapsed_seconds, first.fulfilled_at) == ("achieved", 7200.0, MONDAY_10 + hours(2))
    assert (first.due_at, first.next_check_at, first.breached_at) == (None, None, None)
    assert sla_events(ticket)[-1] == ("sla_fulfilled", "first_reply", "achieved", MONDAY_10 + hours(2))
    ticket.refresh_from_db()
    assert ticket.sla_due_at == targets(ticket)["resolution"].due_at


def test_a_note_is_not_a_reply(queue, policy, customer, agent):
    ticket = new_ticket(customer, queue)
    ticket_note_create(ticket=ticket, author=agent, text="Looking", actor=Actor.agent(agent), at=MONDAY_10 + hours(1))
    assert targets(ticket)["first_reply"].state == "active"


def test_one_microsecond_late_is_breached_and_the_breach_is_recorded_once(queue, policy, customer, agent):
    ticket = new_ticket(customer, queue)
    due = MONDAY_10 + hours(2)
    # The breach check runs after the due instant passes.
    ticket_sla_refresh(ticket=Ticket.objects.get(pk=ticket.pk), at=due + timedelta(seconds=30))
    first = targets(ticket)["first_reply"]
    assert (first.state, first.breached_at, first.next_check_at) == ("breached", due, due)
    ticket_reply_create(
        ticket=ticket, author=agent, text="Sorry", actor=Actor.agent(agent), at=due + timedelta(microseconds=1)
    )
    first = targets(ticket)["first_reply"]
    assert (first.state, first.fulfilled_at, first.next_check_at) == ("breached", due + timedelta(microseconds=1), None)
    assert [e for e in sla_events(ticket) if e[1] == "first_reply"] == [
        ("sla_applied", "first_reply", "active", MONDAY_10),
        ("sla_breached", "first_reply", "breached", due),
        ("sla_fulfilled", "first_reply", "breached", due + timedelta(microseconds=1)),
    ]


def test_late_reply_before_any_check_records_breach_and_fulfilment(queue, policy, customer, agent):
    ticket = new_ticket(customer, queue)
    ticket_reply_create(ticket=ticket, author=agent, text="Hi", actor=Actor.agent(agent), at=MONDAY_10 + hours(3))
    first = targets(ticket)["first_reply"]
    assert (first.state, first.breached_at) == ("breached", MONDAY_10 + hours(2))
    assert first.next_check_at is None  # a fulfilled target needs no breach notice
    assert [e[0] for e in sla_events(ticket) if e[1] == "first_reply"] == [
        "sla_applied",
        "sla_breached",
        "sla_fulfilled",
    ]


def test_pending_pauses_the_resolution_clock_and_resuming_moves_the_due_instant(queue, policy, customer):
    ticket = new_ticket(customer, queue)
    ticket_status_change(ticket=ticket, status="pending", actor=SYSTEM, at=MONDAY_10 + hours(1))
    resolution = targets(ticket)["resolution"]
    assert (resolution.state, resolution.due_at, resolution.next_check_at) == ("paused", None, None)
    assert resolution.elapsed_seconds == 3600.0
    # Pending does not pause the first reply.
    assert targets(ticket)["first_reply"].state == "active"
    # Back on Tuesday 10:00 IST: 7 business hours left, due Tuesday 17:00 IST.
    ticket_status_change(ticket=ticket, status="open", actor=SYSTEM, at=MONDAY_10 + hours(24))
    resolution = targets(ticket)["resolution"]
    assert resolution.state == "active"
    assert resolution.due_at == datetime(2025, 10, 21, 16, 0, tzinfo=UTC)
    assert [e[:3] for e in sla_events(ticket) if e[1] == "resolution"] == [
        ("sla_applied", "resolution", "active"),
        ("sla_paused", "resolution", "paused"),
        ("sla_resumed", "resolution", "active"),
    ]


def test_on_hold_does_not_pause(queue, policy, customer):
    ticket = new_ticket(customer, queue)
    ticket_status_change(ticket=ticket, status="on_hold", actor=SYSTEM, at=MONDAY_10 + hours(1))
    assert targets(ticket)["resolution"].due_at == datetime(2025, 10, 21, 9, 0, tzinfo=UTC)


def test_solve_fulfils_and_reopen_reactivates_the_resolution_target(queue, policy, customer, agent):
    ticket = new_ticket(customer, queue)
    ticket_reply_create(ticket=ticket, author=agent, text="Done", actor=Actor.agent(agent), at=MONDAY_10 + hours(1))
    ticket_status_change(ticket=ticket, status="solved", actor=SYSTEM, at=MONDAY_10 + hours(2))
    resolution = targets(ticket)["resolution"]
    assert (resolution.state, resolution.fulfilled_at, resolution.elapsed_seconds) == (
        "achieved",
        MONDAY_10 + hours(2),
        7200.0,
    )
    ticket.refresh_from_db()
    assert ticket.sla_due_at is None
    # Reopened Tuesday 10:00 IST: the solved night does not count; 6 hours left.
    ticket_status_change(ticket=ticket, status="open", actor=SYSTEM, at=MONDAY_10 + hours(24))
    resolution = targets(ticket)["resolution"]
    assert (resolution.state, resolution.fulfilled_at) == ("active", None)
    assert resolution.due_at == MONDAY_10 + hours(30)
    # The first reply stays achieved with its original terms.
    assert targets(ticket)["first_reply"].state == "achieved"
    assert [e[:3] for e in sla_events(ticket) if e[1] == "resolution"] == [
        ("sla_applied", "resolution", "active"),
        ("sla_fulfilled", "resolution", "achieved"),
        ("sla_resumed", "resolution", "active"),
    ]
    # Solved again past the target: judged at the last solve.
    ticket_status_change(ticket=ticket, status="solved", actor=SYSTEM, at=MONDAY_10 + hours(31))
    resolution = targets(ticket)["resolution"]
    assert (resolution.state, resolution.breached_at, resolution.elapsed_seconds) == (
        "breached",
        MONDAY_10 + hours(30),
        9 * 3600.0,
    )


def test_solved_to_closed_is_not_a_new_solve(queue, policy, customer):
    ticket = new_ticket(customer, queue)
    ticket_status_change(ticket=ticket, status="solved", actor=SYSTEM, at=MONDAY_10 + hours(1))
    ticket_status_change(ticket=ticket, status="closed", actor=SYSTEM, at=MONDAY_10 + hours(100))
    assert targets(ticket)["resolution"].fulfilled_at == MONDAY_10 + hours(1)


def test_solved_without_a_reply_cancels_the_first_reply_target(queue, policy, customer):
    ticket = new_ticket(customer, queue)
    ticket_status_change(ticket=ticket, status="solved", actor=SYSTEM, at=MONDAY_10 + hours(1))
    first = targets(ticket)["first_reply"]
    assert (first.state, first.due_at, first.next_check_at) == ("cancelled", None, None)
    assert ("sla_cancelled", "first_reply", "cancelled", MONDAY_10 + hours(1)) in sla_events(ticket)
    # Reopened, unanswered: the first-reply target counts again, and is already past due.
    ticket_status_change(ticket=ticket, status="open", actor=SYSTEM, at=MONDAY_10 + hours(3))
    first = targets(ticket)["first_reply"]
    assert (first.state, first.breached_at) == ("breached", MONDAY_10 + hours(2))


def test_priority_change_moves_the_due_instant(queue, policy, customer):
    ticket = new_ticket(customer, queue)
    ticket_priority_change(ticket=ticket, priority="urgent", actor=SYSTEM, at=MONDAY_10 + timedelta(minutes=10))
    first = targets(ticket)["first_reply"]
    assert (first.priority, first.minutes, first.hours) == ("urgent", 30, "calendar")
    assert first.due_at == MONDAY_10 + timedelta(minutes=30)
    assert targets(ticket)["resolution"].due_at == MONDAY_10 + hours(4)
    ticket.refresh_from_db()
    assert ticket.sla_due_at == MONDAY_10 + timedelta(minutes=30)
    applied = [
        e for e in TicketEvent.objects.filter(ticket=ticket, kind="sla_applied") if e.after["target"] == "first_reply"
    ][-1]
    assert applied.before["priority"] == "normal" and applied.after["priority"] == "urgent"
    assert applied.before["due_at"] == "2025-10-20T11:00:00+00:00"
    assert applied.after["due_at"] == "2025-10-20T09:30:00+00:00"


def test_priority_after_fulfilment_does_not_change_the_fulfilled_target(queue, policy, customer, agent):
    ticket = new_ticket(customer, queue)
    ticket_reply_create(ticket=ticket, author=agent, text="Hi", actor=Actor.agent(agent), at=MONDAY_10 + hours(1))
    ticket_priority_change(ticket=ticket, priority="urgent", actor=SYSTEM, at=MONDAY_10 + hours(1.5))
    first = targets(ticket)["first_reply"]
    # Fulfilled at normal priority (120 min): achieved, although urgent allows 30 min.
    assert (first.priority, first.minutes, first.state) == ("normal", 120, "achieved")
    assert targets(ticket)["resolution"].priority == "urgent"


def test_policy_chosen_again_when_the_queue_changes(queue, policy, customer, dublin):
    vip = Queue.objects.create(slug="vip", name="VIP")
    fast = SlaPolicy.objects.create(slug="vip", name="VIP", rank=1, calendar=dublin, match={"queue": "vip"})
    SlaTarget.objects.create(policy=fast, priority="normal", first_reply_minutes=15, hours="calendar")
    ticket = new_ticket(customer, queue)
    ticket_queue_change(ticket=ticket, queue=vip, actor=SYSTEM, at=MONDAY_10 + timedelta(minutes=5))
    current = targets(ticket)
    assert (current["first_reply"].policy, current["first_reply"].due_at) == (fast, MONDAY_10 + timedelta(minutes=15))
    # The VIP policy sets no resolution target.
    assert current["resolution"].state == "cancelled"
    ticket.refresh_from_db()
    assert ticket.sla_policy == fast


def test_merged_source_targets_are_cancelled(queue, policy, customer):
    source = new_ticket(customer, queue)
    target = new_ticket(customer, queue)
    ticket_merge(source=source, target=target, actor=SYSTEM, at=MONDAY_10 + hours(1))
    assert {t.state for t in targets(source).values()} == {"cancelled"}
    source.refresh_from_db()
    assert source.sla_due_at is None
    assert {t.state for t in targets(target).values()} == {"active"}


def test_resolution_across_the_clock_change_and_a_bank_holiday(queue, policy, customer):
    # Friday 24 October 2025, 13:00 IST: 4 h on Friday; the weekend, the clock change
    # and the Monday holiday are closed; the other 4 h on Tuesday from 09:00 GMT.
    friday = datetime(2025, 10, 24, 12, 0, tzinfo=UTC)
    ticket = new_ticket(customer, queue, at=friday)
    assert targets(ticket)["resolution"].due_at == datetime(2025, 10, 28, 13, 0, tzinfo=UTC)
    # Pending from Friday 16:00 IST to Tuesday 10:00 GMT: 3 h counted before, 5 h left.
    ticket_status_change(ticket=ticket, status="pending", actor=SYSTEM, at=friday + hours(3))
    ticket_status_change(ticket=ticket, status="open", actor=SYSTEM, at=datetime(2025, 10, 28, 10, 0, tzinfo=UTC))
    assert targets(ticket)["resolution"].due_at == datetime(2025, 10, 28, 15, 0, tzinfo=UTC)


def test_created_while_closed_and_answered_before_opening_is_within_target(queue, policy, customer, agent):
    saturday = datetime(2025, 10, 25, 10, 0, tzinfo=UTC)
    ticket = new_ticket(customer, queue, at=saturday)
    # Two business hours from a closed Saturday: Tuesday 11:00 GMT (Monday is the holiday).
    assert targets(ticket)["first_reply"].due_at == datetime(2025, 10, 28, 11, 0, tzinfo=UTC)
    ticket_reply_create(ticket=ticket, author=agent, text="Hi", actor=Actor.agent(agent), at=saturday + hours(30))
    first = targets(ticket)["first_reply"]
    assert (first.state, first.elapsed_seconds) == ("achieved", 0.0)


def test_policy_fill_snapshots_the_first_matching_policy_by_rank(queue, policy, customer, dublin):
    from servicedesk.tickets.services.sla import tickets_sla_policy_fill

    SlaPolicy.objects.create(slug="chat", name="Chat", rank=1, calendar=dublin, match={"channel": ["chat"]})
    email_ticket = new_ticket(customer, queue)
    chat_ticket = ticket_create(
        customer=customer, subject="Hi", channel="chat", actor=Actor.of_customer(customer), queue=queue, at=MONDAY_10
    )
    outbound = new_ticket(customer, queue, initiator="outbound")
    # As imported history leaves them: no snapshot.
    Ticket.objects.update(sla_policy=None, sla_calendar=None)
    assert tickets_sla_policy_fill() == 2
    assert dict(Ticket.objects.values_list("pk", "sla_policy__slug")) == {
        email_ticket.pk: "standard",
        chat_ticket.pk: "chat",
        outbound.pk: None,
    }
    assert tickets_sla_policy_fill() == 0
