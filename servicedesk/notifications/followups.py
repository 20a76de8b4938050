"""Notices about a ticket's follow-ups: assignment, mentions, followers' news.

Each function is one task's work (``tasks.py``), started after the commit of
the change it tells of (``follow.py`` hears of every change through the
ticket hooks). Each recipient must still be an active agent who may see the
ticket when the notice is written (``access.can_see_ticket``), and gets it
once: the key is unique per user (``notification_send``), and shared with
the assignee's notice of the same message, so an assignee who also follows
hears once. Who is told of what: docs/followups.md, "Who is told".
"""

from __future__ import annotations

from django.conf import settings
from django.db.models import Q
from django.urls import reverse
from django.utils import translation
from django.utils.translation import gettext as _

from servicedesk.accounts.models import User
from servicedesk.accounts.roles import is_agent
from servicedesk.notifications.models import Notification, NotificationKind
from servicedesk.notifications.services import QUOTE_MAX, notification_send
from servicedesk.tickets.access import can_see_ticket, customers_conceal
from servicedesk.tickets.followups import ticket_followers
from servicedesk.tickets.models import Message, MessageKind, MessageMention, Ticket, TicketEvent
from servicedesk.tickets.services.followups import REASON_REACHED
from servicedesk.tickets.statuses import Status


def _ticket_url(ticket: Ticket, message: Message | None = None) -> str:
    url = reverse("desk:ticket", kwargs={"reference": ticket.reference})
    return f"{url}#message-{message.pk}" if message is not None else url


def _may_hear(user: User, ticket: Ticket) -> bool:
    return user.is_active and is_agent(user) and can_see_ticket(user, ticket)


def _language(user: User) -> str:
    return user.language or settings.LANGUAGE_CODE


def _actor_name(event: TicketEvent) -> str:
    if event.actor_user is not None:
        return str(event.actor_user)
    if event.source == "routing":
        return _("automatic assignment")
    return _("the system")


def ticket_assigned_notify(*, event_id: int) -> Notification | None:
    """Tell an agent that someone else assigned them a ticket (an ``assignee`` event).

    Nothing for an unassignment, an agent who took the ticket themself, an
    imported event, or an assignee who no longer holds or may see the
    ticket. Idempotency key: ``assigned:<event id>``.
    """
    event = (
        TicketEvent.objects.select_related("ticket", "ticket__assignee", "actor_user")
        .filter(pk=event_id, kind=TicketEvent.Kind.ASSIGNEE)
        .first()
    )
    if event is None or not isinstance(event.after, int) or event.source == "import":
        return None
    if event.actor_user_id == event.after:
        return None
    ticket = event.ticket
    assignee = ticket.assignee
    if assignee is None or assignee.pk != event.after or not _may_hear(assignee, ticket):
        return None
    with translation.override(_language(assignee)):
        title = _("[%(reference)s] Assigned to you by %(who)s") % {
            "reference": ticket.reference,
            "who": _actor_name(event),
        }
    return notification_send(
        user=assignee,
        kind=NotificationKind.ASSIGNED,
        key=f"assigned:{event.pk}",
        title=title,
        body=ticket.subject,
        ticket=ticket,
        url=_ticket_url(ticket),
        at=event.at,
    )


def _status_recipients(ticket: Ticket, *, exclude_id: int | None) -> list[User]:
    """The ticket's followers and its assignee (who follows without a row), but not ``exclude_id``."""
    people = {user.pk: user for user in ticket_followers(ticket)}
    if ticket.assignee is not None:
        people.setdefault(ticket.assignee.pk, ticket.assignee)
    people.pop(exclude_id or 0, None)
    return [people[pk] for pk in sorted(people)]


