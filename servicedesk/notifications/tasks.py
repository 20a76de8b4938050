"""Celery tasks: ids in, a service call. Any may run twice."""

from __future__ import annotations

from celery import shared_task

from servicedesk.notifications.services import notification_email


@shared_task(name="notifications.email")
def notification_email_task(notification_id: int) -> bool:
    return notification_email(notification_id=notification_id)
