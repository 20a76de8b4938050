"""The one intake path every channel calls. See docs/architecture.md, "Intake".

inbound_message_receive(inbound):
  resolve the customer (identity lookup, create if new)
  -> find the ticket (explicit reference, then thread keys) or open one
  -> store the message, its attachments and events in one transaction
  -> after commit: acknowledgement (new tickets), the customer message followers (hooks.py).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import QuerySet, Subquery
from django.utils import timezone
from django.utils.translation import gettext as _

from servicedesk.core.email_address import email_key
from servicedesk.core.enqueue import task_enqueue
from servicedesk.core.errors import ApplicationError
from servicedesk.core.html import sanitize_html
from servicedesk.core.prepared import PreparedQuery, row_insert
from servicedesk.core.text import clean_text
from servicedesk.tickets import hooks, statuses
from servicedesk.tickets.access import ticket_thread_target
from servicedesk.tickets.config import queue_by_slug, topic_by_slug
from servicedesk.tickets.events import Actor, event_build, events_store
from servicedesk.tickets.inbound import InboundAttachment, InboundMessage, IntakeOutcome, IntakeResult
from servicedesk.tickets.locks import ticket_lock, ticket_lock_by_reference, ticket_lock_first
from servicedesk.tickets.models import (
    Customer,
    DroppedAttachment,
    Message,
    MessageKind,
    Ticket,
    TicketEvent,
)
from servicedesk.tickets.services.acknowledgements import ticket_acknowledgement_prepare
from servicedesk.tickets.services.attachments import (
    attachment_store,
    attachments_check,
    attachments_screen,
    stored_files_remove,
)
from servicedesk.tickets.services.customers import customer_root, identity_bouncing_clear, sender_resolve
from servicedesk.tickets.services.tickets import _apply_status, ticket_insert, ticket_route_inbound, ticket_touch
from servicedesk.tickets.statuses import Priority, Status
from servicedesk.tickets.threading import ticket_for_reply_token


class EmptyMessage(ApplicationError):
    pass


# One retry: a simultaneous first contact from the same new address wins the
# identity's unique constraint, and the retry finds the customer it created.
ATTEMPTS = 2


def inbound_message_receive(
    *, inbound: InboundMessage, record: Callable[[IntakeResult], None] | None = None
) -> IntakeResult:
    """Store one inbound contact exactly once.

    Idempotency key: (channel, external_id). The same pair delivered twice
    (also concurrently) yields one message and outcome ``duplicate``: the
    unique constraint decides, and the transaction that loses it is rolled
    back whole, so a duplicate stores no second message or ticket. Raises ApplicationError
    (EmptyMessage, InvalidIdentity, AttachmentRejected) before anything is
    written; with ``inbound.drop_rejected_attachments`` a file the limits do
    not allow is dropped instead, and named with the reason on the stored
    message (``Message.dropped_attachments``).

    ``record``: the channel's own record of the contact (a raw mail's row),
    written in the same transaction as the message when one is stored; not
    called for a duplicate. An IntegrityError it raises counts as the
    duplicate it means.

    ``inbound.ticket_locked``: a ticket the caller holds locked in its own
    transaction. When the ticket takes the message as it is (``_takes_line``)
    the message is stored on it in that transaction, without a savepoint: a
    duplicate then raises the IntegrityError into the caller's transaction,
    which the caller rolls back and answers (a live chat finds the stored line).

    Statements: a fixed few per path, listed in docs/architecture.md,
    "Intake", and held by tests/perf/test_intake_statements.py.
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

    if inbound.ticket_locked is not None and _takes_line(inbound.ticket_locked, inbound):
        assert transaction.get_connection().in_atomic_block, "ticket_locked needs the caller's transaction"
        saved: list[str] = []
        try:
            result = _store(
                inbound,
                text=text,
                html=html,
                files=files,
                dropped=dropped,
                saved_files=saved,
                locked=inbound.ticket_locked,
            )
            if record is not None:
                record(result)
            return result
        except BaseException:
            stored_files_remove(saved)
            raise

    for attempt in range(1, ATTEMPTS + 1):
        saved_files: list[str] = []
        try:
            with transaction.atomic():
                result = _store(inbound, text=text, html=html, files=files, dropped=dropped, saved_files=saved_files)
                if record is not None and not result.duplicate:
                    record(result)
            return result
        except IntegrityError:
            stored_files_remove(saved_files)
            duplicate = _duplicate_result(inbound)
            if duplicate is not None:
                return duplicate
            if attempt == ATTEMPTS:
                raise
        except BaseException:
            stored_files_remove(saved_files)
            raise
    raise AssertionError("unreachable")  # pragma: no cover


