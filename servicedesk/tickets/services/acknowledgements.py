"""The automatic acknowledgement a customer gets when a ticket is opened."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import datetime, timedelta
from urllib.parse import quote
from zoneinfo import ZoneInfo, available_timezones

from django.conf import settings
from django.db import IntegrityError, transaction
from django.urls import get_script_prefix
from django.utils import timezone, translation
from django.utils.http import RFC3986_SUBDELIMS

from servicedesk.core.mail_templates import mail_render
from servicedesk.tickets.access import portal_token_for
from servicedesk.tickets.events import Actor, event_build, events_store
from servicedesk.tickets.locks import customer_lock_counting_acknowledgements
from servicedesk.tickets.models import (
    DeliveryStatus,
    Message,
    MessageKind,
    TargetKind,
    Ticket,
    TicketEvent,
    TicketTarget,
)
from servicedesk.tickets.statuses import Status


@dataclass(frozen=True)
class ReplyPromise:
    due: datetime
    time_zone: str  # the zone the promise is written in


def ticket_first_reply_promise(ticket: Ticket, targets: list[TicketTarget] | None = None) -> ReplyPromise:
    """When the customer may expect the first answer, and the zone to say it in.

    The due instant of the ticket's first-reply target decides (set from its
    SLA policy when the ticket was opened, see services/sla.py); without one,
    the configured default number of hours after creation. The zone is the customer's own,
    else the calendar's, else the site's. ``targets``: the ticket's targets
    when the caller holds them (it just opened the ticket); read otherwise.
    """
    customer_zone = ticket.customer.time_zone if _zone_known(ticket.customer.time_zone) else ""
    if targets is None:
        target = (
            TicketTarget.objects.filter(ticket=ticket, kind=TargetKind.FIRST_REPLY, due_at__isnull=False)
            .select_related("calendar")
            .first()
        )
    else:
        target = next((t for t in targets if t.kind == TargetKind.FIRST_REPLY and t.due_at is not None), None)
    if target is not None and target.due_at is not None:
        return ReplyPromise(due=target.due_at, time_zone=customer_zone or target.calendar.time_zone)
    due = ticket.created_at + timedelta(hours=settings.SERVICEDESK["DEFAULT_FIRST_REPLY_HOURS"])
    return ReplyPromise(due=due, time_zone=customer_zone or settings.TIME_ZONE)


@functools.cache
def _zones() -> frozenset[str]:
    return frozenset(available_timezones())


def _zone_known(name: str) -> bool:
    return bool(name) and name in _zones()


# The customer portal's ticket page (URL name ``web:ticket``), as the project
# mounts it (servicedesk/urls.py, channels_app/web/urls.py). Written out rather
# than found with reverse(), which loads every URL module of the project, the
# views, the API and its schema with them: a third of the start-up of
# ``manage.py ingest_email``, run once per mail. tests/tickets/test_portal_link.py
# holds it to reverse().
PORTAL_TICKET_PATH = "help/tickets/{token}/"


# The help centre's sign-in page (URL name ``web:sign_in``), written out for the same reason.
SIGN_IN_PATH = "help/sign-in/"


def requests_url() -> str:
    """The absolute address where a customer signs in to see all their requests (``web:sign_in``)."""
    return settings.SITE_URL + get_script_prefix() + SIGN_IN_PATH


def ticket_portal_url(ticket: Ticket) -> str:
    """The absolute address of the ticket's page in the customer portal, as reverse() gives it."""
    path = get_script_prefix() + PORTAL_TICKET_PATH.format(token=portal_token_for(ticket))
    # reverse() quotes the whole path so; a signed token needs no quoting anyway.
    return settings.SITE_URL + quote(path, safe=RFC3986_SUBDELIMS + "/~:@")


