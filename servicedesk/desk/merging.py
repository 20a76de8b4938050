"""Merge a ticket into another and split a customer's message into a new ticket, from the ticket page.

``GET tickets/<ref>/merge/`` picks the target (a reference, or one of the same
customer's open tickets); with ``?target=`` it previews what moves;
``POST`` merges. ``GET/POST tickets/<ref>/messages/<id>/split/`` asks for the
new ticket's subject and queue, and splits. Both tickets go through
``access.ticket_get_for`` on every request: one the agent may not see is 404
(the page's own ticket) or a field error (the target). Every action is a
form post that works without JavaScript (docs/merging.md).
"""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.views.decorators.http import require_http_methods

from servicedesk.accounts.auth import agent_required, signed_in_user
from servicedesk.core.errors import ApplicationError, NotFound
from servicedesk.tickets import access
from servicedesk.tickets.events import Actor
from servicedesk.tickets.models import Message, MessageKind, Ticket
from servicedesk.tickets.services.merging import (
    split_subject_default,
    ticket_merge,
    ticket_merge_preview,
    ticket_split,
)
from servicedesk.tickets.statuses import SOLVED_STATUSES


def _ticket_or_404(request: HttpRequest, reference: str) -> Ticket:
    try:
        return access.ticket_get_for(request.user, reference)
    except NotFound:
        raise Http404 from None


def merged_redirect(request: HttpRequest, ticket: Ticket) -> HttpResponse | None:
    """The desk page of a merged ticket leads to the ticket it was merged into, with a notice,
    when the agent may see that one and it is not deleted (``?stay=1`` shows the old record)."""
    if not ticket.merged_into_id or request.GET.get("stay"):
        return None
    target = access.ticket_merge_target_for(request.user, ticket)
    if target is None or target.is_deleted:
        return None
    messages.info(
        request,
        _("%(source)s was merged into this ticket; you were brought here.") % {"source": ticket.reference},
    )
    return redirect("desk:ticket", reference=target.reference)


def _candidates(request: HttpRequest, ticket: Ticket) -> list[Ticket]:
    """The same customer's open tickets the agent sees, the latest first: the usual targets."""
    return list(
        access.tickets_visible_to(request.user)
        .filter(customer_id=ticket.customer_id, merged_into__isnull=True, is_deleted=False, is_spam=False)
        .exclude(pk=ticket.pk)
        .exclude(status__in=SOLVED_STATUSES)
        .order_by("-created_at")[:20]
    )


@require_http_methods(["GET", "POST"])
@agent_required
def ticket_merge_page(request: HttpRequest, reference: str) -> HttpResponse:
    """Pick a target, preview the merge, merge (POST ``target``, ``notify_customer``)."""
    source = _ticket_or_404(request, reference)
    target_reference = (request.POST.get("target") or request.GET.get("target") or "").strip().upper()
    context: dict[str, Any] = {"ticket": source, "candidates": _candidates(request, source), "target": target_reference}
    if not target_reference:
        if request.method == "POST":
            context["error"] = _("Name the ticket to merge into.")
            return render(request, "desk/ticket_merge.html", context, status=400)
        return render(request, "desk/ticket_merge.html", context)
    try:
        target = access.ticket_get_for(request.user, target_reference)
    except NotFound:
        context["error"] = _("No ticket %(reference)s that you can see.") % {"reference": target_reference}
        return render(request, "desk/ticket_merge.html", context, status=400)
    try:
        if request.method == "POST":
            ticket_merge(
                source=source,
                target=target,
                actor=Actor.agent(signed_in_user(request), source="ui"),
                notify_customer=request.POST.get("notify_customer") == "1",
            )
            messages.success(
                request,
                _("%(source)s was merged into this ticket.") % {"source": source.reference},
            )
            return redirect("desk:ticket", reference=target.reference)
        context["preview"] = ticket_merge_preview(source=source, target=target)
    except ApplicationError as exc:
        context["error"] = exc.message
        return render(request, "desk/ticket_merge.html", context, status=400)
    return render(request, "desk/ticket_merge.html", context)


@require_http_methods(["GET", "POST"])
@agent_required
def message_split_page(request: HttpRequest, reference: str, message_id: int) -> HttpResponse:
    """Ask for the new ticket's subject and queue (GET), split the message off (POST)."""
    ticket = _ticket_or_404(request, reference)
    message = (
        access.messages_visible_to(request.user, ticket)
        .filter(pk=message_id)
        .select_related("author_customer")
        .prefetch_related("attachments")
        .first()
    )
    if message is None:
        raise Http404
    queues = list(access.queues_visible_to(request.user).order_by("name"))
    context: dict[str, Any] = {
        "ticket": ticket,
        "message": message,
        "queues": queues,
        "subject": request.POST.get("subject", split_subject_default(message)),
        "queue_slug": request.POST.get("queue", ticket.queue.slug),
        "is_customer_message": message.kind == MessageKind.PUBLIC_ENDUSER,
    }
    if request.method == "GET":
        return render(request, "desk/ticket_split.html", context)
    queue = next((q for q in queues if q.slug == request.POST.get("queue")), None)
    if request.POST.get("queue") and queue is None:
        context["errors"] = {"queue": _("No such queue.")}
        return render(request, "desk/ticket_split.html", context, status=400)
    try:
        new = ticket_split(
            ticket=ticket,
            message=message,
            actor=Actor.agent(signed_in_user(request), source="ui"),
            subject=request.POST.get("subject", ""),
            queue=queue,
        )
    except ApplicationError as exc:
        context["errors"] = {exc.field or "message": exc.message}
        return render(request, "desk/ticket_split.html", context, status=400)
    messages.success(request, _("The message was split off %(reference)s.") % {"reference": ticket.reference})
    if not access.can_see_ticket(request.user, new):
        return redirect("desk:ticket", reference=ticket.reference)
    return redirect(reverse("desk:ticket", kwargs={"reference": new.reference}))


def customer_messages(ticket: Ticket) -> list[Message]:
    """A ticket's customer messages, oldest first: each may be split into a new ticket."""
    return list(
        Message.objects.filter(ticket=ticket, kind=MessageKind.PUBLIC_ENDUSER)
        .order_by("created_at", "id")
        .only("pk", "text", "display_text", "created_at")
    )
