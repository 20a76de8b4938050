"""Agent replies through a real SMTP server (aiosmtpd): threading headers, reply
address, temporary failures retried, permanent ones failed with the address
marked bouncing."""

from __future__ import annotations

import socket
import threading
from email import message_from_bytes, message_from_string, policy
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller
from django.core import mail

from channels_app.email.outbound import NEEDS_SMTPUTF8, UNUSABLE_ADDRESS, message_id_for
from channels_app.email.services import email_ingest
from servicedesk.tickets.inbound import InboundMessage, SenderIdentity
from servicedesk.tickets.models import Identity, Message, TicketEvent
from servicedesk.tickets.services.delivery import DeliveryOutcome, message_deliver
from servicedesk.tickets.services.intake import inbound_message_receive
from servicedesk.tickets.services.replies import ticket_reply_create
from servicedesk.tickets.threading import reply_token_for
from tests.factories import CustomerFactory, ticket_make

pytestmark = pytest.mark.django_db

# Under every reply (docs/help-centre.md).
FOOTER = "See all your requests: http://127.0.0.1:8000/help/sign-in/"


class ScriptedSmtp:
    """Answers DATA with the next scripted reply (then 250), keeping what it accepted."""

    def __init__(self, replies: list[str]) -> None:
        self.replies = list(replies)
        self.accepted: list[tuple[list[str], bytes]] = []
        self.mail_options: list[list[str]] = []
        self.rcpt_seen: list[str] = []
        self.lock = threading.Lock()

    async def handle_MAIL(self, server, session, envelope, address, mail_options):  # noqa: N802 - aiosmtpd hook
        with self.lock:
            self.mail_options.append(list(mail_options))
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 OK"

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):  # noqa: N802 - aiosmtpd hook
        with self.lock:
            self.rcpt_seen.append(address)
        if address.startswith("nobody@"):
            return "550 5.1.1 <nobody@example.com>: Recipient address rejected"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 - aiosmtpd hook
        with self.lock:
            if self.replies:
                return self.replies.pop(0)
            self.accepted.append((list(envelope.rcpt_tos), envelope.original_content or envelope.content))
        return "250 Message accepted for delivery"


@pytest.fixture
def smtp(settings):
    def start(replies: list[str], *, smtputf8: bool = False) -> ScriptedSmtp:
        handler = ScriptedSmtp(replies)
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        controller = Controller(handler, hostname="127.0.0.1", port=port, enable_SMTPUTF8=smtputf8)
        controller.start()
        started.append(controller)
        settings.EMAIL_BACKEND = "channels_app.email.smtp.EmailBackend"
        settings.EMAIL_HOST, settings.EMAIL_PORT, settings.EMAIL_TIMEOUT = "127.0.0.1", port, 5
        return handler

    started: list[Controller] = []
    yield start
    for controller in started:
        controller.stop()


def customer_ticket(email: str = "alice@example.com", name: str = "Alice"):
    result = inbound_message_receive(
        inbound=InboundMessage(
            channel="email",
            external_id="cust-1@example.com",
            rfc_message_id="<cust-1@example.com>",
            sender=SenderIdentity("email", email, name),
            subject="Printer on fire",
            text="Help",
            acknowledge=False,
        )
    )
    return result.ticket


def queued_reply(ticket, agent):
    reply = ticket_reply_create(ticket=ticket, author=agent, text="Unplug it.", deliver=False)
    Message.objects.filter(pk=reply.pk).update(delivery_status="queued")
    return reply


def test_reply_arrives_threaded_with_the_reply_address(smtp, queue, agent):
    server = smtp([])
    ticket = customer_ticket()
    reply = queued_reply(ticket, agent)
    assert message_deliver(message_id=reply.pk) is DeliveryOutcome.SENT
    [(rcpts, raw)] = server.accepted
    msg = message_from_bytes(raw, policy=policy.default)
    assert rcpts == ["alice@example.com"]
    assert msg["Subject"] == f"Re: [{ticket.reference}] Printer on fire"
    assert msg["Message-ID"] == message_id_for(reply)
    assert msg["In-Reply-To"] == "<cust-1@example.com>"
    assert msg["References"] == "<cust-1@example.com>"
    assert msg["Reply-To"] == f"support+{reply_token_for(ticket)}@servicedesk.example"
    assert msg.get_content().strip().splitlines() == ["Unplug it.", "", FOOTER]
    reply.refresh_from_db()
    assert (reply.delivery_status, reply.rfc_message_id, reply.recipients) == (
        "sent",
        message_id_for(reply),
        ["alice@example.com"],
    )


