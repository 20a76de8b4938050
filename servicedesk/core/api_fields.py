"""Serializer fields the API shares.

Apart from ``core/email_address.py``, which intake imports: Django REST
framework is not loaded by a process that only takes in mail, such as
``manage.py ingest_email``, run once per message (docs/performance.md,
"Start-up").
"""

from __future__ import annotations

from typing import Any

from rest_framework import serializers

from servicedesk.core.email_address import MAX_LENGTH, InvalidEmailAddress, email_normalize


class EmailAddressSerializerField(serializers.CharField):
    """The API's field for an address, internationalised ones included; gives the canonical form."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("max_length", MAX_LENGTH)
        super().__init__(**kwargs)

    def to_internal_value(self, data: Any) -> str:
        text = super().to_internal_value(data)
        if not text:
            return text
        try:
            return email_normalize(text)
        except InvalidEmailAddress as exc:
            raise serializers.ValidationError(exc.message, code="invalid") from None
