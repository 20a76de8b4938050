"""Every call on a ticket: the call's entry in the thread, and the ticket a call opens.

Run in the transaction that stored a call's event (``services.call_event_receive``)
or an agent's action on it, after the call's record was folded again:

- a call that is on a ticket has one entry in that ticket's thread, a
  message of purpose ``call`` whose ``facts`` are the call as it is now
  (direction, number, agent, wait and talk time, recording, voicemail,
  transcript), rewritten as later events arrive; its kind is the customer's
  (``public_enduser``) for an inbound call, an agent's reply for an answered
  outbound call, and an internal note for an outbound call nobody answered;
- an answered call not on a ticket opens one, assigned to the agent who
  answered, on the line's queue;
- an inbound call that ends unanswered from a number that can be called back
  becomes a callback ticket when the line's ``missed_calls`` takes it (every
  caller, or known customers: one who was a customer before the call); a
  second one from the same number within an hour of the first joins that
  ticket while it is open;
- a voicemail becomes a ticket with the recording and the transcript.

Callback and voicemail tickets are routed like any new ticket and get the
SLA of their policy; the caller is acknowledged by email when the line says
so and the customer has an address, under the usual caps.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone, translation
from django.utils.translation import gettext as _

from servicedesk.accounts.models import User
from servicedesk.core.enqueue import task_enqueue
from servicedesk.core.errors import ApplicationError, Conflict, PermissionDenied
from servicedesk.tickets import statuses
from servicedesk.tickets.events import Actor, event_build, events_store
from servicedesk.tickets.locks import row_lock
from servicedesk.tickets.models import (
    Channel,
    Customer,
    Identity,
    IdentityKind,
    Initiator,
    Message,
    MessageKind,
    Session,
    SessionChannel,
    Ticket,
    TicketEvent,
)
from servicedesk.tickets.services.acknowledgements import ticket_acknowledgement_prepare
from servicedesk.tickets.services.delivery import message_delivery_enqueue
from servicedesk.tickets.services.replies import ticket_note_create, ticket_reply_create
from servicedesk.tickets.services.tickets import (
    ticket_delete_set,
    ticket_insert,
    ticket_route_inbound,
    ticket_status_change,
    ticket_touch,
)
from servicedesk.tickets.statuses import Status

from .models import Call, CallDirection, CallOutcome, CallState, MissedCalls

CALLBACK_JOIN = timedelta(hours=1)


def entry_external_id(call: Call) -> str:
    return f"call:{call.pk}"


def seconds_between(start: datetime | None, end: datetime | None) -> int | None:
    if start is None or end is None:
        return None
    return max(0, round((end - start).total_seconds()))


def call_facts(call: Call) -> dict[str, Any]:
    """What the call's entry shows, as plain values (``Message.facts``)."""
    agent = call.agent
    answered = call.answered_at
    return {
        "call": call.pk,
        "direction": call.direction,
        "number": call.number,
        "line": call.line.name if call.line_id and call.line else "",
        "agent": str(agent) if agent is not None else "",
        "agent_id": call.agent_id,
        "state": call.state,
        "outcome": call.outcome,
        "cause": call.cause,
        "rang_at": call.rang_at.isoformat(),
        "answered_at": answered.isoformat() if answered else None,
        "ended_at": call.ended_at.isoformat() if call.ended_at else None,
        "wait_seconds": seconds_between(call.rang_at, answered or call.ended_at),
        "talk_seconds": seconds_between(answered, call.ended_at),
        "recording_url": call.recording_url,
        "voicemail_url": call.voicemail_url,
        "transcript": call.transcript,
        "logged": call.logged_by_id is not None,
    }