def test_temporary_failure_is_retried_and_then_sent_once(smtp, queue, agent):
    server = smtp(["451 4.3.0 Try again later"])
    reply = queued_reply(customer_ticket(), agent)
    assert message_deliver(message_id=reply.pk) is DeliveryOutcome.RETRY
    reply.refresh_from_db()
    assert (reply.delivery_status, reply.delivery_error) == ("queued", "451 4.3.0 Try again later")
    assert message_deliver(message_id=reply.pk) is DeliveryOutcome.SENT
    assert message_deliver(message_id=reply.pk) is DeliveryOutcome.SKIPPED
    assert len(server.accepted) == 1


def test_unreachable_server_is_a_temporary_failure(settings, queue, agent):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT, settings.EMAIL_TIMEOUT = "127.0.0.1", closed_port, 2
    reply = queued_reply(customer_ticket(), agent)
    assert message_deliver(message_id=reply.pk) is DeliveryOutcome.RETRY
    reply.refresh_from_db()
    assert reply.delivery_status == "queued" and reply.delivery_error.startswith("Mail server unreachable")


def test_permanent_failure_marks_the_address_bouncing(smtp, queue, agent):
    smtp(["554 5.7.1 Message rejected"])
    reply = queued_reply(customer_ticket(), agent)
    assert message_deliver(message_id=reply.pk) is DeliveryOutcome.FAILED
    reply.refresh_from_db()
    assert (reply.delivery_status, reply.delivery_error) == ("failed", "554 5.7.1 Message rejected")
    identity = Identity.objects.get(value="alice@example.com")
    assert (identity.is_bouncing, identity.bouncing_change) == (True, "refused")


def test_refused_recipient_fails_and_bounces(smtp, queue, agent):
    smtp([])
    reply = queued_reply(customer_ticket("nobody@example.com"), agent)
    assert message_deliver(message_id=reply.pk) is DeliveryOutcome.FAILED
    reply.refresh_from_db()
    assert reply.delivery_error == "nobody@example.com: 550 5.1.1 <nobody@example.com>: Recipient address rejected"
    assert Identity.objects.get(value="nobody@example.com").is_bouncing is True
    # A bouncing address is not written to again.
    second = queued_reply(reply.ticket, agent)
    assert message_deliver(message_id=second.pk) is DeliveryOutcome.FAILED
    second.refresh_from_db()
    assert second.delivery_error == "The customer has no email address to write to."
    assert mail.outbox == []


def test_reply_can_quote_the_earlier_conversation(smtp, queue, agent, client, django_capture_on_commit_callbacks):
    server = smtp([])
    ticket = customer_ticket()
    first = queued_reply(ticket, agent)
    assert message_deliver(message_id=first.pk) is DeliveryOutcome.SENT
    client.force_login(agent)
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            f"/desk/tickets/{ticket.reference}/reply/",
            {"text": "Did that help?", "kind": "reply", "status": "", "quote_history": "on"},
        )
    assert response.status_code == 302
    second = Message.objects.filter(ticket=ticket, kind="public_agent").latest("created_at")
    assert second.quote_history is True and second.delivery_status == "sent"
    body = message_from_bytes(server.accepted[-1][1], policy=policy.default).get_content()
    lines = body.strip().splitlines()
    assert lines[0] == "Did that help?"
    assert lines[2] == FOOTER
    assert lines[4].endswith(", Ann wrote:") and lines[5] == "> Unplug it."
    assert lines[7].endswith(", Alice wrote:") and lines[8] == "> Help"
    # Without the option only the reply itself goes out, with the line under every reply.
    plain = message_from_bytes(server.accepted[0][1], policy=policy.default).get_content()
    assert plain.strip().splitlines() == ["Unplug it.", "", FOOTER]


# --- Internationalised addresses ----------------------------------------------------


def ticket_for_address(address: str, name: str = "Ann"):
    """A ticket of a customer with ``address``: stored directly, as an import of old data or
    the admin can, so that also an address intake refuses (no IDNA form) can be tried."""
    return ticket_make(customer=CustomerFactory(name=name, email=address), subject="Printer on fire", channel="email")


def test_idn_domain_goes_out_in_punycode(smtp, queue, agent):
    """Any server takes the ASCII form of a domain: no SMTPUTF8 needed or asked for."""
    server = smtp([])
    ticket = customer_ticket("jurgen@bücher.example", name="Jürgen Groß")
    reply = queued_reply(ticket, agent)

    assert message_deliver(message_id=reply.pk) is DeliveryOutcome.SENT

    [(rcpts, raw)] = server.accepted
    assert rcpts == ["jurgen@xn--bcher-kva.example"]
    [options] = server.mail_options
    assert "SMTPUTF8" not in options
    msg = message_from_bytes(raw, policy=policy.default)
    [to] = msg["To"].addresses
    assert (to.display_name, to.addr_spec) == ("Jürgen Groß", "jurgen@xn--bcher-kva.example")
    assert raw.isascii()
    reply.refresh_from_db()
    assert (reply.delivery_status, reply.delivery_error, reply.recipients) == ("sent", "", ["jurgen@bücher.example"])


