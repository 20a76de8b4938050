"""Fixed-window rate limits for the public web form, kept in Django's cache.

Each (scope, key) gets one counter per window. ``cache.add`` starts a window's
counter and ``cache.incr`` counts in it; both are atomic on Redis, the cache
used in production, so concurrent submissions are all counted.
"""

from __future__ import annotations

import hashlib
import time

from django.conf import settings
from django.core.cache import cache


def rate_count(*, scope: str, key: str, window_seconds: int) -> int:
    """Count one attempt for ``key`` in the current window; return the attempts so far."""
    window_seconds = max(1, int(window_seconds))
    window = int(time.time() // window_seconds)
    # Hashed: an email address or IPv6 address is not always a valid cache key.
    digest = hashlib.sha256(key.strip().lower().encode()).hexdigest()[:32]
    cache_key = f"web:rate:{scope}:{digest}:{window}"
    if cache.add(cache_key, 1, timeout=window_seconds):
        return 1
    try:
        return int(cache.incr(cache_key))
    except ValueError:
        # The counter expired between add and incr: this attempt opens the next one.
        cache.add(cache_key, 1, timeout=window_seconds)
        return 1


def webform_rate_exceeded(*, client_ip: str, email: str) -> bool:
    """Count a web form submission from ``client_ip`` for ``email``; True when either is over its limit.

    Both counters advance on every call, so a sender over one limit keeps
    being counted for the other.
    """
    conf = settings.SERVICEDESK
    window = conf["WEBFORM_RATE_WINDOW_SECONDS"]
    per_ip = rate_count(scope="ip", key=client_ip or "unknown", window_seconds=window)
    per_email = rate_count(scope="email", key=email, window_seconds=window)
    return per_ip > conf["WEBFORM_RATE_PER_IP"] or per_email > conf["WEBFORM_RATE_PER_EMAIL"]
