"""Who sees and who manages macros and canned replies: one function per question, used on every path.

- A personal one is its owner's alone.
- A queue one is seen by the agents of that queue (managers and admins see
  every queue, so every queue's).
- A global one is seen by every agent.
- Agents manage their personal ones; managers and admins also queue and
  global ones. Nobody manages another person's personal one.

Anything a caller may not see is "not found", as for tickets. A macro or
canned reply of a queue applies only to that queue's tickets
(``macros_for_ticket``).
"""

from __future__ import annotations

from typing import Any, TypeVar

from django.db.models import Q, QuerySet
from django.utils.translation import gettext as _

from servicedesk.accounts.roles import is_agent, sees_all_queues
from servicedesk.core.errors import ApplicationError, NotFound, PermissionDenied
from servicedesk.tickets.access import queues_visible_to
from servicedesk.tickets.models import Queue, Ticket

from .models import CannedReply, Macro, Scope, Scoped

S = TypeVar("S", bound=Scoped)


def _visible(model: type[S], user: Any) -> QuerySet[S]:
    if not is_agent(user):
        return model._default_manager.none()
    return model._default_manager.filter(
        Q(scope=Scope.PERSONAL, owner_id=user.pk)
        | Q(scope=Scope.GLOBAL)
        | Q(scope=Scope.QUEUE, queue__in=queues_visible_to(user).values("pk"))
    )


def _for_ticket(visible: QuerySet[S], ticket: Ticket) -> QuerySet[S]:
    return visible.filter(Q(queue__isnull=True) | Q(queue_id=ticket.queue_id)).order_by("name", "pk")


def macros_visible_to(user: Any) -> QuerySet[Macro]:
    """Every macro ``user`` may see. The one rule for macros."""
    return _visible(Macro, user)


def canned_replies_visible_to(user: Any) -> QuerySet[CannedReply]:
    """Every canned reply ``user`` may see. The one rule for canned replies."""
    return _visible(CannedReply, user)


def macros_for_ticket(user: Any, ticket: Ticket) -> QuerySet[Macro]:
    """The macros ``user`` may apply to ``ticket`` (a ticket they may see): theirs, the global
    ones and those of the ticket's queue, by name."""
    return _for_ticket(macros_visible_to(user), ticket)


def canned_replies_for_ticket(user: Any, ticket: Ticket) -> QuerySet[CannedReply]:
    return _for_ticket(canned_replies_visible_to(user), ticket)


def macro_get_for(user: Any, pk: Any) -> Macro:
    """One macro ``user`` may see, else NotFound."""
    found = macros_visible_to(user).select_related("queue").filter(pk=pk).first() if _is_id(pk) else None
    if found is None:
        raise NotFound(_("Macro not found."))
    return found


def canned_reply_get_for(user: Any, pk: Any) -> CannedReply:
    found = canned_replies_visible_to(user).select_related("queue").filter(pk=pk).first() if _is_id(pk) else None
    if found is None:
        raise NotFound(_("Canned reply not found."))
    return found


def _is_id(value: Any) -> bool:
    text = str(value)
    return text.isdigit() and 0 < int(text) < 2**63


def scopes_for(user: Any) -> list[str]:
    """The scopes ``user`` may create in: agents personal only, managers and admins all three."""
    if sees_all_queues(user):
        return [Scope.PERSONAL, Scope.QUEUE, Scope.GLOBAL]
    return [Scope.PERSONAL] if is_agent(user) else []


def can_manage(user: Any, item: Scoped) -> bool:
    """Whether ``user`` may change or delete ``item`` (one they may see)."""
    if item.scope == Scope.PERSONAL:
        return item.owner_id == user.pk
    return sees_all_queues(user)


def manage_check(user: Any, item: Scoped) -> None:
    """Raise PermissionDenied (403) unless ``user`` may change ``item``."""
    if not can_manage(user, item):
        raise PermissionDenied(
            _("Only managers and admins change queue and global ones, and only its owner a personal one.")
        )


def scope_check(user: Any, *, scope: str, queue: Queue | None) -> None:
    """Raise ApplicationError unless ``user`` may keep an item in ``scope`` (and ``queue``)."""
    if scope not in Scope.values:
        raise ApplicationError(_("Unknown scope."), field="scope")
    if scope not in scopes_for(user):
        raise PermissionDenied(_("Only managers and admins keep queue and global ones."))
