"""Acknowledgements and replies leave in the Celery worker, never in the request or the poll.

With tasks enqueued to a real broker (Redis) rather than run at once, as in
production: the contact form, an agent's reply (workspace and API), "Send
again" and the IMAP poll store the message ``queued``, put its delivery task
on the queue, and open no SMTP connection; the mail leaves only when a worker
runs the task. The settings a zero-setup install starts with do not run tasks
in the caller either, and no module outside the delivery task calls a
deliverer.
"""

from __future__ import annotations

import ast
import base64
import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import redis
from rest_framework.test import APIClient

from channels_app.email.imap import mailbox_poll
from channels_app.email.models import MailAccount
from servicedesk.celery import app
from servicedesk.tickets.inbound import InboundMessage, SenderIdentity
from servicedesk.tickets.models import Message
from servicedesk.tickets.services.intake import inbound_message_receive
from tests.channels_app.email.counting_smtp import counting_smtp
from tests.channels_app.email.dovecot import HOST, PASSWORD, dovecot, imap_ca
from tests.channels_app.web.helpers import contact_data
from tests.outage import celery_broker

__all__ = ["counting_smtp", "dovecot", "imap_ca"]

pytestmark = pytest.mark.django_db

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture
def broker(settings: Any) -> Iterator[SimpleNamespace]:
    """Tasks go to a queue of their own on the real Redis instead of running here.

    ``enqueued()`` takes what is on the queue as (task name, arguments);
    ``work()`` then runs those tasks in this process, as a worker would.
    """
    url = os.environ.get("REDIS_URL") or "redis://127.0.0.1:6379/0"
    name = f"test-in-worker-{uuid.uuid4().hex}"
    client = redis.Redis.from_url(url)
    settings.CELERY_TASK_ALWAYS_EAGER = False

    def enqueued() -> list[tuple[str, list[Any]]]:
        found = []
        while (raw := client.rpop(name)) is not None:  # kombu pushes on the left, takes from the right
            envelope = json.loads(raw)
            args, _kwargs, _embed = json.loads(base64.b64decode(envelope["body"]))
            found.append((envelope["headers"]["task"], args))
        return found

    def work(tasks: list[tuple[str, list[Any]]]) -> list[Any]:
        return [app.tasks[task].apply(args=args).get() for task, args in tasks]

    with celery_broker(url, queue=name):
        assert app.conf.task_always_eager is False
        yield SimpleNamespace(enqueued=enqueued, work=work)
    client.delete(name)


def test_the_contact_form_queues_the_acknowledgement_and_opens_no_connection(
    client, counting_smtp, broker, django_capture_on_commit_callbacks
):
    server = counting_smtp()

    with django_capture_on_commit_callbacks(execute=True):
        response = client.post("/help/contact/", contact_data())

    assert response.status_code == 302
    ack = Message.objects.get(purpose="acknowledgement")
    assert ack.delivery_status == "queued" and ack.delivery_attempts == 0
    assert server.connections == 0
    tasks = broker.enqueued()
    assert tasks == [("tickets.message_deliver", [ack.pk])]

    # Only the worker sends it.
    assert broker.work(tasks) == ["sent"]
    ack.refresh_from_db()
    assert ack.delivery_status == "sent"
    assert server.connections == 1 and [mail.rcpt_tos for mail in server.received] == [["jane@example.com"]]


def _ticket(agent: Any) -> Any:
    return inbound_message_receive(
        inbound=InboundMessage(
            channel="email",
            external_id="worker-1@example.com",
            sender=SenderIdentity("email", "alice@example.com", "Alice"),
            subject="Printer on fire",
            text="Help",
            acknowledge=False,
        )
    ).ticket


