"""report_compute on a hand-worked cohort: counts, durations and SLA outcomes (docs/metrics.md#time to #sla, #report-json).

The calendar is Dublin, Monday to Friday 09:00-17:00 local time; Monday
27 October 2025 is a bank holiday and the clocks go back on Sunday
26 October (IST, UTC+1, before; GMT, UTC+0, after). The policy: normal
priority first reply 120 business minutes and resolution 480 business
minutes; urgent 30 and 240 calendar minutes. The period is 20-31 October
(local dates), as of Monday 10 November 12:00 UTC.
"""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from reports.models import CalendarInterval
from reports.services import DEFINITIONS_VERSION, report_compute
from servicedesk.sla.models import BusinessCalendar, Holiday, OpeningWindow, SlaPolicy, SlaTarget
from servicedesk.tickets.events import Actor
from servicedesk.tickets.services.replies import ticket_reply_create
from servicedesk.tickets.services.tickets import (
    ticket_create,
    ticket_merge,
    ticket_priority_change,
    ticket_status_change,
)
from tests.factories import CustomerFactory

pytestmark = pytest.mark.django_db

AS_OF = datetime(2025, 11, 10, 12, 0, tzinfo=UTC)
SYSTEM = Actor.system()


def utc(day: int, hour: int, minute: int = 0, month: int = 10) -> datetime:
    return datetime(2025, month, day, hour, minute, tzinfo=UTC)


@pytest.fixture
def dublin(db):
    calendar = BusinessCalendar.objects.create(slug="dublin", name="Dublin", time_zone="Europe/Dublin", is_default=True)
    for weekday in range(5):
        OpeningWindow.objects.create(calendar=calendar, weekday=weekday, start_minute=9 * 60, end_minute=17 * 60)
    Holiday.objects.create(calendar=calendar, date=date(2025, 10, 27), name="October bank holiday")
    return calendar


@pytest.fixture
def policy(dublin):
    policy = SlaPolicy.objects.create(slug="standard", name="Standard", rank=10, calendar=dublin, match={})
    SlaTarget.objects.create(
        policy=policy, priority="normal", first_reply_minutes=120, resolution_minutes=480, hours="business"
    )
    SlaTarget.objects.create(
        policy=policy, priority="urgent", first_reply_minutes=30, resolution_minutes=240, hours="calendar"
    )
    return policy


def opened(customer, queue, at, **kwargs):
    return ticket_create(
        customer=customer,
        subject="Invoice",
        channel="email",
        actor=Actor.of_customer(customer),
        queue=queue,
        at=at,
        **kwargs,
    )


def reply(ticket, agent, at, **kwargs):
    return ticket_reply_create(ticket=ticket, author=agent, text="Hello", actor=Actor.agent(agent), at=at, **kwargs)


def status(ticket, value, at):
    return ticket_status_change(ticket=ticket, status=value, actor=SYSTEM, at=at)


@pytest.fixture
def cohort(policy, queue, agent, customer):
    """Eight tickets, each a case of the definitions; the figures are worked out in the tests."""
    other = CustomerFactory(email="bob@example.com")
    # T1, across the DST night and the holiday: Friday 24 Oct 16:00 IST, replied Tuesday 28 Oct 10:00 GMT,
    # solved 11:00 GMT. Business FRT: Friday 16:00-17:00 (60) + Tuesday 09:00-10:00 (60) = 120 min, exactly
    # the target. Calendar FRT: 24 Oct 15:00Z -> 28 Oct 10:00Z = 91 h = 5460 min. Solve one hour later:
    # full resolution and RWT 180 business, 5520 calendar minutes.
    t1 = opened(other, queue, utc(24, 15))
    reply(t1, agent, utc(28, 10))
    status(t1, "solved", utc(28, 11))
    # T2, a pending pause and a reopen, all within opening hours (Monday 20 Oct, IST):
    # new 09:00-10:00Z, pending 10:00-12:00Z, open 12:00-13:00Z, solved, reopened 14:00Z, solved 15:00Z.
    # FRT 60; RWT 60 + 60 + 60 = 180; full resolution 09:00Z -> 15:00Z = 360 (business and calendar alike).
    t2 = opened(customer, queue, utc(20, 9))
    reply(t2, agent, utc(20, 10), status="pending")
    status(t2, "open", utc(20, 12))
    status(t2, "solved", utc(20, 13))
    status(t2, "open", utc(20, 14))
    status(t2, "solved", utc(20, 15))
    # T3, a duplicate of T2 merged into it: counted as merged only.
    t3 = opened(customer, queue, utc(20, 11))
    ticket_merge(source=t3, target=t2, actor=SYSTEM, at=utc(20, 11, 30))
    # T4, started by an agent: counted as outbound only.
    opened(customer, queue, utc(20, 12), initiator="outbound")
    # T5, created and answered on Saturday 25 Oct while closed: business FRT 0, calendar 60. Never solved:
    # RWT at as-of is Tuesday 28 - Friday 31 (32 h) + 3-7 Nov (40 h) + Monday 10 Nov 09:00-12:00 (3 h)
    # = 75 h > 8 h, so the resolution target is breached.
    t5 = opened(other, queue, utc(25, 10))
    reply(t5, agent, utc(25, 11))
    # T6, urgent (calendar-hour targets), assigned to ann: replied after 31 min > 30 -> first reply breached;
    # solved after 60 min <= 240 -> resolution achieved. Report durations 31 and 60 (inside opening hours).
    t6 = opened(other, queue, utc(22, 9), priority="urgent", assignee=agent)
    reply(t6, agent, utc(22, 9, 31))
    status(t6, "solved", utc(22, 10))
    # T7, solved without a reply: first reply cancelled; resolution 60 <= 480 achieved.
    t7 = opened(other, queue, utc(23, 9))
    status(t7, "solved", utc(23, 10))
    # T8, pending since Thursday 23 Oct 13:00Z without a reply: first reply breached (far past its due
    # instant), resolution paused with 60 business minutes of RWT.
    t8 = opened(other, queue, utc(23, 12))
    status(t8, "pending", utc(23, 13))
    return [t1, t2, t3, t5, t6, t7, t8]


