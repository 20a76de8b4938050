"""``{% call_entry message %}``: a call's entry in a ticket's thread, from the facts the phone channel recorded.

The values come from ``servicedesk.tickets.services.call_entries``, in the
reader's language and zone.
"""

from __future__ import annotations

from typing import Any

from django import template

from servicedesk.tickets.services.call_entries import call_entry_facts

register = template.Library()


@register.inclusion_tag("desk/_call_entry.html")
def call_entry(message: Any) -> dict[str, Any]:
    return call_entry_facts(message)
