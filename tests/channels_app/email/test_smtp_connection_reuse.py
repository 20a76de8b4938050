"""Outbound mail over one reused SMTP connection, against a real server (aiosmtpd).

Many messages share one connection; a connection the server closed is found
dead before the next message starts and replaced; a connection lost once a
message's data was sent is never used to send it again; idle connections are
closed; SMTPUTF8 is asked of each connection; the batch path claims every
message on its own. docs/architecture.md, "Outbound delivery".
"""

from __future__ import annotations

import os
import threading
from datetime import timedelta
from email import message_from_bytes, policy

import pytest
from celery import signals
from django.core.mail import EmailMessage
from django.utils import timezone

from channels_app.email.outbound import NEEDS_SMTPUTF8, message_id_for
from channels_app.email.smtp import connection_send, connections_close
from servicedesk.tickets import tasks
from servicedesk.tickets.inbound import InboundMessage, SenderIdentity
from servicedesk.tickets.models import Message, TicketEvent
from servicedesk.tickets.services.delivery import DeliveryOutcome, message_deliver, messages_deliver
from servicedesk.tickets.services.intake import inbound_message_receive
from servicedesk.tickets.services.replies import ticket_reply_create
from tests.channels_app.email.counting_smtp import DROP, counting_smtp
from tests.e2e.conftest import wait_until
from tests.factories import CustomerFactory, ticket_make

__all__ = ["counting_smtp"]

pytestmark = pytest.mark.django_db


def queued_acknowledgements(count: int, *, start: int = 0) -> list[Message]:
    """``count`` new tickets by mail, each with its acknowledgement queued (not yet sent)."""
    acks = []
    for n in range(start, start + count):
        result = inbound_message_receive(
            inbound=InboundMessage(
                channel="email",
                external_id=f"reuse-{n}@example.com",
                rfc_message_id=f"<reuse-{n}@example.com>",
                sender=SenderIdentity("email", f"customer{n}@example.com", f"Customer {n}"),
                subject=f"Question {n}",
                text="Hello",
            )
        )
        acks.append(Message.objects.get(ticket=result.ticket, purpose="acknowledgement"))
    assert {ack.delivery_status for ack in acks} == {"queued"}
    return acks


def queued_reply_to(address: str, agent, *, ticket=None) -> Message:  # type: ignore[no-untyped-def]
    """An agent's reply, queued, on ``ticket`` or a new ticket of a customer with ``address``."""
    if ticket is None:
        ticket = ticket_make(customer=CustomerFactory(name="Ann", email=address), subject="Printer", channel="email")
    reply = ticket_reply_create(ticket=ticket, author=agent, text="Unplug it.", deliver=False)
    Message.objects.filter(pk=reply.pk).update(delivery_status="queued")
    return reply


def statuses(messages: list[Message]) -> list[str]:
    return list(
        Message.objects.filter(pk__in=[m.pk for m in messages]).order_by("pk").values_list("delivery_status", flat=True)
    )


def test_twenty_acknowledgements_leave_over_one_connection(counting_smtp, queue):
    server = counting_smtp()
    acks = queued_acknowledgements(20)

    outcomes = [message_deliver(message_id=ack.pk) for ack in acks]

    assert outcomes == [DeliveryOutcome.SENT] * 20
    assert server.connections == 1
    assert [mail.connection for mail in server.received] == [0] * 20
    assert [mail.rcpt_tos for mail in server.received] == [[f"customer{n}@example.com"] for n in range(20)]
    ids = [message_from_bytes(mail.raw, policy=policy.default)["Message-ID"] for mail in server.received]
    assert ids == [message_id_for(ack) for ack in acks]
    assert statuses(acks) == ["sent"] * 20
    # Checked before each reuse, at one NOOP per message after the first; still open now.
    assert (server.noops, server.quits, server.open_connections()) == (19, 0, 1)


def test_a_connection_the_server_closed_is_replaced_before_the_next_message(counting_smtp, queue):
    server = counting_smtp()
    first, second, third = queued_acknowledgements(3)
    assert message_deliver(message_id=first.pk) is DeliveryOutcome.SENT

    server.close_connections()  # its idle timeout, a restart: between two messages

    assert message_deliver(message_id=second.pk) is DeliveryOutcome.SENT
    assert message_deliver(message_id=third.pk) is DeliveryOutcome.SENT
    assert server.connections == 2
    assert [mail.connection for mail in server.received] == [0, 1, 1]
    second.refresh_from_db()
    # Replaced silently: no error, no second attempt, one "sent" event.
    assert (second.delivery_status, second.delivery_error, second.delivery_attempts) == ("sent", "", 1)
    assert [e.after for e in TicketEvent.objects.filter(kind="delivery", message=second)] == [{"status": "sent"}]