def call_text(call: Call) -> str:
    """The entry as plain text in the desk's language (the API, search and exports read ``text``)."""
    with translation.override(settings.LANGUAGE_CODE):
        facts = call_facts(call)
        inbound = call.direction == CallDirection.INBOUND
        number = call.number or _("withheld number")
        lines = [
            (_("Inbound call from %(number)s") if inbound else _("Outbound call to %(number)s")) % {"number": number}
        ]
        if call.outcome:
            lines.append(_("Outcome: %(outcome)s") % {"outcome": call.get_outcome_display()})
        if facts["agent"]:
            lines.append(_("Agent: %(name)s") % {"name": facts["agent"]})
        if facts["wait_seconds"] is not None:
            lines.append(_("Waited %(seconds)d s") % {"seconds": facts["wait_seconds"]})
        if facts["talk_seconds"] is not None:
            lines.append(_("Talked %(seconds)d s") % {"seconds": facts["talk_seconds"]})
        if call.recording_url:
            lines.append(_("Recording: %(url)s") % {"url": call.recording_url})
        if call.voicemail_url:
            lines.append(_("Voicemail: %(url)s") % {"url": call.voicemail_url})
        if call.transcript:
            lines.append(_("Transcript: %(text)s") % {"text": call.transcript})
        return "\n".join(lines)


def _entry_kind(call: Call) -> str:
    return MessageKind.PUBLIC_ENDUSER if call.direction == CallDirection.INBOUND else MessageKind.INTERNAL


def answer_external_id(call: Call) -> str:
    return f"call:{call.pk}:answer"


def _answer_sync(call: Call) -> None:
    """An answered call is the agent's answer to the caller: a public agent message at the answer.

    It is the ticket's reply as docs/metrics.md counts them (first reply time,
    the first-reply target, FCR), written through ``ticket_reply_create``
    (never delivered: the caller heard it). An answer the events take back
    (one timed after the hang-up) takes its message with it.
    """
    existing = Message.objects.filter(channel=Channel.PHONE, external_id=answer_external_id(call))
    if call.ticket_id is None or call.answered_at is None or call.agent is None:
        existing.delete()
        return
    # Not before its ticket: a callback or voicemail ticket made before a late-reported
    # answer is answered as it opens (its first reply time is nil, never below).
    ticket = call.ticket
    assert ticket is not None
    at = max(call.answered_at, ticket.created_at)
    facts = {"call": call.pk, "answer": True, "direction": call.direction, "agent": str(call.agent)}
    with translation.override(settings.LANGUAGE_CODE):
        text = _("%(name)s answered the call.") % {"name": str(call.agent)}
    if existing.update(ticket_id=call.ticket_id, author_user_id=call.agent_id, created_at=at, facts=facts, text=text):
        return
    message = ticket_reply_create(
        ticket=Ticket(pk=call.ticket_id),
        author=call.agent,
        text=text,
        deliver=False,
        external_id=answer_external_id(call),
        actor=Actor.agent(call.agent, source="phone"),
        at=at,
    )
    Message.objects.filter(pk=message.pk).update(purpose=Message.Purpose.CALL, facts=facts)


def _entry_build(call: Call, ticket: Ticket, customer_id: int, *, created_at: datetime) -> Message:
    kind = _entry_kind(call)
    return Message(
        ticket=ticket,
        kind=kind,
        channel=Channel.PHONE,
        purpose=Message.Purpose.CALL,
        author_customer_id=customer_id if kind == MessageKind.PUBLIC_ENDUSER else None,
        author_user_id=None if kind == MessageKind.PUBLIC_ENDUSER else (call.agent_id or call.logged_by_id),
        text=call_text(call),
        facts=call_facts(call),
        external_id=entry_external_id(call),
        created_at=created_at,
    )


def _entry_event(call: Call, ticket: Ticket, entry: Message, *, actor: Actor, at: datetime) -> TicketEvent:
    """The ticket's ``message`` event for the call's entry (its timeline, and the live pages' news)."""
    return event_build(
        ticket=ticket,
        kind=TicketEvent.Kind.MESSAGE,
        actor=actor,
        at=at,
        message=entry,
        after={"kind": entry.kind, "channel": Channel.PHONE, "call": call.pk},
    )


def _actor(call: Call, customer: Customer) -> Actor:
    if call.direction == CallDirection.OUTBOUND and call.agent is not None:
        return Actor.agent(call.agent, source="phone")
    if call.logged_by is not None:
        return Actor.agent(call.logged_by, source="phone")
    return Actor.of_customer(customer, source="phone")