def test_agent_replies_are_queued_by_the_workspace_and_the_api_and_open_no_connection(
    client, agent, counting_smtp, broker, django_capture_on_commit_callbacks
):
    server = counting_smtp()
    ticket = _ticket(agent)
    client.force_login(agent)
    api = APIClient()
    api.force_authenticate(agent)

    with django_capture_on_commit_callbacks(execute=True):
        page = client.post(
            f"/desk/tickets/{ticket.reference}/reply/", {"text": "Unplug it.", "kind": "reply", "status": ""}
        )
        answer = api.post(f"/api/v1/tickets/{ticket.reference}/messages/", {"text": "Then wait."}, format="json")

    assert (page.status_code, answer.status_code) == (302, 201)
    replies = list(Message.objects.filter(ticket=ticket, kind="public_agent").order_by("pk"))
    assert [(r.text, r.delivery_status) for r in replies] == [("Unplug it.", "queued"), ("Then wait.", "queued")]
    assert server.connections == 0
    tasks = broker.enqueued()
    assert tasks == [("tickets.message_deliver", [r.pk]) for r in replies]

    assert broker.work(tasks) == ["sent", "sent"]
    assert server.connections == 1 and len(server.received) == 2


def test_send_again_queues_the_message_and_opens_no_connection(
    client, agent, counting_smtp, broker, django_capture_on_commit_callbacks
):
    server = counting_smtp()
    ticket = _ticket(agent)
    client.force_login(agent)
    with django_capture_on_commit_callbacks(execute=True):
        client.post(f"/desk/tickets/{ticket.reference}/reply/", {"text": "Unplug it.", "kind": "reply", "status": ""})
    reply = Message.objects.get(ticket=ticket, kind="public_agent")
    broker.enqueued()
    Message.objects.filter(pk=reply.pk).update(delivery_status="failed", delivery_error="Interrupted")

    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(f"/desk/tickets/{ticket.reference}/messages/{reply.pk}/resend/")

    assert response.status_code == 302
    reply.refresh_from_db()
    assert reply.delivery_status == "queued"
    assert server.connections == 0
    assert broker.work(broker.enqueued()) == ["sent"]
    assert server.connections == 1


def _mail(n: int) -> bytes:
    return (
        f"From: Customer {n} <customer{n}@example.com>\r\nTo: support@servicedesk.example\r\n"
        f"Subject: Problem {n}\r\nMessage-ID: <worker-poll-{n}@example.com>\r\n"
        "Date: Mon, 02 Jun 2025 10:00:00 +0000\r\nMIME-Version: 1.0\r\n"
        f"Content-Type: text/plain; charset=utf-8\r\n\r\nPlease help with problem {n}.\r\n"
    ).encode()


def test_the_imap_poll_queues_acknowledgements_and_opens_no_connection(
    dovecot, imap_ca, queue, counting_smtp, broker, monkeypatch, django_capture_on_commit_callbacks
):
    server = counting_smtp()
    monkeypatch.setenv("SD_TEST_IMAP_PASSWORD", PASSWORD)
    user = dovecot.new_user()
    dovecot.append(user, _mail(1), _mail(2), _mail(3))
    account = MailAccount.objects.create(
        name=f"support-{user}",
        host=HOST,
        port=dovecot.imaps_port,
        security=MailAccount.Security.TLS,
        username=user,
        password_env="SD_TEST_IMAP_PASSWORD",
        queue=queue,
    )

    with django_capture_on_commit_callbacks(execute=True):
        report = mailbox_poll(account=account)

    assert (report.fetched, report.stored, report.error) == (3, 3, "")
    acks = list(Message.objects.filter(purpose="acknowledgement").order_by("pk"))
    assert [ack.delivery_status for ack in acks] == ["queued"] * 3
    assert server.connections == 0
    tasks = broker.enqueued()
    assert sorted(tasks) == sorted(("tickets.message_deliver", [ack.pk]) for ack in acks)

    assert broker.work(tasks) == ["sent"] * 3
    assert server.connections == 1
    assert sorted(mail.rcpt_tos[0] for mail in server.received) == [f"customer{n}@example.com" for n in (1, 2, 3)]


