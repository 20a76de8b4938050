"""Our Message-IDs: ``<sd.<message id>.<HMAC>@<support domain>>``.

The HMAC lets the parser tell a Message-ID we sent from a forged one that only
looks like ours; a forged one is dropped from the thread hints.
"""

from __future__ import annotations

import hashlib
import hmac

from django.conf import settings


def _domain() -> str:
    address = settings.SERVICEDESK["SUPPORT_ADDRESS"]
    return address.rsplit("@", 1)[-1].lower() if "@" in address else "servicedesk.local"


def message_id_for_pk(pk: int) -> str:
    digest = hmac.new(settings.SECRET_KEY.encode(), f"msg:{pk}".encode(), hashlib.sha256).hexdigest()[:16]
    return f"<sd.{pk}.{digest}@{_domain()}>"


def looks_like_ours(value: str) -> bool:
    value = value.strip().lower()
    return value.startswith("<sd.") and value.endswith(f"@{_domain()}>")


def message_id_is_ours(value: str) -> bool:
    """True only for a Message-ID we made (its HMAC checks out)."""
    value = value.strip()
    if not looks_like_ours(value):
        return False
    try:
        pk = int(value[4:].split(".", 1)[0])
    except ValueError:
        return False
    return hmac.compare_digest(value, message_id_for_pk(pk))