def _subject(call: Call, customer: Customer, purpose: str) -> str:
    with translation.override(customer.language or settings.LANGUAGE_CODE):
        who = customer.name or call.number or _("withheld number")
        if purpose == "callback":
            return _("Call back %(who)s") % {"who": who}
        if purpose == "voicemail":
            return _("Voicemail from %(who)s") % {"who": who}
        if call.direction == CallDirection.OUTBOUND:
            return _("Call to %(who)s") % {"who": who}
        return _("Call from %(who)s") % {"who": who}


def _can_acknowledge(call: Call, customer_id: int) -> bool:
    return bool(
        call.line is not None
        and call.line.acknowledge
        and Customer.objects.filter(
            pk=customer_id, identities__kind=IdentityKind.EMAIL, identities__is_bouncing=False
        ).exists()
    )


def _ticket_open(call: Call, customer_id: int, *, purpose: str, at: datetime) -> Ticket:
    """A new ticket of channel phone with the call's entry (``purpose``: call, callback or voicemail)."""
    customer = Customer.objects.get(pk=customer_id)
    actor = _actor(call, customer)
    inbound = call.direction == CallDirection.INBOUND
    assignee = call.agent if purpose == "call" and call.agent is not None and call.agent.is_active else None
    opened = ticket_insert(
        customer=customer,
        subject=_subject(call, customer, purpose),
        channel=Channel.PHONE,
        actor=actor,
        at=at,
        initiator=Initiator.INBOUND if inbound else Initiator.OUTBOUND,
        queue=call.line.queue if call.line is not None else None,
        assignee=assignee,
        language=customer.language,
    )
    ticket = opened.ticket
    if assignee is None and inbound:
        ticket_route_inbound(opened, actor=actor, at=at)
    entry = _entry_build(call, ticket, customer_id, created_at=at)
    ack_events: list[TicketEvent] = []
    acknowledgement = None
    if purpose in ("callback", "voicemail") and _can_acknowledge(call, customer_id):
        acknowledgement = ticket_acknowledgement_prepare(ticket=ticket, targets=opened.targets, events=ack_events)
    Message.objects.bulk_create([entry, acknowledgement] if acknowledgement is not None else [entry])
    opened.events.append(_entry_event(call, ticket, entry, actor=actor, at=at))
    opened.events.extend(ack_events)
    opened.store()
    if acknowledgement is not None:
        ack_id = acknowledgement.pk
        # A broker that does not answer leaves it queued for the beat's pending-delivery sweep.
        transaction.on_commit(lambda: message_delivery_enqueue(message_id=ack_id))
    return ticket


def _entry_add(call: Call, ticket: Ticket, customer_id: int, *, actor: Actor, at: datetime) -> None:
    """The call's entry on an existing (locked) ticket, as a customer's message reopens it."""
    entry = _entry_build(call, ticket, customer_id, created_at=at)
    entry.save(force_insert=True)
    events_store([_entry_event(call, ticket, entry, actor=actor, at=at)])
    target = statuses.STATUS_ON_CUSTOMER_MESSAGE.get(ticket.status, ticket.status)
    if entry.kind == MessageKind.PUBLIC_ENDUSER and target != ticket.status:
        ticket_status_change(ticket=ticket, status=target, actor=actor, at=at)
    else:
        ticket_touch(ticket, at, [])


def _callback_ticket_open(call: Call) -> Ticket | None:
    """The open callback ticket a missed call from the same number within the hour joins."""
    if not call.number or call.ended_at is None:
        return None
    earlier = (
        Call.objects.filter(
            callback=True,
            number=call.number,
            ended_at__gte=call.ended_at - CALLBACK_JOIN,
            ended_at__lte=call.ended_at,
            ticket__isnull=False,
        )
        .exclude(pk=call.pk)
        .order_by("-ended_at")
        .values_list("ticket_id", flat=True)
        .first()
    )
    if earlier is None:
        return None
    ticket = row_lock(Ticket, earlier)
    if ticket.merged_into_id or ticket.is_deleted or ticket.is_spam or ticket.status in statuses.SOLVED_STATUSES:
        return None
    return ticket


