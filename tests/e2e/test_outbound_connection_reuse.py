"""A burst of acknowledgements leaves through the real Celery worker over one SMTP
connection: the worker keeps its connection open from one task to the next."""

from __future__ import annotations

import uuid

import pytest

from servicedesk.tickets.inbound import InboundMessage, SenderIdentity
from servicedesk.tickets.models import Message
from servicedesk.tickets.services.intake import inbound_message_receive
from tests.e2e.conftest import SmtpServer, WorkerProcess, wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

BURST = 15


def test_a_burst_of_acknowledgements_leaves_over_one_connection(
    celery_live: WorkerProcess, smtp_server: SmtpServer
) -> None:
    run = uuid.uuid4().hex[:10]
    before = smtp_server.connections
    tickets = [
        inbound_message_receive(
            inbound=InboundMessage(
                channel="web",
                external_id=f"e2e-burst-{run}-{n}",
                sender=SenderIdentity(kind="email", value=f"burst.{run}.{n}@example.com", name=f"Customer {n}"),
                subject=f"Question {n}",
                text="Hello",
            )
        ).ticket
        for n in range(BURST)
    ]

    mails = [smtp_server.wait_for_ticket(ticket.reference or "", timeout=60) for ticket in tickets]
    wait_until(
        lambda: (
            Message.objects.filter(ticket__in=tickets, purpose="acknowledgement", delivery_status="sent").count()
            == BURST
        ),
        timeout=20,
        what="every acknowledgement to be marked sent",
    )

    # One worker process (the solo pool): one connection for all, opened now or
    # still open from the mail before; never one per message.
    assert len({mail.connection for mail in mails}) == 1
    assert smtp_server.connections - before <= 1
    assert [mail.rcpt_tos for mail in mails] == [[f"burst.{run}.{n}@example.com"] for n in range(BURST)]
    assert all(len(smtp_server.mails_for(ticket.reference or "")) == 1 for ticket in tickets)
    assert set(
        Message.objects.filter(ticket__in=tickets, purpose="acknowledgement").values_list(
            "delivery_attempts", flat=True
        )
    ) == {1}
