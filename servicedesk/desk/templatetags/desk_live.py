"""``{% live_updates %}``: the workspace's live stream on a desk page (static/desk/live.js).

It names the newest event id when the page was read, so the script asks for
whatever changed between this page's rendering and its socket's opening, and
carries the script's translated strings (``#live-strings``: who else views
and types on a ticket page, the bell's label), since the script has none of
its own.
Off with ``SERVICEDESK["LIVE_UPDATES"]`` false (the tests' in-process server,
which speaks no WebSocket).
"""

from __future__ import annotations

from django import template
from django.conf import settings
from django.db.models import Max
from django.templatetags.static import static
from django.utils.html import format_html, json_script
from django.utils.translation import gettext as _
from django.utils.translation import ngettext, pgettext

from servicedesk.tickets.models import TicketEvent

register = template.Library()


@register.simple_tag
def live_updates() -> str:
    if not settings.SERVICEDESK.get("LIVE_UPDATES", True):
        return ""
    cursor = TicketEvent.objects.aggregate(last=Max("pk"))["last"] or 0
    return format_html(
        '<p id="live-status" class="visually-hidden" role="status" aria-live="polite" data-updated="{}"></p>'
        '{}<script src="{}" data-cursor="{}" defer></script>',
        _("Updated with the latest changes."),
        json_script(script_strings(), "live-strings"),
        static("desk/live.js"),
        cursor,
    )


def script_strings() -> dict[str, str]:
    """live.js's strings in the page's language; ``%(name)s`` placeholders are filled in by the script.

    The bell's label is the one of the bell itself (notifications/_bell.html):
    its singular and plural, which is all English and Chinese need.
    """
    return {
        "alsoViewing": _("Also viewing: %(names)s"),
        "typingOne": _("%(name)s is typing…"),
        "typingMany": _("%(names)s are typing…"),
        "separator": pgettext("between names in a list", ", "),
        "bellOne": ngettext("%(counter)s unread notification", "%(counter)s unread notifications", 1),
        "bellOther": ngettext("%(counter)s unread notification", "%(counter)s unread notifications", 2),
    }