def _takes_callback(call: Call, customer_id: int) -> bool:
    """Whether the line makes a callback ticket of this unanswered inbound call."""
    if call.line is None or not call.number:
        # A withheld number cannot be called back.
        return False
    policy = call.line.missed_calls
    if policy == MissedCalls.NONE:
        return False
    if policy == MissedCalls.KNOWN:
        return Customer.objects.filter(pk=customer_id, created_at__lt=call.rang_at).exists()
    return True


def _callback_due(call: Call, now: datetime) -> bool:
    """Whether the callback ticket of a missed call is due at ``now``.

    A telephone system may report an answer after its hang-up. Made at once,
    the callback ticket of such a call would stay beside the ticket the answer
    opens in order, so the call waits ``PHONE_CALLBACK_SETTLE_SECONDS`` from
    the first fold that finds it missed (``settles_at``): an answer within
    that time opens the same ticket as in order, and after it
    ``services.call_settle`` (a task, and the beat's sweep) makes the callback
    ticket. The caller saves ``call``.
    """
    wait = int(settings.SERVICEDESK.get("PHONE_CALLBACK_SETTLE_SECONDS", 0))
    if wait <= 0:
        return True
    if call.settles_at is None:
        call.settles_at = now + timedelta(seconds=wait)
        call_pk = call.pk
        transaction.on_commit(lambda: _settle_enqueue(call_pk, wait))
        return False
    return now >= call.settles_at


def _settle_enqueue(call_pk: int, wait: int) -> None:
    """The task that makes the callback ticket when it is due; a broker that does not take it
    leaves it to the beat's sweep (``phone.events_fold_pending``)."""
    from .tasks import call_settle_task

    task_enqueue(call_settle_task, call_pk, countdown=wait + 1)


def call_tickets_sync(call: Call, *, now: datetime | None = None) -> None:
    """Put the call on its ticket as the call now is (see the module); the caller saves ``call``.

    ``now``: when the fold runs (the callback's wait, ``_callback_due``).
    """
    if not _tickets_sync(call, now=now or timezone.now()):
        call.settles_at = None


def _tickets_sync(call: Call, *, now: datetime) -> bool:
    """call_tickets_sync's work; True while a missed call waits for its callback ticket."""
    if call.session_id is None:
        # No event has told who called yet.
        return False
    session = Session.objects.only("customer_id", "ticket_id").get(pk=call.session_id)
    customer_id = session.customer_id
    ended_unanswered = (
        call.state == CallState.ENDED and call.answered_at is None and call.direction == CallDirection.INBOUND
    )
    if call.ticket_id is None:
        if call.answered_at is not None:
            # Opened as the call is answered, dated from its first ring: the contact began then.
            call.ticket = _ticket_open(call, customer_id, purpose="call", at=call.rang_at)
        elif call.outcome == CallOutcome.VOICEMAIL and call.direction == CallDirection.INBOUND and call.ended_at:
            call.ticket = _ticket_open(call, customer_id, purpose="voicemail", at=call.ended_at)
        elif ended_unanswered and call.ended_at is not None and _takes_callback(call, customer_id):
            if not _callback_due(call, now):
                return True
            call.callback = True
            joined = _callback_ticket_open(call)
            if joined is not None:
                customer = Customer.objects.get(pk=customer_id)
                _entry_add(call, joined, customer_id, actor=_actor(call, customer), at=call.ended_at)
                call.ticket = joined
            else:
                call.ticket = _ticket_open(call, customer_id, purpose="callback", at=call.ended_at)
    else:
        if call.callback and call.answered_at is not None:
            # An answer reported late: the caller was not missed after all.
            call.callback = False
        entry = Message.objects.filter(channel=Channel.PHONE, external_id=entry_external_id(call))
        if not entry.exists():
            customer = Customer.objects.get(pk=customer_id)
            ticket = row_lock(Ticket, call.ticket_id)
            _entry_add(call, ticket, customer_id, actor=_actor(call, customer), at=call.rang_at)
        else:
            kind = _entry_kind(call)
            entry.update(
                ticket_id=call.ticket_id,
                kind=kind,
                author_customer_id=customer_id if kind == MessageKind.PUBLIC_ENDUSER else None,
                author_user_id=None if kind == MessageKind.PUBLIC_ENDUSER else (call.agent_id or call.logged_by_id),
                text=call_text(call),
                facts=call_facts(call),
            )
    if call.ticket_id is not None and session.ticket_id != call.ticket_id:
        Session.objects.filter(pk=call.session_id).update(ticket_id=call.ticket_id)
    _answer_sync(call)
    return False


