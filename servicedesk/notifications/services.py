"""Writing notifications: store one per user and key, email it after commit, mark as read."""

from __future__ import annotations

from datetime import datetime

from django.conf import settings
from django.core.mail import send_mail
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.urls import reverse
from django.utils import timezone, translation
from django.utils.translation import gettext as _

from servicedesk.accounts.models import User
from servicedesk.core.enqueue import task_enqueue
from servicedesk.core.errors import NotFound
from servicedesk.notifications.models import Notification, NotificationKind
from servicedesk.tickets.access import customers_conceal
from servicedesk.tickets.models import Message, Ticket

# The customer's text quoted in the notice, at most.
QUOTE_MAX = 2000


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


def customer_message_notify(*, message_id: int) -> Notification | None:
    """Tell a ticket's assignee that its customer wrote again: a notice in the
    workspace and, after commit, an email in the assignee's language.

    Guarantee: at most one notice per message and assignee, titled
    "[<reference>] New message from <customer>", quoting the first
    ``QUOTE_MAX`` characters of the text and linking the ticket's page.
    Nothing is owed (None) for a message that is gone or whose ticket has no
    assignee. Errors: none raised; the email is ``notification_email``'s
    task, sent at most once.

    Idempotency key: ``message:<message id>`` with the assignee (unique per
    user in ``Notification``): the task delivered twice notifies once.
    """
    message = (
        Message.objects.select_related("ticket", "ticket__assignee", "author_customer")
        .filter(pk=message_id)
        .filter(~Q(ticket__assignee=None))
        .first()
    )
    if message is None or message.ticket.assignee is None:
        return None
    ticket, assignee = message.ticket, message.ticket.assignee
    # The notice names the author only as the assignee may see them (docs/architecture.md, "Access rules").
    customers_conceal(assignee, [ticket], messages=[message])
    with translation.override(assignee.language or settings.LANGUAGE_CODE):
        title = _("[%(reference)s] New message from %(customer)s") % {
            "reference": ticket.reference,
            "customer": message.author_name,
        }
    return notification_send(
        user=assignee,
        kind=NotificationKind.CUSTOMER_MESSAGE,
        key=f"message:{message.pk}",
        title=title,
        body=message.text[:QUOTE_MAX],
        ticket=ticket,
        url=reverse("desk:ticket", kwargs={"reference": ticket.reference}),
    )


def customer_message_notify_enqueue(*, message_id: int) -> None:
    """Enqueue ``customer_message_notify`` (after the intake's commit; see ``tickets/hooks.py``)."""
    from servicedesk.notifications.tasks import customer_message_notify_task

    task_enqueue(customer_message_notify_task, message_id)
