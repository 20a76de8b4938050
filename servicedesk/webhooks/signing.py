"""The signature of a webhook request, as receivers check it (docs/webhooks.md, "Verifying").

``Servicedesk-Signature: t=<unix seconds>,v1=<hex>``: HMAC-SHA256 with the
endpoint's secret over ``"<t>.<body>"``, the body exactly as sent. The time
is in the signed text, so a receiver that refuses old timestamps refuses a
replayed request.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

SIGNATURE_HEADER = "Servicedesk-Signature"
EVENT_ID_HEADER = "Servicedesk-Event-Id"
EVENT_TYPE_HEADER = "Servicedesk-Event-Type"
SECRET_PREFIX = "whsec_"  # noqa: S105 (a prefix that names what follows, not a secret)


def secret_new() -> str:
    """A new signing secret: 32 random bytes, URL-safe."""
    return SECRET_PREFIX + secrets.token_urlsafe(32)


def signature(*, secret: str, timestamp: int, body: bytes) -> str:
    return hmac.new(secret.encode(), str(timestamp).encode() + b"." + body, hashlib.sha256).hexdigest()


def signature_header(*, secret: str, timestamp: int, body: bytes) -> str:
    return f"t={timestamp},v1={signature(secret=secret, timestamp=timestamp, body=body)}"


def signature_verify(*, secret: str, header: str, body: bytes, now: int, tolerance: int = 300) -> bool:
    """What a receiver does: the header's time within ``tolerance`` seconds of ``now`` and one of
    its ``v1`` signatures equal, compared in constant time."""
    fields = [part.split("=", 1) for part in header.split(",") if "=" in part]
    stamps = [value for name, value in fields if name.strip() == "t"]
    if len(stamps) != 1 or not stamps[0].strip().isdigit():
        return False
    timestamp = int(stamps[0])
    if abs(now - timestamp) > tolerance:
        return False
    expected = signature(secret=secret, timestamp=timestamp, body=body)
    return any(hmac.compare_digest(expected, value.strip()) for name, value in fields if name.strip() == "v1")