def call_attach(*, call: Call, ticket: Ticket, agent: User, at: datetime) -> Call:
    """Put the call on ``ticket`` (the agent's choice from the pop), in the caller's transaction.

    The entry moves there with the session. The ticket the call was on
    before, when nothing else is on it (one the call opened on answer), is
    deleted (a manager may restore it); one with more on it stays.
    """
    call = row_lock(Call, call.pk)
    if call.ticket_id == ticket.pk:
        return call
    ticket = row_lock(Ticket, ticket.pk)
    previous = call.ticket_id
    call.ticket = ticket
    call.callback = False
    call.updated_at = at
    call_tickets_sync(call)
    call.save(update_fields=["ticket", "callback", "settles_at", "updated_at"])
    entry = Message.objects.filter(channel=Channel.PHONE, external_id=entry_external_id(call)).first()
    if entry is not None and previous is not None:
        # The entry moved here: the ticket's timeline and live pages hear of it.
        events_store([_entry_event(call, ticket, entry, actor=Actor.agent(agent, source="phone"), at=at)])
        ticket_touch(ticket, at, [])
    if previous is not None and not Message.objects.filter(ticket_id=previous).exists():
        # The call's own ticket, empty now that its only entry moved.
        old = row_lock(Ticket, previous)
        if not old.is_deleted:
            ticket_delete_set(ticket=old, deleted=True, actor=Actor.agent(agent, source="phone"), at=at)
    return call


def call_ticket_new(*, call: Call, agent: User, at: datetime) -> Call:
    """Open a new ticket for the call now (the pop's "New ticket"), unless it is on one already."""
    call = row_lock(Call, call.pk)
    if call.ticket_id is not None or call.session_id is None:
        return call
    customer_id = Session.objects.values_list("customer_id", flat=True).get(pk=call.session_id)
    call.ticket = _ticket_open(call, customer_id, purpose="call", at=min(call.rang_at, at))
    Session.objects.filter(pk=call.session_id).update(ticket_id=call.ticket_id)
    _answer_sync(call)
    call.settles_at = None
    call.updated_at = at
    call.save(update_fields=["ticket", "settles_at", "updated_at"])
    return call


def call_wrap_up(*, call: Call, agent: User, note: str = "", status: str = "", at: datetime) -> Call:
    """Close the after-contact work of an ended call the agent answered (in the caller's transaction).

    The note goes on the call's ticket as an internal note, the ticket takes
    ``status`` when one is given, and the session's after-contact work runs
    from the end of the call until now. Saving again changes nothing.
    """
    call = row_lock(Call, call.pk)
    if call.agent_id != agent.pk:
        raise PermissionDenied(_("Another agent answered this call."))
    if call.state != CallState.ENDED or call.ended_at is None:
        raise Conflict(_("The call has not ended yet."))
    if call.wrapped_up_at is not None:
        return call
    if status and status not in Status.values:
        raise ApplicationError(_("Unknown status."), field="status")
    actor = Actor.agent(agent, source="phone")
    note = note.strip()
    if call.ticket_id is not None:
        ticket = row_lock(Ticket, call.ticket_id)
        if note:
            ticket_note_create(ticket=ticket, author=agent, text=note, actor=actor, at=at)
        if status and ticket.status != status:
            ticket_status_change(ticket=ticket, status=status, actor=actor, at=at)
    call.note = note
    call.wrapped_up_at = at
    call.save(update_fields=["note", "wrapped_up_at"])
    if call.session_id is not None:
        seconds = max(0, round((at - call.ended_at).total_seconds()))
        Session.objects.filter(pk=call.session_id).update(after_work_seconds=seconds)
    return call