def test_a_connection_lost_after_the_data_was_sent_is_not_used_to_send_again(counting_smtp, queue):
    """The server may have the mail: the deliverer reports it and sends nothing more; the
    claim decides (a temporary failure, as before connections were reused)."""
    server = counting_smtp()
    first, second = queued_acknowledgements(2)
    server.data_replies = [DROP]

    assert message_deliver(message_id=first.pk) is DeliveryOutcome.RETRY

    assert (server.data_commands, server.connections, server.received) == (1, 1, [])
    first.refresh_from_db()
    assert first.delivery_status == "queued" and first.delivery_attempts == 1
    assert first.delivery_error.startswith("Mail server unreachable")
    # The next message goes over a new connection; the lost one was dropped, not checked and reused.
    assert message_deliver(message_id=second.pk) is DeliveryOutcome.SENT
    assert server.connections == 2
    assert [mail.connection for mail in server.received] == [1]


def test_a_refusal_keeps_the_connection_for_the_next_message(counting_smtp, queue, agent):
    server = counting_smtp()
    server.rcpt_refused = {"nobody@example.com"}
    server.data_replies = ["451 4.3.0 Try again later"]
    refused = queued_reply_to("nobody@example.com", agent)
    deferred, accepted = queued_acknowledgements(2)

    assert message_deliver(message_id=refused.pk) is DeliveryOutcome.FAILED
    assert message_deliver(message_id=deferred.pk) is DeliveryOutcome.RETRY
    assert message_deliver(message_id=accepted.pk) is DeliveryOutcome.SENT

    assert server.connections == 1
    assert [mail.rcpt_tos for mail in server.received] == [["customer1@example.com"]]


def test_an_idle_connection_is_closed_after_the_idle_time(counting_smtp, queue, settings):
    settings.SERVICEDESK_EMAIL = {**settings.SERVICEDESK_EMAIL, "SMTP_CONNECTION_IDLE_SECONDS": 1}
    server = counting_smtp()
    first, second = queued_acknowledgements(2)
    assert message_deliver(message_id=first.pk) is DeliveryOutcome.SENT
    assert server.open_connections() == 1

    wait_until(lambda: server.quits == 1 and server.open_connections() == 0, timeout=15, what="the idle QUIT")

    assert message_deliver(message_id=second.pk) is DeliveryOutcome.SENT
    assert (server.connections, server.noops) == (2, 0)


def test_with_reuse_off_every_message_has_a_connection_of_its_own(counting_smtp, queue, settings):
    settings.SERVICEDESK_EMAIL = {**settings.SERVICEDESK_EMAIL, "SMTP_CONNECTION_IDLE_SECONDS": 0}
    server = counting_smtp()
    acks = queued_acknowledgements(3)

    assert [message_deliver(message_id=ack.pk) for ack in acks] == [DeliveryOutcome.SENT] * 3

    assert [mail.connection for mail in server.received] == [0, 1, 2]
    assert (server.quits, server.noops, server.open_connections()) == (3, 0, 0)


def test_a_connection_carries_at_most_the_configured_number_of_messages(counting_smtp, queue, settings):
    settings.SERVICEDESK_EMAIL = {**settings.SERVICEDESK_EMAIL, "SMTP_CONNECTION_MAX_MESSAGES": 5}
    server = counting_smtp()
    acks = queued_acknowledgements(12)

    assert [message_deliver(message_id=ack.pk) for ack in acks] == [DeliveryOutcome.SENT] * 12

    assert [mail.connection for mail in server.received] == [0] * 5 + [1] * 5 + [2] * 2
    assert (server.quits, server.open_connections()) == (2, 1)


def test_smtputf8_is_asked_of_the_connection_the_message_goes_on(counting_smtp, queue, agent):
    """A server without SMTPUTF8 refuses a non-ASCII mailbox name without losing the
    connection; the server that replaces it offers SMTPUTF8, and the new connection knows."""
    plain = counting_smtp()
    ascii_ack = queued_acknowledgements(1)[0]
    assert message_deliver(message_id=ascii_ack.pk) is DeliveryOutcome.SENT
    jose = queued_reply_to("josé@bücher.example", agent)

    assert message_deliver(message_id=jose.pk) is DeliveryOutcome.FAILED

    jose.refresh_from_db()
    assert jose.delivery_error == NEEDS_SMTPUTF8
    assert (plain.connections, plain.data_commands) == (1, 1)

    plain.stop()  # the mail server is upgraded, same address
    upgraded = counting_smtp(port=plain.port, smtputf8=True)
    again = queued_reply_to("josé@bücher.example", agent, ticket=jose.ticket)

    assert message_deliver(message_id=again.pk) is DeliveryOutcome.SENT

    [mail] = upgraded.received
    assert mail.rcpt_tos == ["josé@xn--bcher-kva.example"]
    assert "SMTPUTF8" in mail.mail_options
    assert upgraded.connections == 1