def test_non_ascii_mailbox_name_goes_out_with_smtputf8_when_offered(smtp, queue, agent):
    server = smtp([], smtputf8=True)
    ticket = ticket_for_address("josé@bücher.example", name="José Núñez")
    reply = queued_reply(ticket, agent)

    assert message_deliver(message_id=reply.pk) is DeliveryOutcome.SENT

    [(rcpts, raw)] = server.accepted
    assert rcpts == ["josé@xn--bcher-kva.example"]
    assert "SMTPUTF8" in server.mail_options[0]
    msg = message_from_string(raw.decode("utf-8"), policy=policy.SMTPUTF8)  # RFC 6532: headers in UTF-8
    [to] = msg["To"].addresses
    assert (to.display_name, to.addr_spec) == ("José Núñez", "josé@xn--bcher-kva.example")
    assert "josé@xn--bcher-kva.example".encode() in raw  # UTF-8 in the header, not an encoded word
    assert msg["Subject"] == f"Re: [{ticket.reference}] Printer on fire"
    assert msg.get_content().strip().splitlines() == ["Unplug it.", "", FOOTER]
    reply.refresh_from_db()
    assert (reply.delivery_status, reply.recipients) == ("sent", ["josé@bücher.example"])


def test_non_ascii_mailbox_name_fails_clearly_when_the_server_lacks_smtputf8(smtp, queue, agent):
    server = smtp([])
    ticket = ticket_for_address("josé@example.com")
    reply = queued_reply(ticket, agent)

    assert message_deliver(message_id=reply.pk) is DeliveryOutcome.FAILED

    # Nothing went out, not even a recipient command: a mangled address is never tried.
    assert (server.accepted, server.rcpt_seen, server.mail_options) == ([], [], [])
    reply.refresh_from_db()
    assert reply.delivery_status == "failed"
    assert reply.delivery_error == NEEDS_SMTPUTF8
    assert "does not offer SMTPUTF8" in reply.delivery_error
    # The address is not wrong, so it is not marked bouncing.
    assert Identity.objects.get(value="josé@example.com").is_bouncing is False
    event = TicketEvent.objects.get(ticket=ticket, kind="delivery", message=reply)
    assert event.after == {"status": "failed", "error": NEEDS_SMTPUTF8[:500]}


def test_a_domain_without_an_idna_form_fails_with_the_reason(smtp, queue, agent):
    server = smtp([], smtputf8=True)
    ticket = ticket_for_address("ann@" + "ü" * 70 + ".example")  # a label longer than 63 letters
    reply = queued_reply(ticket, agent)

    assert message_deliver(message_id=reply.pk) is DeliveryOutcome.FAILED

    assert server.rcpt_seen == []
    reply.refresh_from_db()
    assert (reply.delivery_status, reply.delivery_error) == ("failed", UNUSABLE_ADDRESS)


def test_reply_to_mail_with_utf8_headers_goes_back_to_the_sender(smtp, queue, agent):
    """A customer writes from josé@bücher.example (RFC 6532 headers); the agent's reply reaches
    them through SMTPUTF8, the domain in its ASCII form, threaded on their Message-ID."""
    server = smtp([], smtputf8=True)
    raw = (Path(__file__).parent / "fixtures" / "utf8_headers_eai.eml").read_bytes()
    ingested = email_ingest(raw=raw, source="pipe")
    ticket = ingested.inbound_email.ticket
    reply = queued_reply(ticket, agent)

    assert message_deliver(message_id=reply.pk) is DeliveryOutcome.SENT

    [(rcpts, sent)] = server.accepted
    assert rcpts == ["josé@xn--bcher-kva.example"]
    assert "SMTPUTF8" in server.mail_options[0]
    msg = message_from_string(sent.decode("utf-8"), policy=policy.SMTPUTF8)
    [to] = msg["To"].addresses
    assert (to.display_name, to.addr_spec) == ("José Núñez", "josé@xn--bcher-kva.example")
    assert msg["In-Reply-To"] == "<pedido-1@bücher.example>"
    assert msg.get_content().strip().splitlines() == ["Unplug it.", "", FOOTER]
    reply.refresh_from_db()
    assert (reply.delivery_status, reply.recipients) == ("sent", ["josé@bücher.example"])
