"""What the paths a mail server delivers through share: the pipe command
(``ingest_email``), the LMTP listener (``lmtp.py``) and the HTTP endpoint
(``api.py``).

- ``inbound_max_bytes``: the largest mail they take (413 over HTTP, 552 over
  LMTP); the IMAP poller and the pipe keep a larger mail in the quarantine.
- ``TEMPORARY_ERRORS``: what ``email_ingest`` lets through when the database
  or the raw-mail storage fails. The mail server must keep the mail and try
  again later (exit 75, LMTP 451, HTTP 503), never bounce it for our outage.
"""

from __future__ import annotations

from django.conf import settings
from django.db import InterfaceError, OperationalError

from channels_app.email.parse import email_limits

EX_TEMPFAIL = 75

try:
    import psycopg

    TEMPORARY_ERRORS: tuple[type[BaseException], ...] = (
        OperationalError,
        InterfaceError,
        OSError,
        psycopg.OperationalError,
        psycopg.InterfaceError,
    )
except ImportError:  # pragma: no cover - psycopg is a dependency; SQLite-only installs lack it
    TEMPORARY_ERRORS = (OperationalError, InterfaceError, OSError)


def inbound_max_bytes() -> int:
    """``SERVICEDESK["INBOUND_EMAIL_MAX_BYTES"]``, or the parser's ``MAX_BYTES`` when that is 0."""
    return int(settings.SERVICEDESK.get("INBOUND_EMAIL_MAX_BYTES") or email_limits().max_bytes)
