"""Writing notifications: store one per user and key, email it after commit, mark as read.

Each write that changes a user's unread count also tells that user's open
desk pages, after commit (``pushes.notifications_changed_publish``), so the
bell follows without a reload.
"""

from __future__ import annotations

from datetime import datetime, timedelta

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
from servicedesk.notifications.preferences import preference_of
from servicedesk.notifications.pushes import notifications_changed_publish
from servicedesk.tickets.access import customers_conceal
from servicedesk.tickets.models import Message, Ticket

# The customer's text quoted in the notice, at most.
QUOTE_MAX = 2000
# An email still owed this long after the notice was stored lost its task; the sweep enqueues it again.
OWED_EMAIL_AGE = timedelta(minutes=1)
OWED_DISPATCH_BATCH = 500


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
    language first). The user's preferences for ``kind`` decide
    (``preferences.preference_of``): a notice they want by email only is
    stored hidden from the bell and the list (``in_app`` false) to key it
    and carry its email; one they want neither way is not stored (None).
    The email goes only to a user with an address. The user's open desk
    pages hear of a shown notice after commit (their bell counts it).
    """
    preference = preference_of(user, kind)
    if not preference.in_app and not (email and preference.email):
        return None
    owed = email and preference.email and bool(user.email)
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
                email_owed_since=timezone.now() if owed else None,
                in_app=preference.in_app,
            )
    except IntegrityError:
        return None
    if owed:
        # With the broker down the notice is shown in the workspace at once and its
        # email, still owed, is enqueued again by ``notification_emails_owed_dispatch``.
        transaction.on_commit(lambda: notification_email_enqueue(notification_id=notification.pk))
    if preference.in_app:
        notifications_changed_publish(user_id=user.pk)
    return notification


def notification_email_enqueue(*, notification_id: int) -> bool:
    """Enqueue the email task of one notification (after commit); False when the broker is down."""
    from servicedesk.notifications.tasks import notification_email_task

    return task_enqueue(notification_email_task, notification_id)


def notification_email(*, notification_id: int) -> bool:
    """Email one stored notification to its user, at most once.

    The claim decides: one UPDATE clears ``email_owed_since`` and stamps
    ``emailed_at`` where an email was still owed, and only the caller that
    changed the row sends. A second run, the sweep racing the first task, or
    a notification stored without an email, sends nothing and returns False.
    """
    claimed = Notification.objects.filter(pk=notification_id, email_owed_since__isnull=False).update(
        email_owed_since=None, emailed_at=timezone.now()
    )
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


def notification_emails_owed_dispatch(*, now: datetime | None = None) -> int:
    """Enqueue again the email task of every notification still owed its email a minute after it was stored.

    For emails whose task was lost (the broker was down when it was
    enqueued, or lost the task). Sends nothing itself: the task's claim in
    ``notification_email`` makes each email go at most once, so this may run
    twice, or beside the first task, and still one mail leaves. At most
    ``OWED_DISPATCH_BATCH`` per run, oldest first (index
    ``notification_email_owed``); the next run takes the rest. Returns how
    many were enqueued (none while the broker is still down).
    """
    cutoff = (now or timezone.now()) - OWED_EMAIL_AGE
    ids = list(
        Notification.objects.filter(email_owed_since__lt=cutoff)
        .order_by("email_owed_since", "pk")
        .values_list("pk", flat=True)[:OWED_DISPATCH_BATCH]
    )
    enqueued = 0
    for pk in ids:
        if not notification_email_enqueue(notification_id=pk):
            break
        enqueued += 1
    return enqueued


def notification_mark_read(*, user: User, notification_id: int | None = None, at: datetime | None = None) -> int:
    """Mark one of ``user``'s notifications (or, with no id, all of them) as read.

    Returns how many changed; marking a read notification again changes
    nothing (and tells nobody). Raises NotFound for an id that is not one of
    the user's own. When some changed, the user's open desk pages hear of it
    after commit.
    """
    unread = Notification.objects.filter(user=user, read_at__isnull=True, in_app=True)
    if notification_id is not None:
        changed = unread.filter(pk=notification_id).update(read_at=at or timezone.now())
        if not changed and not Notification.objects.filter(user=user, pk=notification_id, in_app=True).exists():
            raise NotFound(_("Notification not found."))
    else:
        changed = unread.update(read_at=at or timezone.now())
    if changed:
        notifications_changed_publish(user_id=user.pk)
    return changed


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


def customer_message_notify_enqueue(*, message_id: int, assignee_id: int | None) -> None:
    """Enqueue ``customer_message_notify`` (after the intake's commit; see ``tickets/hooks.py``).

    A message on a ticket nobody is assigned owes no notice: nothing is queued
    (a chat's every line would otherwise be a task)."""
    if assignee_id is None:
        return
    from servicedesk.notifications.tasks import customer_message_notify_task

    task_enqueue(customer_message_notify_task, message_id)
