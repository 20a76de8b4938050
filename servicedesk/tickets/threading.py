"""Per-ticket reply tokens: the part after "+" in ``support+<token>@example.com``.

A token names a ticket and carries an HMAC of it, so it cannot be guessed or
altered to reach another ticket. Channels put it in the reply address of mail
they send; the intake service accepts it as a thread hint.
"""

from __future__ import annotations

import hashlib
import hmac

from django.conf import settings

from servicedesk.tickets.models import Ticket

_TOKEN_DIGEST_LENGTH = 12


def _digest(pk: int, portal_key: str) -> str:
    message = f"reply:{pk}:{portal_key}".encode()
    return hmac.new(settings.SECRET_KEY.encode(), message, hashlib.sha256).hexdigest()[:_TOKEN_DIGEST_LENGTH]


def reply_token_for(ticket: Ticket) -> str:
    """A short token (base 36 id, "-", digest) that is safe in an email local part."""
    return f"{_base36(ticket.pk)}-{_digest(ticket.pk, ticket.portal_key)}"


def ticket_for_reply_token(token: str) -> Ticket | None:
    """The ticket a reply token names, or None for anything forged or malformed."""
    number, _sep, digest = (token or "").strip().lower().partition("-")
    if not number or len(digest) != _TOKEN_DIGEST_LENGTH:
        return None
    try:
        pk = int(number, 36)
    except ValueError:
        return None
    ticket = Ticket.objects.filter(pk=pk).first()
    if ticket is None or not hmac.compare_digest(digest, _digest(ticket.pk, ticket.portal_key)):
        return None
    return ticket


def _base36(number: int) -> str:
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    out = ""
    while True:
        number, rest = divmod(number, 36)
        out = digits[rest] + out
        if number == 0:
            return out
