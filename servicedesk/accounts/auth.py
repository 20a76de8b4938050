"""The signed-in user of a request, and the guard of pages that serve agents only."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest
from django.http.response import HttpResponseBase
from rest_framework.request import Request

from servicedesk.accounts.models import User
from servicedesk.accounts.roles import is_agent
from servicedesk.core.errors import NotFound


def signed_in_user(request: HttpRequest | Request) -> User:
    """The user behind ``request``; refuses an anonymous visitor.

    For views whose decorator or permission classes already turn away
    visitors who are not signed in, so the refusal is a safety net.
    """
    user = request.user
    if not isinstance(user, User):
        raise PermissionDenied
    return user


def agent_required(view: Callable[..., HttpResponseBase]) -> Callable[..., HttpResponseBase]:
    """Signed-in agents only: visitors go to the sign-in page, anyone else gets 404.

    Used by every agent page, the workspace's and those other packages mount
    in it (routing, notifications, the email quarantine). A NotFound the view
    raises answers 404 too.
    """

    @wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
        if not request.user.is_authenticated:
            return redirect_to_login(request.get_full_path())
        if not is_agent(request.user):
            raise Http404
        try:
            return view(request, *args, **kwargs)
        except NotFound as exc:
            raise Http404 from exc

    return wrapper
