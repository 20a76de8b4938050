"""Showing a message's HTML on the customer's ticket page."""

from __future__ import annotations

import re
from typing import Any

from django import template
from django.urls import reverse
from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

from servicedesk.tickets.models import Message
from servicedesk.tickets.services.call_entries import call_entry_facts

register = template.Library()

_CID_SRC = re.compile(r'\s+src="cid:([^"]+)"', re.IGNORECASE)


@register.simple_tag
def message_html(message: Message, url_name: str, arg: str) -> SafeString:
    """The message's sanitised HTML with inline images (``cid:``) pointing at the
    ticket's own attachments (URL ``url_name`` with ``arg`` and the key: under the
    page's signed link or reference); an image without its part keeps no source."""
    by_content_id = {a.content_id.strip("<>").lower(): a for a in message.attachments.all() if a.content_id}

    def resolve(match: re.Match[str]) -> str:
        found = by_content_id.get(match.group(1).strip("<>").lower())
        if found is None:
            return ""
        url = reverse(url_name, args=[arg, found.key])
        return f' src="{escape(url)}"'

    # The HTML was sanitised when it was stored (servicedesk/core/html.py).
    return mark_safe(_CID_SRC.sub(resolve, message.html))  # noqa: S308


@register.inclusion_tag("web/_call_entry.html")
def portal_call_entry(message: Message) -> dict[str, Any]:
    """A call's entry as its customer reads it: who, when, outcome, times and their own
    voicemail's transcript; no recording or line (the desk's)."""
    facts = call_entry_facts(message)
    return {
        key: facts[key] for key in ("answer", "inbound", "agent", "outcome", "ongoing", "wait", "talk", "transcript")
    }
