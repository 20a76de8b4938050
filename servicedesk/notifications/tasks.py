"""Celery tasks: ids in, a service call. Any may run twice."""

from __future__ import annotations

from celery import shared_task

from servicedesk.notifications.followups import (
    customer_message_followers_notify,
    mentions_notify,
    ticket_assigned_notify,
    ticket_status_notify,
)
from servicedesk.notifications.reminders import reminders_due_send
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


@shared_task(name="notifications.ticket_assigned")
def ticket_assigned_notify_task(event_id: int) -> bool:
    """Tell an agent someone else assigned them a ticket; returns whether a notice was stored."""
    return ticket_assigned_notify(event_id=event_id) is not None


@shared_task(name="notifications.ticket_status")
def ticket_status_notify_task(event_id: int) -> int:
    """Tell a ticket's followers and assignee of a status change by someone else."""
    return ticket_status_notify(event_id=event_id)


@shared_task(name="notifications.customer_message_followers")
def customer_message_followers_notify_task(message_id: int) -> int:
    """Tell a ticket's followers that its customer wrote again."""
    return customer_message_followers_notify(message_id=message_id)


@shared_task(name="notifications.mentions")
def mentions_notify_task(message_id: int) -> int:
    """Tell the agents an internal note mentions."""
    return mentions_notify(message_id=message_id)


@shared_task(name="notifications.reminders_due_send")
def reminders_due_send_task() -> int:
    """Beat, every minute: deliver the reminders whose time has come, each once."""
    return reminders_due_send()
