"""Limits on password sign-in: per account and per client IP.

After ``SIGNIN_FAILURES_PER_ACCOUNT`` wrong passwords for one account within
``SIGNIN_FAILURE_WINDOW_SECONDS``, the account waits ``SIGNIN_DELAY_SECONDS``
before its next try, twice as long after each further failure, never more
than ``SIGNIN_DELAY_MAX_SECONDS``; a try during the wait is refused without
checking the password (and is not counted). One client IP may fail
``SIGNIN_FAILURES_PER_IP`` times per window over all accounts, then waits for
the window's end. A successful sign-in clears the account's failures, so the
real user, once the short wait is over, signs in as usual. Counts are kept in
the cache (``core.ratelimit``); without it the limits let sign-ins through.
See docs/architecture.md, "Limits and outages".
"""

from __future__ import annotations

import math
from typing import Any

from django import forms
from django.conf import settings
from django.contrib.admin.forms import AdminAuthenticationForm
from django.contrib.auth.forms import AuthenticationForm
from django.utils.translation import ngettext

from servicedesk.core import ratelimit

ACCOUNT_SCOPE = "signin-account"
IP_SCOPE = "signin-ip"


def _until_key(scope: str, key: str) -> str:
    return ratelimit.cache_key(scope, key, "until")


def signin_wait(*, username: str, client_ip: str) -> int:
    """Seconds before ``username`` may try a password from ``client_ip`` again; 0 when it may now."""
    now = ratelimit.clock()
    waits = [0.0]
    for scope, key in ((ACCOUNT_SCOPE, username), (IP_SCOPE, client_ip or "unknown")):
        until = ratelimit.cache_get(_until_key(scope, key))
        if isinstance(until, (int, float)):
            waits.append(until - now)
    return max(0, math.ceil(max(waits)))


def signin_failure_record(*, username: str, client_ip: str) -> None:
    """Count a wrong password for ``username`` from ``client_ip`` and start the waits it earns."""
    conf = settings.SERVICEDESK
    window = conf["SIGNIN_FAILURE_WINDOW_SECONDS"]
    now = ratelimit.clock()
    account = ratelimit.rate_count(scope=ACCOUNT_SCOPE, key=username, window_seconds=window)
    if account is not None and account.attempts >= conf["SIGNIN_FAILURES_PER_ACCOUNT"]:
        doublings = min(account.attempts - conf["SIGNIN_FAILURES_PER_ACCOUNT"], 30)
        delay = min(conf["SIGNIN_DELAY_SECONDS"] * 2**doublings, conf["SIGNIN_DELAY_MAX_SECONDS"])
        ratelimit.cache_set(_until_key(ACCOUNT_SCOPE, username), now + delay, timeout=math.ceil(delay) + 1)
    address = client_ip or "unknown"
    per_ip = ratelimit.rate_count(scope=IP_SCOPE, key=address, window_seconds=window)
    if per_ip is not None and per_ip.attempts >= conf["SIGNIN_FAILURES_PER_IP"]:
        delay = per_ip.retry_after
        ratelimit.cache_set(_until_key(IP_SCOPE, address), now + delay, timeout=delay + 1)


def signin_success_record(*, username: str) -> None:
    """The account signed in: its failures are forgotten."""
    window = settings.SERVICEDESK["SIGNIN_FAILURE_WINDOW_SECONDS"]
    ratelimit.rate_reset(scope=ACCOUNT_SCOPE, key=username, window_seconds=window)
    ratelimit.cache_delete(_until_key(ACCOUNT_SCOPE, username))


class SignInLimitsMixin(AuthenticationForm):
    """An authentication form that applies the sign-in limits before checking a password."""

    def clean(self) -> dict[str, Any]:
        username = str(self.cleaned_data.get("username") or "")
        client_ip = str(self.request.META.get("REMOTE_ADDR", "")) if self.request is not None else ""
        wait = signin_wait(username=username, client_ip=client_ip)
        if wait:
            message = ngettext(
                "Too many failed sign-in attempts. Please wait %(seconds)d second and try again.",
                "Too many failed sign-in attempts. Please wait %(seconds)d seconds and try again.",
                wait,
            ) % {"seconds": wait}
            raise forms.ValidationError(message, code="throttled")
        try:
            cleaned = super().clean()
        except forms.ValidationError as exc:
            if exc.code == "invalid_login":
                signin_failure_record(username=username, client_ip=client_ip)
            raise
        signin_success_record(username=username)
        return cleaned


class LimitedAdminAuthenticationForm(SignInLimitsMixin, AdminAuthenticationForm):
    """The admin site's sign-in with the same limits as the workspace's."""