def ticket_acknowledgement_prepare(
    *, ticket: Ticket, targets: list[TicketTarget] | None, events: list[TicketEvent], new_customer: bool = False
) -> Message | None:
    """The acknowledgement of a ticket opened in this transaction, not yet stored.

    Returns the queued message for the caller to store (with its other
    messages, in one INSERT), or None when the ticket should not be
    acknowledged (spam, deleted, merged, outbound) or the customer reached
    ACK_MAX_PER_HOUR / ACK_MAX_PER_DAY, so an auto-responder that sets no
    header cannot loop with us. The ``acknowledged`` event (or the one saying
    it was suppressed) is appended to ``events``, for the caller to store
    after the message. ``targets``: the ticket's SLA targets, for the promised
    first answer. ``new_customer``: the customer was created in this
    transaction, so has had no acknowledgement and nothing is read.

    At most one per ticket: the ticket is new in the caller's transaction, and
    a unique constraint backs it up.
    """
    if ticket.is_spam or ticket.is_deleted or ticket.merged_into_id or ticket.initiator != "inbound":
        return None
    now = timezone.now()
    cap = None if new_customer else _acknowledgement_cap_reached(ticket, now)
    if cap is not None:
        events.append(
            event_build(
                ticket=ticket,
                kind=TicketEvent.Kind.ACKNOWLEDGED,
                actor=Actor.system(),
                at=now,
                after={"suppressed": cap},
            )
        )
        return None
    language = ticket.language or ticket.customer.language or settings.LANGUAGE_CODE
    promise = ticket_first_reply_promise(ticket, targets)
    due = promise.due
    # Dates in templates follow the active zone: the promise's own.
    with translation.override(language), timezone.override(ZoneInfo(promise.time_zone)):
        context = {
            "ticket": ticket,
            "customer_name": ticket.customer.name,
            "due": due,
            "zone_name": promise.time_zone,
            "hours": settings.SERVICEDESK["DEFAULT_FIRST_REPLY_HOURS"],
            "link": ticket_portal_url(ticket),
            "requests_link": requests_url(),
            "closed": ticket.status == Status.CLOSED,
        }
        text = mail_render("tickets/acknowledgement.txt", context).strip() + "\n"
    message = Message(
        ticket=ticket,
        kind=MessageKind.SYSTEM,
        purpose=Message.Purpose.ACKNOWLEDGEMENT,
        channel=ticket.channel,
        text=text,
        delivery_status=DeliveryStatus.QUEUED,
        created_at=now,
    )
    events.append(
        event_build(
            ticket=ticket,
            kind=TicketEvent.Kind.ACKNOWLEDGED,
            actor=Actor.system(),
            at=now,
            message=message,
            after={"due": due.isoformat()},
        )
    )
    return message


def ticket_acknowledgement_create(*, ticket: Ticket) -> Message | None:
    """Create the acknowledgement message of a stored ticket, queued for delivery.

    As ``ticket_acknowledgement_prepare``, stored at once: returns the queued
    message, or None when one exists already (the unique constraint decides,
    so concurrent or repeated calls agree), the cap is reached, or the ticket
    should not be acknowledged. Intake uses ``ticket_acknowledgement_prepare``
    for the ticket it opens; delivery happens after commit through
    ``services.delivery``.
    """
    events: list[TicketEvent] = []
    try:
        with transaction.atomic():
            message = ticket_acknowledgement_prepare(ticket=ticket, targets=None, events=events)
            if message is not None:
                message.save(force_insert=True)
            events_store(events)
    except IntegrityError:
        return None
    return message


def _acknowledgement_cap_reached(ticket: Ticket, now: datetime) -> str | None:
    """The cap this customer's acknowledgements have reached, if any.

    The customer row is locked as the counts are read (one statement), so
    simultaneous first contacts of one sender are counted one after the other.
    """
    conf = settings.SERVICEDESK
    hour, day = customer_lock_counting_acknowledgements(
        ticket.customer_id, hour_since=now - timedelta(hours=1), day_since=now - timedelta(days=1)
    )
    if hour >= conf["ACK_MAX_PER_HOUR"]:
        return "per hour"
    if day >= conf["ACK_MAX_PER_DAY"]:
        return "per day"
    return None
