"""API throttles: per client IP before credentials are checked and without them, per
user (token or session) with them.

DRF's sliding-window throttles, with three changes: the rates are read from
the settings on every request (so they follow the environment and the
tests), the client IP is the connection's address (``REMOTE_ADDR``: an
``X-Forwarded-For`` header a client sends itself cannot widen its limit), and
an unreachable cache lets the request through with a warning instead of a 500.
A refused request answers 429 with ``Retry-After`` (``core.api``).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from rest_framework import exceptions, throttling
from rest_framework.authentication import BaseAuthentication, TokenAuthentication
from rest_framework.request import Request
from rest_framework.settings import api_settings

from servicedesk.core import ratelimit

if TYPE_CHECKING:  # rest_framework.views imports the throttle classes named in the settings
    from rest_framework.views import APIView

log = logging.getLogger(__name__)


class FailOpenThrottle(throttling.SimpleRateThrottle):
    def get_rate(self) -> str | None:
        if not self.scope:
            return None
        rate = api_settings.DEFAULT_THROTTLE_RATES.get(self.scope)
        return None if rate is None else str(rate)

    def timer(self) -> float:  # type: ignore[override]
        return ratelimit.clock()

    def get_ident(self, request: Request) -> str:
        return str(request.META.get("REMOTE_ADDR") or "unknown")

    def allow_request(self, request: Request, view: APIView) -> bool:
        try:
            return bool(super().allow_request(request, view))
        except Exception:
            log.warning("API throttle %s not applied: the cache is unreachable", self.scope, exc_info=True)
            return True


class AnonRateThrottle(FailOpenThrottle, throttling.AnonRateThrottle):
    """Requests without credentials, per client IP (``SD_API_THROTTLE_ANON``)."""

    scope = "anon"


class UserRateThrottle(FailOpenThrottle, throttling.UserRateThrottle):
    """Requests with credentials, per user: every token and session of theirs together
    (``SD_API_THROTTLE_USER``); without credentials, per IP as above."""

    scope = "user"

    def get_cache_key(self, request: Request, view: APIView) -> str | None:
        if not (request.user and request.user.is_authenticated):
            return None  # the anonymous throttle counts those
        key: Any = super().get_cache_key(request, view)
        return str(key)


class InboundEmailRateThrottle(FailOpenThrottle):
    """The signed inbound email endpoint, per client IP (``SD_API_THROTTLE_INBOUND_EMAIL``):
    a forwarding service posts much more than an anonymous client may."""

    scope = "inbound_email"

    def get_cache_key(self, request: Request, view: APIView) -> str | None:
        return self.cache_format % {"scope": self.scope, "ident": self.get_ident(request)}


class FixedWindowLimit:
    """A request limit per client IP in fixed windows (``core.ratelimit``): one Redis round trip a request.

    For endpoints that take hundreds of requests a second from one address:
    DRF's sliding window keeps every request's time of the window in one
    cache value, read and written whole on every request. The rate is the
    scope's in ``DEFAULT_THROTTLE_RATES`` (``"60000/minute"``), read on every
    request. Fails open with the cache, as every limit.
    """

    PERIODS = {"s": 1, "m": 60, "h": 3600, "d": 86400}

    def __init__(self, scope: str) -> None:
        self.scope = scope

    def rate(self) -> tuple[int, int] | None:
        """(requests, window seconds) of the scope's rate now, None when it has none."""
        rate = api_settings.DEFAULT_THROTTLE_RATES.get(self.scope)
        if not rate:
            return None
        number, _sep, period = str(rate).partition("/")
        return int(number), self.PERIODS[period.strip()[:1]]

    def counter(self, client: str) -> tuple[str, int] | None:
        """The cache key counting ``client``'s requests in this window and the window's seconds left; None: no limit."""
        rate = self.rate()
        if rate is None:
            return None
        return ratelimit.window_key(scope=f"throttle-{self.scope}", key=client or "unknown", window_seconds=rate[1])

    def wait(self, client: str) -> int | None:
        """Count this request; the seconds to put in the 429's Retry-After once over the limit, else None."""
        rate = self.rate()
        if rate is None:
            return None
        count = ratelimit.rate_count(scope=f"throttle-{self.scope}", key=client or "unknown", window_seconds=rate[1])
        if count is None or count.attempts <= rate[0]:
            return None
        return count.retry_after


# The signed phone event endpoint, per client IP (``SD_API_THROTTLE_PHONE_EVENTS``): a
# telephone system sends three events or more for every call.
PHONE_EVENTS_LIMIT = FixedWindowLimit("phone_events")


class ClientIpRateThrottle(FailOpenThrottle):
    """Every API request per client IP, counted before its credentials are checked
    (``SD_API_THROTTLE_IP``), so that guessing tokens from one address is limited too."""

    scope = "ip"

    def get_cache_key(self, request: Request, view: APIView | None) -> str | None:
        return self.cache_format % {"scope": self.scope, "ident": self.get_ident(request)}


class ClientIpThrottleAuthentication(BaseAuthentication):
    """First of the authentication classes: applies ``ClientIpRateThrottle`` before any
    credentials are looked at (DRF checks its throttles only after authentication and
    permissions), then lets the next class authenticate."""

    def authenticate(self, request: Request) -> None:
        throttle = ClientIpRateThrottle()
        if not throttle.allow_request(request, None):  # type: ignore[arg-type]
            raise exceptions.Throttled(wait=throttle.wait())
        return None

    def authenticate_header(self, request: Request) -> str:
        # DRF takes the WWW-Authenticate challenge of a 401 from the first class.
        return str(TokenAuthentication().authenticate_header(request))


class Refusals:
    """Requests a signed endpoint refused (a wrong signature), counted per client IP and minute.

    ``blocked(request, limit=n)``: once ``n`` were refused this minute, the
    seconds to put in the 429's ``Retry-After`` (answered before the body is
    read), else None; ``count(request)`` after each refusal. Fails open with
    the cache, as every limit.
    """

    WINDOW_SECONDS = 60

    def __init__(self, scope: str) -> None:
        self.scope = scope

    @staticmethod
    def _client(request: Any) -> str:
        return str(request.META.get("REMOTE_ADDR") or "unknown")

    def blocked(self, request: Any, *, limit: int) -> int | None:
        return self.blocked_client(self._client(request), limit=limit)

    def blocked_client(self, client: str, *, limit: int) -> int | None:
        """As ``blocked``, for a client address known without a request."""
        refused = ratelimit.rate_peek(scope=self.scope, key=client, window_seconds=self.WINDOW_SECONDS)
        return refused.retry_after if refused.attempts >= limit else None

    def counter(self, client: str) -> tuple[str, int]:
        """The cache key counting ``client``'s refusals in this window, and the window's seconds left."""
        return ratelimit.window_key(scope=self.scope, key=client, window_seconds=self.WINDOW_SECONDS)

    def count(self, request: Any) -> None:
        self.count_client(self._client(request))

    def count_client(self, client: str) -> None:
        ratelimit.rate_count(scope=self.scope, key=client, window_seconds=self.WINDOW_SECONDS)
