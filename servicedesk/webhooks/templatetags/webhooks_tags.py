"""``{% load webhooks_tags %}{% if user|manages_webhooks %}``: the workspace's link to /desk/webhooks/."""

from __future__ import annotations

from typing import Any

from django import template

from servicedesk.webhooks.access import webhooks_manageable_by

register = template.Library()


@register.filter(name="manages_webhooks")
def manages_webhooks(user: Any) -> bool:
    """Whether ``user`` may manage webhooks (managers and admins), as the pages and the API decide."""
    return webhooks_manageable_by(user)
