"""Delivery reports: only a report citing mail the desk signed and sent to the
failed address acts; every other one is kept in the quarantine and changes
nothing. A bouncing address is cleared by mail from it."""

from __future__ import annotations

from pathlib import Path

import pytest

from channels_app.email.message_ids import message_id_for_pk
from channels_app.email.models import InboundEmail
from channels_app.email.services import (
    NO_RECIPIENT_BOUNCE,
    UNKNOWN_BOUNCE,
    WRONG_RECIPIENT_BOUNCE,
    IngestOutcome,
    email_ingest,
)
from servicedesk.tickets.models import Identity, Message, MessageKind, Ticket
from tests.channels_app.email.test_ingest import dsn, mail

pytestmark = pytest.mark.django_db

FIXTURES = Path(__file__).parent / "fixtures"
FIXTURE_ID = b"<sd.42.00112233aabbccdd@servicedesk.example>"


@pytest.fixture
def alice_ticket(django_capture_on_commit_callbacks):
    """Alice wrote in; the desk acknowledged her by mail (sent, recorded)."""
    with django_capture_on_commit_callbacks(execute=True):
        email_ingest(raw=mail(), source="pipe")
    acknowledgement = Message.objects.get(purpose="acknowledgement")
    assert (acknowledgement.delivery_status, acknowledgement.recipients) == ("sent", ["alice@example.com"])
    return acknowledgement


def system_notes() -> list[str]:
    return list(Message.objects.filter(kind=MessageKind.SYSTEM, purpose="").values_list("text", flat=True))


def bouncing() -> dict[str, bool]:
    return dict(Identity.objects.values_list("value", "is_bouncing"))


def test_genuine_bounce_marks_the_address_and_notes_the_ticket(alice_ticket):
    result = email_ingest(raw=dsn(bounced_id=alice_ticket.rfc_message_id), source="pipe")

    assert result.outcome is IngestOutcome.STORED
    identity = Identity.objects.get(value="alice@example.com")
    assert (identity.is_bouncing, identity.bouncing_change, identity.bouncing_changed_by) == (True, "bounce", None)
    assert identity.bouncing_changed_at is not None
    assert system_notes() == [
        "Delivery failed to alice@example.com: the receiving mail system returned the message as undeliverable."
        "\n\nYour message could not be delivered: user unknown."
    ]


def test_forged_bounce_citing_a_planted_message_id_does_nothing(alice_ticket):
    # The attacker first plants a Message-ID of their own on the desk...
    email_ingest(raw=mail(message_id="<planted@evil.example>", sender="mallory@evil.example"), source="pipe")
    assert Message.objects.filter(rfc_message_id="<planted@evil.example>").exists()

    # ...then reports that mail as bounced from Alice.
    result = email_ingest(raw=dsn(bounced_id="<planted@evil.example>", recipient="alice@example.com"), source="pipe")

    assert (result.outcome, result.reason) == (IngestOutcome.QUARANTINED, UNKNOWN_BOUNCE)
    assert bouncing() == {"alice@example.com": False, "mallory@evil.example": False}
    assert system_notes() == []
    row = InboundEmail.objects.get(rfc_message_id="<dsn-1@mx.example.net>")
    assert (row.status, row.quarantine_reason, row.ticket) == ("quarantined", UNKNOWN_BOUNCE, None)


def test_forged_bounce_citing_an_id_dressed_as_ours_does_nothing(alice_ticket):
    forged = f"<sd.{alice_ticket.pk}.0123456789abcdef@servicedesk.example>"

    result = email_ingest(raw=dsn(bounced_id=forged), source="pipe")

    assert (result.outcome, result.reason) == (IngestOutcome.QUARANTINED, UNKNOWN_BOUNCE)
    assert bouncing() == {"alice@example.com": False}
    assert system_notes() == []


def test_bounce_citing_a_signed_id_of_mail_the_desk_never_sent_does_nothing(alice_ticket):
    customer_message = Message.objects.get(kind=MessageKind.PUBLIC_ENDUSER)

    result = email_ingest(raw=dsn(bounced_id=message_id_for_pk(customer_message.pk)), source="pipe")

    assert (result.outcome, result.reason) == (IngestOutcome.QUARANTINED, UNKNOWN_BOUNCE)
    assert bouncing() == {"alice@example.com": False}


