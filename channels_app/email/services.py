"""Ingest one raw mail: the single path for the MTA pipe, HTTP and IMAP.

email_ingest(raw):
  store the raw bytes (file + InboundEmail row, unique keys decide races)
  -> parse_email -> quarantine, bounce (DSN) handling, or the intake service
  -> the row records the outcome and links the ticket and message.

Bad input never raises: it ends as a quarantined row with the reason and the
raw mail kept. Only infrastructure failures propagate (database unreachable,
storage full: ``OperationalError``, ``InterfaceError``, ``OSError``), so the
caller can answer "try again later".
"""

from __future__ import annotations

import dataclasses
import enum
import hashlib
import logging
from dataclasses import dataclass
from datetime import datetime

from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import IntegrityError, InterfaceError, OperationalError, transaction
from django.db.models import Q
from django.utils import timezone

from channels_app.email.message_ids import message_id_is_ours
from channels_app.email.models import InboundEmail, MailAccount
from channels_app.email.parse import ParsedEmail, header_summary, parse_email
from servicedesk.core.email_address import email_key
from servicedesk.core.errors import ApplicationError
from servicedesk.tickets.events import Actor
from servicedesk.tickets.inbound import IntakeResult
from servicedesk.tickets.locks import row_lock
from servicedesk.tickets.models import DeliveryStatus, Identity, IdentityKind, Message, MessageKind
from servicedesk.tickets.services.customers import identity_mark_bouncing
from servicedesk.tickets.services.intake import inbound_message_receive
from servicedesk.tickets.services.replies import ticket_note_create

RAW_DIR = "raw-mail"
# Quarantine reasons of delivery reports that are not acted upon.
UNKNOWN_BOUNCE = "bounce for an unknown message"
NO_RECIPIENT_BOUNCE = "bounce without a failed recipient"
WRONG_RECIPIENT_BOUNCE = "bounce names a recipient the cited message was not sent to"
# Quarantine reason of a mail our own code failed on (the log has the traceback).
INTERNAL_ERROR = "internal error while processing this mail"
# The database or the storage is unavailable: the caller answers "try again later".
TEMPORARY_FAILURES = (OperationalError, InterfaceError, OSError)

log = logging.getLogger(__name__)


class IngestOutcome(enum.StrEnum):
    STORED = "stored"
    DUPLICATE = "duplicate"
    QUARANTINED = "quarantined"


@dataclass(frozen=True)
class IngestResult:
    outcome: IngestOutcome
    inbound_email: InboundEmail
    reference: str | None = None
    reason: str | None = None


def raw_path_for(sha256: str) -> str:
    return f"{RAW_DIR}/{sha256[:2]}/{sha256}"


def _raw_store(raw: bytes, sha256: str) -> tuple[str, bool]:
    """Save the raw bytes under their hash; returns (path, written by this call)."""
    path = raw_path_for(sha256)
    if default_storage.exists(path):
        return path, False
    return default_storage.save(path, ContentFile(raw)), True


def email_ingest(
    *,
    raw: bytes,
    source: str,
    source_key: str | None = None,
    received_at: datetime | None = None,
    account: MailAccount | None = None,
) -> IngestResult:
    """Store and process one raw message exactly once.

    Idempotency keys: ``source_key`` (the transport's id for the message) and
    the SHA-256 of the raw bytes; a second delivery with either is a
    ``duplicate`` and changes nothing. A message with the same Message-ID but
    other bytes (the same mail by another route) is stored raw and recorded as
    a duplicate by the intake's (channel, external id) key.

    The raw bytes are saved under their hash first; the row that records the
    mail is written in the same transaction as the ticket message, so either
    both are stored or neither (the sender, an MTA or the IMAP poll, still
    holds the mail and delivers it again). Never raises for bad mail
    (quarantined with the reason), nor for a fault of our own while
    processing it (quarantined as an internal error, logged with its
    traceback, to process again from the quarantine once fixed); raises
    OperationalError / InterfaceError / OSError when the database or storage
    fails, with nothing half-written.
    """
    raw = bytes(raw)
    sha256 = hashlib.sha256(raw).hexdigest()
    received_at = received_at or timezone.now()
    path, _written = _raw_store(raw, sha256)
    row = InboundEmail(
        raw_sha256=sha256,
        raw_path=path,
        size=len(raw),
        source=source,
        source_key=source_key or None,
        account=account,
        received_at=received_at,
        attempts=1,
    )
    try:
        parsed = parse_email(raw, received_at=received_at)
        _headers_note(row, raw, parsed)
        result = _deliver(row, parsed, insert=True)
        if row.pk is None:
            # Quarantined, or a duplicate: recorded now, unless these very bytes were.
            if result.outcome is IngestOutcome.DUPLICATE:
                existing = _existing(sha256, source_key)
                if existing is not None:
                    return _redelivered(existing)
            with transaction.atomic():
                _row_insert(row, result)
    except IntegrityError:
        # This mail (its bytes or its transport id) is stored already: by an
        # earlier delivery, or by a simultaneous one that committed first.
        return _stored_already(sha256, source_key)
    except TEMPORARY_FAILURES:
        raise
    except Exception as exc:
        log.exception("Inbound mail %s could not be processed; kept in the quarantine", sha256)
        row.pk = None
        result = _quarantine(row, f"{INTERNAL_ERROR}: {type(exc).__name__}")
        try:
            with transaction.atomic():
                _row_insert(row, result)
        except IntegrityError:
            return _stored_already(sha256, source_key)
    return result


