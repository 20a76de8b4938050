"""Reading a user's notifications."""

from __future__ import annotations

from django.db.models import QuerySet

from servicedesk.accounts.models import User
from servicedesk.notifications.models import Notification


def notification_list(*, user: User) -> QuerySet[Notification]:
    """The user's own notifications shown in the workspace, newest first (index ``notification_user_created``);
    those they chose to have by email only are left out."""
    return Notification.objects.filter(user=user, in_app=True).order_by("-created_at", "-id")


def notification_unread_count(*, user: User) -> int:
    """Unread notifications of ``user`` shown in the workspace: one count on the partial index
    ``notification_user_unread_shown``."""
    return Notification.objects.filter(user=user, read_at__isnull=True, in_app=True).count()
