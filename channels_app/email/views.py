"""Quarantine pages in the agent workspace (managers and admins): list, detail,
raw download, reprocess and discard. Other agents get 403 ("Access denied"),
as on the reports; anyone who is not an agent gets 404."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse
from django.http.response import HttpResponseBase
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_POST

from channels_app.email.models import InboundEmail
from channels_app.email.services import IngestOutcome, quarantine_discard, quarantine_reprocess
from servicedesk.accounts.auth import agent_required
from servicedesk.accounts.roles import sees_all_queues
from servicedesk.core.errors import ApplicationError
from servicedesk.core.pagination import page_or_404
from servicedesk.tickets.events import Actor

PAGE_SIZE = 50


def manager_required(view: Callable[..., HttpResponseBase]) -> Callable[..., HttpResponseBase]:
    """An agent without the manager role is refused the section (403); a mail that is not in
    quarantine stays "not found" (404)."""

    @agent_required
    @wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
        if not sees_all_queues(request.user):
            raise PermissionDenied
        return view(request, *args, **kwargs)

    return wrapper


def _quarantined(pk: int) -> InboundEmail:
    return get_object_or_404(InboundEmail, pk=pk, status=InboundEmail.Status.QUARANTINED)


@require_GET
@manager_required
def quarantine_list(request: HttpRequest) -> HttpResponse:
    rows = InboundEmail.objects.filter(status=InboundEmail.Status.QUARANTINED).order_by("-received_at", "-id")
    page = page_or_404(rows, PAGE_SIZE, request.GET.get("page"))
    return render(request, "email_channel/quarantine_list.html", {"page": page})


@require_GET
@manager_required
def quarantine_detail(request: HttpRequest, pk: int) -> HttpResponse:
    return render(request, "email_channel/quarantine_detail.html", {"mail": _quarantined(pk)})


@require_GET
@manager_required
def quarantine_raw(request: HttpRequest, pk: int) -> HttpResponse:
    mail = _quarantined(pk)
    try:
        raw = mail.raw_bytes()
    except FileNotFoundError as exc:
        raise Http404 from exc
    response = HttpResponse(raw, content_type="message/rfc822")
    response["Content-Disposition"] = f'attachment; filename="message-{mail.pk}.eml"'
    response["X-Content-Type-Options"] = "nosniff"
    return response


@require_POST
@manager_required
def quarantine_reprocess_view(request: HttpRequest, pk: int) -> HttpResponse:
    try:
        result = quarantine_reprocess(inbound_email=_quarantined(pk))
    except ApplicationError as exc:
        messages.error(request, exc.message)
        return redirect("desk:email_quarantine:list")
    if result.outcome is IngestOutcome.QUARANTINED:
        messages.error(request, _("The message is still quarantined: %(reason)s") % {"reason": result.reason})
        return redirect("desk:email_quarantine:detail", pk=pk)
    messages.success(request, _("The message was processed (%(reference)s).") % {"reference": result.reference or "-"})
    return redirect("desk:email_quarantine:list")


@require_POST
@manager_required
def quarantine_discard_view(request: HttpRequest, pk: int) -> HttpResponse:
    try:
        quarantine_discard(inbound_email=_quarantined(pk), actor=Actor.agent(request.user))  # type: ignore[arg-type]
    except ApplicationError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, _("The message was discarded."))
    return redirect("desk:email_quarantine:list")
