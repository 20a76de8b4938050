"""A customer writes again on an assigned ticket: the assignee gets one notice and one email, however often it runs."""

from __future__ import annotations

import pytest
from django.core import mail

from servicedesk.notifications.models import Notification
from servicedesk.notifications.services import customer_message_notify
from servicedesk.notifications.tasks import customer_message_notify_task
from servicedesk.tickets import hooks
from servicedesk.tickets.events import Actor
from servicedesk.tickets.inbound import InboundMessage, SenderIdentity
from servicedesk.tickets.models import Message
from servicedesk.tickets.services.intake import inbound_message_receive
from servicedesk.tickets.services.tickets import ticket_assign
from tests.factories import ticket_make

pytestmark = pytest.mark.django_db


def write_again(ticket, external_id: str, text: str = "It is still broken.") -> Message:
    result = inbound_message_receive(
        inbound=InboundMessage(
            channel="web",
            external_id=external_id,
            sender=SenderIdentity(kind="email", value="alice@example.com", name="Alice Byrne"),
            text=text,
            ticket_reference=ticket.reference,
            reference_trusted=True,
        )
    )
    assert result.outcome == "appended"
    return result.message


@pytest.fixture
def assigned(agent, customer, queue):
    ticket = ticket_make(customer=customer, queue=queue, subject="Printer")
    return ticket_assign(ticket=ticket, assignee=agent, actor=Actor.system())


def test_the_assignee_is_told_once_in_the_workspace_and_by_email(assigned, agent, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        message = write_again(assigned, "w-1")

    notice = Notification.objects.get()
    assert (notice.user, notice.kind, notice.key, notice.ticket_id) == (
        agent,
        "customer_message",
        f"message:{message.pk}",
        assigned.pk,
    )
    assert notice.title == f"[{assigned.reference}] New message from Alice Byrne"
    assert notice.url == f"/desk/tickets/{assigned.reference}/"
    assert len(mail.outbox) == 1
    assert mail.outbox[0].to == ["ann@corp.example"]
    assert mail.outbox[0].subject == f"[{assigned.reference}] New message from Alice Byrne"
    assert mail.outbox[0].body == (f"It is still broken.\n\nhttp://127.0.0.1:8000/desk/tickets/{assigned.reference}/\n")


def test_the_task_run_twice_notifies_and_mails_once(assigned, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        message = write_again(assigned, "w-2")
    with django_capture_on_commit_callbacks(execute=True):
        again = customer_message_notify_task.apply(args=[message.pk]).get()
    assert again is False
    assert Notification.objects.count() == 1
    assert len(mail.outbox) == 1


def test_in_the_assignees_language_with_the_text_cut(assigned, agent, django_capture_on_commit_callbacks):
    agent.language = "zh-hans"
    agent.save(update_fields=["language"])
    with django_capture_on_commit_callbacks(execute=True):
        write_again(assigned, "w-3", text="x" * 2500)
    notice = Notification.objects.get()
    assert notice.title == f"[{assigned.reference}] 来自 Alice Byrne 的新消息"
    assert notice.body == "x" * 2000


def test_nothing_is_owed_without_an_assignee_or_a_message(customer, queue, django_capture_on_commit_callbacks):
    ticket = ticket_make(customer=customer, queue=queue)
    with django_capture_on_commit_callbacks(execute=True):
        message = write_again(ticket, "w-4")
    assert customer_message_notify(message_id=message.pk) is None
    assert customer_message_notify(message_id=999_999) is None
    assert Notification.objects.count() == 0
    assert mail.outbox == []


def test_notifications_follows_the_ticket_hooks():
    # Registered once when Django starts, however often ready() would run.
    from servicedesk.notifications.services import customer_message_notify_enqueue

    assert hooks._customer_message_followers.count(customer_message_notify_enqueue) == 1


def test_a_message_on_an_unassigned_ticket_queues_no_task(
    customer, queue, django_capture_on_commit_callbacks, monkeypatch
):
    from servicedesk.notifications import services

    queued: list[int] = []
    monkeypatch.setattr(services, "task_enqueue", lambda task, *args: queued.append(args[0]) or True)
    ticket = ticket_make(customer=customer, queue=queue)
    with django_capture_on_commit_callbacks(execute=True):
        write_again(ticket, "w-5")
    assert queued == []
