"""The agent's notifications: the list, marking them as read, and their preferences; and the
follow-up actions of the ticket page's panel (following, reminders, pending until).

Agents only (``agent_required``); each sees only their own notifications and
reminders, and a ticket they may not see is 404 (``access.ticket_get_for``).
"""

from __future__ import annotations

from django import forms
from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.translation import gettext as _
from django.utils.translation import ngettext
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from servicedesk.accounts.auth import agent_required, signed_in_user
from servicedesk.core.datetimes import viewer_time_zone
from servicedesk.core.errors import ApplicationError
from servicedesk.core.pagination import page_or_404
from servicedesk.notifications import selectors, services
from servicedesk.notifications.forms import PendingUntilForm, PreferencesForm, ReminderForm
from servicedesk.notifications.preferences import notification_preferences_set, preferences_of
from servicedesk.notifications.reminders import reminder_cancel, reminder_create, reminders_of
from servicedesk.tickets.access import ticket_get_for
from servicedesk.tickets.events import Actor
from servicedesk.tickets.models import Ticket
from servicedesk.tickets.services.followups import (
    ticket_follow,
    ticket_pending_until_set,
    ticket_snooze,
    ticket_unfollow,
)

PAGE_SIZE = 25


@require_GET
@agent_required
def notification_list(request: HttpRequest) -> HttpResponse:
    user = request.user
    page = page_or_404(selectors.notification_list(user=user), PAGE_SIZE, request.GET.get("page"))  # type: ignore[arg-type]
    return render(request, "notifications/list.html", {"page": page})


@require_POST
@agent_required
def notification_read(request: HttpRequest, pk: int) -> HttpResponse:
    services.notification_mark_read(user=request.user, notification_id=pk)  # type: ignore[arg-type]
    target = request.POST.get("next", "")
    if target and url_has_allowed_host_and_scheme(target, allowed_hosts={request.get_host()}):
        return redirect(target)
    return redirect("notifications:list")


@require_POST
@agent_required
def notification_read_all(request: HttpRequest) -> HttpResponse:
    count = services.notification_mark_read(user=request.user)  # type: ignore[arg-type]
    messages.success(
        request,
        ngettext("%(count)d notification marked as read.", "%(count)d notifications marked as read.", count)
        % {"count": count},
    )
    return redirect("notifications:list")


# --- The ticket page's follow-up panel (templatetags/followup_tags.py) and the preferences page -----------


def _back(ticket: Ticket) -> HttpResponse:
    return redirect("desk:ticket", reference=ticket.reference)


def _form_errors(request: HttpRequest, form: forms.Form) -> None:
    for field, errors in form.errors.items():
        label = form.fields[field].label if field in form.fields else ""
        for error in errors:
            messages.error(request, f"{label}: {error}" if label else str(error))


def _valid_in_zone(request: HttpRequest, form: forms.Form) -> bool:
    """Validate with the agent's zone active: a typed local time is theirs."""
    with timezone.override(viewer_time_zone(request.user)):
        return form.is_valid()


@require_POST
@agent_required
def ticket_follow_set(request: HttpRequest, reference: str) -> HttpResponse:
    """Follow (``follow=1``) or stop following (anything else) a ticket the agent may see."""
    user = signed_in_user(request)
    ticket = ticket_get_for(user, reference)
    if request.POST.get("follow") == "1":
        try:
            ticket_follow(ticket=ticket, user=user)
        except ApplicationError as exc:
            messages.error(request, exc.message)
        else:
            messages.success(request, _("You follow this ticket: you will hear of its customer messages and changes."))
    else:
        ticket_unfollow(ticket=ticket, user=user)
        messages.success(request, _("You no longer follow this ticket."))
    return _back(ticket)


@require_POST
@agent_required
def ticket_pending_until(request: HttpRequest, reference: str) -> HttpResponse:
    """Set the ticket pending until a time (``until``, in the agent's zone), or clear that time (``clear``)."""
    user = signed_in_user(request)
    ticket = ticket_get_for(user, reference)
    actor = Actor.agent(user, source="ui")
    if request.POST.get("clear"):
        ticket_pending_until_set(ticket=ticket, until=None, actor=actor)
        messages.success(request, _("The ticket no longer reopens by itself; it stays pending."))
        return _back(ticket)
    form = PendingUntilForm(request.POST)
    if not _valid_in_zone(request, form):
        _form_errors(request, form)
        return _back(ticket)
    try:
        ticket_snooze(ticket=ticket, until=form.cleaned_data["until"], actor=actor)
    except ApplicationError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, _("The ticket is pending and reopens by itself at the time you set."))
    return _back(ticket)


@require_POST
@agent_required
def ticket_reminder_add(request: HttpRequest, reference: str) -> HttpResponse:
    """A reminder for the agent on a ticket they may see."""
    user = signed_in_user(request)
    ticket = ticket_get_for(user, reference)
    form = ReminderForm(request.POST)
    if not _valid_in_zone(request, form):
        _form_errors(request, form)
        return _back(ticket)
    try:
        reminder_create(
            user=user, ticket=ticket, remind_at=form.cleaned_data["remind_at"], note=form.cleaned_data["note"]
        )
    except ApplicationError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, _("Your reminder is set."))
    return _back(ticket)


@require_POST
@agent_required
def reminder_cancel_view(request: HttpRequest, pk: int) -> HttpResponse:
    """Cancel one of the agent's own reminders (another's, or on a ticket they no longer see: 404)."""
    user = signed_in_user(request)
    reminder = reminders_of(user=user).filter(pk=pk).first()
    if reminder is None:
        raise Http404
    reminder_cancel(user=user, reminder_id=pk)
    messages.success(request, _("Your reminder was cancelled."))
    return _back(reminder.ticket)


@require_http_methods(["GET", "POST"])
@agent_required
def preferences(request: HttpRequest) -> HttpResponse:
    """Per kind of notice: in the workspace and/or by email."""
    user = signed_in_user(request)
    if request.method == "POST":
        form = PreferencesForm(request.POST, preferences=preferences_of(user))
        if form.is_valid():
            notification_preferences_set(user=user, changes=form.changes())
            messages.success(request, _("Your notification preferences were saved."))
            return redirect("notifications:preferences")
        return render(request, "notifications/preferences.html", {"form": form}, status=400)
    form = PreferencesForm(preferences=preferences_of(user))
    return render(request, "notifications/preferences.html", {"form": form})
