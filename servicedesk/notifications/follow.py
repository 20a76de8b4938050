"""What notifications hears of through the ticket hooks, and the tasks it starts after commit.

``ticket_event_follow`` is registered as an event follower
(``NotificationsConfig.ready``): it sees every TicketEvent inside the
transaction that records it, writes nothing, and only arranges for a task
to be enqueued once that transaction commits (nothing is told of a change
that is rolled back). It must stay cheap: it runs for every event, a chat's
every line included, so it reads no row; the one look-up it may cost, whether
a ticket has followers, runs after the commit.
"""

from __future__ import annotations

from typing import Any

from django.db import transaction

from servicedesk.core.enqueue import task_enqueue
from servicedesk.tickets.followups import ticket_has_followers
from servicedesk.tickets.models import Channel, MessageKind, TicketEvent


def ticket_event_follow(*, event: TicketEvent) -> None:
    """After commit, enqueue the notice tasks a just-recorded event owes (docs/followups.md, "Who is told").

    - ``assignee`` set by someone other than the new assignee: that agent is told;
    - ``status`` changed by an agent or the system (not a customer's message,
      which is told as the message): the followers and the assignee;
    - an internal note with an ``@``: the agents it mentions;
    - a customer's message (not a live chat's line, not an auto-reply): the followers, if there are any.

    Imported history tells nobody.
    """
    if event.pk is None or event.source == "import":
        return
    kind, event_id = event.kind, event.pk
    if kind == TicketEvent.Kind.ASSIGNEE:
        if isinstance(event.after, int) and event.after != event.actor_user_id:
            transaction.on_commit(lambda: _enqueue("assigned", event_id), robust=True)
    elif kind == TicketEvent.Kind.STATUS:
        if event.actor_customer_id is None:
            transaction.on_commit(lambda: _enqueue("status", event_id), robust=True)
    elif kind == TicketEvent.Kind.MESSAGE and isinstance(event.after, dict) and event.message_id is not None:
        message_kind, message_id = event.after.get("kind"), event.message_id
        if message_kind == MessageKind.INTERNAL:
            # The note came with its event (services/replies.py); one that did not is read after commit.
            text = event.message.text if TicketEvent.message.is_cached(event) and event.message else "@"
            if "@" in text:
                transaction.on_commit(lambda: _enqueue("mentions", message_id), robust=True)
        elif (
            message_kind == MessageKind.PUBLIC_ENDUSER
            and event.after.get("channel") != Channel.CHAT
            and not event.after.get("automatic")
        ):
            ticket_id = event.ticket_id
            transaction.on_commit(lambda: _followers_message(ticket_id, message_id), robust=True)


def _followers_message(ticket_id: int, message_id: int) -> None:
    if ticket_has_followers(ticket_id):
        _enqueue("followers_message", message_id)


def _enqueue(what: str, object_id: int) -> Any:
    from servicedesk.notifications import tasks

    task = {
        "assigned": tasks.ticket_assigned_notify_task,
        "status": tasks.ticket_status_notify_task,
        "mentions": tasks.mentions_notify_task,
        "followers_message": tasks.customer_message_followers_notify_task,
    }[what]
    return task_enqueue(task, object_id)