def ticket_status_notify(*, event_id: int) -> int:
    """Tell a ticket's followers and assignee that someone else changed its status (a ``status`` event).

    The one who changed it is not told; a customer's message that reopens a
    ticket is told as that message (``customer_message_followers_notify``),
    not here; imported history tells nobody. A reopen by the pending-until
    sweep says so. Idempotency key: ``status:<event id>``. Returns how many
    notices were new.
    """
    event = (
        TicketEvent.objects.select_related("ticket", "ticket__assignee", "actor_user")
        .filter(pk=event_id, kind=TicketEvent.Kind.STATUS)
        .first()
    )
    if event is None or event.actor_customer_id is not None or event.source == "import":
        return 0
    if not isinstance(event.after, str) or event.after not in Status.values:
        return 0
    ticket = event.ticket
    reached = (
        event.actor_user_id is None
        and event.before == Status.PENDING
        and TicketEvent.objects.filter(
            ticket=ticket, kind=TicketEvent.Kind.PENDING_UNTIL, at=event.at, after__reason=REASON_REACHED
        ).exists()
    )
    sent = 0
    for user in _status_recipients(ticket, exclude_id=event.actor_user_id):
        if not _may_hear(user, ticket):
            continue
        with translation.override(_language(user)):
            values = {
                "reference": ticket.reference,
                "status": Status(event.after).label,
                "who": _actor_name(event),
            }
            if reached:
                title = _("[%(reference)s] Reopened: its pending time has come") % values
            else:
                title = _("[%(reference)s] Status set to %(status)s by %(who)s") % values
        if notification_send(
            user=user,
            kind=NotificationKind.TICKET_STATUS,
            key=f"status:{event.pk}",
            title=title,
            body=ticket.subject,
            ticket=ticket,
            url=_ticket_url(ticket),
            at=event.at,
        ):
            sent += 1
    return sent


def customer_message_followers_notify(*, message_id: int) -> int:
    """Tell a ticket's followers that its customer wrote again, as the assignee is told
    (``customer_message_notify``: same title, text and key ``message:<id>``, so
    one who is both hears once). Returns how many notices were new."""
    message = (
        Message.objects.select_related("ticket", "author_customer")
        .filter(pk=message_id, kind=MessageKind.PUBLIC_ENDUSER)
        .first()
    )
    if message is None:
        return 0
    ticket, author = message.ticket, message.author_customer
    sent = 0
    for user in ticket_followers(ticket):
        if not _may_hear(user, ticket):
            continue
        # The notice names the author only as this follower may see them (docs/architecture.md, "Access rules");
        # each follower starts from the real author, not the previous one's stand-in.
        message.author_customer = author
        customers_conceal(user, [], messages=[message])
        with translation.override(_language(user)):
            title = _("[%(reference)s] New message from %(customer)s") % {
                "reference": ticket.reference,
                "customer": message.author_name,
            }
        if notification_send(
            user=user,
            kind=NotificationKind.CUSTOMER_MESSAGE,
            key=f"message:{message.pk}",
            title=title,
            body=message.text[:QUOTE_MAX],
            ticket=ticket,
            url=_ticket_url(ticket),
        ):
            sent += 1
    return sent


def mentions_notify(*, message_id: int) -> int:
    """Tell each agent an internal note mentions (its ``MessageMention`` rows) that it does.

    Someone who may no longer see the ticket by now is not told.
    Idempotency key: ``mention:<message id>``. Returns how many notices were new.
    """
    mentions = list(
        MessageMention.objects.select_related("user", "message", "message__author_user", "ticket")
        .filter(message_id=message_id)
        .filter(~Q(message__kind=MessageKind.PUBLIC_AGENT))
        .order_by("user_id")
    )
    sent = 0
    for mention in mentions:
        user, message, ticket = mention.user, mention.message, mention.ticket
        if not _may_hear(user, ticket):
            continue
        with translation.override(_language(user)):
            author = str(message.author_user) if message.author_user is not None else _("the system")
            title = _("[%(reference)s] %(author)s mentioned you") % {"reference": ticket.reference, "author": author}
        if notification_send(
            user=user,
            kind=NotificationKind.MENTION,
            key=f"mention:{message.pk}",
            title=title,
            body=message.text[:QUOTE_MAX],
            ticket=ticket,
            url=_ticket_url(ticket, message),
            at=mention.created_at,
        ):
            sent += 1
    return sent
