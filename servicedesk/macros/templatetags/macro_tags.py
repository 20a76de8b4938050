"""The ticket page's macro panel and the command palette's configuration, computed here so the
desk's views need nothing of macros (docs/macros.md#in-the-desk)."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote

from django import template
from django.urls import NoReverseMatch, reverse
from django.utils.translation import gettext as _

from servicedesk.accounts.roles import is_agent
from servicedesk.tickets.models import Ticket

from ..access import canned_replies_for_ticket, macros_for_ticket
from ..forms import submission_id_new

register = template.Library()

REFERENCE_MARK = "__REFERENCE__"


@register.simple_tag(takes_context=True)
def ticket_macros(context: template.Context, ticket: Ticket) -> dict[str, Any]:
    """What the ticket page offers the signed-in agent: the macros that apply to ``ticket`` (for
    the select and the palette), the one-time id their apply forms send (so the page applies
    a macro once, however often it is sent) and the canned replies for the reply box. Two queries."""
    request = context.get("request")
    user = getattr(request, "user", None)
    if user is None or not is_agent(user) or not ticket.reference:
        return {"macros": [], "palette": {}, "canned": {}}
    reference = ticket.reference
    macros = list(macros_for_ticket(user, ticket).only("pk", "name", "scope"))
    canned = list(canned_replies_for_ticket(user, ticket).only("pk", "name", "scope"))
    ticket_query = "?ticket=" + quote(reference)
    submission_id = submission_id_new()
    return {
        "macros": macros,
        "submission_id": submission_id,
        "palette": {
            "ticket": reference,
            "submission_id": submission_id,
            "apply_url": reverse("macros:macro_apply", args=[reference]),
            "preview_url": reverse("macros:macro_preview", args=[reference]),
            "macros": [{"id": macro.pk, "name": macro.name, "scope": macro.scope} for macro in macros],
        },
        "canned": {
            "ticket": reference,
            "items": [
                {
                    "id": item.pk,
                    "name": item.name,
                    "url": reverse("macros:canned_render", args=[item.pk]) + ticket_query,
                }
                for item in canned
            ],
            "strings": {
                "label": _("Canned replies"),
                "none": _("No canned reply matches."),
                "failed": _("The canned reply could not be inserted."),
            },
        },
    }


_NAVIGATION = (
    ("inbox", "desk:inbox", None),
    ("macros", "macros:macro_list", None),
    ("canned", "macros:canned_list", None),
    ("kb", "kb_desk:list", None),
    ("chat", "chat_console:console", None),
    ("calls", "calls:list", None),
    ("community", "forum_desk:queue", None),
    ("reports", "reports:dashboard", "tickets.view_reports"),
)


def _navigation_labels() -> dict[str, str]:
    return {
        "inbox": _("Go to inbox"),
        "macros": _("Go to macros"),
        "canned": _("Go to canned replies"),
        "kb": _("Go to the knowledge base"),
        "chat": _("Go to chat"),
        "calls": _("Go to calls"),
        "community": _("Go to the community"),
        "reports": _("Go to reports"),
    }


@register.simple_tag(takes_context=True)
def command_palette_config(context: template.Context) -> str:
    """The palette's commands and words as JSON, for the ``data-config`` of its script tag
    (escaped there by the template engine)."""
    request = context.get("request")
    user = getattr(request, "user", None)
    if user is None or not is_agent(user):
        return "{}"
    labels = _navigation_labels()
    commands = []
    for key, name, permission in _NAVIGATION:
        if permission and not user.has_perm(permission):
            continue
        try:
            commands.append({"id": f"go-{key}", "label": labels[key], "url": reverse(name)})
        except NoReverseMatch:
            continue
    config = {
        "commands": commands,
        "ticket_url": reverse("desk:ticket", args=[REFERENCE_MARK]),
        "reference_mark": REFERENCE_MARK,
        "strings": {
            "title": _("Command palette"),
            "placeholder": _("Type a command, a macro or a ticket reference"),
            # When another script opens the palette on one kind of command (keys.js's "m").
            "placeholder_kinds": {"apply-macro": _("Type a macro's name to apply it (Backspace for every command)")},
            "none": _("No matching command."),
            "go_ticket": _("Go to ticket %(reference)s") % {"reference": "{reference}"},
            "apply": _("Apply macro: %(name)s") % {"name": "{name}"},
            "preview": _("Preview macro: %(name)s") % {"name": "{name}"},
            "hint": _("Arrow keys to choose, Enter to run, Escape to close."),
        },
    }
    return json.dumps(config)
