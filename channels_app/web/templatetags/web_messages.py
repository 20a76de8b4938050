"""Showing a message's HTML on the customer's ticket page."""

from __future__ import annotations

import re

from django import template
from django.urls import reverse
from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

from servicedesk.tickets.models import Message

register = template.Library()

_CID_SRC = re.compile(r'\s+src="cid:([^"]+)"', re.IGNORECASE)


@register.simple_tag
def message_html(message: Message, token: str) -> SafeString:
    """The message's sanitised HTML with inline images (``cid:``) pointing at the
    ticket's own attachments; an image without its part keeps no source."""
    by_content_id = {a.content_id.strip("<>").lower(): a for a in message.attachments.all() if a.content_id}

    def resolve(match: re.Match[str]) -> str:
        found = by_content_id.get(match.group(1).strip("<>").lower())
        if found is None:
            return ""
        url = reverse("web:attachment", kwargs={"token": token, "key": found.key})
        return f' src="{escape(url)}"'

    # The HTML was sanitised when it was stored (servicedesk/core/html.py).
    return mark_safe(_CID_SRC.sub(resolve, message.html))  # noqa: S308