def _duplicate_result(inbound: InboundMessage) -> IntakeResult | None:
    message = (
        Message.objects.select_related("ticket", "ticket__customer")
        .filter(channel=inbound.channel, external_id=inbound.external_id[:255])
        .first()
    )
    if message is None:
        return None
    return IntakeResult(
        outcome=IntakeOutcome.DUPLICATE, ticket=message.ticket, message=message, customer=message.ticket.customer
    )


_SEEN = PreparedQuery(
    lambda channel, external_id: Message.objects.filter(channel=channel, external_id=external_id),
    channel=str,
    external_id=str,
)


def _seen(inbound: InboundMessage) -> bool:
    """Whether (channel, external id) is stored already: one narrow index lookup."""
    return _SEEN.exists(channel=inbound.channel, external_id=inbound.external_id[:255])


def _store(
    inbound: InboundMessage,
    *,
    text: str,
    html: str,
    files: list[InboundAttachment],
    dropped: list[DroppedAttachment],
    saved_files: list[str],
    locked: Ticket | None = None,
) -> IntakeResult:
    """Store the message; ``locked``: the caller's ticket that takes it (``_takes_line``)."""
    at = inbound.received_at or timezone.now()
    display = clean_text(inbound.display_text)
    ticket: Ticket | None
    follow_up_of = None
    sender_created = False
    if locked is not None:
        # The caller's locked ticket: the message is its customer's.
        ticket, customer = locked, locked.customer
    else:
        sender = sender_resolve(
            kind=inbound.sender.kind,
            value=inbound.sender.value,
            name=inbound.sender.name,
            language=inbound.language,
            at=at,
        )
        customer, sender_created = sender.customer, sender.created
        if inbound.proves_delivery and sender.identity.is_bouncing:
            identity_bouncing_clear(identity=sender.identity, actor=Actor.system(source="intake"))
        ticket = _thread(inbound, customer)
        if ticket is not None and not inbound.is_automatic and not _reopens(ticket, at):
            # Too long after closing: a new ticket, linked to the old one.
            follow_up_of, ticket = ticket, None
    actor = _actor(inbound, customer)
    message = _message_build(inbound, customer=customer, text=text, html=html, display=display, dropped=dropped, at=at)
    message_after = _message_after(inbound, message)
    # Seen before? Asked before a ticket is opened for it (a ticket number is
    # not spent on a redelivery); a message on an existing ticket is kept from
    # a second copy by the unique constraint alone.
    if ticket is None and not sender_created and _seen(inbound):
        duplicate = _duplicate_result(inbound)
        if duplicate is not None:
            return duplicate
    if ticket is None:
        opened = ticket_insert(
            customer=customer,
            subject=inbound.subject,
            channel=inbound.channel,
            actor=actor,
            topic=topic_by_slug(inbound.topic) if inbound.topic else None,
            queue=queue_by_slug(inbound.queue) if inbound.queue else None,
            language=inbound.language or customer.language,
            at=at,
            priority=inbound.priority or Priority.NORMAL,
            same_issue_as=follow_up_of,
        )
        ticket = opened.ticket
        if inbound.route:
            ticket_route_inbound(opened, actor=actor, at=at)
        message.ticket = ticket
        acknowledgement = None
        if inbound.acknowledge and not inbound.is_automatic:
            # The acknowledgement's event follows the message's.
            ack_events: list[TicketEvent] = []
            acknowledgement = ticket_acknowledgement_prepare(
                ticket=ticket, targets=opened.targets, events=ack_events, new_customer=sender_created
            )
        else:
            ack_events = []
        Message.objects.bulk_create([message, acknowledgement] if acknowledgement is not None else [message])
        _attachments_store(ticket, message, files, saved_files)
        opened.events.append(
            event_build(
                ticket=ticket, kind=TicketEvent.Kind.MESSAGE, actor=actor, at=at, message=message, after=message_after
            )
        )
        opened.events.extend(ack_events)
        opened.store()
        outcome = IntakeOutcome.CREATED
        ack_id = acknowledgement.pk if acknowledgement is not None else None
    else:
        message.ticket = ticket
        row_insert(message)
        _attachments_store(ticket, message, files, saved_files)
        events = [
            event_build(
                ticket=ticket, kind=TicketEvent.Kind.MESSAGE, actor=actor, at=at, message=message, after=message_after
            )
        ]
        events_store(events)
        if inbound.is_automatic or not _apply_status(
            ticket, statuses.STATUS_ON_CUSTOMER_MESSAGE[ticket.status], actor, at
        ):
            # Automatic mail (auto-replies) only touches the ticket's time.
            ticket_touch(ticket, at, [])
        outcome = IntakeOutcome.APPENDED
        ack_id = None

    message_id = message.pk
    assignee_id = ticket.assignee_id if inbound.notify_assignee else None
    transaction.on_commit(lambda: _after_commit(message_id, ack_id=ack_id, outcome=outcome, assignee_id=assignee_id))
    return IntakeResult(outcome=outcome, ticket=ticket, message=message, customer=customer)


