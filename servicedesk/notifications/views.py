"""The agent's notifications: the list, and marking them as read.

Agents only (``agent_required``); each sees only their own notifications.
"""

from __future__ import annotations

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.translation import ngettext
from django.views.decorators.http import require_GET, require_POST

from servicedesk.accounts.auth import agent_required
from servicedesk.core.pagination import page_or_404
from servicedesk.notifications import selectors, services

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
