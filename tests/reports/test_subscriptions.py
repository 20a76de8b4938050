"""Scheduled reports: each completed week or month mailed once, in the subscriber's time zone."""

from __future__ import annotations

import csv
import io
from datetime import UTC, date, datetime, timedelta

import pytest
from django.core import mail
from django.core.mail import EmailMultiAlternatives

from reports.models import ReportSubscription
from reports.subscriptions import (
    last_complete_period,
    report_subscription_delete,
    report_subscription_set,
    subscriptions_send,
)
from servicedesk.accounts.models import User
from servicedesk.core.errors import ApplicationError, NotFound
from tests.factories import AgentFactory
from tests.reports.delivery_helpers import calendar_make, ticket_opened

pytestmark = pytest.mark.django_db

# Sunday 9 November 2025 16:30 UTC is already Monday 00:30 in Shanghai.
SUNDAY_EVENING_UTC = datetime(2025, 11, 9, 16, 30, tzinfo=UTC)


@pytest.fixture
def dublin(db):
    return calendar_make()


@pytest.fixture
def shanghai_manager(db):
    user = AgentFactory(username="mei", role="manager", email="mei@corp.example")
    User.objects.filter(pk=user.pk).update(time_zone="Asia/Shanghai")
    return User.objects.get(pk=user.pk)


def test_last_complete_periods():
    assert last_complete_period(frequency="weekly", today=date(2025, 11, 10)) == (date(2025, 11, 3), date(2025, 11, 10))
    assert last_complete_period(frequency="weekly", today=date(2025, 11, 9)) == (date(2025, 10, 27), date(2025, 11, 3))
    assert last_complete_period(frequency="monthly", today=date(2025, 11, 1)) == (date(2025, 10, 1), date(2025, 11, 1))
    assert last_complete_period(frequency="monthly", today=date(2025, 1, 31)) == (date(2024, 12, 1), date(2025, 1, 1))


def test_a_week_is_sent_once_when_it_ends_in_the_subscribers_zone(dublin, shanghai_manager, manager, queue):
    ticket_opened(queue, datetime(2025, 11, 4, 10, 0, tzinfo=UTC))
    mei = report_subscription_set(user=shanghai_manager, frequency="weekly", calendar=dublin)
    # Same instant, but for a subscriber on UTC (the site's zone) the week has not ended yet.
    max_ = report_subscription_set(user=manager, frequency="weekly", calendar=dublin)
    max_.last_sent_period_end = date(2025, 11, 3)
    max_.save(update_fields=["last_sent_period_end"])

    assert subscriptions_send(now=SUNDAY_EVENING_UTC) == 1
    assert len(mail.outbox) == 1
    message = mail.outbox[0]
    assert message.to == ["mei@corp.example"]
    assert message.subject == "Weekly report 2025-11-03 to 2025-11-09"
    assert isinstance(message, EmailMultiAlternatives)
    html = message.alternatives[0][0]
    assert "Service desk report, 2025-11-03 to 2025-11-09 (Dublin)" in html
    assert "Backlog</th><td" in html
    name, content, mimetype = message.attachments[0]
    assert (name, mimetype) == ("report-2025-11-03-2025-11-10.csv", "text/csv")
    rows = list(csv.reader(io.StringIO(content)))
    assert ["period.start", "2025-11-03"] in rows
    assert ["tickets.in_scope", "1"] in rows
    mei.refresh_from_db()
    assert mei.last_sent_period_end == date(2025, 11, 10)

    # The next runs (another worker, the next hour) send nothing more.
    assert subscriptions_send(now=SUNDAY_EVENING_UTC) == 0
    assert subscriptions_send(now=SUNDAY_EVENING_UTC + timedelta(hours=1)) == 0
    assert len(mail.outbox) == 1

    # Monday 00:00 UTC: now the UTC subscriber's week has ended too.
    assert subscriptions_send(now=datetime(2025, 11, 10, 0, 0, tzinfo=UTC)) == 1
    assert [m.to for m in mail.outbox] == [["mei@corp.example"], [manager.email]]


def test_a_month_is_sent_after_it_ends(dublin, manager):
    report_subscription_set(user=manager, frequency="monthly", calendar=dublin)
    assert subscriptions_send(now=datetime(2025, 11, 1, 0, 30, tzinfo=UTC)) == 1
    assert mail.outbox[0].subject == "Monthly report 2025-10-01 to 2025-10-31"
    assert subscriptions_send(now=datetime(2025, 11, 30, 23, 0, tzinfo=UTC)) == 0
    assert subscriptions_send(now=datetime(2025, 12, 1, 0, 0, tzinfo=UTC)) == 1
    assert mail.outbox[1].subject == "Monthly report 2025-11-01 to 2025-11-30"


def test_a_failed_send_leaves_the_period_for_the_next_run(dublin, manager, monkeypatch):
    subscription = report_subscription_set(user=manager, frequency="weekly", calendar=dublin)

    def refuse(self, fail_silently=False):  # type: ignore[no-untyped-def]
        raise OSError("mail server down")

    monkeypatch.setattr("django.core.mail.EmailMultiAlternatives.send", refuse)
    assert subscriptions_send(now=datetime(2025, 11, 10, 1, 0, tzinfo=UTC)) == 0
    subscription.refresh_from_db()
    assert subscription.last_sent_period_end is None
    monkeypatch.undo()
    assert subscriptions_send(now=datetime(2025, 11, 10, 2, 0, tzinfo=UTC)) == 1
    assert len(mail.outbox) == 1


def test_subscribing_is_idempotent_and_for_managers_only(dublin, manager, agent):
    first = report_subscription_set(user=manager, frequency="weekly", calendar=dublin)
    assert report_subscription_set(user=manager, frequency="weekly", calendar=dublin).pk == first.pk
    assert ReportSubscription.objects.count() == 1
    with pytest.raises(ApplicationError):
        report_subscription_set(user=agent, frequency="weekly", calendar=dublin)
    with pytest.raises(NotFound):
        report_subscription_delete(user=agent, subscription_id=first.pk)
    report_subscription_delete(user=manager, subscription_id=first.pk)
    assert ReportSubscription.objects.count() == 0


def test_a_subscriber_who_is_no_longer_a_manager_gets_nothing(dublin, manager):
    report_subscription_set(user=manager, frequency="weekly", calendar=dublin)
    manager.groups.clear()
    assert subscriptions_send(now=datetime(2025, 11, 10, 1, 0, tzinfo=UTC)) == 0
    assert mail.outbox == []


def test_the_dashboard_subscribes_and_unsubscribes(client, dublin, manager):
    client.force_login(manager)
    response = client.post("/desk/reports/subscriptions/", {"frequency": "monthly", "calendar": "dublin"})
    assert response.status_code == 302
    subscription = ReportSubscription.objects.get()
    assert (subscription.user, subscription.frequency, subscription.calendar) == (manager, "monthly", dublin)
    assert client.post(f"/desk/reports/subscriptions/{subscription.pk}/delete/").status_code == 302
    assert ReportSubscription.objects.count() == 0
    assert client.post(f"/desk/reports/subscriptions/{subscription.pk}/delete/").status_code == 404
