"""The attachment rule, one set of limits: refused whole where the sender can fix
the upload (web form, portal, API, agents), dropped file by file for mail."""

from __future__ import annotations

import pytest

from servicedesk.tickets.inbound import InboundAttachment, InboundMessage, SenderIdentity
from servicedesk.tickets.models import DroppedAttachment, Message, Ticket
from servicedesk.tickets.services.attachments import AttachmentRejected, attachments_check, attachments_screen
from servicedesk.tickets.services.intake import inbound_message_receive

pytestmark = pytest.mark.django_db

EML = InboundAttachment(
    "Your order.eml", "message/rfc822", b"From: shop@example.com\r\nSubject: Order\r\n\r\nShipped.\r\n"
)
EXE = InboundAttachment("setup.exe", "application/octet-stream", b"MZ\x90\x00")
PDF = InboundAttachment("invoice.pdf", "application/pdf", b"%PDF-1.7 ...")


def test_forwarded_mail_is_an_accepted_type_on_every_path():
    assert [(f.filename, f.content_type) for f in attachments_check([EML])] == [("Your order.eml", "message/rfc822")]


def test_check_refuses_the_whole_upload_naming_the_file():
    with pytest.raises(AttachmentRejected) as refused:
        attachments_check([PDF, EXE])
    assert (refused.value.message, refused.value.field) == ("setup.exe is not a file type we accept.", "attachments")


def test_screen_keeps_what_passes_and_names_what_does_not(settings):
    settings.SERVICEDESK = {**settings.SERVICEDESK, "ATTACHMENT_MAX_COUNT": 1}

    kept, dropped = attachments_screen([EXE, PDF, EML])

    assert [(f.filename, f.content_type) for f in kept] == [("invoice.pdf", "application/pdf")]
    assert dropped == [
        DroppedAttachment(filename="setup.exe", reason="type"),
        DroppedAttachment(filename="Your order.eml", reason="count", limit=1),
    ]


def inbound(*, drop: bool) -> InboundMessage:
    return InboundMessage(
        channel="web",
        external_id="form-1",
        sender=SenderIdentity("email", "alice@example.com", "Alice"),
        subject="Files",
        text="Two files.",
        attachments=(PDF, EXE),
        drop_rejected_attachments=drop,
    )


def test_intake_refuses_the_message_unless_asked_to_drop(queue):
    with pytest.raises(AttachmentRejected):
        inbound_message_receive(inbound=inbound(drop=False))
    assert (Ticket.objects.count(), Message.objects.count()) == (0, 0)

    result = inbound_message_receive(inbound=inbound(drop=True))

    assert [a.filename for a in result.message.attachments.all()] == ["invoice.pdf"]
    assert result.message.dropped_attachments == [{"filename": "setup.exe", "reason": "type", "limit": 0}]
