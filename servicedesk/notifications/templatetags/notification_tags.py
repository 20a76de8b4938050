"""The unread-notifications bell shown in the workspace header to agents."""

from __future__ import annotations

from typing import Any

from django import template

from servicedesk.accounts.roles import is_agent
from servicedesk.notifications.selectors import notification_unread_count

register = template.Library()


@register.inclusion_tag("notifications/_bell.html", takes_context=True)
def notifications_bell(context: template.Context) -> dict[str, Any]:
    """One query: how many of the signed-in agent's notifications are unread."""
    request = context.get("request")
    user = getattr(request, "user", None)
    if user is None or not is_agent(user):
        return {"show": False}
    return {"show": True, "unread": notification_unread_count(user=user)}
