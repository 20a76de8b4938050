"""Names people read for stored codes in the agent workspace."""

from __future__ import annotations

from django import template

from servicedesk.tickets.tiers import tier_label as _tier_label

register = template.Library()


@register.filter
def tier_label(code: str) -> str:
    """An organization tier code as its translated name ("vip" -> "VIP")."""
    return _tier_label(code or "")
