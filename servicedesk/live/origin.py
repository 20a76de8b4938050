"""Cross-site WebSocket hijacking: a WebSocket opened from a page of another site is refused, and logged."""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import ParseResult

from channels.security.websocket import OriginValidator
from django.conf import settings

log = logging.getLogger(__name__)


class LoggedOriginValidator(OriginValidator):
    """Channels' check of the Origin header against ``ALLOWED_HOSTS``, logging each refusal with its origin."""

    def valid_origin(self, parsed_origin: ParseResult | None) -> bool:
        valid = bool(super().valid_origin(parsed_origin))
        if not valid:
            shown = parsed_origin.geturl() if parsed_origin is not None else "none"
            log.warning("Refused a WebSocket from origin %s: not an allowed host", shown[:200])
        return valid


def origin_checked(application: Any) -> LoggedOriginValidator:
    """``application`` behind the Origin check, allowing the hosts Django serves (as AllowedHostsOriginValidator)."""
    allowed = list(settings.ALLOWED_HOSTS)
    if settings.DEBUG and not allowed:
        allowed = [".localhost", "127.0.0.1", "[::1]"]
    return LoggedOriginValidator(application, allowed)
