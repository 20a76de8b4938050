"""Rate limits of the help centre: the contact form and replies through a signed ticket link.

Counted in fixed windows by ``servicedesk.core.ratelimit``; when the cache is
unreachable they let the request through (and log it). A re-post of a
submission that is already stored is not counted: the caller checks that
first (``selectors.inbound_message_seen``).
"""

from __future__ import annotations

from django.conf import settings

from servicedesk.core.ratelimit import rate_count


def webform_rate_exceeded(*, client_ip: str, email: str) -> bool:
    """Count a web form submission from ``client_ip`` for ``email``; True when either is over its limit.

    Both counters advance on every call, so a sender over one limit keeps
    being counted for the other.
    """
    conf = settings.SERVICEDESK
    window = conf["WEBFORM_RATE_WINDOW_SECONDS"]
    per_ip = rate_count(scope="ip", key=client_ip or "unknown", window_seconds=window)
    per_email = rate_count(scope="email", key=email, window_seconds=window)
    return bool(
        (per_ip is not None and per_ip.attempts > conf["WEBFORM_RATE_PER_IP"])
        or (per_email is not None and per_email.attempts > conf["WEBFORM_RATE_PER_EMAIL"])
    )


def portal_reply_rate_exceeded(*, ticket_id: int, client_ip: str) -> bool:
    """Count a reply through a ticket's signed link; True when the ticket or the IP is over its limit."""
    conf = settings.SERVICEDESK
    window = conf["PORTAL_REPLY_RATE_WINDOW_SECONDS"]
    per_ticket = rate_count(scope="portal-ticket", key=str(ticket_id), window_seconds=window)
    per_ip = rate_count(scope="portal-ip", key=client_ip or "unknown", window_seconds=window)
    return bool(
        (per_ticket is not None and per_ticket.attempts > conf["PORTAL_REPLY_RATE_PER_TICKET"])
        or (per_ip is not None and per_ip.attempts > conf["PORTAL_REPLY_RATE_PER_IP"])
    )
