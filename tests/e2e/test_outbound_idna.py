"""A customer at an internationalised domain gets the acknowledgement through
the real worker and SMTP server, the domain in its IDNA form on the envelope."""

from __future__ import annotations

import uuid

import pytest

from servicedesk.tickets.inbound import InboundMessage, SenderIdentity
from servicedesk.tickets.models import Message
from servicedesk.tickets.services.intake import inbound_message_receive
from tests.e2e.conftest import SmtpServer, WorkerProcess, wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def test_acknowledgement_reaches_an_idn_domain_in_punycode(celery_live: WorkerProcess, smtp_server: SmtpServer) -> None:
    local = f"jurgen.{uuid.uuid4().hex[:10]}"
    result = inbound_message_receive(
        inbound=InboundMessage(
            channel="web",
            external_id=f"e2e-idna-{uuid.uuid4().hex}",
            sender=SenderIdentity(kind="email", value=f"{local}@Bücher.example", name="Jürgen Groß"),
            subject="Lieferung fehlt",
            text="Meine Bestellung ist nicht angekommen.",
        )
    )
    reference = result.ticket.reference
    assert reference

    mail = smtp_server.wait_for_ticket(reference, timeout=60)
    ack = wait_until(
        lambda: Message.objects.filter(ticket=result.ticket, purpose="acknowledgement", delivery_status="sent").first(),
        timeout=20,
        what="the acknowledgement to be marked sent",
    )

    assert mail.rcpt_tos == [f"{local}@xn--bcher-kva.example"]
    [to] = mail.message["To"].addresses
    assert (to.display_name, to.addr_spec) == ("Jürgen Groß", f"{local}@xn--bcher-kva.example")
    headers = mail.raw.split(b"\r\n\r\n", 1)[0]
    assert headers.isascii()  # no SMTPUTF8 needed: the name is an RFC 2047 word, the domain IDNA
    assert (ack.delivery_error, ack.recipients, ack.delivery_attempts) == ("", [f"{local}@bücher.example"], 1)
