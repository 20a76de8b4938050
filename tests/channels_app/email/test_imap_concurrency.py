"""Two pollers of one mailbox at once, without the task's lock, on PostgreSQL:
the unique keys alone make every message arrive exactly once, also over a
backlog that takes several batches."""

from __future__ import annotations

import threading
from collections.abc import Callable

import pytest
from django.db import connection, connections

from channels_app.email import imap
from channels_app.email.imap import PollReport, mailbox_poll
from channels_app.email.models import InboundEmail, MailAccount
from servicedesk.tickets.models import Message, MessageKind, Ticket
from tests.channels_app.email.dovecot import HOST, PASSWORD, Dovecot, dovecot, imap_ca
from tests.factories import QueueFactory

__all__ = ["dovecot", "imap_ca"]


def mail(n: int) -> bytes:
    return (
        f"From: Customer {n} <customer{n}@example.com>\r\nTo: support@servicedesk.example\r\n"
        f"Subject: Concurrent problem {n}\r\nMessage-ID: <concurrent-{n}@example.com>\r\n"
        "Date: Mon, 02 Jun 2025 10:00:00 +0000\r\nMIME-Version: 1.0\r\n"
        f"Content-Type: text/plain; charset=utf-8\r\n\r\nProblem {n}.\r\n"
    ).encode()


def make_account(dovecot: Dovecot, user: str) -> MailAccount:
    return MailAccount.objects.create(
        name="concurrent",
        host=HOST,
        port=dovecot.imaps_port,
        security=MailAccount.Security.TLS,
        username=user,
        password_env="SD_TEST_IMAP_PASSWORD",
        queue=QueueFactory(slug="support", name="Support"),
    )


def poll_in_threads(
    account: MailAccount, on_error: Callable[[], None] = lambda: None
) -> tuple[list[PollReport], list[BaseException]]:
    """Two pollers of the account at once; their reports and errors."""
    reports: list[PollReport] = []
    errors: list[BaseException] = []

    def poller() -> None:
        try:
            reports.append(mailbox_poll(account=MailAccount.objects.get(pk=account.pk)))
        except BaseException as exc:
            errors.append(exc)
            on_error()
        finally:
            connections.close_all()

    threads = [threading.Thread(target=poller) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    return reports, errors


# 8 messages in one batch; 25 in batches of 10.
@pytest.mark.parametrize(("messages", "batch"), [(8, None), (25, 10)])
@pytest.mark.django_db(transaction=True)
def test_two_concurrent_pollers_store_each_message_once(dovecot, imap_ca, monkeypatch, settings, messages, batch):
    assert connection.vendor == "postgresql", "concurrent polling is tested on PostgreSQL: set DATABASE_URL"
    monkeypatch.setenv("SD_TEST_IMAP_PASSWORD", PASSWORD)
    # One mail per transaction: in lock step, a poller holding a second mail's
    # insert uncommitted would wait at the barrier for the other, which waits
    # on that insert. (Free-running pollers with many mails per transaction: below.)
    settings.SERVICEDESK_EMAIL = {**settings.SERVICEDESK_EMAIL, "IMAP_COMMIT_BATCH": 1}
    if batch is not None:
        settings.SERVICEDESK_EMAIL = {**settings.SERVICEDESK_EMAIL, "IMAP_POLL_BATCH": batch}
    user = dovecot.new_user()
    dovecot.append(user, *(mail(n) for n in range(1, messages + 1)))
    account = make_account(dovecot, user)
    # Both pollers have searched before either ingests, then take each
    # message at the same moment: the worst interleaving, every time.
    barrier = threading.Barrier(2, timeout=30)
    ingest = imap.email_ingest

    def in_step(**kwargs):  # type: ignore[no-untyped-def]
        barrier.wait()
        return ingest(**kwargs)

    monkeypatch.setattr(imap, "email_ingest", in_step)
    reports, errors = poll_in_threads(account, on_error=barrier.abort)

    assert errors == []
    assert [(r.fetched, r.quarantined, r.marked, r.error) for r in reports] == [(messages, 0, messages, "")] * 2
    assert sum(r.stored for r in reports) == messages
    assert sum(r.duplicates for r in reports) == messages
    assert InboundEmail.objects.count() == messages
    assert set(InboundEmail.objects.values_list("status", flat=True)) == {"processed"}
    assert Ticket.objects.count() == messages
    assert Message.objects.filter(kind=MessageKind.PUBLIC_ENDUSER).count() == messages
    assert Message.objects.filter(purpose="acknowledgement").count() == messages
    seen = {uid: "\\Seen" in flags for uid, flags in dovecot.flags(user).items()}
    assert seen == dict.fromkeys(range(1, messages + 1), True)
    again = mailbox_poll(account=account)
    assert (again.fetched, again.stored, again.error) == (0, 0, "")


@pytest.mark.django_db(transaction=True)
def test_two_pollers_share_a_backlog_of_several_batches(dovecot, imap_ca, monkeypatch, settings):
    """Free-running pollers: each skips what the other marked meanwhile, and nothing is stored twice."""
    assert connection.vendor == "postgresql", "concurrent polling is tested on PostgreSQL: set DATABASE_URL"
    monkeypatch.setenv("SD_TEST_IMAP_PASSWORD", PASSWORD)
    settings.SERVICEDESK_EMAIL = {**settings.SERVICEDESK_EMAIL, "IMAP_POLL_BATCH": 25, "IMAP_POLL_SECONDS": 3600}
    messages = 90
    user = dovecot.new_user()
    dovecot.append(user, *(mail(n) for n in range(1, messages + 1)))
    account = make_account(dovecot, user)

    reports, errors = poll_in_threads(account)

    assert errors == []
    assert [(r.error, r.budget_spent, r.quarantined) for r in reports] == [("", False, 0)] * 2
    assert sum(r.stored for r in reports) == messages
    assert sum(r.fetched for r in reports) == messages + sum(r.duplicates for r in reports)
    assert sum(r.marked for r in reports) == sum(r.fetched for r in reports)
    assert InboundEmail.objects.count() == messages
    assert set(InboundEmail.objects.values_list("status", flat=True)) == {"processed"}
    assert Ticket.objects.count() == messages
    assert Message.objects.filter(kind=MessageKind.PUBLIC_ENDUSER).count() == messages
    seen = {uid: "\\Seen" in flags for uid, flags in dovecot.flags(user).items()}
    assert seen == dict.fromkeys(range(1, messages + 1), True)
