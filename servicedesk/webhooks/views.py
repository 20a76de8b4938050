"""``/desk/webhooks/``: endpoints and their delivery log in the agent workspace, for managers and admins.

Another agent gets 403 ("Access denied"), as on the reports and the
quarantine; someone who is not an agent gets 404. Adding an endpoint,
pause, resume and redelivery are form posts (CSRF), answered with a
redirect and a message; a new endpoint's secret is shown once, on its page.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

from django.conf import settings
from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.http.response import HttpResponseBase
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_POST

from servicedesk.accounts.auth import agent_required, signed_in_user
from servicedesk.core.errors import ApplicationError
from servicedesk.core.pagination import page_or_404
from servicedesk.webhooks.access import private_addresses_allowed_to, webhooks_manageable_by
from servicedesk.webhooks.api import deliveries_of
from servicedesk.webhooks.forms import EndpointCreateForm
from servicedesk.webhooks.models import WebhookDelivery, WebhookEndpoint
from servicedesk.webhooks.services import (
    webhook_delivery_redeliver,
    webhook_endpoint_create,
    webhook_endpoint_pause,
    webhook_endpoint_resume,
)

PAGE_SIZE = 25


def webhooks_manager_required(view: Callable[..., HttpResponseBase]) -> Callable[..., HttpResponseBase]:
    @agent_required
    @wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
        if not webhooks_manageable_by(request.user):
            raise PermissionDenied
        return view(request, *args, **kwargs)

    return wrapper


# The new endpoint's secret waits here, in the session, for the one page that shows it.
SECRET_SESSION_KEY = "webhooks.created_secret"  # noqa: S105 (a session key's name, not a secret)


def _list_page(request: HttpRequest, form: EndpointCreateForm, *, status: int = 200) -> HttpResponse:
    endpoints = list(WebhookEndpoint.objects.order_by("id"))
    paused_failing = [e for e in endpoints if e.paused_reason == WebhookEndpoint.PausedReason.FAILING]
    context = {"endpoints": endpoints, "paused_failing": paused_failing, "form": form}
    return render(request, "webhooks/list.html", context, status=status)


@require_GET
@webhooks_manager_required
def endpoint_list(request: HttpRequest) -> HttpResponse:
    return _list_page(request, EndpointCreateForm(private_allowed=private_addresses_allowed_to(request.user)))


@require_POST
@webhooks_manager_required
def endpoint_create(request: HttpRequest) -> HttpResponse:
    """Add an endpoint; its secret is shown once, on the endpoint's page after the redirect.
    Bad input is the list page again with the fields' errors (400), nothing written."""
    form = EndpointCreateForm(request.POST, private_allowed=private_addresses_allowed_to(request.user))
    if not form.is_valid():
        return _list_page(request, form, status=400)
    try:
        created = webhook_endpoint_create(actor=signed_in_user(request), **form.cleaned_data)
    except ApplicationError as exc:
        form.add_error(exc.field if exc.field in form.fields else None, exc.message)
        return _list_page(request, form, status=400)
    request.session[SECRET_SESSION_KEY] = {"endpoint": created.endpoint.pk, "secret": created.secret}
    messages.success(request, _("The endpoint is added."))
    return redirect("webhooks:detail", pk=created.endpoint.pk)


@require_GET
@never_cache
@webhooks_manager_required
def endpoint_detail(request: HttpRequest, pk: int) -> HttpResponse:
    endpoint = get_object_or_404(WebhookEndpoint, pk=pk)
    page = page_or_404(deliveries_of(endpoint), PAGE_SIZE, request.GET.get("page"))
    secret = None
    shown = request.session.get(SECRET_SESSION_KEY)
    if isinstance(shown, dict) and shown.get("endpoint") == endpoint.pk:
        secret = shown.get("secret")
        del request.session[SECRET_SESSION_KEY]
    context = {
        "endpoint": endpoint,
        "page": page,
        "secret": secret,
        "log_days": settings.SERVICEDESK["WEBHOOK_LOG_DAYS"],
    }
    return render(request, "webhooks/detail.html", context)


@require_POST
@webhooks_manager_required
def endpoint_pause(request: HttpRequest, pk: int) -> HttpResponse:
    endpoint = webhook_endpoint_pause(endpoint=get_object_or_404(WebhookEndpoint, pk=pk))
    messages.success(request, _("The endpoint is paused: nothing is sent to it until it is resumed."))
    return redirect("webhooks:detail", pk=endpoint.pk)


@require_POST
@webhooks_manager_required
def endpoint_resume(request: HttpRequest, pk: int) -> HttpResponse:
    endpoint = webhook_endpoint_resume(endpoint=get_object_or_404(WebhookEndpoint, pk=pk))
    messages.success(request, _("The endpoint is resumed: its waiting deliveries are sent now."))
    return redirect("webhooks:detail", pk=endpoint.pk)


@require_POST
@webhooks_manager_required
def delivery_redeliver(request: HttpRequest, pk: int) -> HttpResponse:
    delivery = get_object_or_404(WebhookDelivery, pk=pk)
    try:
        webhook_delivery_redeliver(delivery=delivery)
    except ApplicationError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, _("The event is being sent again."))
    return redirect("webhooks:detail", pk=delivery.endpoint_id)