def summary(n, mean, median, p90):
    return {"n": n, "mean": mean, "median": median, "p90": p90}


def test_ticket_counts(cohort):
    report = report_compute(start=date(2025, 10, 20), end=date(2025, 11, 1), as_of=AS_OF)
    # In scope: T1, T2, T5, T6, T7, T8; solved at as-of: T1, T2, T6, T7.
    assert report["tickets"] == {"in_scope": 6, "outbound": 1, "merged": 1, "solved": 4, "by_channel": {"email": 6}}
    assert report["period"] == {
        "start": "2025-10-20",
        "end": "2025-11-01",
        "timezone": "Europe/Dublin",
        "calendar": "dublin",
    }
    assert report["as_of"] == "2025-11-10T12:00:00Z"
    assert report["definitions_version"] == DEFINITIONS_VERSION
    assert not CalendarInterval.objects.exists()


def test_durations(cohort):
    report = report_compute(start=date(2025, 10, 20), end=date(2025, 11, 1), as_of=AS_OF)
    # FRT business: T5 0, T6 31, T2 60, T1 120: mean 211 / 4 = 52.75, median (31 + 60) / 2 = 45.5,
    # p90 the ceil(3.6) = 4th value, 120. Calendar: 31, 60, 60, 5460: mean 5611 / 4 = 1402.75, median 60.
    assert report["first_reply_minutes"] == {
        "business": summary(4, 52.75, 45.5, 120.0),
        "calendar": summary(4, 1402.75, 60.0, 5460.0),
    }
    # Full resolution, solved tickets: business T6 60, T7 60, T1 180, T2 360: mean 660 / 4 = 165,
    # median (60 + 180) / 2 = 120; calendar 60, 60, 360, 5520: mean 6000 / 4 = 1500, median (60 + 360) / 2 = 210.
    assert report["full_resolution_minutes"] == {
        "business": summary(4, 165.0, 120.0, 360.0),
        "calendar": summary(4, 1500.0, 210.0, 5520.0),
    }
    # RWT, solved tickets: business 60, 60, 180, 180: mean 120, median 120; calendar 60, 60, 180, 5520:
    # mean 5820 / 4 = 1455, median (60 + 180) / 2 = 120. T8's paused wait is not summarised (unsolved).
    assert report["requester_wait_minutes"] == {
        "business": summary(4, 120.0, 120.0, 180.0),
        "calendar": summary(4, 1455.0, 120.0, 5520.0),
    }


def test_sla_outcomes(cohort):
    report = report_compute(start=date(2025, 10, 20), end=date(2025, 11, 1), as_of=AS_OF)
    # First reply: achieved T1 (exactly 120), T2, T5 (0); breached T6 (31 > 30), T8; cancelled T7.
    # Resolution: achieved T1, T2, T6, T7; breached T5; paused T8.
    # Tickets meeting every counted target: T1, T2, T7 of the six with one.
    assert report["sla"] == {
        "first_reply": {"achieved": 3, "breached": 2, "active": 0, "cancelled": 1, "rate": 0.6},
        "resolution": {"achieved": 4, "breached": 1, "active": 0, "paused": 1, "rate": 0.8},
        "all_targets": {"achieved": 7, "breached": 3, "rate": 0.7},
        "tickets_meeting_all": {"met": 3, "counted": 6, "rate": 0.5},
    }


