"""The signed-in user of a request, for views that only serve signed-in users."""

from __future__ import annotations

from django.core.exceptions import PermissionDenied
from django.http import HttpRequest
from rest_framework.request import Request

from servicedesk.accounts.models import User


def signed_in_user(request: HttpRequest | Request) -> User:
    """The user behind ``request``; refuses an anonymous visitor.

    For views whose decorator or permission classes already turn away
    visitors who are not signed in, so the refusal is a safety net.
    """
    user = request.user
    if not isinstance(user, User):
        raise PermissionDenied
    return user
