"""Reading follow-ups: tickets whose notes mention an agent, and who follows a ticket.

Every function returns only what the given agent may see
(``access.tickets_visible_to``). See docs/followups.md.
"""

from __future__ import annotations

from typing import Any

from django.db.models import Exists, OuterRef, QuerySet

from servicedesk.accounts.models import User
from servicedesk.tickets.access import tickets_visible_to
from servicedesk.tickets.models import MessageMention, Ticket, TicketFollower


def tickets_mentioning(user: Any, *, within: QuerySet[Ticket] | None = None) -> QuerySet[Ticket]:
    """The tickets ``user`` may see whose internal notes mention them (``@name``).

    ``within`` narrows a list the caller already built (an inbox view with its
    filters and sort; it must itself come from ``tickets_visible_to``);
    without it, every ticket ``user`` may see. One ``EXISTS`` per ticket on the
    index ``mention_user_ticket`` (user, ticket): the messages are not read.
    """
    base = within if within is not None else tickets_visible_to(user)
    return base.filter(Exists(MessageMention.objects.filter(user_id=user.pk, ticket_id=OuterRef("pk"))))


def tickets_followed_by(user: Any, *, within: QuerySet[Ticket] | None = None) -> QuerySet[Ticket]:
    """The tickets ``user`` follows and may see (``within`` as for ``tickets_mentioning``)."""
    base = within if within is not None else tickets_visible_to(user)
    return base.filter(Exists(TicketFollower.objects.filter(user_id=user.pk, ticket_id=OuterRef("pk"))))


def ticket_is_followed_by(ticket: Ticket, user: Any) -> bool:
    """Whether ``user`` follows ``ticket`` (one probe of the unique (ticket, user) index)."""
    return TicketFollower.objects.filter(ticket=ticket, user_id=user.pk).exists()


def ticket_followers(ticket: Ticket) -> list[User]:
    """The active agents following ``ticket``, by id (visibility is the notifier's check, per person)."""
    return list(User.objects.filter(is_active=True, followed_tickets__ticket=ticket).order_by("pk").distinct())


def ticket_has_followers(ticket_id: int) -> bool:
    """Whether anyone follows the ticket: one probe of the unique (ticket, user) index."""
    return TicketFollower.objects.filter(ticket_id=ticket_id).exists()