def _stored_already(sha256: str, source_key: str | None) -> IngestResult:
    """After an IntegrityError on the row: the delivery stored before, or the error again if none is."""
    existing = _existing(sha256, source_key)
    if existing is None:
        raise  # the IntegrityError being handled: called only in its except block
    return _redelivered(existing)


def _headers_note(row: InboundEmail, raw: bytes, parsed: ParsedEmail) -> None:
    """Who sent what, on the row: from the parsed message, or for one the parser
    quarantined, from its headers."""
    if parsed.inbound is not None:
        row.rfc_message_id = (parsed.inbound.rfc_message_id or None) and parsed.inbound.rfc_message_id[:255]
        row.sender = parsed.inbound.sender.value[:320]
        row.subject = parsed.inbound.subject[:300]
    else:
        summary = header_summary(raw)
        row.rfc_message_id = summary.rfc_message_id[:255] if summary.rfc_message_id else None
        row.sender = summary.sender[:320]
        row.subject = summary.subject[:300]


def _row_insert(row: InboundEmail, result: IngestResult) -> None:
    """Write the row of a mail processed just now, with its outcome (in the caller's transaction, if any)."""
    row.status = _ROW_STATUS[result.outcome]
    row.quarantine_reason = (result.reason or "")[:500] if result.outcome is IngestOutcome.QUARANTINED else ""
    row.processed_at = timezone.now()
    row.save(force_insert=True)


_ROW_STATUS = {
    IngestOutcome.STORED: InboundEmail.Status.PROCESSED,
    IngestOutcome.DUPLICATE: InboundEmail.Status.DUPLICATE,
    IngestOutcome.QUARANTINED: InboundEmail.Status.QUARANTINED,
}


def _existing(sha256: str, source_key: str | None) -> InboundEmail | None:
    condition = Q(raw_sha256=sha256)
    if source_key:
        condition |= Q(source_key=source_key)
    return InboundEmail.objects.filter(condition).select_related("ticket").order_by("pk").first()


def _redelivered(row: InboundEmail) -> IngestResult:
    if row.status == InboundEmail.Status.RECEIVED:
        # Stored by an earlier delivery that stopped before processing it.
        return _process(row.pk, row.raw_bytes())
    return IngestResult(outcome=IngestOutcome.DUPLICATE, inbound_email=row, reference=_reference(row))


def _reference(row: InboundEmail) -> str | None:
    return row.ticket.reference if row.ticket_id and row.ticket else None


def _process(pk: int, raw: bytes) -> IngestResult:
    """Parse and hand over a mail whose row exists (one left ``received``, or one
    processed again from the quarantine), in one transaction with the row
    locked, so the row's status and the ticket message are committed together."""
    with transaction.atomic():
        row = row_lock(InboundEmail, pk)
        if row.status not in (InboundEmail.Status.RECEIVED, InboundEmail.Status.QUARANTINED):
            return IngestResult(outcome=IngestOutcome.DUPLICATE, inbound_email=row, reference=_reference(row))
        row.attempts += 1
        parsed = parse_email(raw, received_at=row.received_at)
        _headers_note(row, raw, parsed)
        result = _deliver(row, parsed, insert=False)
        row.status = _ROW_STATUS[result.outcome]
        row.quarantine_reason = (result.reason or "")[:500] if result.outcome is IngestOutcome.QUARANTINED else ""
        row.processed_at = timezone.now()
        row.save()
        return dataclasses.replace(result, inbound_email=row)


def _quarantine(row: InboundEmail, reason: str) -> IngestResult:
    return IngestResult(outcome=IngestOutcome.QUARANTINED, inbound_email=row, reason=reason)


