"""Reminders: an agent's note to themself about a ticket, delivered as a notification when its time comes.

Writes (``reminder_create``, ``reminder_cancel``, the sweep) and reads
(``reminders_of``) of one agent's own reminders; nobody sees or cancels
another's. A reminder is delivered once: the sweep claims it with one
conditional UPDATE and stores its notice (key ``reminder:<id>``) in the same
transaction, so two sweeps, or a sweep run twice, deliver it once; a crash
before the commit leaves it waiting for the next sweep. The agent must still
be an active agent who may see the ticket then, or nothing is sent
(``outcome = not_visible``). See docs/followups.md.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import QuerySet
from django.urls import reverse
from django.utils import timezone, translation
from django.utils.translation import gettext as _

from servicedesk.accounts.models import User
from servicedesk.accounts.roles import is_agent
from servicedesk.core.errors import ApplicationError, NotFound
from servicedesk.core.text import clean_text
from servicedesk.notifications.models import NotificationKind, Reminder
from servicedesk.notifications.services import notification_send
from servicedesk.tickets.access import can_see_ticket, tickets_visible_to
from servicedesk.tickets.models import Ticket

NOTE_MAX = 500
# How far ahead a reminder may be set, and how many one agent may keep waiting on one ticket.
HORIZON = timedelta(days=366 * 2)
WAITING_PER_TICKET = 20
# Reminders the sweep delivers per run at most (index ``reminder_due``); the next run takes the rest.
SWEEP_BATCH = 500


class InvalidReminder(ApplicationError):
    pass


def reminders_of(*, user: User, ticket: Ticket | None = None, waiting: bool | None = None) -> QuerySet[Reminder]:
    """``user``'s own reminders on tickets they may still see (on ``ticket`` only, when given),
    the soonest first; ``waiting`` True or False keeps those not yet or already delivered."""
    qs = Reminder.objects.filter(user=user, ticket__in=tickets_visible_to(user).values("pk"))
    if ticket is not None:
        qs = qs.filter(ticket=ticket)
    if waiting is not None:
        qs = qs.filter(delivered_at__isnull=waiting)
    return qs.select_related("ticket").order_by("remind_at", "pk")


def reminder_create(
    *, user: User, ticket: Ticket, remind_at: datetime, note: str = "", at: datetime | None = None
) -> Reminder:
    """Remind ``user`` of ``ticket`` at ``remind_at``, with an optional note (at most NOTE_MAX characters).

    Refuses (InvalidReminder, field named, nothing written) a time that is
    not in the future or more than two years ahead, a note too long, a
    twenty-first waiting reminder on one ticket, and anyone but an active
    agent who may see the ticket (then as "not found").
    """
    at = at or timezone.now()
    if not user.is_active or not is_agent(user) or not can_see_ticket(user, ticket):
        raise NotFound(_("Ticket not found."))
    if timezone.is_naive(remind_at):
        raise InvalidReminder(_("Give the time with its time zone."), field="remind_at")
    if remind_at <= at:
        raise InvalidReminder(_("The reminder's time must be in the future."), field="remind_at")
    if remind_at > at + HORIZON:
        raise InvalidReminder(_("A reminder can be set at most two years ahead."), field="remind_at")
    note = clean_text(note or "").strip()
    if len(note) > NOTE_MAX:
        raise InvalidReminder(
            _("The note is longer than %(n)d characters.") % {"n": NOTE_MAX},
            field="note",
        )
    waiting = Reminder.objects.filter(user=user, ticket=ticket, delivered_at__isnull=True).count()
    if waiting >= WAITING_PER_TICKET:
        raise InvalidReminder(
            _("You already have %(n)d reminders waiting on this ticket.") % {"n": WAITING_PER_TICKET},
            field="remind_at",
        )
    return Reminder.objects.create(user=user, ticket=ticket, remind_at=remind_at, note=note, created_at=at)


def reminder_cancel(*, user: User, reminder_id: int) -> None:
    """Delete one of ``user``'s own reminders (waiting or delivered).

    NotFound for an id that is not theirs or whose ticket they may no
    longer see; cancelling twice is NotFound the second time.
    """
    deleted, _rows = reminders_of(user=user).filter(pk=reminder_id).delete()
    if not deleted:
        raise NotFound(_("Reminder not found."))


def reminder_deliver(*, reminder_id: int, now: datetime | None = None) -> bool:
    """Deliver one due reminder; True when this call delivered it (a notice was stored).

    Claim: ``UPDATE ... SET delivered_at = now WHERE id = ? AND delivered_at
    IS NULL AND remind_at <= now``, in the transaction that stores the
    notice, so whoever changed the row delivers and any other run does
    nothing. A reminder whose agent may no longer see the ticket, or is no
    longer an active agent, is closed as ``not_visible`` without a notice.
    """
    now = now or timezone.now()
    with transaction.atomic():
        claimed = Reminder.objects.filter(pk=reminder_id, delivered_at__isnull=True, remind_at__lte=now).update(
            delivered_at=now, outcome=Reminder.Outcome.SENT
        )
        if not claimed:
            return False
        reminder = Reminder.objects.select_related("user", "ticket").get(pk=reminder_id)
        user, ticket = reminder.user, reminder.ticket
        if not (user.is_active and is_agent(user) and can_see_ticket(user, ticket)):
            Reminder.objects.filter(pk=reminder_id).update(outcome=Reminder.Outcome.NOT_VISIBLE)
            return False
        with translation.override(user.language or settings.LANGUAGE_CODE):
            title = _("[%(reference)s] Reminder: %(subject)s") % {
                "reference": ticket.reference,
                "subject": ticket.subject,
            }
            body = reminder.note or _("You asked to be reminded of this ticket.")
        notice = notification_send(
            user=user,
            kind=NotificationKind.REMINDER,
            key=f"reminder:{reminder.pk}",
            title=title,
            body=body,
            ticket=ticket,
            url=reverse("desk:ticket", kwargs={"reference": ticket.reference}),
            at=now,
        )
    return notice is not None


def reminders_due_send(*, now: datetime | None = None, limit: int = SWEEP_BATCH) -> int:
    """Deliver every reminder whose time has come (the beat's sweep, every minute), the earliest first.

    Reads the due ids along the partial index ``reminder_due`` and delivers
    each through its own claim (``reminder_deliver``): running twice, or
    beside another sweep, delivers each once. Returns how many notices this
    run stored.
    """
    now = now or timezone.now()
    ids = list(
        Reminder.objects.filter(delivered_at__isnull=True, remind_at__lte=now)
        .order_by("remind_at", "pk")
        .values_list("pk", flat=True)[:limit]
    )
    return sum(1 for pk in ids if reminder_deliver(reminder_id=pk, now=now))
