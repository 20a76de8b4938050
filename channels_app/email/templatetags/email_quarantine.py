"""Template helpers for the quarantine link in the agent workspace."""

from typing import Any

from django import template

from servicedesk.accounts.roles import sees_all_queues

register = template.Library()


@register.filter(name="sees_quarantine")
def sees_quarantine(user: Any) -> bool:
    """Managers and admins see the mail quarantine (the same rule as the pages)."""
    return sees_all_queues(user)
