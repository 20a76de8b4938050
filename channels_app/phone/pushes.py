"""What an agent's ``/ws/desk/`` sockets hear of calls: the screen pop's signal (servicedesk/live/pushes.py).

Each stored event of a call tells the agents concerned that the call
changed: the agents whose phones ring (the event's ``user``; when it names
nobody, the online agents of the line's queue), the agent who answered, and
those who were told before (so a pop that is no longer theirs goes away).
The frame only names the call, ``{"type": "phone", "event": "call", "call": id}``,
and goes only to users the call access rule lets see it (checked for all of
them at once when the push is sent, ``access.call_viewer_ids``); the workspace reads the pop from the desk (``/desk/calls/<id>/pop/``),
which decides what that agent is shown now: the ringing pop, the call in
progress, the wrap-up form, or nothing.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.db.models import QuerySet
from django.utils import timezone

from servicedesk.core.realtime import realtime_publish
from servicedesk.live.pushes import user_group, user_push
from servicedesk.routing.models import AgentProfile, Availability
from servicedesk.routing.selectors import presence_timeout
from servicedesk.tickets.services.tickets import queue_default

from .access import call_viewer_ids
from .models import Call

KIND = "phone.call"


def _online_in_queue(queue_id: int | None) -> QuerySet[AgentProfile]:
    return AgentProfile.objects.filter(
        availability=Availability.ONLINE,
        seen_at__gte=timezone.now() - presence_timeout(),
        user__is_active=True,
        user__queues=queue_id or queue_default().pk,
    )


def queue_agents_online(queue_id: int | None) -> list[int]:
    """The agents of a queue (the default one for ``None``) whose desk is online now."""
    return list(_online_in_queue(queue_id).order_by("user_id").values_list("user_id", flat=True))


def queue_agent_online(queue_id: int | None, user_id: int) -> bool:
    """Whether one agent is an online agent of the queue (the default one for ``None``)."""
    return _online_in_queue(queue_id).filter(user_id=user_id).exists()


def call_recipients(call: Call, before: Iterable[int | None] = ()) -> set[int]:
    users = {int(pk) for pk in call.ringing or () if isinstance(pk, int)}
    if call.agent_id:
        users.add(call.agent_id)
    users.update(pk for pk in before if pk)
    if not call.ringing and call.line is not None:
        # A call for the whole queue: its online agents hear of the ring, and of the answer or
        # the hang-up that takes the pop off their screens.
        users.update(queue_agents_online(call.line.queue_id))
    return users


def call_push_after_commit(call: Call, *, before: Iterable[int | None] = ()) -> None:
    """Tell the call's agents it changed, once the transaction commits.

    The access rule is applied here, for every recipient at once
    (``access.call_viewer_ids``, the rule of ``calls_visible_to``): a call
    that rings for a whole queue is checked in three queries, not one per
    socket. The push names the users it may reach; a socket whose user is
    not among them sends nothing.
    """
    recipients = call_recipients(call, before)
    viewers = call_viewer_ids(call, recipients)
    for user_id in sorted(recipients & viewers):
        realtime_publish(group=user_group(user_id), kind=KIND, data={"call": call.pk, "viewer": user_id})


@user_push(KIND)
def call_changed(user: Any, data: dict[str, Any]) -> dict[str, Any] | None:
    call_id = data.get("call")
    if not isinstance(call_id, int) or data.get("viewer") != user.pk:
        return None
    return {"type": "phone", "event": "call", "call": call_id}