def test_bounce_naming_another_recipient_does_nothing(alice_ticket, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        email_ingest(raw=mail(message_id="<b1@example.com>", sender="bob@example.com"), source="pipe")

    # Alice's acknowledgement is real, but it was not sent to Bob.
    result = email_ingest(raw=dsn(bounced_id=alice_ticket.rfc_message_id, recipient="bob@example.com"), source="pipe")

    assert (result.outcome, result.reason) == (IngestOutcome.QUARANTINED, WRONG_RECIPIENT_BOUNCE)
    assert bouncing() == {"alice@example.com": False, "bob@example.com": False}
    assert system_notes() == []


@pytest.mark.parametrize(
    "name",
    [
        "bounce_postfix_plain.eml",
        "bounce_exim.eml",
        "bounce_qmail.eml",
        "bounce_gmail.eml",
        "bounce_exchange.eml",
    ],
)
def test_plain_text_bounce_of_each_mail_system_marks_the_address(alice_ticket, name):
    raw = (FIXTURES / name).read_bytes()
    raw = raw.replace(FIXTURE_ID, alice_ticket.rfc_message_id.encode()).replace(
        b"gone@example.com", b"alice@example.com"
    )

    result = email_ingest(raw=raw, source="pipe")

    assert (result.outcome, result.reference) == (IngestOutcome.STORED, alice_ticket.ticket.reference)
    assert bouncing() == {"alice@example.com": True}
    notes = system_notes()
    assert len(notes) == 1
    assert notes[0].startswith("Delivery failed to alice@example.com: ")
    assert Ticket.objects.count() == 1


@pytest.mark.parametrize("name", ["bounce_qmail.eml", "bounce_exim.eml"])
def test_plain_text_bounce_with_the_fixture_id_is_unknown(alice_ticket, name):
    result = email_ingest(raw=(FIXTURES / name).read_bytes(), source="pipe")

    assert (result.outcome, result.reason) == (IngestOutcome.QUARANTINED, UNKNOWN_BOUNCE)
    assert bouncing() == {"alice@example.com": False}


def test_mail_from_a_bouncing_address_clears_it(alice_ticket):
    email_ingest(raw=dsn(bounced_id=alice_ticket.rfc_message_id), source="pipe")
    assert bouncing() == {"alice@example.com": True}

    result = email_ingest(raw=mail(message_id="<m2@example.com>", body="I am back."), source="pipe")

    assert result.outcome is IngestOutcome.STORED
    identity = Identity.objects.get(value="alice@example.com")
    assert (identity.is_bouncing, identity.bouncing_change, identity.bouncing_changed_by) == (False, "mail", None)


def test_bounce_delivered_twice_acts_once(alice_ticket):
    raw = dsn(bounced_id=alice_ticket.rfc_message_id)
    email_ingest(raw=raw, source="pipe")
    second = email_ingest(raw=raw, source="pipe")

    assert second.outcome is IngestOutcome.DUPLICATE
    assert len(system_notes()) == 1


def test_delayed_delivery_report_marks_nothing(alice_ticket):
    raw = dsn(bounced_id=alice_ticket.rfc_message_id).replace(b"Action: failed", b"Action: delayed")

    result = email_ingest(raw=raw, source="pipe")

    assert (result.outcome, result.reason) == (IngestOutcome.QUARANTINED, NO_RECIPIENT_BOUNCE)
    assert bouncing() == {"alice@example.com": False}
    assert system_notes() == []


def test_bounce_naming_the_ascii_form_of_an_idn_domain_marks_the_address(django_capture_on_commit_callbacks):
    """Mail servers report the recipient as they were given it, the domain as IDNA (xn--);
    the desk sent to, and stores, its Unicode form: the same address."""
    with django_capture_on_commit_callbacks(execute=True):
        email_ingest(raw=mail(sender="Jürgen <jurgen@bücher.example>"), source="pipe")
    acknowledgement = Message.objects.get(purpose="acknowledgement")
    assert (acknowledgement.delivery_status, acknowledgement.recipients) == ("sent", ["jurgen@bücher.example"])

    report = dsn(bounced_id=acknowledgement.rfc_message_id, recipient="jurgen@xn--bcher-kva.example")
    result = email_ingest(raw=report, source="pipe")

    assert result.outcome is IngestOutcome.STORED
    assert bouncing() == {"jurgen@bücher.example": True}
    assert system_notes() == [
        "Delivery failed to jurgen@xn--bcher-kva.example: the receiving mail system returned the message as"
        " undeliverable.\n\nYour message could not be delivered: user unknown."
    ]
