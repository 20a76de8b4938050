"""Messages and sessions that a merge or a split moves count on the ticket they were written on
(docs/metrics.md#merges): a report as of an instant before the move is the same after it, and the
target of a merge gains none of the duplicate's replies or sessions."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any, cast

import pytest
from django.utils import timezone

from reports.models import Granularity
from reports.services import report_compute
from reports.snapshots import snapshot_compute, snapshots_stale
from servicedesk.accounts.models import User
from servicedesk.tickets.events import Actor
from servicedesk.tickets.models import Customer, Message, MessageKind, OperatingCost, Queue, Session, Ticket
from servicedesk.tickets.services.history import ticket_customer_message_record
from servicedesk.tickets.services.merging import ticket_merge, ticket_split
from servicedesk.tickets.services.replies import ticket_reply_create
from servicedesk.tickets.services.tickets import ticket_status_change
from tests.factories import AgentFactory, ticket_make
from tests.reports.delivery_helpers import calendar_make
from tests.reports.quality_reference import fcr_figures

pytestmark = pytest.mark.django_db

# Monday 3 March 2025, 09:00 UTC; the reports below use a 24x7 UTC calendar.
T0 = datetime(2025, 3, 3, 9, 0, tzinfo=UTC)
DAY = date(2025, 3, 3)
WEEK = timedelta(hours=168)


def h(hours: float) -> datetime:
    return T0 + timedelta(hours=hours)


class Desk:
    """Writes conversations through the services, at the instants given."""

    def __init__(self, queue: Queue) -> None:
        self.queue = queue
        self.agent = cast(User, AgentFactory(username="ann", queues=[queue]))
        self.actor = Actor.agent(self.agent)
        self._messages = 0

    def ticket(self, customer: Customer, at: datetime, *, channel: str = "email") -> Ticket:
        ticket = ticket_make(customer=customer, queue=self.queue, channel=channel, at=at)
        self.customer_writes(ticket, at)
        return ticket

    def customer_writes(self, ticket: Ticket, at: datetime) -> Message:
        self._messages += 1
        return ticket_customer_message_record(
            ticket=ticket, customer=ticket.customer, text="About my invoice.", at=at, external_id=f"m{self._messages}"
        )

    def reply(self, ticket: Ticket, at: datetime, status: str | None = None) -> None:
        ticket_reply_create(ticket=ticket, author=self.agent, text="Here it is.", at=at, deliver=False, status=status)

    def chat_session(self, ticket: Ticket, *, answered: datetime, ended: datetime) -> Session:
        return Session.objects.create(
            channel="chat",
            customer=ticket.customer,
            ticket=ticket,
            agent=self.agent,
            requested_at=answered - timedelta(seconds=20),
            answered_at=answered,
            ended_at=ended,
        )

    def merge(self, source: Ticket, target: Ticket, at: datetime) -> None:
        ticket_merge(source=source, target=target, actor=self.actor, at=at)


@pytest.fixture
def desk(queue: Queue) -> Desk:
    calendar_make("utc", "UTC")
    return Desk(queue)


def report(as_of: datetime, start: date = DAY, end: date = DAY + timedelta(days=1)) -> dict[str, Any]:
    return report_compute(start=start, end=end, as_of=as_of)


def fcr(ticket: Ticket, as_of: datetime) -> tuple[int, int]:
    figures = fcr_figures(Ticket.objects.filter(pk=ticket.pk), as_of=as_of)[None]
    return figures["success"], figures["eligible"]


def test_a_merged_in_duplicate_with_its_own_reply_and_chat_changes_none_of_the_targets_figures(desk, customer):
    # The target: written at T0, answered and solved by one reply at h1 (FRT 60 minutes, one touch).
    target = desk.ticket(customer, T0)
    desk.reply(target, h(1), status="solved")
    # The duplicate, the evening before (another day's report): answered at h0.5, before the
    # target's reply, and a chat with the customer that ended at h0.6, before the target's solve.
    duplicate = desk.ticket(customer, T0 - timedelta(hours=13), channel="chat")
    desk.reply(duplicate, h(0.5))
    desk.chat_session(duplicate, answered=h(0.45), ended=h(0.6))

    before_merge = h(1) + WEEK + timedelta(hours=1)  # FCR eligible: first solve + 168 h passed
    figures_before = report(before_merge)
    assert figures_before["first_reply_minutes"]["calendar"] == {"n": 1, "mean": 60.0, "median": 60.0, "p90": 60.0}
    assert figures_before["fcr"] == {"success": 1, "eligible": 1, "rate": 1.0, "window_hours": 168}
    assert figures_before["one_touch"]["count"] == 1
    assert fcr(target, before_merge) == (1, 1)

    # Merged in after the FCR window: not a repeat contact (docs/metrics.md#repeat-contact).
    desk.merge(duplicate, target, h(1) + WEEK + timedelta(hours=2))
    moved = Message.objects.filter(moved_from=duplicate)
    assert set(moved.values_list("ticket_id", flat=True)) == {target.pk}
    assert set(moved.values_list("kind", flat=True)) == {MessageKind.PUBLIC_ENDUSER, MessageKind.PUBLIC_AGENT}
    assert Session.objects.get(moved_from=duplicate).ticket_id == target.pk

    # Counted on the target, the duplicate's reply would make the FRT 30 minutes and two
    # replies by the solve, and its chat would end before the solve: FCR 0 of 1.
    after_merge = h(1) + WEEK + timedelta(hours=3)
    figures_after = report(after_merge)
    for figure in ("tickets", "first_reply_minutes", "full_resolution_minutes", "sla", "one_touch", "fcr", "reopen"):
        assert figures_after[figure] == figures_before[figure], figure
    assert fcr(target, after_merge) == (1, 1)
    # The duplicate's own day: merged away, out of scope, and its reply is not the target's.
    previous_day = report(after_merge, DAY - timedelta(days=1), DAY)
    assert previous_day["tickets"]["merged"] == 1
    assert previous_day["first_reply_minutes"]["calendar"]["n"] == 0


def test_a_report_as_of_before_a_merge_or_split_is_the_same_after_it(desk, customer):
    OperatingCost.objects.create(
        period_start=DAY, period_end=DAY + timedelta(days=1), amount=Decimal(90), currency="EUR"
    )
    target = desk.ticket(customer, T0)
    desk.reply(target, h(2))
    # A chat duplicate answered in its session, itself the target of an earlier duplicate.
    duplicate = desk.ticket(customer, h(0.5), channel="chat")
    desk.chat_session(duplicate, answered=h(0.6), ended=h(0.8))
    desk.reply(duplicate, h(0.7), status="solved")
    earlier = desk.ticket(customer, h(0.2))
    desk.reply(earlier, h(0.3), status="solved")
    # A ticket with two questions, the second one later split off.
    two_questions = desk.ticket(customer, h(1))
    second_question = desk.customer_writes(two_questions, h(1.5))
    desk.reply(two_questions, h(3), status="solved")
    ticket_status_change(ticket=duplicate, status="open", actor=desk.actor, at=h(4))
    # A chat without a reply or a solve: its answered session is a contact of its own.
    unanswered = desk.ticket(customer, h(0.1), channel="chat")
    desk.chat_session(unanswered, answered=h(0.15), ended=h(0.25))

    as_of = h(5)
    computed_before = report(as_of)
    assert computed_before["tickets"]["in_scope"] == 5
    # Contacts: the 4 tickets with a reply or a solve, and the session of the fifth.
    assert computed_before["cost_per_contact"] == {"amount": 18.0, "currency": "EUR", "contacts": 5}

    ticket_split(ticket=two_questions, message=second_question, actor=desk.actor, at=h(6))
    desk.merge(earlier, duplicate, h(7))
    as_of_between = h(7.5)
    computed_between = report(as_of_between)
    desk.merge(duplicate, target, h(8))
    desk.merge(unanswered, target, h(9))

    # A row moved twice keeps the ticket it was written on.
    assert set(Message.objects.filter(moved_from=earlier).values_list("ticket_id", flat=True)) == {target.pk}
    assert Message.objects.get(pk=second_question.pk).moved_from_id == two_questions.pk
    assert Session.objects.get(moved_from=duplicate).ticket_id == target.pk
    assert Session.objects.get(moved_from=unanswered).ticket_id == target.pk

    assert report(as_of) == computed_before
    assert report(as_of_between) == computed_between
    assert computed_between["tickets"]["merged"] == 1


def test_a_merge_makes_the_snapshots_of_both_tickets_days_stale(desk, customer):
    target = desk.ticket(customer, T0)
    desk.reply(target, h(1), status="solved")
    duplicate = desk.ticket(customer, T0 - timedelta(days=1))
    desk.reply(duplicate, h(-20))
    calendar = calendar_make("dublin", "Europe/Dublin", default=False)
    as_of = h(2)
    days = [
        snapshot_compute(
            calendar=calendar, granularity=Granularity.DAY, start=day, end=day + timedelta(days=1), as_of=as_of
        )
        for day in (DAY - timedelta(days=1), DAY, DAY + timedelta(days=1))
    ]
    now = timezone.now()
    assert snapshots_stale(calendar=calendar, now=now) == []

    # The messages keep their ids and count where they were written; the merge's own events
    # (merged on the duplicate, merged_in on the target) mark both days.
    desk.merge(duplicate, target, h(3))

    assert {s.pk for s in snapshots_stale(calendar=calendar, now=now)} == {days[0].pk, days[1].pk}
