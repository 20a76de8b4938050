"""Who may see which call: the one rule for calls, on every path (caller log, pop, actions, API, pushes).

A manager or an admin sees every call. An agent sees a call when its phone
rang for it or they answered it, when the call is on a ticket they may see
(``tickets_visible_to``, the rule of the pages and the API), or when the
call came in on a line of one of their queues (a line without a queue takes
the default queue, where its tickets go). Customers and anonymous users see
no call.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.db import connections
from django.db.models import Q, QuerySet
from django.db.models.expressions import RawSQL

from servicedesk.accounts.models import User
from servicedesk.accounts.roles import ADMIN, AGENT, MANAGER, ROLES, user_role
from servicedesk.core.errors import NotFound
from servicedesk.tickets.access import queues_visible_to, tickets_visible_to
from servicedesk.tickets.models import Queue, Ticket
from servicedesk.tickets.services.tickets import queue_default

from .models import Call


def rings_for(user_id: int) -> Q:
    """Calls whose phone rang for the agent (``Call.ringing`` holds their id).

    PostgreSQL asks the JSON list itself (``@>``); SQLite, the zero-setup
    database, has no such operator and reads the list with ``json_each``.
    """
    if connections[Call.objects.db].vendor == "postgresql":
        return Q(ringing__contains=[int(user_id)])
    table = Call._meta.db_table
    return Q(
        pk__in=RawSQL(  # noqa: S611 (the model's own table name; the id is a parameter)
            f"SELECT c.id FROM {table} c, json_each(c.ringing) r WHERE r.value = %s",  # noqa: S608
            [int(user_id)],
        )
    )


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
        line_rule | Q(ticket__in=tickets_visible_to(user).values("pk")) | Q(agent=user) | rings_for(user.pk)
    )


def call_viewer_ids(call: Call, user_ids: Iterable[int]) -> set[int]:
    """Of ``user_ids``, those ``calls_visible_to`` lets see ``call``: the same rule, for many users at once.

    Three queries whatever the number of users (their roles, the call's
    ticket, the queue members), so a call that rings for a whole queue is
    checked once when it is pushed, not once per socket.
    ``tests/channels_app/phone/test_access.py`` holds it equal to
    ``calls_visible_to`` user by user.
    """
    ids = {int(pk) for pk in user_ids}
    if not ids:
        return set()
    roles: dict[int, str] = {}
    for pk, name in User.groups.through.objects.filter(user_id__in=ids, group__name__in=ROLES).values_list(
        "user_id", "group__name"
    ):
        ranks = (AGENT, MANAGER, ADMIN)
        if pk not in roles or ranks.index(name) > ranks.index(roles[pk]):
            roles[pk] = name
    for pk in User.objects.filter(pk__in=ids, is_superuser=True).values_list("pk", flat=True):
        roles[pk] = ADMIN
    visible = {pk for pk, role in roles.items() if role != AGENT}
    agents = {pk for pk, role in roles.items() if role == AGENT}
    visible |= agents & ({call.agent_id} | {pk for pk in call.ringing or () if isinstance(pk, int)})
    queue_ids: set[int] = set()
    if call.line_id is not None:
        line_queue = call.line.queue_id if call.line is not None else None
        queue_ids.add(line_queue or queue_default().pk)
    if call.ticket_id is not None:
        ticket = Ticket.objects.filter(pk=call.ticket_id, is_deleted=False).values_list("queue_id", flat=True).first()
        if ticket is not None:
            queue_ids.add(ticket)
    if queue_ids and agents - visible:
        visible |= set(
            Queue.members.through.objects.filter(queue_id__in=queue_ids, user_id__in=agents - visible).values_list(
                "user_id", flat=True
            )
        )
    return visible


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
