"""Encryption of credentials kept in the database (mailbox passwords).

Fernet (AES-128-CBC with HMAC-SHA256) from the ``cryptography`` package. The
key is ``SD_CREDENTIALS_KEY`` (a Fernet key; several, comma-separated, for
rotation: the first encrypts, all decrypt), else one derived from SECRET_KEY.
``cryptography`` is imported when a credential is read or written: the models
that store credentials are loaded by every process Django starts, the mail
pipe's too, which reads none (docs/performance.md, "Start-up").
"""

from __future__ import annotations

import base64
import hashlib
from typing import TYPE_CHECKING

from django.conf import settings

from servicedesk.core.errors import ApplicationError

if TYPE_CHECKING:
    from cryptography.fernet import MultiFernet


class CredentialUnreadable(ApplicationError):
    pass


def _fernet() -> MultiFernet:
    from cryptography.fernet import Fernet, MultiFernet

    keys = [k.strip() for k in settings.SERVICEDESK.get("CREDENTIALS_KEYS", []) if k.strip()]
    derived = base64.urlsafe_b64encode(hashlib.sha256(f"credentials:{settings.SECRET_KEY}".encode()).digest())
    return MultiFernet([Fernet(k) for k in keys] + [Fernet(derived)])


def credential_encrypt(value: str) -> str:
    return _fernet().encrypt(value.encode()).decode() if value else ""


def credential_decrypt(token: str) -> str:
    """The clear value; raises CredentialUnreadable when the key changed or the value was altered."""
    from cryptography.fernet import InvalidToken

    if not token:
        return ""
    try:
        return _fernet().decrypt(token.encode()).decode()
    except (InvalidToken, ValueError):
        raise CredentialUnreadable("The stored password cannot be read with the configured keys.") from None
