"""email_ingest: the one path for pipe, HTTP and IMAP; and ``manage.py ingest_email``."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.core import mail as django_mail
from django.core.files.storage import default_storage
from django.core.management import call_command
from django.db import OperationalError

from channels_app.email import services
from channels_app.email.models import InboundEmail, MailAccount
from channels_app.email.services import IngestOutcome, email_ingest, raw_path_for
from servicedesk.tickets.models import Identity, Message, MessageKind, Ticket
from tests.factories import QueueFactory

pytestmark = pytest.mark.django_db

ROOT = Path(__file__).resolve().parents[3]


def mail(
    *,
    message_id: str = "<m1@example.com>",
    sender: str = "Alice Byrne <alice@example.com>",
    subject: str = "Printer is on fire",
    body: str = "Hello, my printer is on fire.",
    extra: str = "",
) -> bytes:
    return (
        f"From: {sender}\r\nTo: support@servicedesk.example\r\nSubject: {subject}\r\n"
        f"Message-ID: {message_id}\r\nDate: Mon, 02 Jun 2025 10:00:00 +0000\r\n{extra}"
        f"MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n{body}\r\n"
    ).encode()


def dsn(*, bounced_id: str, recipient: str = "alice@example.com") -> bytes:
    return (
        "From: Mail Delivery System <MAILER-DAEMON@mx.example.net>\r\n"
        "To: support@servicedesk.example\r\n"
        "Subject: Undelivered Mail Returned to Sender\r\n"
        "Message-ID: <dsn-1@mx.example.net>\r\n"
        "Auto-Submitted: auto-replied\r\n"
        "MIME-Version: 1.0\r\n"
        'Content-Type: multipart/report; report-type=delivery-status; boundary="B"\r\n\r\n'
        "--B\r\nContent-Type: text/plain\r\n\r\n"
        "Your message could not be delivered: user unknown.\r\n"
        "--B\r\nContent-Type: message/delivery-status\r\n\r\n"
        "Reporting-MTA: dns; mx.example.net\r\n\r\n"
        f"Final-Recipient: rfc822; {recipient}\r\nAction: failed\r\nStatus: 5.1.1\r\n\r\n"
        "--B\r\nContent-Type: text/rfc822-headers\r\n\r\n"
        f"Message-ID: {bounced_id}\r\nFrom: support@servicedesk.example\r\nSubject: Re: Printer\r\n\r\n"
        "--B--\r\n"
    ).encode()


def test_plain_mail_opens_a_ticket_and_records_the_row(django_capture_on_commit_callbacks):
    raw = mail()
    with django_capture_on_commit_callbacks(execute=True):
        result = email_ingest(raw=raw, source="pipe")

    row = InboundEmail.objects.get()
    ticket = Ticket.objects.get()
    assert result.outcome is IngestOutcome.STORED
    assert result.reference == ticket.reference
    assert result.reason is None
    assert (row.status, row.source, row.size, row.rfc_message_id) == ("processed", "pipe", len(raw), "<m1@example.com>")
    assert (row.sender, row.subject, row.attempts) == ("alice@example.com", "Printer is on fire", 1)
    assert row.ticket == ticket
    assert row.message == ticket.messages.get(kind=MessageKind.PUBLIC_ENDUSER)
    assert row.message.text == "Hello, my printer is on fire."
    assert row.raw_path == raw_path_for(row.raw_sha256)
    assert row.raw_bytes() == raw
    assert ticket.subject == "Printer is on fire"
    assert [m.to for m in django_mail.outbox] == [["Alice Byrne <alice@example.com>"]]


def test_same_bytes_twice_is_one_message():
    first = email_ingest(raw=mail(), source="pipe")
    second = email_ingest(raw=mail(), source="imap", source_key="imap:box:1:7")

    assert (first.outcome, second.outcome) == (IngestOutcome.STORED, IngestOutcome.DUPLICATE)
    assert second.reference == first.reference
    assert second.inbound_email.pk == first.inbound_email.pk
    assert InboundEmail.objects.count() == 1
    assert Message.objects.filter(kind=MessageKind.PUBLIC_ENDUSER).count() == 1


def test_same_source_key_twice_is_a_duplicate_even_with_other_bytes():
    first = email_ingest(raw=mail(), source="imap", source_key="imap:box:1:7")
    second = email_ingest(raw=mail(message_id="<m2@example.com>"), source="imap", source_key="imap:box:1:7")

    assert (first.outcome, second.outcome) == (IngestOutcome.STORED, IngestOutcome.DUPLICATE)
    assert InboundEmail.objects.count() == 1
    assert Ticket.objects.count() == 1


def test_same_message_id_with_other_bytes_is_stored_raw_and_recorded_as_duplicate():
    first = email_ingest(raw=mail(), source="pipe")
    second = email_ingest(raw=mail(extra="Received: from relay2.example.com\r\n"), source="http")

    assert (first.outcome, second.outcome) == (IngestOutcome.STORED, IngestOutcome.DUPLICATE)
    assert list(InboundEmail.objects.order_by("pk").values_list("status", flat=True)) == ["processed", "duplicate"]
    assert second.inbound_email.message == first.inbound_email.message
    assert Message.objects.filter(kind=MessageKind.PUBLIC_ENDUSER).count() == 1


def test_a_crash_while_processing_stores_nothing_and_the_redelivery_stores_it_once(monkeypatch):
    def crash(*args, **kwargs):
        raise OperationalError("server closed the connection unexpectedly")

    monkeypatch.setattr(services, "inbound_message_receive", crash)
    with pytest.raises(OperationalError):
        email_ingest(raw=mail(), source="pipe")
    # The row and the message are one transaction: the sender still holds the mail.
    assert (InboundEmail.objects.count(), Ticket.objects.count()) == (0, 0)

    monkeypatch.undo()
    result = email_ingest(raw=mail(), source="pipe")

    assert result.outcome is IngestOutcome.STORED
    assert list(InboundEmail.objects.values_list("status", "attempts")) == [("processed", 1)]
    assert Ticket.objects.count() == 1


def test_a_row_left_received_is_processed_on_redelivery():
    raw = mail()
    sha256 = services.hashlib.sha256(raw).hexdigest()
    path = default_storage.save(raw_path_for(sha256), services.ContentFile(raw))
    InboundEmail.objects.create(
        raw_sha256=sha256, raw_path=path, size=len(raw), source="pipe", received_at=services.timezone.now()
    )

    result = email_ingest(raw=raw, source="pipe")

    assert result.outcome is IngestOutcome.STORED
    assert list(InboundEmail.objects.values_list("status", "attempts")) == [("processed", 1)]
    assert Ticket.objects.count() == 1


def test_a_fault_of_our_own_quarantines_the_mail_with_the_raw_kept(monkeypatch, caplog):
    def bug(*args, **kwargs):
        raise KeyError("oops")

    monkeypatch.setattr(services, "inbound_message_receive", bug)
    raw = mail()
    result = email_ingest(raw=raw, source="pipe")

    row = InboundEmail.objects.get()
    assert result.outcome is IngestOutcome.QUARANTINED
    assert (row.status, row.quarantine_reason) == ("quarantined", f"{services.INTERNAL_ERROR}: KeyError")
    assert row.raw_bytes() == raw and Ticket.objects.count() == 0
    assert "could not be processed" in caplog.text

    monkeypatch.undo()
    assert email_ingest(raw=raw, source="pipe").outcome is IngestOutcome.DUPLICATE
    assert services.quarantine_reprocess(inbound_email=row).outcome is IngestOutcome.STORED
    assert Ticket.objects.count() == 1


def test_over_size_mail_is_quarantined_with_the_raw_kept(settings):
    settings.SERVICEDESK_EMAIL = {"MAX_BYTES": 1000}
    raw = mail(body="x" * 2000)

    result = email_ingest(raw=raw, source="pipe")

    row = InboundEmail.objects.get()
    assert result.outcome is IngestOutcome.QUARANTINED
    assert result.reason == f"too large: {len(raw)} bytes > 1000"
    assert (row.status, row.quarantine_reason, row.ticket, row.message) == (
        "quarantined",
        f"too large: {len(raw)} bytes > 1000",
        None,
        None,
    )
    assert default_storage.exists(raw_path_for(row.raw_sha256))
    assert row.raw_bytes() == raw
    assert Ticket.objects.count() == 0


def test_intake_refusal_is_quarantined_with_its_message():
    result = email_ingest(raw=mail(body=""), source="pipe")

    row = InboundEmail.objects.get()
    assert (result.outcome, result.reason) == (IngestOutcome.QUARANTINED, "The message is empty.")
    assert (row.status, row.quarantine_reason, row.sender) == (
        "quarantined",
        "The message is empty.",
        "alice@example.com",
    )
    assert Ticket.objects.count() == 0


def test_mail_without_a_sender_is_quarantined():
    result = email_ingest(raw=mail(sender="Alice <alice@@example..com>"), source="pipe")

    assert (result.outcome, result.reason) == (IngestOutcome.QUARANTINED, "no sender address")
    assert list(InboundEmail.objects.values_list("status", "sender")) == [("quarantined", "")]
    assert Ticket.objects.count() == 0


def test_automatic_reply_is_stored_without_acknowledgement(django_capture_on_commit_callbacks):
    raw = mail(subject="Out of office", body="I am away until Monday.", extra="Auto-Submitted: auto-replied\r\n")
    with django_capture_on_commit_callbacks(execute=True):
        result = email_ingest(raw=raw, source="pipe")

    ticket = Ticket.objects.get()
    assert result.outcome is IngestOutcome.STORED
    assert InboundEmail.objects.get().status == "processed"
    assert list(ticket.messages.values_list("kind", "text")) == [("public_enduser", "I am away until Monday.")]
    assert django_mail.outbox == []


def test_delivery_status_notification_notes_the_ticket_and_marks_the_address(django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        first = email_ingest(raw=mail(), source="pipe")
    acknowledgement = Message.objects.get(purpose="acknowledgement")
    assert acknowledgement.rfc_message_id

    result = email_ingest(raw=dsn(bounced_id=acknowledgement.rfc_message_id), source="pipe")

    ticket = Ticket.objects.get()
    note = ticket.messages.get(kind=MessageKind.SYSTEM, purpose="")
    assert result.outcome is IngestOutcome.STORED
    assert result.reference == first.reference == ticket.reference
    assert note.text.startswith(
        "Delivery failed to alice@example.com: the receiving mail system returned the message as undeliverable.\n\n"
        "Your message could not be delivered: user unknown."
    )
    assert Identity.objects.get(value="alice@example.com").is_bouncing is True
    row = InboundEmail.objects.get(rfc_message_id="<dsn-1@mx.example.net>")
    assert (row.status, row.ticket, row.message) == ("processed", ticket, note)
    assert Ticket.objects.count() == 1


def test_bounce_for_an_unknown_message_is_quarantined():
    result = email_ingest(raw=dsn(bounced_id="<nothing@servicedesk.example>"), source="pipe")

    assert result.outcome is IngestOutcome.QUARANTINED
    assert result.reason == "bounce for an unknown message"
    assert InboundEmail.objects.get().quarantine_reason == "bounce for an unknown message"
    assert Ticket.objects.count() == 0


def test_account_queue_routes_the_new_ticket():
    billing = QueueFactory(slug="billing", name="Billing")
    account = MailAccount.objects.create(name="billing", host="imap.example.com", username="billing", queue=billing)

    email_ingest(raw=mail(), source="imap", source_key="imap:billing:1:1", account=account)

    assert Ticket.objects.get().queue == billing
    assert InboundEmail.objects.get().account == account


def test_mail_account_password_from_environment_or_stored(monkeypatch):
    account = MailAccount(name="box", host="imap.example.com", username="u")
    account.password_set("s3cret")
    assert account.password_encrypted != "s3cret"
    assert account.password() == "s3cret"

    monkeypatch.setenv("SD_TEST_IMAP_PASSWORD", "from-env")
    account.password_env = "SD_TEST_IMAP_PASSWORD"
    assert account.password() == "from-env"


def test_stored_password_is_encrypted_and_keys_rotate(settings):
    import base64

    from cryptography.fernet import Fernet

    from servicedesk.core.secrets import CredentialUnreadable

    account = MailAccount(name="box", host="imap.example.com", username="u")
    account.password_set("s3cret")
    token = account.password_encrypted
    # Not readable without the key (a signed value would carry the text in base64).
    assert b"s3cret" not in base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
    assert account.password() == "s3cret"
    # A new key in front: old values still decrypt, new ones use the new key.
    new_key = Fernet.generate_key().decode()
    settings.SERVICEDESK = {**settings.SERVICEDESK, "CREDENTIALS_KEYS": [new_key]}
    assert account.password() == "s3cret"
    account.password_set("n3w")
    assert Fernet(new_key).decrypt(account.password_encrypted.encode()) == b"n3w"
    # Another SECRET_KEY and no configured key: the value cannot be read, and says so.
    settings.SERVICEDESK = {**settings.SERVICEDESK, "CREDENTIALS_KEYS": []}
    settings.SECRET_KEY = "another-secret-key-" + "x" * 40
    with pytest.raises(CredentialUnreadable):
        account.password()


# --- manage.py ingest_email ---------------------------------------------------


def run_command(*args: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    try:
        call_command("ingest_email", *args, stdout=out, stderr=err)
    except SystemExit as exc:
        return int(exc.code or 0), out.getvalue(), err.getvalue()
    return 0, out.getvalue(), err.getvalue()


def test_command_stores_a_file_and_reports_a_duplicate(tmp_path):
    path = tmp_path / "one.eml"
    path.write_bytes(mail())

    first = run_command(str(path))
    reference = Ticket.objects.get().reference
    second = run_command(str(path))

    assert first == (0, f"stored {reference}\n", "")
    assert second == (0, f"duplicate {reference}\n", "")


def test_command_reads_standard_input(monkeypatch):
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(mail())))

    code, out, err = run_command()

    assert (code, out, err) == (0, f"stored {Ticket.objects.get().reference}\n", "")
    assert InboundEmail.objects.get().source == "pipe"


def test_command_exits_zero_for_quarantine(tmp_path, settings):
    settings.SERVICEDESK_EMAIL = {"MAX_BYTES": 1000}
    path = tmp_path / "big.eml"
    raw = mail(body="x" * 2000)
    path.write_bytes(raw)

    assert run_command(str(path)) == (0, f"quarantined too large: {len(raw)} bytes > 1000\n", "")


def test_command_exits_75_when_the_database_is_unreachable(tmp_path, monkeypatch):
    def unreachable(**kwargs):
        raise OperationalError("connection refused")

    monkeypatch.setattr("channels_app.email.management.commands.ingest_email.email_ingest", unreachable)
    path = tmp_path / "one.eml"
    path.write_bytes(mail())

    code, out, err = run_command(str(path))

    assert (code, out) == (75, "")
    assert err == f"{path}: temporary failure, try again later: OperationalError: connection refused\n"


def test_command_exits_75_against_a_closed_database_port(tmp_path):
    path = tmp_path / "one.eml"
    path.write_bytes(mail())
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "servicedesk.settings.test",
        "DATABASE_URL": "postgres://postgres@127.0.0.1:9/sd_closed",
    }

    done = subprocess.run(
        [sys.executable, "manage.py", "ingest_email", str(path)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert done.returncode == 75
    assert done.stdout == ""
    assert done.stderr.startswith(f"{path}: temporary failure, try again later: OperationalError:")


def test_command_exits_75_against_a_closed_broker_port(tmp_path):
    """Celery's broker down: nothing is stored, the MTA keeps the mail and retries."""
    path = tmp_path / "one.eml"
    path.write_bytes(mail())
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "servicedesk.settings.test",
        "CELERY_TASK_ALWAYS_EAGER": "false",
        "REDIS_URL": "redis://127.0.0.1:9/0",
    }
    env.pop("DATABASE_URL", None)  # no database is touched before the broker check

    done = subprocess.run(
        [
            sys.executable,
            "-c",
            (
                "import django, sys; django.setup();"
                "from django.conf import settings; settings.CELERY_TASK_ALWAYS_EAGER = False;"
                "from servicedesk.celery import app; app.conf.task_always_eager = False;"
                "app.conf.broker_url = 'redis://127.0.0.1:9/0';"
                "from django.core.management import call_command;"
                f"call_command('ingest_email', {str(path)!r})"
            ),
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert done.returncode == 75, done.stderr
    assert done.stdout == ""
    assert done.stderr.strip().endswith("temporary failure, try again later: the message broker is unreachable")


def test_command_exits_one_for_an_unreadable_file(tmp_path):
    missing = tmp_path / "missing.eml"

    assert run_command(str(missing)) == (1, "", f"{missing}: cannot read: No such file or directory\n")
    assert InboundEmail.objects.count() == 0


# --- Internationalised senders (RFC 6531/6532) ------------------------------------------


def test_internationalised_sender_is_one_customer_in_every_form(django_capture_on_commit_callbacks):
    """UTF-8 headers, the domain as A-label or U-label, the mailbox name as an encoded word: one customer."""
    raw = (Path(__file__).parent / "fixtures" / "utf8_headers_eai.eml").read_bytes()
    with django_capture_on_commit_callbacks(execute=True):
        first = email_ingest(raw=raw, source="pipe")
    again = email_ingest(raw=raw, source="imap", source_key="imap:box:1:9")
    upper = email_ingest(
        raw=mail(message_id="<m2@example.com>", sender="=?utf-8?q?Jos=C3=A9?= <JOSÉ@XN--BCHER-KVA.EXAMPLE>"),
        source="pipe",
    )
    encoded = email_ingest(
        raw=mail(message_id="<m3@example.com>", sender="<=?utf-8?q?jos=C3=A9?=@BÜCHER.example>"), source="pipe"
    )

    outcomes = [r.outcome for r in (first, again, upper, encoded)]
    assert outcomes == [IngestOutcome.STORED, IngestOutcome.DUPLICATE, IngestOutcome.STORED, IngestOutcome.STORED]
    assert list(Identity.objects.values_list("kind", "value")) == [("email", "josé@bücher.example")]
    customer = Identity.objects.get().customer
    assert customer.name == "José Núñez"
    assert list(Ticket.objects.order_by("pk").values_list("customer_id", flat=True)) == [customer.pk] * 3
    message = Message.objects.get(rfc_message_id="<pedido-1@bücher.example>")
    assert (message.text, message.author_customer_id) == ("Mi pedido no ha llegado. ¿Pueden ayudarme?", customer.pk)
    acknowledgement = Message.objects.get(purpose="acknowledgement", ticket=first.inbound_email.ticket)
    assert (acknowledgement.delivery_status, acknowledgement.recipients) == ("sent", ["josé@bücher.example"])
    [sent] = django_mail.outbox
    assert sent.to == ["José Núñez <josé@xn--bcher-kva.example>"]


@pytest.mark.parametrize(
    ("sender", "reason"),
    [
        ("<jo\x7fse@example.com>", "The part before the @ contains a space or a character not allowed there."),
        ("<jose@xn--zz.example>", "The domain after the @ is not a valid domain name."),
        ("<jose@localhost>", "The domain after the @ needs a dot, as in example.com."),
    ],
)
def test_mail_from_an_address_that_is_none_is_quarantined_with_the_reason(sender, reason):
    result = email_ingest(raw=mail(sender=sender), source="pipe")

    assert (result.outcome, result.reason) == (IngestOutcome.QUARANTINED, reason)
    assert InboundEmail.objects.get().status == "quarantined"
    assert (Ticket.objects.count(), Identity.objects.count(), Message.objects.count()) == (0, 0, 0)
