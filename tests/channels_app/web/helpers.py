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
