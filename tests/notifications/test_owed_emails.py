"""A notification's email is owed from the moment the notice is stored until one claim sends it:
an email whose task was lost while the broker was down is enqueued again by the beat sweep,
and however often the sweep and the first task run, one mail leaves."""

from __future__ import annotations

import logging
from datetime import timedelta

import pytest
from django.core import mail
from django.utils import timezone

from servicedesk.notifications.models import Notification
from servicedesk.notifications.services import (
    notification_email,
    notification_emails_owed_dispatch,
    notification_send,
)
from servicedesk.notifications.tasks import notification_email_task, notification_emails_owed_dispatch_task
from tests.factories import AgentFactory
from tests.outage import CLOSED_PORT_REDIS, celery_broker

pytestmark = pytest.mark.django_db


def send(user, key="sla:1:breach", *, email=True):
    return notification_send(
        user=user, kind="sla_breach", key=key, title="SD-1001 breached its first reply target", body="Body", email=email
    )


def owed(notification: Notification) -> tuple[bool, bool]:
    """(email still owed, emailed)"""
    notification.refresh_from_db()
    return notification.email_owed_since is not None, notification.emailed_at is not None


def test_an_email_lost_while_the_broker_was_down_is_sent_once_by_the_sweep_when_it_is_back(
    agent, caplog, django_capture_on_commit_callbacks
):
    with celery_broker(CLOSED_PORT_REDIS), caplog.at_level(logging.WARNING):
        with django_capture_on_commit_callbacks(execute=True):
            notification = send(agent)
        assert notification is not None
        # Within the minute the sweep leaves it to the first task.
        assert notification_emails_owed_dispatch() == 0
        # Later, with the broker still down, it cannot enqueue and says so.
        assert notification_emails_owed_dispatch(now=timezone.now() + timedelta(minutes=2)) == 0

    assert mail.outbox == []
    assert owed(notification) == (True, False)
    warnings = [record.getMessage() for record in caplog.records if record.levelno == logging.WARNING]
    assert warnings == [
        f"Could not enqueue notifications.email({notification.pk},): the broker is unreachable",
        f"Could not enqueue notifications.email({notification.pk},): the broker is unreachable",
    ]

    # The broker is back (tasks run as the worker would); the sweep runs twice.
    later = timezone.now() + timedelta(minutes=2)
    assert notification_emails_owed_dispatch(now=later) == 1
    assert notification_emails_owed_dispatch(now=later) == 0

    assert [(sent.to, sent.subject, sent.body) for sent in mail.outbox] == [
        (["ann@corp.example"], "SD-1001 breached its first reply target", "Body")
    ]
    assert owed(notification) == (False, True)


def test_the_first_task_arriving_after_the_sweep_sends_nothing(agent, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        notification = send(agent)
    # The email task, then the bell's push (notifications.changed).
    assert notification is not None and len(callbacks) == 2

    # The first task waited in a busy queue for more than a minute: the sweep enqueued it too.
    assert notification_emails_owed_dispatch(now=timezone.now() + timedelta(minutes=2)) == 1
    callbacks[0]()
    assert notification_email_task.apply(args=[notification.pk]).get() is False

    assert len(mail.outbox) == 1
    assert owed(notification) == (False, True)


def test_a_notice_stored_without_an_email_is_never_owed_one(agent, django_capture_on_commit_callbacks):
    nobody = AgentFactory(username="nomail", email="")
    with django_capture_on_commit_callbacks(execute=True):
        quiet = send(agent, "quiet", email=False)
        no_address = send(nobody, "no-address")
    assert quiet is not None and no_address is not None

    assert owed(quiet) == (False, False)
    assert owed(no_address) == (False, False)
    assert notification_emails_owed_dispatch(now=timezone.now() + timedelta(minutes=2)) == 0
    assert notification_email(notification_id=quiet.pk) is False
    assert mail.outbox == []


def test_the_sweep_enqueues_only_emails_still_owed_a_minute_on(agent, manager, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=False):
        old = send(agent, "old")
        sent = send(manager, "sent")
    assert old is not None and sent is not None
    assert notification_email(notification_id=sent.pk) is True
    with django_capture_on_commit_callbacks(execute=False):
        fresh = send(agent, "fresh")
    assert fresh is not None
    Notification.objects.filter(pk=fresh.pk).update(email_owed_since=timezone.now() + timedelta(minutes=1, seconds=30))

    # The beat task now: nothing is a minute old yet.
    assert notification_emails_owed_dispatch_task.apply().get() == 0
    assert notification_emails_owed_dispatch(now=timezone.now() + timedelta(minutes=2)) == 1

    assert sorted(message.to[0] for message in mail.outbox) == ["ann@corp.example", "max@corp.example"]
    assert (owed(old), owed(sent), owed(fresh)) == ((False, True), (False, True), (True, False))
