"""The one intake path every channel calls. See docs/architecture.md, "Intake".

inbound_message_receive(inbound):
  resolve the customer (identity lookup, create if new)
  -> find the ticket (explicit reference, then thread keys) or open one
  -> store the message, its attachments and events in one transaction
  -> after commit: acknowledgement (new tickets), the customer message followers (hooks.py).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from servicedesk.core.email_address import email_key
from servicedesk.core.enqueue import task_enqueue
from servicedesk.core.errors import ApplicationError
from servicedesk.core.html import sanitize_html
from servicedesk.core.text import clean_text
from servicedesk.tickets import hooks, statuses
from servicedesk.tickets.access import ticket_thread_target
from servicedesk.tickets.events import Actor, event_record
from servicedesk.tickets.inbound import InboundAttachment, InboundMessage, IntakeOutcome, IntakeResult
from servicedesk.tickets.locks import ticket_lock
from servicedesk.tickets.models import (
    Customer,
    DroppedAttachment,
    Message,
    MessageKind,
    Queue,
    Ticket,
    TicketEvent,
    Topic,
)
from servicedesk.tickets.services.acknowledgements import ticket_acknowledgement_create
from servicedesk.tickets.services.attachments import (
    attachment_store,
    attachments_check,
    attachments_screen,
    stored_files_remove,
)
from servicedesk.tickets.services.customers import customer_resolve, customer_root
from servicedesk.tickets.services.tickets import _apply_status, ticket_create, ticket_touch
from servicedesk.tickets.statuses import Priority, Status
from servicedesk.tickets.threading import ticket_for_reply_token


class EmptyMessage(ApplicationError):
    pass


def inbound_message_receive(*, inbound: InboundMessage) -> IntakeResult:
    """Store one inbound contact exactly once.

    Idempotency key: (channel, external_id). The same pair delivered twice
    (also concurrently) yields one message and outcome ``duplicate``.
    Raises ApplicationError (EmptyMessage, InvalidIdentity, AttachmentRejected)
    before anything is written; with ``inbound.drop_rejected_attachments`` a
    file the limits do not allow is dropped instead, and named with the
    reason on the stored message (``Message.dropped_attachments``).
    """
    if not inbound.external_id:
        raise ApplicationError("An inbound message needs an external id.")
    text = clean_text(inbound.text)
    html = sanitize_html(inbound.html)
    if not text.strip() and not html.strip() and not inbound.attachments:
        raise EmptyMessage(_("The message is empty."), field="message")
    dropped: list[DroppedAttachment] = []
    if inbound.drop_rejected_attachments:
        files, dropped = attachments_screen(inbound.attachments)
    else:
        files = attachments_check(inbound.attachments)

    duplicate = _duplicate_result(inbound)
    if duplicate is not None:
        return duplicate

    saved_files: list[str] = []
    try:
        with transaction.atomic():
            result = _store(inbound, text=text, html=html, files=files, dropped=dropped, saved_files=saved_files)
    except IntegrityError:
        stored_files_remove(saved_files)
        duplicate = _duplicate_result(inbound)
        if duplicate is None:
            raise
        return duplicate
    except BaseException:
        stored_files_remove(saved_files)
        raise
    return result


def _duplicate_result(inbound: InboundMessage) -> IntakeResult | None:
    message = (
        Message.objects.select_related("ticket", "ticket__customer")
        .filter(channel=inbound.channel, external_id=inbound.external_id)
        .first()
    )
    if message is None:
        return None
    return IntakeResult(
        outcome=IntakeOutcome.DUPLICATE, ticket=message.ticket, message=message, customer=message.ticket.customer
    )


def _store(
    inbound: InboundMessage,
    *,
    text: str,
    html: str,
    files: list[InboundAttachment],
    dropped: list[DroppedAttachment],
    saved_files: list[str],
) -> IntakeResult:
    at = inbound.received_at or timezone.now()
    display = clean_text(inbound.display_text)
    customer, _created = customer_resolve(
        kind=inbound.sender.kind,
        value=inbound.sender.value,
        name=inbound.sender.name,
        language=inbound.language,
        at=at,
    )
    actor = (
        Actor.agent(inbound.recorded_by, source=inbound.channel)
        if inbound.recorded_by is not None
        else Actor.of_customer(customer, source="intake")
    )
    ticket = _thread(inbound, customer)
    follow_up_of = None
    if ticket is not None and not inbound.is_automatic and not _reopens(ticket, at):
        # Too long after closing: a new ticket, linked to the old one.
        follow_up_of, ticket = ticket, None
    if ticket is None:
        topic = Topic.objects.filter(slug=inbound.topic).first() if inbound.topic else None
        queue = Queue.objects.filter(slug=inbound.queue).first() if inbound.queue else None
        ticket = ticket_create(
            customer=customer,
            subject=inbound.subject,
            channel=inbound.channel,
            actor=actor,
            topic=topic,
            queue=queue,
            language=inbound.language or customer.language,
            at=at,
            priority=inbound.priority or Priority.NORMAL,
            same_issue_as=follow_up_of,
        )
        outcome = IntakeOutcome.CREATED
    else:
        ticket = ticket_lock(ticket.pk)
        outcome = IntakeOutcome.APPENDED

    message = Message(
        ticket=ticket,
        kind=MessageKind.PUBLIC_ENDUSER,
        channel=inbound.channel,
        author_customer=customer,
        text=text,
        display_text=display if display.strip() != text.strip() else "",
        html=html,
        external_id=inbound.external_id[:255],
        rfc_message_id=(inbound.rfc_message_id or None) and inbound.rfc_message_id[:255],
        recipients=list(inbound.recipients),
        dropped_attachments=[d.as_json() for d in dropped],
        created_at=at,
    )
    message.save(force_insert=True)
    for upload in files:
        attachment_store(ticket=ticket, message=message, upload=upload, saved=saved_files)
    event_record(
        ticket=ticket,
        kind=TicketEvent.Kind.MESSAGE,
        actor=actor,
        at=at,
        message=message,
        after={"kind": message.kind, "channel": message.channel, "automatic": inbound.is_automatic},
    )
    if outcome is IntakeOutcome.APPENDED and not inbound.is_automatic:
        target = statuses.STATUS_ON_CUSTOMER_MESSAGE[ticket.status]
        if not _apply_status(ticket, target, actor, at):
            ticket_touch(ticket, at, [])
    elif outcome is IntakeOutcome.APPENDED:
        ticket_touch(ticket, at, [])

    acknowledgement = None
    if outcome is IntakeOutcome.CREATED and inbound.acknowledge and not inbound.is_automatic:
        acknowledgement = ticket_acknowledgement_create(ticket=ticket)
    ack_id = acknowledgement.pk if acknowledgement else None
    message_id = message.pk
    transaction.on_commit(lambda: _after_commit(message_id, ack_id=ack_id, outcome=outcome))
    return IntakeResult(outcome=outcome, ticket=ticket, message=message, customer=customer)


def _thread(inbound: InboundMessage, customer: Customer) -> Ticket | None:
    """The existing ticket this message belongs to, or None for a new one.

    Every hit goes through ``access.ticket_thread_target``: merges are
    followed, and a ticket its customer may no longer see (deleted, or merged
    into a deleted one) takes no more messages, so the message opens a new ticket.

    A stranger never reaches someone else's ticket: an untrusted reference (a
    subject tag anyone can copy) counts only when the sender is the ticket's
    customer; thread keys and reply tokens are values only mail we sent or
    received on that ticket carries.
    """
    reference = (inbound.ticket_reference or "").strip().upper()
    if reference and inbound.reference_trusted:
        ticket = Ticket.objects.filter(reference=reference).select_related("customer").first()
        if ticket is not None:
            return ticket_thread_target(ticket)
    keys = [k for k in inbound.thread_keys if k][:50]
    if keys:
        hit = (
            Message.objects.filter(rfc_message_id__in=keys)
            .select_related("ticket", "ticket__customer")
            .order_by("-created_at")
            .first()
        )
        if hit is not None:
            return ticket_thread_target(hit.ticket)
    if inbound.reply_token:
        ticket = ticket_for_reply_token(inbound.reply_token)
        if ticket is not None:
            return ticket_thread_target(ticket)
    if reference and not inbound.reference_trusted:
        ticket = Ticket.objects.filter(reference=reference).select_related("customer").first()
        target = ticket_thread_target(ticket) if ticket is not None else None
        if target is not None and (
            customer_root(target.customer).pk == customer.pk or _is_participant(target, inbound.sender.value)
        ):
            return target
    return None


PARTICIPANT_MESSAGES = 200


def _is_participant(ticket: Ticket, address: str) -> bool:
    """Whether ``address`` was copied on the customer's own messages on this ticket
    (a colleague they put in Cc): such a person may write with the subject tag."""
    address = email_key(address)
    recorded = (
        Message.objects.filter(ticket=ticket, kind=MessageKind.PUBLIC_ENDUSER, author_customer=ticket.customer)
        .order_by("-created_at")
        .values_list("recipients", flat=True)[:PARTICIPANT_MESSAGES]
    )
    return any(address in (email_key(str(r)) for r in recipients or ()) for recipients in recorded)


def _reopens(ticket: Ticket, at: datetime) -> bool:
    """Whether a customer message may reopen ``ticket``: a closed ticket only within
    the configured number of days after it was solved; any other status always."""
    if ticket.status != Status.CLOSED:
        return True
    days = settings.SERVICEDESK["REOPEN_WINDOW_DAYS"]
    solved = ticket.solved_at or ticket.updated_at
    return at - solved <= timedelta(days=days)


def _after_commit(message_id: int, *, ack_id: int | None, outcome: IntakeOutcome) -> None:
    """Enqueue side effects. A broker hiccup must not fail an intake that is
    already committed: the queued acknowledgement is picked up again by the
    ``tickets.outbound_pending_dispatch`` beat task."""
    from servicedesk.tickets import tasks

    if ack_id is not None:
        task_enqueue(tasks.message_deliver_task, ack_id)
    if outcome is IntakeOutcome.APPENDED:
        # The assignee is told by notifications, which registered in the ticket hooks.
        hooks.customer_message_followers_run(message_id=message_id)