def test_breakdowns(cohort):
    report = report_compute(start=date(2025, 10, 20), end=date(2025, 11, 1), as_of=AS_OF)
    assert sorted(report["by_agent"]) == ["", "ann@corp.example"]
    ann = report["by_agent"]["ann@corp.example"]
    assert ann["tickets"] == {"in_scope": 1, "outbound": 0, "merged": 0, "solved": 1, "by_channel": {"email": 1}}
    assert ann["first_reply_minutes"]["business"] == summary(1, 31.0, 31.0, 31.0)
    assert ann["sla"]["first_reply"] == {"achieved": 0, "breached": 1, "active": 0, "cancelled": 0, "rate": 0.0}
    assert sorted(report["by_priority"]) == ["normal", "urgent"]
    assert report["by_priority"]["normal"]["tickets"]["in_scope"] == 5
    assert report["by_queue"]["support"]["tickets"] == report["tickets"]
    assert report["by_channel"]["email"]["tickets"] == report["tickets"]
    assert report["by_tier"][""]["sla"] == report["sla"]


def test_sla_on_the_policy_calendar_whatever_the_report_calendar(cohort):
    """A report on another calendar keeps the SLA outcomes of the policy's calendar and times on its own hours."""
    always = BusinessCalendar.objects.create(slug="always", name="Always open", time_zone="UTC")
    for weekday in range(7):
        OpeningWindow.objects.create(calendar=always, weekday=weekday, start_minute=0, end_minute=24 * 60)
    on_dublin = report_compute(start=date(2025, 10, 20), end=date(2025, 11, 1), as_of=AS_OF)
    report = report_compute(start=date(2025, 10, 20), end=date(2025, 11, 1), as_of=AS_OF, calendar=always)
    assert report["period"]["calendar"] == "always"
    # The outcomes of test_sla_outcomes, on Dublin's hours: T1's first reply took 120 business minutes
    # there (achieved) but 5460 minutes of the always-open calendar.
    assert report["sla"] == on_dublin["sla"]
    assert report["sla"]["first_reply"]["achieved"] == 3
    assert report["by_priority"]["normal"]["sla"] == on_dublin["by_priority"]["normal"]["sla"]
    # Business time on an always-open calendar is calendar time (periods in UTC dates: 20-31 October).
    assert report["first_reply_minutes"]["business"] == report["first_reply_minutes"]["calendar"]
    assert report["requester_wait_minutes"]["business"] == report["requester_wait_minutes"]["calendar"]
    assert report["first_reply_minutes"]["business"] != on_dublin["first_reply_minutes"]["business"]


def test_sla_targets_take_the_priority_at_each_fulfilment(policy, queue, agent, customer):
    # P1: normal when answered at 09:40Z (40 <= 120 business minutes: achieved); raised to urgent at
    # 10:00Z, then solved at 15:00Z: the resolution takes urgent's 240 calendar minutes, and 360 minutes
    # of requester wait breach it (normal's 480 business minutes would have been met).
    p1 = opened(customer, queue, utc(20, 9), assignee=agent)
    reply(p1, agent, utc(20, 9, 40))
    ticket_priority_change(ticket=p1, priority="urgent", actor=SYSTEM, at=utc(20, 10))
    status(p1, "solved", utc(20, 15))
    # P2: raised to urgent at 09:05Z, before its reply at 09:40Z: 40 > 30 calendar minutes, breached.
    # Unsolved, so its resolution takes the priority at as_of, urgent, long breached.
    p2 = opened(customer, queue, utc(20, 9))
    ticket_priority_change(ticket=p2, priority="urgent", actor=SYSTEM, at=utc(20, 9, 5))
    reply(p2, agent, utc(20, 9, 40))
    report = report_compute(start=date(2025, 10, 20), end=date(2025, 10, 21), as_of=AS_OF)
    assert report["sla"]["first_reply"] == {"achieved": 1, "breached": 1, "active": 0, "cancelled": 0, "rate": 0.5}
    assert report["sla"]["resolution"] == {"achieved": 0, "breached": 2, "active": 0, "paused": 0, "rate": 0.0}
    assert sorted(report["by_priority"]) == ["urgent"]
    # Each ticket's own outcomes, P1 assigned to ann and P2 unassigned.
    p1_sla, p2_sla = report["by_agent"]["ann@corp.example"]["sla"], report["by_agent"][""]["sla"]
    assert (p1_sla["first_reply"]["achieved"], p1_sla["resolution"]["breached"]) == (1, 1)
    assert (p2_sla["first_reply"]["breached"], p2_sla["resolution"]["breached"]) == (1, 1)
