"""``{% live_updates %}``: the workspace's live stream on a desk page (static/desk/live.js).

It names the newest event id when the page was read, so the script asks for
whatever changed between this page's rendering and its socket's opening.
Off with ``SERVICEDESK["LIVE_UPDATES"]`` false (the tests' in-process server,
which speaks no WebSocket).
"""

from __future__ import annotations

from django import template
from django.conf import settings
from django.db.models import Max
from django.templatetags.static import static
from django.utils.html import format_html
from django.utils.translation import gettext as _

from servicedesk.tickets.models import TicketEvent

register = template.Library()


@register.simple_tag
def live_updates() -> str:
    if not settings.SERVICEDESK.get("LIVE_UPDATES", True):
        return ""
    cursor = TicketEvent.objects.aggregate(last=Max("pk"))["last"] or 0
    return format_html(
        '<p id="live-status" class="visually-hidden" role="status" aria-live="polite" data-updated="{}"></p>'
        '<script src="{}" data-cursor="{}" defer></script>',
        _("Updated with the latest changes."),
        static("desk/live.js"),
        cursor,
    )
