"""Every breakdown of a report groups by the keys at ``as_of``, for the ticket and the quality figures alike.

Two inbound tickets created on Monday 3 March 2025 (UTC, no calendar: 24x7),
as of ten days later, and one outbound ticket:

* A, email, support queue, normal priority, assigned to ann: one reply that
  solves it, rated 5. After ``as_of`` it moves to the sales queue, becomes
  urgent and goes to bob; the report still files it under support, normal
  and ann.
* B, web, created in support, high, for ann; before ``as_of`` it moves to
  sales, becomes low and goes to bob (the report files it there, not under
  its values at creation). Solved by its first reply, reopened, answered
  again and solved: two replies, one reopen, rated 2. Its customer's
  organization is gold.
* C, outbound, phone, billing, urgent, unassigned, a silver customer: counted
  as outbound only; its groups hold no in-scope ticket, so their quality
  figures are empty.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any, cast

import pytest

from reports.services import report_compute
from servicedesk.accounts.models import User
from servicedesk.tickets.events import Actor
from servicedesk.tickets.models import Customer, Organization, Queue
from servicedesk.tickets.services.replies import ticket_reply_create
from servicedesk.tickets.services.tickets import (
    ticket_assign,
    ticket_priority_change,
    ticket_queue_change,
    ticket_rate,
    ticket_status_change,
)
from tests.factories import AgentFactory, CustomerFactory, OrganizationFactory, QueueFactory, ticket_make

pytestmark = pytest.mark.django_db

T0 = datetime(2025, 3, 3, 9, 0, tzinfo=UTC)
AS_OF = T0 + timedelta(days=10)
SYSTEM = Actor.system()


def h(hours: float) -> datetime:
    return T0 + timedelta(hours=hours)


# A: solved by its one reply, FCR success (first solve h1 + 168 h <= as_of, no reopen, no repeat), rated 5.
FIGURES_A = {
    "tickets": {"in_scope": 1, "outbound": 0, "merged": 0, "solved": 1, "by_channel": {"email": 1}},
    "one_touch": {"count": 1, "solved": 1, "rate": 1.0, "fewer_than_two": 1.0},
    "fcr": {"success": 1, "eligible": 1, "rate": 1.0, "window_hours": 168},
    "reopen": {"tickets": 0, "solved": 1, "rate": 0.0, "total": 0},
    "csat": {"satisfied": 1, "rated": 1, "rate": 1.0, "mean": 5.0},
}
# B: two replies (not one-touch), eligible for FCR but reopened inside the window, one reopen, rated 2.
FIGURES_B = {
    "tickets": {"in_scope": 1, "outbound": 0, "merged": 0, "solved": 1, "by_channel": {"web": 1}},
    "one_touch": {"count": 0, "solved": 1, "rate": 0.0, "fewer_than_two": 0.0},
    "fcr": {"success": 0, "eligible": 1, "rate": 0.0, "window_hours": 168},
    "reopen": {"tickets": 1, "solved": 1, "rate": 1.0, "total": 1},
    "csat": {"satisfied": 0, "rated": 1, "rate": 0.0, "mean": 2.0},
}
# C: outbound only; no in-scope ticket in its groups.
FIGURES_C = {
    "tickets": {"in_scope": 0, "outbound": 1, "merged": 0, "solved": 0, "by_channel": {}},
    "one_touch": {"count": 0, "solved": 0, "rate": None, "fewer_than_two": None},
    "fcr": {"success": 0, "eligible": 0, "rate": None, "window_hours": 168},
    "reopen": {"tickets": 0, "solved": 0, "rate": None, "total": 0},
    "csat": {"satisfied": 0, "rated": 0, "rate": None, "mean": None},
}


def picked(group: dict[str, Any]) -> dict[str, Any]:
    return {name: group[name] for name in FIGURES_A}


def test_every_breakdown_uses_the_keys_at_as_of(queue: Queue) -> None:
    sales = cast(Queue, QueueFactory(slug="sales", name="Sales"))
    billing = cast(Queue, QueueFactory(slug="billing", name="Billing"))
    ann = cast(User, AgentFactory(username="ann", queues=[queue, sales]))
    bob = cast(User, AgentFactory(username="bob", queues=[queue, sales]))
    gold = cast(
        Customer, CustomerFactory(organization=cast(Organization, OrganizationFactory(name="Gold Org", tier="gold")))
    )
    silver = cast(
        Customer,
        CustomerFactory(organization=cast(Organization, OrganizationFactory(name="Silver Org", tier="silver"))),
    )

    a = ticket_make(
        customer=cast(Customer, CustomerFactory()),
        queue=queue,
        channel="email",
        priority="normal",
        assignee=ann,
        at=h(0),
    )
    ticket_reply_create(ticket=a, author=ann, text="Done.", at=h(1), deliver=False, status="solved")
    ticket_rate(ticket=a, score=5, actor=SYSTEM, at=h(2))
    # After as_of: none of this may move A to another group.
    ticket_queue_change(ticket=a, queue=sales, actor=SYSTEM, at=AS_OF + timedelta(hours=1))
    ticket_priority_change(ticket=a, priority="urgent", actor=SYSTEM, at=AS_OF + timedelta(hours=1))
    ticket_assign(ticket=a, assignee=bob, actor=SYSTEM, at=AS_OF + timedelta(hours=1))

    b = ticket_make(customer=gold, queue=queue, channel="web", priority="high", assignee=ann, at=h(0))
    ticket_reply_create(ticket=b, author=ann, text="Try this.", at=h(2), deliver=False, status="solved")
    ticket_status_change(ticket=b, status="open", actor=SYSTEM, at=h(3))
    ticket_reply_create(ticket=b, author=ann, text="And this.", at=h(3.5), deliver=False)
    ticket_status_change(ticket=b, status="solved", actor=SYSTEM, at=h(4))
    ticket_rate(ticket=b, score=2, actor=SYSTEM, at=h(5))
    # Before as_of: B is filed under these.
    ticket_queue_change(ticket=b, queue=sales, actor=SYSTEM, at=h(6))
    ticket_priority_change(ticket=b, priority="low", actor=SYSTEM, at=h(6))
    ticket_assign(ticket=b, assignee=bob, actor=SYSTEM, at=h(6))

    ticket_make(customer=silver, queue=billing, channel="phone", priority="urgent", initiator="outbound", at=h(0))

    report = report_compute(start=date(2025, 3, 3), end=date(2025, 3, 4), as_of=AS_OF)

    expected = {
        "by_queue": {"support": FIGURES_A, "sales": FIGURES_B, "billing": FIGURES_C},
        "by_priority": {"normal": FIGURES_A, "low": FIGURES_B, "urgent": FIGURES_C},
        "by_agent": {"ann@corp.example": FIGURES_A, "bob@corp.example": FIGURES_B, "": FIGURES_C},
        "by_channel": {"email": FIGURES_A, "web": FIGURES_B, "phone": FIGURES_C},
        "by_tier": {"": FIGURES_A, "gold": FIGURES_B, "silver": FIGURES_C},
    }
    for breakdown, groups in expected.items():
        assert {key: picked(group) for key, group in report[breakdown].items()} == groups, breakdown
    # The whole cohort: A and B in scope, C outbound.
    assert picked(report) == {
        "tickets": {"in_scope": 2, "outbound": 1, "merged": 0, "solved": 2, "by_channel": {"email": 1, "web": 1}},
        "one_touch": {"count": 1, "solved": 2, "rate": 0.5, "fewer_than_two": 0.5},
        "fcr": {"success": 1, "eligible": 2, "rate": 0.5, "window_hours": 168},
        "reopen": {"tickets": 1, "solved": 2, "rate": 0.5, "total": 1},
        "csat": {"satisfied": 1, "rated": 2, "rate": 0.5, "mean": 3.5},
    }