def _actor(inbound: InboundMessage, customer: Customer) -> Actor:
    if inbound.recorded_by is not None:
        return Actor.agent(inbound.recorded_by, source=inbound.channel)
    return Actor.of_customer(customer, source="intake")


def _message_build(
    inbound: InboundMessage,
    *,
    customer: Customer,
    text: str,
    html: str,
    display: str,
    dropped: list[DroppedAttachment],
    at: datetime,
) -> Message:
    return Message(
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


def _message_after(inbound: InboundMessage, message: Message) -> dict[str, Any]:
    return {"kind": message.kind, "channel": message.channel, "automatic": inbound.is_automatic}


def appended_message_rows(*, inbound: InboundMessage, ticket: Ticket) -> tuple[Message, TicketEvent]:
    """The message and its event, unsaved, exactly as ``inbound_message_receive`` stores
    them for a plain text ``inbound`` (no html, no attachments) appended to ``ticket``,
    its customer's ticket, whose status the message leaves as it is.

    For a caller that writes them itself, with the rest of its change, in one
    statement (a visitor's chat line, ``channels_app/chat/loop_line.py``); the
    caller's statement takes them only where ``_takes_line`` and the status
    rule hold (``statuses_kept_by_customer_message``), and hands anything else
    to the intake. ``ticket`` needs only its id and ``customer_id``. Raises
    EmptyMessage as the intake does.
    """
    if inbound.html or inbound.attachments or inbound.recorded_by is not None:
        raise ValueError("appended_message_rows takes a customer's plain text message.")
    text = clean_text(inbound.text)
    if not text.strip():
        raise EmptyMessage(_("The message is empty."), field="message")
    at = inbound.received_at or timezone.now()
    customer = Customer(pk=ticket.customer_id)
    message = _message_build(
        inbound, customer=customer, text=text, html="", display=clean_text(inbound.display_text), dropped=[], at=at
    )
    message.ticket = ticket
    event = event_build(
        ticket=ticket,
        kind=TicketEvent.Kind.MESSAGE,
        actor=_actor(inbound, customer),
        at=at,
        message=message,
        after=_message_after(inbound, message),
    )
    return message, event


def statuses_kept_by_customer_message() -> list[str]:
    """The ticket statuses a customer's message leaves as they are (statuses.STATUS_ON_CUSTOMER_MESSAGE),
    but closed (whose reopening depends on the time since it was solved: ``_reopens``)."""
    return [
        status
        for status, after in statuses.STATUS_ON_CUSTOMER_MESSAGE.items()
        if status == after and status != Status.CLOSED
    ]


def _takes_line(ticket: Ticket, inbound: InboundMessage) -> bool:
    """Whether the caller's locked ``ticket`` takes the message as it is (``InboundMessage.ticket_locked``)."""
    return (
        ticket.merged_into_id is None
        and not ticket.is_deleted
        and ticket.customer.merged_into_id is None
        and (inbound.is_automatic or _reopens(ticket, inbound.received_at or timezone.now()))
    )


def _attachments_store(ticket: Ticket, message: Message, files: list[InboundAttachment], saved: list[str]) -> None:
    for upload in files:
        attachment_store(ticket=ticket, message=message, upload=upload, saved=saved)


def _thread(inbound: InboundMessage, customer: Customer) -> Ticket | None:
    """The existing ticket this message belongs to, locked, or None for a new one.

    Every hit goes through ``access.ticket_thread_target``: merges are
    followed, and a ticket its customer may no longer see (deleted, or merged
    into a deleted one) takes no more messages, so the message opens a new ticket.

    A stranger never reaches someone else's ticket: an untrusted reference (a
    subject tag anyone can copy) counts only when the sender is the ticket's
    customer; thread keys and reply tokens are values only mail we sent or
    received on that ticket carries.

    The usual hit (a reference the channel vouches for, or a thread key) finds
    and locks the ticket in one statement.
    """
    reference = (inbound.ticket_reference or "").strip().upper()
    if reference and inbound.reference_trusted:
        ticket = _hint_locked(ticket_lock_by_reference(reference))
        if ticket is not None:
            return ticket
    keys = [k for k in inbound.thread_keys if k][:50]
    if keys:
        latest = Message.objects.filter(rfc_message_id__in=keys).order_by("-created_at", "-pk").values("ticket_id")[:1]
        ticket = _hint_lock(Ticket.objects.filter(pk=Subquery(latest)))
        if ticket is not None:
            return ticket
    if inbound.reply_token:
        ticket = ticket_for_reply_token(inbound.reply_token)
        if ticket is not None:
            return _hint_lock(Ticket.objects.filter(pk=ticket.pk))
    if reference and not inbound.reference_trusted:
        ticket = Ticket.objects.filter(reference=reference).select_related("customer").first()
        target = ticket_thread_target(ticket) if ticket is not None else None
        if target is not None and (
            customer_root(target.customer).pk == customer.pk or _is_participant(target, inbound.sender.value)
        ):
            return ticket_lock(target.pk)
    return None


def _hint_lock(tickets: QuerySet[Ticket]) -> Ticket | None:
    """``_hint_locked`` of the ticket a query names, found and locked in one statement."""
    return _hint_locked(ticket_lock_first(tickets.select_related("customer__organization")))


def _hint_locked(ticket: Ticket | None) -> Ticket | None:
    """Where the customer's message goes when a thread hint named ``ticket`` (locked, its
    customer read along); None when it named none. A ticket as it is (not merged, not
    deleted, its customer not merged) is the answer; any other follows ``ticket_thread_target``."""
    if ticket is None:
        return None
    if ticket.merged_into_id is None and not ticket.is_deleted and ticket.customer.merged_into_id is None:
        return ticket
    return _thread_target_lock(ticket)


def _thread_target_lock(ticket: Ticket) -> Ticket | None:
    target = ticket_thread_target(ticket)
    return ticket_lock(target.pk) if target is not None else None


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


def customer_may_reopen(ticket: Ticket, at: datetime) -> bool:
    """Whether the customer may reopen ``ticket`` at ``at`` (by writing, or from the help centre)."""
    return _reopens(ticket, at)


def _reopens(ticket: Ticket, at: datetime) -> bool:
    """Whether a customer message may reopen ``ticket``: a closed ticket only within
    the configured number of days after it was solved; any other status always."""
    if ticket.status != Status.CLOSED:
        return True
    days = settings.SERVICEDESK["REOPEN_WINDOW_DAYS"]
    solved = ticket.solved_at or ticket.updated_at
    return at - solved <= timedelta(days=days)


def _after_commit(message_id: int, *, ack_id: int | None, outcome: IntakeOutcome, assignee_id: int | None) -> None:
    """Enqueue side effects. A broker hiccup must not fail an intake that is
    already committed: the queued acknowledgement is picked up again by the
    ``tickets.outbound_pending_dispatch`` beat task."""
    from servicedesk.tickets import tasks

    if ack_id is not None:
        task_enqueue(tasks.message_deliver_task, ack_id)
    if outcome is IntakeOutcome.APPENDED:
        # The assignee is told by notifications, which registered in the ticket hooks.
        hooks.customer_message_followers_run(message_id=message_id, assignee_id=assignee_id)
