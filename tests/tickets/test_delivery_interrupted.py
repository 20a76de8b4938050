"""A delivery task killed between its claim and its record.

The task runs in a process of its own and talks to a real SMTP server
(aiosmtpd) that takes the whole mail and then holds its answer. When the
server has the mail, the process is killed with SIGKILL: the mail may or may
not count as delivered, exactly the case that cannot be settled afterwards.
The message must not stay ``sending``: once the claim's lease is over the
expiry marks it failed as interrupted, the agent sees why on the ticket page
(English and Chinese) and in the API, and sends it again.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import threading
from datetime import timedelta
from email import message_from_bytes, policy
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from aiosmtpd.controller import Controller
from django.db import connection
from django.utils.html import escape

from channels_app.email.outbound import message_id_for
from servicedesk.tickets.inbound import InboundMessage, SenderIdentity
from servicedesk.tickets.models import Message, TicketEvent
from servicedesk.tickets.services.delivery import INTERRUPTED, message_delivery_expire_stale
from servicedesk.tickets.services.intake import inbound_message_receive
from servicedesk.tickets.services.replies import ticket_reply_create

pytestmark = pytest.mark.django_db(transaction=True)

ROOT = Path(__file__).resolve().parents[2]

# The real delivery task, in a process of its own, against the server on argv[2].
TASK_PROCESS = """
import sys
import django

django.setup()
from django.conf import settings

settings.EMAIL_BACKEND = "channels_app.email.smtp.EmailBackend"
settings.EMAIL_HOST, settings.EMAIL_PORT, settings.EMAIL_TIMEOUT = "127.0.0.1", int(sys.argv[2]), 120
from servicedesk.tickets.tasks import message_deliver_task

message_deliver_task.apply(args=(int(sys.argv[1]),))
"""


class HoldingSmtp:
    """Takes the first mail whole and never answers it; accepts the ones after."""

    def __init__(self) -> None:
        self.first_mail_in = threading.Event()
        self.accepted: list[tuple[list[str], bytes]] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802 - aiosmtpd hook
        if not self.first_mail_in.is_set():
            self.first_mail_in.set()
            await asyncio.sleep(300)  # the sender is killed while it waits for this answer
            return "451 4.3.0 too late"
        self.accepted.append((list(envelope.rcpt_tos), envelope.original_content or envelope.content))
        return "250 Message accepted for delivery"


def _database_url() -> str:
    """This test's database (test_<name>), for the task's process."""
    params = connection.settings_dict
    user = quote(params.get("USER") or "", safe="")
    host = params.get("HOST") or "127.0.0.1"
    port = f":{params['PORT']}" if params.get("PORT") else ""
    return f"postgres://{user}@{host}{port}/{quote(params['NAME'], safe='')}"


@pytest.fixture
def holding_smtp(settings: Any) -> Any:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    handler = HoldingSmtp()
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    settings.EMAIL_BACKEND = "channels_app.email.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT, settings.EMAIL_TIMEOUT = "127.0.0.1", port, 5
    yield handler, port
    controller.stop()


def test_a_task_killed_after_its_claim_ends_failed_and_can_be_sent_again(holding_smtp, queue, agent, client):
    handler, port = holding_smtp
    ticket = inbound_message_receive(
        inbound=InboundMessage(
            channel="email",
            external_id="killed-1@example.com",
            sender=SenderIdentity("email", "alice@example.com", "Alice"),
            subject="Printer on fire",
            text="Help",
            acknowledge=False,
        )
    ).ticket
    reply = ticket_reply_create(ticket=ticket, author=agent, text="Unplug it.", deliver=False)
    Message.objects.filter(pk=reply.pk).update(delivery_status="queued")

    worker = subprocess.Popen(
        [sys.executable, "-c", TASK_PROCESS, str(reply.pk), str(port)],
        cwd=ROOT,
        env={**os.environ, "DJANGO_SETTINGS_MODULE": "servicedesk.settings.test", "DATABASE_URL": _database_url()},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        if not handler.first_mail_in.wait(timeout=90):
            worker.kill()
            pytest.fail(f"The task never reached the server:\n{worker.communicate()[0].decode(errors='replace')}")
        reply.refresh_from_db()
        assert (reply.delivery_status, reply.delivery_attempts) == ("sending", 1)
        claimed_at = reply.delivery_claimed_at
        assert claimed_at is not None
        os.kill(worker.pid, signal.SIGKILL)
        assert worker.wait(timeout=30) == -signal.SIGKILL
    finally:
        if worker.poll() is None:
            worker.kill()
        if worker.stdout:
            worker.stdout.close()

    # Dead, it recorded nothing; within the lease the claim is left alone.
    reply.refresh_from_db()
    assert (reply.delivery_status, reply.delivery_error) == ("sending", "")
    assert message_delivery_expire_stale() == 0
    lease = timedelta(seconds=900)
    assert message_delivery_expire_stale(now=claimed_at + lease + timedelta(seconds=1)) == 1

    reply.refresh_from_db()
    assert (reply.delivery_status, reply.delivery_error, reply.sent_at) == ("failed", INTERRUPTED, None)
    assert TicketEvent.objects.get(kind="delivery", message=reply).after == {
        "status": "failed",
        "error": INTERRUPTED,
    }

    # The agent sees why, in either language, with the way out next to it.
    client.force_login(agent)
    page = client.get(f"/desk/tickets/{ticket.reference}/", HTTP_ACCEPT_LANGUAGE="en").content.decode()
    assert f'<span class="delivery delivery-failed">Failed: {escape(INTERRUPTED)}</span>' in page
    resend_url = f"/desk/tickets/{ticket.reference}/messages/{reply.pk}/resend/"
    assert f'action="{resend_url}"' in page and ">Send again</button>" in page
    page_zh = client.get(f"/desk/tickets/{ticket.reference}/", HTTP_ACCEPT_LANGUAGE="zh-CN").content.decode()
    assert "失败：发送被中断（后台进程在发送途中停止）：邮件可能已送达客户，也可能没有。" in page_zh  # noqa: RUF001
    assert ">重新发送</button>" in page_zh
    # Next to the message and in the ticket's history, both translated.
    assert page_zh.count("发送被中断（后台进程在发送途中停止）") == 2  # noqa: RUF001
    assert page.count(escape(INTERRUPTED)) == 2
    api = client.get(f"/api/v1/tickets/{ticket.reference}/messages/").json()
    rows = api["results"] if isinstance(api, dict) else api
    [row] = [row for row in rows if row["id"] == reply.pk]
    assert (row["delivery_status"], row["delivery_error"]) == ("failed", INTERRUPTED)

    response = client.post(resend_url)

    assert response.status_code == 302
    reply.refresh_from_db()
    assert (reply.delivery_status, reply.delivery_error, reply.delivery_attempts) == ("sent", "", 1)
    [(rcpts, raw)] = handler.accepted
    assert rcpts == ["alice@example.com"]
    # The same Message-ID: a customer who did get the first copy sees the same mail.
    assert message_from_bytes(raw, policy=policy.default)["Message-ID"] == message_id_for(reply)
    # Sending again is for failed messages only: a second click changes nothing.
    client.post(resend_url)
    assert len(handler.accepted) == 1
    reply.refresh_from_db()
    assert reply.delivery_status == "sent"