def _deliver(row: InboundEmail, parsed: ParsedEmail, *, insert: bool) -> IngestResult:
    """Hand a parsed mail over: to the quarantine, the bounce handling or the intake.

    ``insert``: the row is new, and is written in the transaction that stores
    the ticket message or the bounce's note (a quarantined mail or a
    duplicate leaves it to the caller); otherwise the caller saves it (it
    holds the row locked).
    """
    inbound = parsed.inbound
    if inbound is None:
        return _quarantine(row, parsed.quarantine_reason or "unreadable message")
    if inbound.metadata.get("auto_reason") == "delivery-status":
        with transaction.atomic():
            result = _bounce(row, parsed)
            if insert and result.outcome is IngestOutcome.STORED:
                _row_insert(row, result)
        return result
    queue = (
        row.account.queue.slug
        if row.account_id and row.account and row.account.queue_id and row.account.queue
        else None
    )
    # A file the limits refuse is dropped with a note, never the customer's whole mail;
    # mail from an address shows it receives mail again.
    inbound = dataclasses.replace(
        inbound,
        reply_token=inbound.metadata.get("reply_token"),
        queue=queue,
        drop_rejected_attachments=True,
        proves_delivery=True,
    )

    def record(intake: IntakeResult) -> None:
        row.ticket, row.message = intake.ticket, intake.message
        _row_insert(row, IngestResult(outcome=IngestOutcome.STORED, inbound_email=row))

    try:
        intake = inbound_message_receive(inbound=inbound, record=record if insert else None)
    except ApplicationError as exc:
        return _quarantine(row, exc.message)
    row.ticket, row.message = intake.ticket, intake.message
    outcome = IngestOutcome.DUPLICATE if intake.duplicate else IngestOutcome.STORED
    return IngestResult(outcome=outcome, inbound_email=row, reference=intake.ticket.reference)


def _bounce(row: InboundEmail, parsed: ParsedEmail) -> IngestResult:
    """A delivery report: a system note on the ticket of the message that
    bounced, and the failed address marked bouncing. No ticket.

    Anyone can write a report naming any address and citing any Message-ID,
    so it acts only when the cited Message-ID is one the desk signed
    (``message_ids.message_id_is_ours``) and the message it names was sent to
    the very address the report says failed. Any other report is kept in the
    quarantine with the reason, and changes nothing.
    """
    assert parsed.inbound is not None
    metadata = parsed.inbound.metadata
    original = bounced_message_find(metadata.get("dsn_for", ""))
    if original is None:
        return _quarantine(row, UNKNOWN_BOUNCE)
    recipient = metadata.get("dsn_recipient", "")
    if not recipient:
        return _quarantine(row, NO_RECIPIENT_BOUNCE)
    # Servers report an internationalised domain in its ASCII form; the desk sent to its Unicode form.
    if email_key(recipient) not in {email_key(str(address)) for address in original.recipients or ()}:
        log.warning("Bounce %s names %s, to whom message %s was not sent", row.pk, recipient, original.pk)
        return _quarantine(row, WRONG_RECIPIENT_BOUNCE)
    identity_mark_bouncing(kind=IdentityKind.EMAIL, value=recipient, change=Identity.BouncingChange.BOUNCE)
    summary = f"Delivery failed to {recipient}: the receiving mail system returned the message as undeliverable."
    body = parsed.inbound.text.strip()
    note = ticket_note_create(
        ticket=original.ticket,
        author=None,
        kind=MessageKind.SYSTEM,
        text=f"{summary}\n\n{body}" if body else summary,
        actor=Actor.system(source="email"),
        at=row.received_at,
    )
    row.ticket = original.ticket
    row.message = note
    return IngestResult(outcome=IngestOutcome.STORED, inbound_email=row, reference=original.ticket.reference)


def bounced_message_find(message_id: str) -> Message | None:
    """The message the desk sent under ``message_id``, or None when the id is
    not one we signed or names no mail we sent."""
    if not message_id or not message_id_is_ours(message_id):
        return None
    return (
        Message.objects.select_related("ticket")
        .filter(
            rfc_message_id=message_id,
            kind__in=[MessageKind.PUBLIC_AGENT, MessageKind.SYSTEM],
            delivery_status=DeliveryStatus.SENT,
        )
        .order_by("pk")
        .first()
    )


def quarantine_reprocess(*, inbound_email: InboundEmail) -> IngestResult:
    """Parse a quarantined mail again and process it (after a fix or a raised limit).

    Raises ApplicationError when the mail is not in quarantine; a mail that
    fails again stays quarantined with the new reason.
    """
    if inbound_email.status != InboundEmail.Status.QUARANTINED:
        raise ApplicationError("Only quarantined mail can be processed again.")
    return _process(inbound_email.pk, inbound_email.raw_bytes())


def quarantine_discard(*, inbound_email: InboundEmail, actor: Actor) -> InboundEmail:
    """Set a quarantined mail aside for good; the raw mail stays stored, and a
    later delivery of the same bytes is a duplicate. Raises ApplicationError
    when the mail is not in quarantine."""
    with transaction.atomic():
        row = row_lock(InboundEmail, inbound_email.pk)
        if row.status != InboundEmail.Status.QUARANTINED:
            raise ApplicationError("Only quarantined mail can be discarded.")
        row.status = InboundEmail.Status.DISCARDED
        row.discarded_by = actor.user
        row.processed_at = timezone.now()
        row.save(update_fields=["status", "discarded_by", "processed_at"])
    return row
