"""Inline images of a mail show on the customer's ticket page from the ticket's own parts."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

from channels_app.email.services import email_ingest
from servicedesk.tickets.access import portal_token_for
from servicedesk.tickets.models import Attachment

pytestmark = pytest.mark.django_db

FIXTURES = Path(__file__).parent / "fixtures"


def test_cid_image_points_at_the_tickets_attachment(queue, client):
    result = email_ingest(raw=(FIXTURES / "inline_cid_image.eml").read_bytes(), source="pipe")
    image = Attachment.objects.get()
    assert (image.filename, image.content_type, image.content_id) == ("shot.png", "image/png", "shot1@example.com")
    token = portal_token_for(image.ticket)
    page = client.get(f"/help/tickets/{token}/").content.decode()
    url = f"/help/tickets/{token}/attachments/{image.key}/"
    assert f'<img src="{url}">' in page
    assert "cid:" not in page
    download = client.get(url)
    assert download.status_code == 200 and download["Content-Type"] == "image/png"
    assert b"".join(download.streaming_content) == base64.b64decode("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAA=")
    assert result.reference == image.ticket.reference


def test_cid_without_its_part_keeps_no_source(queue, client):
    raw = (
        b"From: Alice <alice@example.com>\r\nTo: support@servicedesk.example\r\nSubject: Lost image\r\n"
        b"Message-ID: <cid-2@example.com>\r\nContent-Type: text/html; charset=utf-8\r\n\r\n"
        b'<p>See <img src="cid:missing@example.com" alt="chart"></p>\r\n'
    )
    result = email_ingest(raw=raw, source="pipe")
    from servicedesk.tickets.models import Ticket

    ticket = Ticket.objects.get(reference=result.reference)
    page = client.get(f"/help/tickets/{portal_token_for(ticket)}/").content.decode()
    assert '<img alt="chart">' in page
