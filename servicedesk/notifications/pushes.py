"""The bell counts live: ``notifications.changed`` pushed to a user's open desk pages.

The services push it after a notice is stored or read (``services.py``,
whichever process does it: a page, the API, the Celery worker's SLA
warnings); it says only that the user's notices changed. Each socket of the
user answers with the unread count read from the database, the truth, so
pushes that cross or get lost never leave a wrong number for long: the next
one, or the next page, is right.
"""

from __future__ import annotations

from typing import Any

from servicedesk.core.realtime import realtime_publish
from servicedesk.live.pushes import user_group, user_push
from servicedesk.notifications.selectors import notification_unread_count

NOTIFICATIONS_CHANGED = "notifications.changed"


def notifications_changed_publish(*, user_id: int) -> None:
    """After commit, tell the user's open desk pages that their notices changed."""
    realtime_publish(group=user_group(user_id), kind=NOTIFICATIONS_CHANGED, data={})


@user_push(NOTIFICATIONS_CHANGED)
def bell_frame(user: Any, data: dict[str, Any]) -> dict[str, Any]:
    """``{"type": "bell", "unread": n}``: the socket's own user's count, whoever's push it was."""
    return {"type": "bell", "unread": notification_unread_count(user=user)}
