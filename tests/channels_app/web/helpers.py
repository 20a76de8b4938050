"""Payloads shared by the web channel tests."""

import uuid
from pathlib import Path

from django.core.files.uploadedfile import SimpleUploadedFile

PNG_BYTES = b"\x89PNG\r\n\x1a\n" + b"\x00\x00\x00\rIHDR" + b"\x00" * 17
PDF_BYTES = b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<<>>\nendobj\ntrailer\n<<>>\n%%EOF\n"


def png(name: str = "screen.png") -> SimpleUploadedFile:
    return SimpleUploadedFile(name, PNG_BYTES, content_type="image/png")


def pdf(name: str = "invoice.pdf") -> SimpleUploadedFile:
    return SimpleUploadedFile(name, PDF_BYTES, content_type="application/pdf")


def contact_data(**overrides):
    data = {
        "name": "Jane Doe",
        "email": "jane@example.com",
        "subject": "Printer on fire",
        "message": "The printer in room 4 is on fire.\nPlease help.",
        "topic": "",
        "website": "",
        "submission_id": str(uuid.uuid4()),
    }
    data.update(overrides)
    return data


def media_files(root) -> list[Path]:
    return [path for path in Path(root).rglob("*") if path.is_file()]


def sign_in(client, customer, address: str = "") -> None:  # type: ignore[no-untyped-def]
    """Sign ``client`` in to the help centre as ``customer`` through a sign-in link's button."""
    import hashlib
    import secrets
    from datetime import timedelta

    from django.utils import timezone

    from channels_app.web.models import SignInLink

    token = secrets.token_urlsafe(32)
    now = timezone.now()
    SignInLink.objects.create(
        customer=customer,
        address=address or "someone@example.com",
        digest=hashlib.sha256(token.encode()).hexdigest(),
        created_at=now,
        expires_at=now + timedelta(minutes=15),
    )
    # As a browser does: the link's page (its form carries the CSRF token), then its button.
    client.get(f"/help/sign-in/{token}/")
    csrf = client.cookies.get("csrftoken")
    response = client.post(f"/help/sign-in/{token}/", {"csrfmiddlewaretoken": csrf.value if csrf else ""})
    assert response.status_code == 302 and response["Location"] == "/help/tickets/"