def call_log(
    *,
    agent: User,
    customer: Customer,
    ticket: Ticket | None,
    number: str,
    direction: str,
    started_at: datetime,
    duration_seconds: int,
    outcome: str,
    note: str = "",
    at: datetime,
) -> Call:
    """A call an agent records by hand ("Log a call"): the same call, session and entry as a reported one.

    ``number`` is in E.164 or empty (withheld); the call is the agent's, on
    ``ticket`` when given, else on a new ticket of ``customer``; the note goes
    on the ticket as an internal note. Run in the caller's transaction.
    """
    import uuid

    if direction not in CallDirection.values:
        raise ApplicationError(_("Choose inbound or outbound."), field="direction")
    if outcome not in CallOutcome.values:
        raise ApplicationError(_("Choose how the call ended."), field="outcome")
    if started_at > at + timedelta(minutes=5):
        raise ApplicationError(_("A call cannot start in the future."), field="started_at")
    if not 0 <= duration_seconds <= 24 * 3600:
        raise ApplicationError(_("A call lasts between 0 seconds and 24 hours."), field="duration")
    answered = outcome == CallOutcome.ANSWERED
    ended_at = started_at + timedelta(seconds=duration_seconds)
    call = Call(
        line=None,
        call_id=f"manual:{uuid.uuid4().hex}",
        direction=direction,
        from_number=number if direction == CallDirection.INBOUND else "",
        to_number=number if direction == CallDirection.OUTBOUND else "",
        number=number,
        customer=customer,
        agent=agent if answered else None,
        state=CallState.ENDED,
        outcome=outcome,
        rang_at=started_at,
        answered_at=started_at if answered else None,
        ended_at=ended_at,
        logged_by=agent,
        ticket=ticket,
        updated_at=at,
    )
    call.save(force_insert=True)
    return _contact_record(call, agent=agent, customer=customer, ticket=ticket, note=note, at=at)


def _contact_record(
    call: Call, *, agent: User, customer: Customer, ticket: Ticket | None, note: str, status: str = "", at: datetime
) -> Call:
    """The session, ticket entry, note and status of an ended call the desk recorded (logged or dialled)."""
    answered = call.outcome == CallOutcome.ANSWERED
    assert call.ended_at is not None
    call.session = Session.objects.create(
        channel=SessionChannel.PHONE,
        customer=customer,
        ticket=ticket,
        agent=agent if answered else None,
        requested_at=call.rang_at,
        answered_at=call.rang_at if answered else None,
        abandoned_at=call.ended_at if not answered and call.direction == CallDirection.INBOUND else None,
        ended_at=call.ended_at,
        external_id=f"phone:manual:{call.call_id}",
    )
    actor = Actor.agent(agent, source="phone")
    if ticket is None:
        call.ticket = _ticket_open(call, customer.pk, purpose="call", at=call.rang_at)
    else:
        locked = row_lock(Ticket, ticket.pk)
        _entry_add(call, locked, customer.pk, actor=actor, at=call.rang_at)
    Session.objects.filter(pk=call.session.pk).update(ticket_id=call.ticket_id)
    _answer_sync(call)
    note = note.strip()
    if call.ticket is not None:
        if note:
            ticket_note_create(ticket=call.ticket, author=agent, text=note, actor=actor, at=at)
        if status:
            locked = row_lock(Ticket, call.ticket.pk)
            if locked.status != status:
                ticket_status_change(ticket=locked, status=status, actor=actor, at=at)
    call.note = note
    call.wrapped_up_at = at
    call.save(update_fields=["session", "ticket", "note", "wrapped_up_at"])
    return call


def call_dial(*, agent: User, ticket: Ticket, number: str, at: datetime) -> Call:
    """An agent dials the ticket's customer from the desk (a ``tel:`` link): the call, dialled now, is theirs.

    ``number`` must be one of the customer's phone numbers (E.164). The call
    is outbound and rings until the agent ends it (``call_dial_end``), which
    records the contact; until then it is the agent's pop. Run in the
    caller's transaction.
    """
    import uuid

    customer = ticket.customer
    if not Identity.objects.filter(customer=customer, kind=IdentityKind.PHONE, value=number).exists():
        raise ApplicationError(_("This customer does not have that number."), field="number")
    call = Call(
        line=None,
        call_id=f"dial:{uuid.uuid4().hex}",
        direction=CallDirection.OUTBOUND,
        to_number=number,
        number=number,
        customer=customer,
        agent=agent,
        state=CallState.RINGING,
        rang_at=at,
        logged_by=agent,
        ticket=ticket,
        updated_at=at,
    )
    call.save(force_insert=True)
    return call


