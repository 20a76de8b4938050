"""Writing notifications: store one per user and key, email it after commit, mark as read."""

from __future__ import annotations

from datetime import datetime

from django.conf import settings
from django.core.mail import send_mail
from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from servicedesk.accounts.models import User
from servicedesk.core.enqueue import task_enqueue
from servicedesk.core.errors import NotFound
from servicedesk.notifications.models import Notification
from servicedesk.tickets.models import Ticket


def notification_send(
    *,
    user: User,
    kind: str,
    key: str,
    title: str,
    body: str = "",
    ticket: Ticket | None = None,
    url: str = "",
    email: bool = True,
    at: datetime | None = None,
) -> Notification | None:
    """Store an in-app notification for ``user`` and, after commit, email it to them.

    Idempotent on (user, key): when that notice is already stored nothing is
    written or sent and None is returned, so a task that runs twice notifies
    once. Title and body are stored as given (render them in the user's
    language first). The email goes only to a user with an address.
    """
    try:
        with transaction.atomic():
            notification = Notification.objects.create(
                user=user,
                kind=kind,
                key=key,
                title=title[:300],
                body=body,
                ticket=ticket,
                url=url,
                created_at=at or timezone.now(),
            )
    except IntegrityError:
        return None
    if email and user.email:
        from servicedesk.notifications.tasks import notification_email_task

        # With the broker down the notification is still shown in the workspace; its email is not sent.
        transaction.on_commit(lambda: task_enqueue(notification_email_task, notification.pk))
    return notification


def notification_email(*, notification_id: int) -> bool:
    """Email one stored notification to its user, at most once.

    The claim (``emailed_at`` set where it was empty) decides: a second run,
    or a run for a notification already sent, sends nothing and returns False.
    """
    claimed = Notification.objects.filter(pk=notification_id, emailed_at__isnull=True).update(emailed_at=timezone.now())
    if not claimed:
        return False
    notification = Notification.objects.select_related("user").get(pk=notification_id)
    user = notification.user
    if not user.email:
        return False
    body = notification.body
    if notification.url:
        body = f"{body}\n\n{settings.SITE_URL}{notification.url}\n"
    subject = " ".join(notification.title.split())[:200]
    return bool(send_mail(subject, body, None, [user.email]))


def notification_mark_read(*, user: User, notification_id: int | None = None, at: datetime | None = None) -> int:
    """Mark one of ``user``'s notifications (or, with no id, all of them) as read.

    Returns how many changed; marking a read notification again changes
    nothing. Raises NotFound for an id that is not one of the user's own.
    """
    unread = Notification.objects.filter(user=user, read_at__isnull=True)
    if notification_id is not None:
        changed = unread.filter(pk=notification_id).update(read_at=at or timezone.now())
        if not changed and not Notification.objects.filter(user=user, pk=notification_id).exists():
            raise NotFound(_("Notification not found."))
        return changed
    return unread.update(read_at=at or timezone.now())
