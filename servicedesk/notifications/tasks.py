"""Celery tasks: ids in, a service call. Any may run twice."""

from __future__ import annotations

from celery import shared_task

from servicedesk.notifications.services import (
    customer_message_notify,
    notification_email,
    notification_emails_owed_dispatch,
)


@shared_task(name="notifications.email")
def notification_email_task(notification_id: int) -> bool:
    return notification_email(notification_id=notification_id)


@shared_task(name="notifications.emails_owed_dispatch")
def notification_emails_owed_dispatch_task() -> int:
    """Beat, every minute: enqueue again the emails of notifications whose email task was lost."""
    return notification_emails_owed_dispatch()


@shared_task(name="notifications.customer_message")
def customer_message_notify_task(message_id: int) -> bool:
    """Tell the assignee that the customer wrote again; returns whether a notice was stored."""
    return customer_message_notify(message_id=message_id) is not None