def call_dial_end(*, call: Call, agent: User, outcome: str, note: str = "", status: str = "", at: datetime) -> Call:
    """The agent ends a call they dialled from the desk: the contact is recorded as "Log a call" records one.

    Talk time runs from the dial to now when the call was answered. Ending it
    again changes nothing. Run in the caller's transaction.
    """
    call = row_lock(Call, call.pk)
    if call.line_id is not None or not call.call_id.startswith("dial:"):
        raise Conflict(_("This call was not dialled from the desk."))
    if call.agent_id != agent.pk:
        raise PermissionDenied(_("Another agent dialled this call."))
    if call.state == CallState.ENDED:
        return call
    if outcome not in (CallOutcome.ANSWERED, CallOutcome.NOT_ANSWERED, CallOutcome.VOICEMAIL):
        raise ApplicationError(_("Choose how the call ended."), field="outcome")
    if status and status not in Status.values:
        raise ApplicationError(_("Unknown status."), field="status")
    answered = outcome == CallOutcome.ANSWERED
    call.state = CallState.ENDED
    call.outcome = outcome
    call.answered_at = call.rang_at if answered else None
    call.ended_at = max(at, call.rang_at)
    call.updated_at = at
    call.save(update_fields=["state", "outcome", "answered_at", "ended_at", "updated_at"])
    ticket = Ticket.objects.filter(pk=call.ticket_id, merged_into__isnull=True).first() if call.ticket_id else None
    assert call.customer is not None
    return _contact_record(call, agent=agent, customer=call.customer, ticket=ticket, note=note, status=status, at=at)


def callers_sharing(call: Call) -> list[Customer]:
    """The other customers with the call's number (a shared line), oldest holder first, at most ten."""
    if not call.number:
        return []
    return list(
        Customer.objects.filter(
            identities__kind=IdentityKind.PHONE, identities__value=call.number, merged_into__isnull=True
        )
        .exclude(pk=call.customer_id or 0)
        .select_related("organization")
        .order_by("identities__id")[:10]
    )


def call_caller_choose(*, call: Call, customer: Customer, agent: User, at: datetime) -> Call:
    """The agent says which of the customers sharing the call's number is calling (in the caller's transaction).

    The call and its session become that customer's; so does the ticket the
    call opened, while nothing but the call is on it (a ticket the agent
    chose, or one with more on it, keeps its customer).
    """
    call = row_lock(Call, call.pk)
    if (
        not call.number
        or not Identity.objects.filter(customer=customer, kind=IdentityKind.PHONE, value=call.number).exists()
    ):
        raise ApplicationError(_("This customer does not have the call's number."), field="customer")
    if call.customer_id == customer.pk:
        return call
    previous = call.customer_id
    call.customer = customer
    call.updated_at = at
    call.save(update_fields=["customer", "updated_at"])
    if call.session_id is not None:
        Session.objects.filter(pk=call.session_id).update(customer=customer)
    if call.ticket_id is not None:
        ticket = row_lock(Ticket, call.ticket_id)
        only_the_call = (
            not Message.objects.filter(ticket=ticket)
            .exclude(external_id__in=[entry_external_id(call), answer_external_id(call)])
            .exists()
        )
        if ticket.customer_id == previous and only_the_call:
            ticket.customer = customer
            ticket_touch(ticket, at, ["customer"])
            events_store(
                [
                    event_build(
                        ticket=ticket,
                        kind=TicketEvent.Kind.CUSTOMER,
                        actor=Actor.agent(agent, source="phone"),
                        at=at,
                        before={"customer": previous},
                        after={"customer": customer.pk},
                    )
                ]
            )
            Message.objects.filter(
                ticket=ticket, external_id=entry_external_id(call), author_customer__isnull=False
            ).update(author_customer=customer)
    return call
