"""The ticket page's follow-up panel: pending until, following, and the agent's own reminders."""

from __future__ import annotations

from typing import Any

from django import template

from servicedesk.accounts.roles import is_agent
from servicedesk.notifications.forms import PendingUntilForm, ReminderForm
from servicedesk.notifications.reminders import reminders_of
from servicedesk.tickets.followups import ticket_is_followed_by
from servicedesk.tickets.models import Ticket
from servicedesk.tickets.statuses import Status, can_transition

register = template.Library()


@register.inclusion_tag("notifications/_followups_panel.html", takes_context=True)
def ticket_followups(context: template.Context, ticket: Ticket) -> dict[str, Any]:
    """Two queries: whether the signed-in agent follows ``ticket``, and their reminders on it.

    The ticket reached the page through ``access``; a merged ticket takes no follow-ups.
    """
    request = context.get("request")
    user = getattr(request, "user", None)
    if user is None or not is_agent(user) or ticket.merged_into_id:
        return {"show": False}
    return {
        "show": True,
        "ticket": ticket,
        "following": ticket_is_followed_by(ticket, user),
        "reminders": list(reminders_of(user=user, ticket=ticket, waiting=True)),
        "may_snooze": ticket.status == Status.PENDING or can_transition(ticket.status, Status.PENDING),
        "pending_form": PendingUntilForm(auto_id="id_pending_%s"),
        "reminder_form": ReminderForm(auto_id="id_reminder_%s"),
        "csrf_token": context.get("csrf_token"),
    }
