"""Who may see which call: the one rule for calls, on every path (caller log, pop, actions, API, pushes).

A manager or an admin sees every call. An agent sees a call when its phone
rang for it or they answered it, when the call is on a ticket they may see
(``tickets_visible_to``, the rule of the pages and the API), or when the
call came in on a line of one of their queues (a line without a queue takes
the default queue, where its tickets go). Customers and anonymous users see
no call.
"""

from __future__ import annotations

from typing import Any

from django.db.models import Q, QuerySet

from servicedesk.accounts.roles import AGENT, user_role
from servicedesk.core.errors import NotFound
from servicedesk.tickets.access import queues_visible_to, tickets_visible_to
from servicedesk.tickets.services.tickets import queue_default

from .models import Call


def calls_visible_to(user: Any) -> QuerySet[Call]:
    role = user_role(user) if user is not None and user.is_authenticated else None
    if role is None:
        return Call.objects.none()
    if role != AGENT:
        return Call.objects.all()
    queues = queues_visible_to(user)
    line_rule = Q(line__queue__in=queues.values("pk"))
    if queues.filter(pk=queue_default().pk).exists():
        line_rule |= Q(line__isnull=False, line__queue__isnull=True)
    return Call.objects.filter(
        line_rule | Q(ticket__in=tickets_visible_to(user).values("pk")) | Q(agent=user) | Q(ringing__contains=[user.pk])
    )


def call_get_for(user: Any, call_id: Any) -> Call:
    """The call with this id if ``user`` may see it, else NotFound (the same answer as for no call)."""
    try:
        pk = int(call_id)
    except (TypeError, ValueError):
        raise NotFound("No such call.") from None
    call = (
        calls_visible_to(user)
        .select_related("line", "agent", "customer__organization", "ticket", "session")
        .filter(pk=pk)
        .first()
    )
    if call is None:
        raise NotFound("No such call.")
    return call
