"""The agent chat console at /desk/chat/ (docs/chat-protocol.md, "Agents").

The page is a frame: the waiting chats, the chats the agent holds, their
lines and the customer panel all come from the chat API, which applies the
chat access rule, and the console's own /ws/desk/ socket says when to read
them again (static/chat/console.js). The page carries only what the script
cannot know: its translated strings and the choices of its forms.
"""

from __future__ import annotations

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils.translation import gettext as _
from django.utils.translation import ngettext
from django.views.decorators.http import require_GET

from servicedesk.accounts.auth import agent_required
from servicedesk.tickets.models import Channel
from servicedesk.tickets.statuses import Status


@require_GET
@agent_required
def console(request: HttpRequest) -> HttpResponse:
    return render(
        request,
        "chat/console.html",
        {
            "strings": console_strings(),
            "statuses": Status.choices,
            # Off in the tests' in-process server, which speaks no WebSocket: the console polls.
            "live": settings.SERVICEDESK.get("LIVE_UPDATES", True),
        },
    )


def console_strings() -> dict[str, object]:
    """console.js's strings in the page's language; ``%(name)s`` placeholders are filled in by the script."""
    return {
        "connecting": _("Connecting…"),
        "connected": _("Live"),
        "reconnecting": _("Connection lost. Reconnecting…"),
        "offline": _("Live updates are off. Reload the page to sign in again."),
        "polling": _("Live updates are off: the console reads the chats every few seconds."),
        "capacity": _("Your chats: %(held)s of %(capacity)s"),
        "waitedFor": _("Waiting %(time)s"),
        "offerFor": _("Offered to you: %(seconds)s s left"),
        "accept": _("Accept"),
        "accepting": _("Accepting…"),
        "queueLabel": _("Queue: %(queue)s"),
        "visitor": _("Visitor"),
        "visitorTyping": _("The visitor is typing…"),
        "visitorLeft": _("The visitor's connection is closed."),
        "notSent": _("Not sent."),
        "retry": _("Send again"),
        "sending": _("Sending…"),
        "ended": _("The chat has ended. Finish the wrap-up."),
        "wrappedUp": _("Wrap-up saved: %(ticket)s is %(status)s."),
        "newOffer": _("New chat offered to you"),
        "newOfferBody": _("%(name)s is waiting in %(queue)s."),
        "notificationsOn": _("Sound and notifications are on"),
        "notificationsBlocked": _("This browser blocks notifications for the desk; the sound is on."),
        "soundOnly": _("This browser shows no desktop notifications; the sound is on."),
        "noCanned": _("This queue has no canned replies."),
        "noTargets": _("Nobody else to transfer to."),
        "agentsGroup": _("Agents of this queue"),
        "queuesGroup": _("Queues"),
        "unavailable": _("%(name)s (not available)"),
        "full": _("%(name)s (no room for a chat)"),
        "currentQueue": _("%(name)s (this queue)"),
        "transferred": _("The chat was transferred."),
        "unverified": _("unverified"),
        "verified": _("verified"),
        "possibleMatch": _("Customer with this address: %(name)s"),
        # English and Chinese, the desk's languages, need only "one" and "other".
        "openTicketsOne": ngettext("%(count)s open ticket", "%(count)s open tickets", 1),
        "openTicketsOther": ngettext("%(count)s open ticket", "%(count)s open tickets", 2),
        "noHistory": _("No earlier tickets."),
        "noOpenTickets": _("No open tickets."),
        "confirmed": _("Confirmed: the visitor's record joined that customer."),
        "failed": _("That did not work: %(reason)s"),
        "networkError": _("The desk did not answer. Try again."),
        "channels": {value: str(label) for value, label in Channel.choices},
        "statuses": {value: str(label) for value, label in Status.choices},
    }
