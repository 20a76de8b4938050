"""The acknowledgement promises the first-reply due instant of the ticket's SLA policy."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from django.core import mail

from servicedesk.sla.models import BusinessCalendar, Holiday, OpeningWindow, SlaPolicy, SlaTarget
from servicedesk.tickets.inbound import InboundMessage, SenderIdentity
from servicedesk.tickets.models import Customer
from servicedesk.tickets.services.acknowledgements import ticket_first_reply_promise
from servicedesk.tickets.services.intake import inbound_message_receive

pytestmark = pytest.mark.django_db

# Friday 24 October 2025, 16:30 in Dublin (IST, UTC+1). Monday 27 October is a
# bank holiday and the clocks went back on Sunday 26 October.
FRIDAY_1630_DUBLIN = datetime(2025, 10, 24, 15, 30, tzinfo=UTC)


@pytest.fixture
def dublin_policy(db):
    calendar = BusinessCalendar.objects.create(slug="dublin", name="Dublin", time_zone="Europe/Dublin", is_default=True)
    for weekday in range(5):
        OpeningWindow.objects.create(calendar=calendar, weekday=weekday, start_minute=9 * 60, end_minute=17 * 60)
    Holiday.objects.create(calendar=calendar, date=datetime(2025, 10, 27).date(), name="October bank holiday")
    policy = SlaPolicy.objects.create(slug="standard", name="Standard", rank=1, calendar=calendar, match={})
    SlaTarget.objects.create(
        policy=policy, priority="normal", first_reply_minutes=60, resolution_minutes=480, hours="business"
    )
    SlaTarget.objects.create(policy=policy, priority="urgent", first_reply_minutes=30, hours="calendar")
    return policy


def receive(**kwargs):
    return inbound_message_receive(
        inbound=InboundMessage(
            channel="web",
            external_id=kwargs.pop("external_id", "w-1"),
            sender=SenderIdentity("email", "alice@example.com", "Alice"),
            subject="Invoice",
            text="Help",
            received_at=FRIDAY_1630_DUBLIN,
            **kwargs,
        )
    )


def test_business_hours_promise_skips_the_weekend_and_the_holiday(
    queue, dublin_policy, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        ticket = receive().ticket
    promise = ticket_first_reply_promise(ticket)
    # 30 minutes on Friday, the other 30 on Tuesday from 09:00 GMT.
    assert promise.due == datetime(2025, 10, 28, 9, 30, tzinfo=UTC)
    assert promise.time_zone == "Europe/Dublin"
    assert "We will answer by 2025-10-28 09:30 GMT (Europe/Dublin)." in mail.outbox[0].body


def test_calendar_hours_target_and_the_customers_own_zone(queue, dublin_policy, django_capture_on_commit_callbacks):
    first = receive().ticket
    Customer.objects.filter(pk=first.customer_id).update(time_zone="Asia/Shanghai")
    mail.outbox.clear()
    with django_capture_on_commit_callbacks(execute=True):
        urgent = receive(external_id="w-2", priority="urgent").ticket
    # 16:00 UTC is midnight in Shanghai.
    assert "We will answer by 2025-10-25 00:00 CST (Asia/Shanghai)." in mail.outbox[0].body
    promise = ticket_first_reply_promise(urgent)
    assert promise.due == datetime(2025, 10, 24, 16, 0, tzinfo=UTC)
    assert promise.time_zone == "Asia/Shanghai"


def test_without_a_policy_the_default_hours_apply(queue, settings):
    settings.SERVICEDESK = {**settings.SERVICEDESK, "DEFAULT_FIRST_REPLY_HOURS": 8}
    ticket = receive().ticket
    promise = ticket_first_reply_promise(ticket)
    assert (promise.due, promise.time_zone) == (datetime(2025, 10, 24, 23, 30, tzinfo=UTC), "UTC")
