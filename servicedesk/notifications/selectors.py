"""Reading a user's notifications."""

from __future__ import annotations

from django.db.models import QuerySet

from servicedesk.accounts.models import User
from servicedesk.notifications.models import Notification


def notification_list(*, user: User) -> QuerySet[Notification]:
    """The user's own notifications, newest first (index ``notification_user_created``)."""
    return Notification.objects.filter(user=user).order_by("-created_at", "-id")


def notification_unread_count(*, user: User) -> int:
    """Unread notifications of ``user``: one count on the partial index ``notification_user_unread``."""
    return Notification.objects.filter(user=user, read_at__isnull=True).count()
