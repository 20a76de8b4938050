"""Fixtures shared by the tickets app's tests of drafts and undo send (docs/drafts.md)."""

import pytest

from servicedesk.tickets.inbound import InboundMessage, SenderIdentity
from servicedesk.tickets.services.intake import inbound_message_receive


@pytest.fixture
def agent_client(client, agent):
    client.force_login(agent)
    return client


@pytest.fixture
def hold(settings):
    """Undo send on, with a window of 10 seconds."""
    settings.SERVICEDESK = {**settings.SERVICEDESK, "UNDO_SEND_SECONDS": 10}
    return 10


@pytest.fixture
def email_ticket(db, queue, customer):
    """A ticket opened by Alice's mail, in the support queue."""
    return inbound_message_receive(
        inbound=InboundMessage(
            channel="email",
            external_id="<u1@example.com>",
            sender=SenderIdentity(kind="email", value="alice@example.com", name="Alice Byrne"),
            subject="Printer on fire",
            text="Smoke is coming out of the printer.",
            queue="support",
        )
    ).ticket