@pytest.mark.parametrize("module", ["servicedesk.settings.local", "servicedesk.settings.production"])
def test_the_settings_a_deployment_starts_with_run_no_task_in_the_caller(module: str, tmp_path: Path) -> None:
    """The test settings run tasks at once; the zero-setup and production settings never do."""
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in {"CELERY_TASK_ALWAYS_EAGER", "DATABASE_URL", "REDIS_URL", "EMAIL_HOST"}
        and not key.startswith("PYTEST")
    }
    env.update(
        DJANGO_SETTINGS_MODULE=module,
        SECRET_KEY="x" * 60,
        ALLOWED_HOSTS="desk.example",
        SERVICEDESK_VAR_DIR=str(tmp_path),
    )
    code = (
        "import django; django.setup(); from django.conf import settings; from servicedesk.celery import app; "
        "print(settings.CELERY_TASK_ALWAYS_EAGER, app.conf.task_always_eager)"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["False", "False"]


def test_the_zero_setup_start_runs_a_worker() -> None:
    """``scripts/run`` starts a Celery worker beside the web server: that is where mail leaves."""
    script = (ROOT / "scripts" / "run").read_text()
    assert '"$SD_VENV/bin/celery" -A servicedesk worker' in script
    assert "CELERY_TASK_ALWAYS_EAGER" not in script


# --- No caller but the delivery task sends ---------------------------------------------

# Who may name each function that sends (or runs the sending) in the calling process.
SENDERS: dict[str, set[str]] = {
    "message_deliver": {"servicedesk/tickets/services/delivery.py", "servicedesk/tickets/tasks.py"},
    "messages_deliver": {"servicedesk/tickets/services/delivery.py", "servicedesk/tickets/tasks.py"},
    "deliverer_for": {"servicedesk/tickets/outbound.py", "servicedesk/tickets/services/delivery.py"},
    # Registered with the outbound registry at start-up, called only through it.
    # The chat's deliverer (a chat ticket's reply from the ticket page) sends through it;
    # the phone channel registers it for phone tickets (a callback's acknowledgement), the
    # community for tickets escalated from a topic (their acknowledgement and replies).
    "deliver_by_email": {
        "channels_app/email/outbound.py",
        "channels_app/email/apps.py",
        "channels_app/chat/delivery.py",
        "channels_app/phone/apps.py",
        "channels_app/forum/apps.py",
    },
    "deliver_chat_reply": {"channels_app/chat/delivery.py", "channels_app/chat/apps.py"},
    "connection_send": {"channels_app/email/smtp.py", "channels_app/email/outbound.py"},
}
# The delivery tasks may be named anywhere, but only to be enqueued.
TASKS = {"message_deliver_task", "messages_deliver_task"}


def _named(node: ast.AST) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return node.attr
    if isinstance(node, ast.alias):
        return node.name.rsplit(".", 1)[-1]
    return None


def delivery_violations(root: Path) -> list[str]:
    """Places in the product's code that send in the caller: ``path:line name``."""
    found = []
    for package in ("servicedesk", "channels_app", "reports"):
        for path in sorted((root / package).rglob("*.py")):
            relative = path.relative_to(root).as_posix()
            tree = ast.parse(path.read_text(), filename=relative)
            parents = {child: parent for parent in ast.walk(tree) for child in ast.iter_child_nodes(parent)}
            for node in ast.walk(tree):
                name = _named(node)
                if name in SENDERS and relative not in SENDERS[name]:
                    found.append(f"{relative}:{getattr(node, 'lineno', 0)} {name}")
                if name in TASKS and relative != "servicedesk/tickets/tasks.py":
                    parent = parents.get(node)
                    enqueued = (isinstance(parent, ast.Attribute) and parent.attr == "delay") or (
                        isinstance(parent, ast.Call) and _named(parent.func) == "task_enqueue"
                    )
                    if not enqueued and not isinstance(node, ast.alias):
                        found.append(f"{relative}:{getattr(node, 'lineno', 0)} {name}")
    return found


def test_only_the_delivery_task_sends() -> None:
    assert delivery_violations(ROOT) == []


def test_the_check_finds_a_view_that_sends(tmp_path: Path) -> None:
    view = tmp_path / "channels_app" / "web" / "views.py"
    view.parent.mkdir(parents=True)
    view.write_text(
        "from servicedesk.tickets.services.delivery import message_deliver\n"
        "from servicedesk.tickets import tasks\n"
        "def contact(request, pk):\n"
        "    message_deliver(message_id=pk)\n"
        "    tasks.message_deliver_task.apply(args=(pk,))\n"
        "    tasks.message_deliver_task.delay(pk)\n"
    )
    (tmp_path / "servicedesk").mkdir()
    (tmp_path / "reports").mkdir()

    assert delivery_violations(tmp_path) == [
        "channels_app/web/views.py:1 message_deliver",
        "channels_app/web/views.py:4 message_deliver",
        "channels_app/web/views.py:5 message_deliver_task",
    ]
