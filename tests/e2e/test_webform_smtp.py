"""A contact reaches the desk and the customer's acknowledgement leaves by SMTP,
through PostgreSQL, Redis, a real Celery worker and a real SMTP server.

The acknowledgement is sent once, also when its delivery task runs twice.
"""

from __future__ import annotations

import uuid
from html.parser import HTMLParser

import pytest

from servicedesk.tickets.inbound import InboundMessage, SenderIdentity
from servicedesk.tickets.models import Message, Ticket
from servicedesk.tickets.services.intake import inbound_message_receive
from servicedesk.tickets.tasks import message_deliver_task
from tests.e2e.conftest import SmtpServer, WorkerProcess, wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


class _InputValues(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.values: dict[str, str] = {}

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "input":
            fields = dict(attrs)
            if fields.get("name"):
                self.values[fields["name"] or ""] = fields.get("value") or ""


def _input_value(html: str, name: str) -> str:
    parser = _InputValues()
    parser.feed(html)
    assert parser.values.get(name), f"The form has no {name!r} input with a value."
    return parser.values[name]


def _address() -> str:
    return f"zoe.{uuid.uuid4().hex[:10]}@example.com"


def _assert_acknowledged_once(ticket: Ticket, address: str, smtp: SmtpServer, worker: WorkerProcess) -> None:
    reference = ticket.reference
    assert reference
    mail = smtp.wait_for_ticket(reference, timeout=60)
    ack = wait_until(
        lambda: Message.objects.filter(ticket=ticket, purpose="acknowledgement", delivery_status="sent").first(),
        timeout=20,
        what="the acknowledgement to be marked sent",
    )

    assert mail.rcpt_tos == [address]
    assert [a.addr_spec for a in mail.message["To"].addresses] == [address]
    subject = str(mail.message["Subject"])
    assert reference in subject
    assert "\r" not in subject and "\n" not in subject
    assert mail.message["Bcc"] is None and mail.message["Cc"] is None
    assert mail.message["Auto-Submitted"] == "auto-replied"
    assert mail.message["Message-ID"] == ack.rfc_message_id
    assert ack.delivery_attempts == 1
    assert ack.sent_at is not None
    text_part = mail.message.get_body(preferencelist=("plain",))
    assert text_part is not None
    body = text_part.get_content()
    assert reference in body
    assert "/help/tickets/" in body

    # The delivery task may run again (a retry, a re-dispatch): still one mail.
    again = message_deliver_task.delay(ack.pk)
    line = worker.wait_for_log(f"[{again.id}] succeeded", timeout=30)
    assert "skipped" in line
    assert len(smtp.mails_for(reference)) == 1
    ack.refresh_from_db()
    assert (ack.delivery_status, ack.delivery_attempts) == ("sent", 1)


def test_web_form_contact_is_acknowledged_once_by_smtp(client, celery_live, smtp_server):
    address = _address()
    form = client.get("/help/contact/")
    assert form.status_code == 200
    submission_id = _input_value(form.content.decode(), "submission_id")

    response = client.post(
        "/help/contact/",
        {
            "name": "Zoë Müller",
            "email": address,
            "subject": "Rechnung für März fehlt",
            "message": "Hello, my March invoice never arrived. Could you send it again?",
            "topic": "",
            "submission_id": submission_id,
            "website": "",
        },
    )
    assert response.status_code == 302, response.content[:2000]
    assert response["Location"].endswith("/help/contact/received/")

    ticket = Ticket.objects.filter(customer__identities__value=address).first()
    assert ticket is not None, f"No ticket for {address}; the form answered:\n{response.content[:2000]!r}"
    assert ticket.channel == "web"
    _assert_acknowledged_once(ticket, address, smtp_server, celery_live)


def test_intake_acknowledges_once_by_smtp_without_header_injection(celery_live, smtp_server):
    address = _address()
    result = inbound_message_receive(
        inbound=InboundMessage(
            channel="web",
            external_id=f"e2e-{uuid.uuid4().hex}",
            sender=SenderIdentity(kind="email", value=address, name="Zoë Müller\r\nBcc: thief@evil.example"),
            subject="Invoice missing\r\nBcc: thief@evil.example",
            text="Hello, my March invoice never arrived.",
        )
    )
    assert result.created_ticket

    _assert_acknowledged_once(result.ticket, address, smtp_server, celery_live)
    assert all("thief@evil.example" not in mail.rcpt_tos for mail in smtp_server.mails)


def test_healthz_reports_database_and_redis_broker(client, celery_live):
    from servicedesk.celery import app

    assert app.conf.broker_url.startswith("redis")
    response = client.get("/healthz")
    assert response.status_code == 200
    health = response.json()
    assert (health["ok"], health["database"], health["broker"]) == (True, True, True)
