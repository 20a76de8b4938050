"""Which ticket a message joins: references, thread keys, reply tokens, the reopen window."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from servicedesk.tickets.events import Actor
from servicedesk.tickets.inbound import InboundMessage, IntakeOutcome, SenderIdentity
from servicedesk.tickets.models import Ticket
from servicedesk.tickets.services.intake import inbound_message_receive
from servicedesk.tickets.services.tickets import ticket_merge, ticket_status_change
from servicedesk.tickets.threading import reply_token_for, ticket_for_reply_token

pytestmark = pytest.mark.django_db

T0 = datetime(2025, 10, 24, 9, 0, tzinfo=UTC)


def receive(external_id: str, email: str = "alice@example.com", at: datetime = T0, **kwargs):
    return inbound_message_receive(
        inbound=InboundMessage(
            channel="email",
            external_id=external_id,
            sender=SenderIdentity("email", email, ""),
            subject=kwargs.pop("subject", "Help"),
            text="text",
            received_at=at,
            acknowledge=False,
            **kwargs,
        )
    )


def test_reply_token_round_trip_and_forgeries(queue):
    ticket = receive("m1").ticket
    token = reply_token_for(ticket)
    assert ticket_for_reply_token(token) == ticket
    assert ticket_for_reply_token(token.upper()) == ticket  # mail systems may change the case
    number, digest = token.split("-")
    other = receive("m2", email="bob@example.com").ticket
    assert ticket_for_reply_token(f"{reply_token_for(other).split('-')[0]}-{digest}") is None
    for bad in ("", "-", "zz", f"{number}-", f"{number}-{'0' * 12}", f"!!-{digest}"):
        assert ticket_for_reply_token(bad) is None


def test_reply_token_joins_the_ticket_even_from_another_address(queue):
    ticket = receive("m1").ticket
    joined = receive("m2", email="colleague@example.com", reply_token=reply_token_for(ticket))
    assert joined.outcome is IntakeOutcome.APPENDED and joined.ticket == ticket


def test_forged_reply_token_opens_a_new_ticket(queue):
    ticket = receive("m1").ticket
    forged = reply_token_for(ticket)[:-1] + ("0" if reply_token_for(ticket)[-1] != "0" else "1")
    result = receive("m2", email="mallory@example.net", reply_token=forged)
    assert result.outcome is IntakeOutcome.CREATED and result.ticket != ticket


def test_subject_tag_counts_only_from_the_customer(queue):
    ticket = receive("m1").ticket
    stranger = receive("m2", email="mallory@example.net", ticket_reference=ticket.reference)
    assert stranger.outcome is IntakeOutcome.CREATED
    owner = receive("m3", ticket_reference=ticket.reference)
    assert owner.outcome is IntakeOutcome.APPENDED and owner.ticket == ticket


def test_thread_keys_come_before_the_subject_tag(queue):
    first = receive("m1", rfc_message_id="<one@example.com>").ticket
    second = receive("m2", subject="Other").ticket
    result = receive("m3", thread_keys=("<one@example.com>",), ticket_reference=second.reference)
    assert result.ticket == first


def test_reply_to_a_merged_ticket_lands_on_the_target(queue):
    source = receive("m1").ticket
    target = receive("m2", subject="Same problem").ticket
    ticket_merge(source=source, target=target, actor=Actor.system())
    result = receive("m3", reply_token=reply_token_for(source))
    assert result.ticket == target


def test_closed_ticket_reopens_within_the_window(queue, settings):
    settings.SERVICEDESK = {**settings.SERVICEDESK, "REOPEN_WINDOW_DAYS": 7}
    ticket = receive("m1").ticket
    ticket_status_change(ticket=ticket, status="closed", actor=Actor.system(), at=T0 + timedelta(days=1))
    result = receive("m2", at=T0 + timedelta(days=8), ticket_reference=ticket.reference)
    assert result.outcome is IntakeOutcome.APPENDED
    ticket.refresh_from_db()
    assert ticket.status == "open"


def test_closed_ticket_past_the_window_gets_a_linked_follow_up(queue, settings):
    settings.SERVICEDESK = {**settings.SERVICEDESK, "REOPEN_WINDOW_DAYS": 7}
    ticket = receive("m1").ticket
    ticket_status_change(ticket=ticket, status="closed", actor=Actor.system(), at=T0 + timedelta(days=1))
    result = receive("m2", at=T0 + timedelta(days=8, seconds=1), ticket_reference=ticket.reference)
    assert result.outcome is IntakeOutcome.CREATED
    assert result.ticket.same_issue_as == ticket and result.ticket.customer == ticket.customer
    ticket.refresh_from_db()
    assert ticket.status == "closed" and ticket.messages.count() == 1
    assert Ticket.objects.count() == 2


def test_solved_ticket_always_reopens(queue, settings):
    settings.SERVICEDESK = {**settings.SERVICEDESK, "REOPEN_WINDOW_DAYS": 1}
    ticket = receive("m1").ticket
    ticket_status_change(ticket=ticket, status="solved", actor=Actor.system(), at=T0)
    result = receive("m2", at=T0 + timedelta(days=90), ticket_reference=ticket.reference)
    assert result.outcome is IntakeOutcome.APPENDED


def test_colleague_copied_by_the_customer_may_use_the_subject_tag(queue):
    ticket = receive("m1", recipients=("support@servicedesk.example", "colleague@example.com")).ticket
    colleague = receive("m2", email="Colleague@Example.com", ticket_reference=ticket.reference)
    assert colleague.outcome is IntakeOutcome.APPENDED and colleague.ticket == ticket
    # Being copied gives no access and no say on other tickets of that customer.
    other = receive("m3", subject="Another matter").ticket
    stranger = receive("m4", email="colleague@example.com", ticket_reference=other.reference)
    assert stranger.outcome is IntakeOutcome.CREATED


def test_address_copied_by_someone_else_is_no_participant(queue):
    ticket = receive("m1").ticket
    # Mallory writes with the tag and copies herself on the way: still a stranger.
    first = receive(
        "m2", email="mallory@example.net", ticket_reference=ticket.reference, recipients=("mallory@example.net",)
    )
    second = receive("m3", email="mallory@example.net", ticket_reference=ticket.reference)
    assert first.outcome is IntakeOutcome.CREATED and second.ticket != ticket