def test_each_thread_has_its_own_connection(counting_smtp):
    server = counting_smtp()

    def send_three(n: int) -> None:
        for m in range(3):
            connection_send(EmailMessage(f"t{n}-{m}", "Hi", "desk@example.com", [f"t{n}@example.com"]))

    threads = [threading.Thread(target=send_three, args=(n,)) for n in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    assert server.connections == 2
    by_connection = {mail.connection for mail in server.received if mail.rcpt_tos == ["t0@example.com"]}
    assert len(by_connection) == 1 and len(server.received) == 6
    assert connections_close() == 2
    wait_until(lambda: server.quits == 2, timeout=10, what="two QUITs")


def test_the_connection_is_closed_when_the_worker_process_ends(counting_smtp, queue):
    server = counting_smtp()
    ack = queued_acknowledgements(1)[0]
    assert message_deliver(message_id=ack.pk) is DeliveryOutcome.SENT

    signals.worker_process_shutdown.send(sender=None, pid=0, exitcode=0)

    assert server.quits == 1  # QUIT waits for the server's answer
    wait_until(lambda: server.open_connections() == 0, timeout=10, what="the connection to close")


def test_a_forked_child_never_writes_on_its_parents_connection(counting_smtp, queue):
    """A prefork pool forks its children from a process that may hold a connection."""
    server = counting_smtp()
    first, second = queued_acknowledgements(2)
    assert message_deliver(message_id=first.pk) is DeliveryOutcome.SENT

    pid = os.fork()
    if pid == 0:  # the child: it holds no connection, so closing sends no QUIT on the parent's
        os._exit(connections_close())
    _pid, status = os.waitpid(pid, 0)

    assert os.waitstatus_to_exitcode(status) == 0
    assert server.quits == 0
    assert message_deliver(message_id=second.pk) is DeliveryOutcome.SENT
    assert server.connections == 1 and [mail.connection for mail in server.received] == [0, 0]


# --- The batch path ---------------------------------------------------------------


def test_a_batch_claims_each_message_on_its_own_over_one_connection(counting_smtp, queue):
    server = counting_smtp()
    acks = queued_acknowledgements(6)
    assert message_deliver(message_id=acks[2].pk) is DeliveryOutcome.SENT  # sent meanwhile by its own task
    Message.objects.filter(pk=acks[4].pk).update(delivery_status="sending")  # claimed by a worker now

    outcomes = messages_deliver(message_ids=[ack.pk for ack in acks], budget_seconds=60)

    assert outcomes == {
        DeliveryOutcome.SENT: 4,
        DeliveryOutcome.SKIPPED: 2,
        DeliveryOutcome.RETRY: 0,
        DeliveryOutcome.FAILED: 0,
    }
    assert statuses(acks) == ["sent", "sent", "sent", "sent", "sending", "sent"]
    assert len(server.received) == 5 and server.connections == 1
    assert Message.objects.filter(pk__in=[a.pk for a in acks], delivery_attempts=1).count() == 5


def test_a_batch_stops_at_the_first_temporary_failure_and_leaves_the_rest_queued(counting_smtp, queue):
    server = counting_smtp()
    server.data_replies = ["", "421 4.3.2 Service shutting down"]  # "" : accept the first
    acks = queued_acknowledgements(4)

    outcomes = messages_deliver(message_ids=[ack.pk for ack in acks], budget_seconds=60)

    assert (outcomes[DeliveryOutcome.SENT], outcomes[DeliveryOutcome.RETRY]) == (1, 1)
    assert statuses(acks) == ["sent", "queued", "queued", "queued"]
    # Only the message that met the failure spent an attempt on it.
    assert list(
        Message.objects.filter(pk__in=[a.pk for a in acks]).order_by("pk").values_list("delivery_attempts", flat=True)
    ) == [1, 1, 0, 0]


def test_a_batch_claims_nothing_once_its_time_is_spent(counting_smtp, queue):
    server = counting_smtp()
    acks = queued_acknowledgements(2)

    outcomes = messages_deliver(message_ids=[ack.pk for ack in acks], budget_seconds=-1)

    assert set(outcomes.values()) == {0}
    assert statuses(acks) == ["queued", "queued"]
    assert server.connections == 0


def test_the_redispatch_sends_what_was_left_queued_in_batches_over_one_connection(counting_smtp, queue, monkeypatch):
    server = counting_smtp()
    acks = queued_acknowledgements(30)
    Message.objects.filter(pk__in=[a.pk for a in acks]).update(created_at=timezone.now() - timedelta(minutes=11))
    batches: list[list[int]] = []
    enqueue = tasks.messages_deliver_task.delay
    monkeypatch.setattr(tasks.messages_deliver_task, "delay", lambda ids: batches.append(ids) or enqueue(ids))

    assert tasks.outbound_pending_dispatch() == 30  # the tasks run at once in the test settings

    assert batches == [[a.pk for a in acks[:25]], [a.pk for a in acks[25:]]]
    assert statuses(acks) == ["sent"] * 30
    assert server.connections == 1 and len(server.received) == 30
    assert tasks.outbound_pending_dispatch() == 0
