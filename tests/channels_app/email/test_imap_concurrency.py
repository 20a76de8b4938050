"""Two pollers of one mailbox at once, without the task's lock, on PostgreSQL:
the unique keys alone make every message arrive exactly once."""

from __future__ import annotations

import threading

import pytest
from django.db import connection, connections

from channels_app.email import imap
from channels_app.email.imap import PollReport, mailbox_poll
from channels_app.email.models import InboundEmail, MailAccount
from servicedesk.tickets.models import Message, MessageKind, Ticket
from tests.channels_app.email.dovecot import HOST, PASSWORD, dovecot, imap_ca
from tests.factories import QueueFactory

__all__ = ["dovecot", "imap_ca"]

MESSAGES = 8


def mail(n: int) -> bytes:
    return (
        f"From: Customer {n} <customer{n}@example.com>\r\nTo: support@servicedesk.example\r\n"
        f"Subject: Concurrent problem {n}\r\nMessage-ID: <concurrent-{n}@example.com>\r\n"
        "Date: Mon, 02 Jun 2025 10:00:00 +0000\r\nMIME-Version: 1.0\r\n"
        f"Content-Type: text/plain; charset=utf-8\r\n\r\nProblem {n}.\r\n"
    ).encode()


@pytest.mark.django_db(transaction=True)
def test_two_concurrent_pollers_store_each_message_once(dovecot, imap_ca, monkeypatch):
    assert connection.vendor == "postgresql", "concurrent polling is tested on PostgreSQL: set DATABASE_URL"
    monkeypatch.setenv("SD_TEST_IMAP_PASSWORD", PASSWORD)
    user = dovecot.new_user()
    dovecot.append(user, *(mail(n) for n in range(1, MESSAGES + 1)))
    account = MailAccount.objects.create(
        name="concurrent",
        host=HOST,
        port=dovecot.imaps_port,
        security=MailAccount.Security.TLS,
        username=user,
        password_env="SD_TEST_IMAP_PASSWORD",
        queue=QueueFactory(slug="support", name="Support"),
    )
    # Both pollers have searched before either ingests, then take each
    # message at the same moment: the worst interleaving, every time.
    barrier = threading.Barrier(2, timeout=30)
    ingest = imap.email_ingest

    def in_step(**kwargs):  # type: ignore[no-untyped-def]
        barrier.wait()
        return ingest(**kwargs)

    monkeypatch.setattr(imap, "email_ingest", in_step)
    reports: list[PollReport] = []
    errors: list[BaseException] = []

    def poller() -> None:
        try:
            reports.append(mailbox_poll(account=MailAccount.objects.get(pk=account.pk)))
        except BaseException as exc:
            errors.append(exc)
            barrier.abort()
        finally:
            connections.close_all()

    threads = [threading.Thread(target=poller) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)

    assert errors == []
    assert [(r.fetched, r.quarantined, r.marked, r.error) for r in reports] == [(MESSAGES, 0, MESSAGES, "")] * 2
    assert sum(r.stored for r in reports) == MESSAGES
    assert sum(r.duplicates for r in reports) == MESSAGES
    assert InboundEmail.objects.count() == MESSAGES
    assert set(InboundEmail.objects.values_list("status", flat=True)) == {"processed"}
    assert Ticket.objects.count() == MESSAGES
    assert Message.objects.filter(kind=MessageKind.PUBLIC_ENDUSER).count() == MESSAGES
    assert Message.objects.filter(purpose="acknowledgement").count() == MESSAGES
    seen = {uid: "\\Seen" in flags for uid, flags in dovecot.flags(user).items()}
    assert seen == dict.fromkeys(range(1, MESSAGES + 1), True)
    again = mailbox_poll(account=account)
    assert (again.fetched, again.stored, again.error) == (0, 0, "")
