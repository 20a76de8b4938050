"""Mail keeps the customer's message when one of its files is refused: the file
is dropped and named, with the reason, on the message; forwarded mail is kept
as an .eml attachment."""
# ruff: noqa: RUF001  (the expected Chinese text has its own punctuation)

from __future__ import annotations

import base64
from pathlib import Path

import pytest

from channels_app.email.models import InboundEmail
from channels_app.email.services import IngestOutcome, email_ingest
from servicedesk.tickets.models import Message, MessageKind

pytestmark = pytest.mark.django_db

FIXTURES = Path(__file__).parent / "fixtures"


def mail_with(parts: list[tuple[str, str, bytes]], *, body: str = "Please see the attached files.") -> bytes:
    """A multipart mail from Alice with a text part and one attachment per (name, type, content)."""
    chunks = [
        "From: Alice <alice@example.com>\r\nTo: support@servicedesk.example\r\nSubject: Files\r\n"
        'Message-ID: <files-1@example.com>\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary="b"\r\n\r\n'
    ]
    if body:
        chunks.append(f"--b\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n{body}\r\n")
    for name, ctype, content in parts:
        chunks.append(
            f'--b\r\nContent-Type: {ctype}\r\nContent-Disposition: attachment; filename="{name}"\r\n'
            f"Content-Transfer-Encoding: base64\r\n\r\n"
        )
        chunks.append(base64.encodebytes(content).decode().replace("\n", "\r\n"))
    chunks.append("--b--\r\n")
    return "".join(chunks).encode()


def customer_message() -> Message:
    return Message.objects.get(kind=MessageKind.PUBLIC_ENDUSER)


def test_forwarded_mail_is_kept_as_an_eml_attachment():
    result = email_ingest(raw=(FIXTURES / "forwarded_rfc822.eml").read_bytes(), source="pipe")

    assert result.outcome is IngestOutcome.STORED
    message = customer_message()
    assert [(a.filename, a.content_type) for a in message.attachments.all()] == [("Your order.eml", "message/rfc822")]
    assert message.dropped_attachments == []
    assert message.attachments.get().file.read().startswith(b"From: Shop <orders@shop.example>")


def test_forwarded_mail_with_a_name_of_its_own_gets_the_eml_extension():
    raw = (FIXTURES / "forwarded_rfc822.eml").read_bytes()
    raw = raw.replace(b"Content-Type: message/rfc822", b'Content-Type: message/rfc822; name="order"')

    email_ingest(raw=raw, source="pipe")

    assert [(a.filename, a.content_type) for a in customer_message().attachments.all()] == [
        ("order.eml", "message/rfc822")
    ]


def test_refused_file_type_is_dropped_with_a_note_and_the_mail_kept():
    raw = mail_with(
        [("setup.exe", "application/octet-stream", b"MZ\x90\x00binary"), ("log.txt", "text/plain", b"error 42")]
    )

    result = email_ingest(raw=raw, source="pipe")

    assert result.outcome is IngestOutcome.STORED
    assert InboundEmail.objects.get().status == "processed"
    message = customer_message()
    assert message.text == "Please see the attached files."
    assert [a.filename for a in message.attachments.all()] == ["log.txt"]
    assert message.dropped_attachments == [{"filename": "setup.exe", "reason": "type", "limit": 0}]
    assert [d.message() for d in message.dropped] == ["setup.exe is not a file type we accept."]


def test_mail_with_only_a_refused_file_is_kept_with_the_note():
    result = email_ingest(raw=mail_with([("run.exe", "application/x-msdownload", b"MZ")], body=""), source="pipe")

    assert result.outcome is IngestOutcome.STORED
    message = customer_message()
    assert (message.text, message.attachments.count()) == ("", 0)
    assert message.dropped_attachments == [{"filename": "run.exe", "reason": "type", "limit": 0}]


def test_too_large_file_is_dropped_naming_the_limit(settings):
    settings.SERVICEDESK = {**settings.SERVICEDESK, "ATTACHMENT_MAX_BYTES": 100}

    email_ingest(
        raw=mail_with([("big.txt", "text/plain", b"x" * 101), ("small.txt", "text/plain", b"ok")]), source="pipe"
    )

    message = customer_message()
    assert [a.filename for a in message.attachments.all()] == ["small.txt"]
    assert message.dropped_attachments == [{"filename": "big.txt", "reason": "size", "limit": 100}]
    assert [d.message() for d in message.dropped] == ["big.txt is larger than 100\xa0bytes."]


def test_files_over_the_count_are_dropped_in_order(settings):
    settings.SERVICEDESK = {**settings.SERVICEDESK, "ATTACHMENT_MAX_COUNT": 2}

    email_ingest(raw=mail_with([(f"f{i}.txt", "text/plain", f"file {i}".encode()) for i in range(4)]), source="pipe")

    message = customer_message()
    assert [a.filename for a in message.attachments.order_by("pk")] == ["f0.txt", "f1.txt"]
    assert message.dropped_attachments == [
        {"filename": "f2.txt", "reason": "count", "limit": 2},
        {"filename": "f3.txt", "reason": "count", "limit": 2},
    ]
    assert message.dropped[0].message() == "f2.txt was not kept: at most 2 files can be attached."


@pytest.mark.parametrize(
    ("language", "heading", "reason"),
    [
        ("en", "This message came with a file that was not kept:", "setup.exe is not a file type we accept."),
        ("zh-hans", "此消息附带的以下文件未保留：", "setup.exe 不是我们接受的文件类型。"),
    ],
)
def test_ticket_page_names_the_dropped_file_and_why(client, manager, language, heading, reason):
    result = email_ingest(raw=mail_with([("setup.exe", "application/octet-stream", b"MZ")]), source="pipe")
    client.force_login(manager)

    page = client.get(f"/desk/tickets/{result.reference}/", HTTP_ACCEPT_LANGUAGE=language).content.decode()

    assert heading in page
    assert f'<li class="dropped-attachment">{reason}</li>' in page
