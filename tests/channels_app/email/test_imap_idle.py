"""IMAP IDLE against a real Dovecot: the IDLE exchange, the per-account watcher
(poll at start, poll on new mail, the shared poll lock, reconnection), the
fallback for a server without IDLE and ``manage.py mail_idle``.

Arrival is awaited with a generous bound (``ARRIVAL_SECONDS``): the tests
show that new mail comes in without the minute poll, not how fast.
"""

from __future__ import annotations

import io
import os
import re
import signal
import threading
import time
from collections.abc import Callable, Iterator

import pytest
from django.core.cache import cache
from django.core.management import CommandError, call_command
from django.db import connections

from channels_app.email import idle
from channels_app.email.idle import IdleSession, IdleUnsupported, WatchEnd, mailbox_watch, mailboxes_watch
from channels_app.email.imap import MailboxError, mailbox_connect, mailbox_select
from channels_app.email.models import InboundEmail, MailAccount
from channels_app.email.tasks import mailbox_poll_task, poll_lock_key
from tests.channels_app.email.dovecot import HOST, PASSWORD, Dovecot, dovecot, dovecot_without_idle, imap_ca
from tests.factories import QueueFactory

__all__ = ["dovecot", "dovecot_without_idle", "imap_ca"]

PASSWORD_ENV = "SD_TEST_IMAP_PASSWORD"
ARRIVAL_SECONDS = 10.0


def mail(n: int) -> bytes:
    return (
        f"From: Customer {n} <customer{n}@example.com>\r\nTo: support@servicedesk.example\r\n"
        f"Subject: Urgent problem {n}\r\nMessage-ID: <idle-{n}@example.com>\r\n"
        "Date: Mon, 02 Jun 2025 10:00:00 +0000\r\nMIME-Version: 1.0\r\n"
        f"Content-Type: text/plain; charset=utf-8\r\n\r\nProblem {n}.\r\n"
    ).encode()


@pytest.fixture(autouse=True)
def _password(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(PASSWORD_ENV, PASSWORD)


@pytest.fixture(autouse=True)
def _quick_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(idle, "BACKOFF_FIRST_SECONDS", 0.5)
    monkeypatch.setattr(idle, "LOCK_RETRY_SECONDS", 0.2)


def make_account(server: Dovecot, user: str, **fields: object) -> MailAccount:
    values: dict[str, object] = {
        "name": f"support-{user}",
        "host": HOST,
        "port": server.imaps_port,
        "security": MailAccount.Security.TLS,
        "username": user,
        "password_env": PASSWORD_ENV,
        "queue": QueueFactory(),
        **fields,
    }
    return MailAccount.objects.create(**values)


def stored(account: MailAccount) -> int:
    """Mail of the account stored and processed."""
    return InboundEmail.objects.filter(account=account, status="processed").count()


def wait_for(condition: Callable[[], bool], seconds: float = ARRIVAL_SECONDS) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.1)
    return condition()


def seen(server: Dovecot, user: str) -> dict[int, bool]:
    return {uid: "\\Seen" in flags for uid, flags in server.flags(user).items()}


@pytest.fixture
def watching() -> Iterator[Callable[[MailAccount], threading.Thread]]:
    """Start ``mailbox_watch`` for an account in a thread; stopped and joined after the test."""
    started: list[tuple[threading.Event, threading.Thread]] = []
    ends: list[WatchEnd] = []

    def start(account: MailAccount, renew_seconds: float = idle.RENEW_SECONDS) -> threading.Thread:
        stop = threading.Event()

        def run() -> None:
            try:
                ends.append(mailbox_watch(account_id=account.pk, stop=stop, renew_seconds=renew_seconds))
            finally:
                connections.close_all()

        thread = threading.Thread(target=run, daemon=True)
        thread.start()
        started.append((stop, thread))
        return thread

    yield start
    for stop, _ in started:
        stop.set()
    for _, thread in started:
        thread.join(30)
    assert not any(thread.is_alive() for _, thread in started), "a watcher did not stop"
    assert ends == [WatchEnd.STOPPED] * len(started)


# --- the IDLE exchange -------------------------------------------------------


@pytest.fixture
def session(dovecot: Dovecot, imap_ca, db) -> Iterator[tuple[IdleSession, str]]:  # type: ignore[no-untyped-def]
    user = dovecot.new_user()
    account = make_account(dovecot, user)
    client = mailbox_connect(account)
    mailbox_select(client, account)
    idle_session = IdleSession(client)
    yield idle_session, user
    idle_session.close()


def test_idle_reports_mail_appended_meanwhile(dovecot, session):
    idle_session, user = session
    later = threading.Timer(0.5, dovecot.append, args=(user, mail(1)))
    later.start()
    try:
        assert idle_session.wait(60) is True
    finally:
        later.join()


def test_idle_ends_after_its_time_and_idles_again(dovecot, session):
    idle_session, user = session

    assert idle_session.wait(0.3) is False
    assert idle_session.wait(0.3) is False

    # Mail that came between two IDLEs is reported when the next begins.
    dovecot.append(user, mail(1))
    assert idle_session.wait(60) is True


def test_idle_ends_when_asked_to_stop(session):
    idle_session, _ = session
    stop = threading.Event()
    threading.Timer(0.3, stop.set).start()

    assert idle_session.wait(60, stop=stop) is False
    assert stop.is_set()


def test_idle_raises_when_the_server_ends_the_session(dovecot, session):
    idle_session, user = session
    threading.Timer(0.5, dovecot.doveadm, args=("kick", user)).start()

    with pytest.raises(MailboxError, match=r"the server (ended the session|closed the connection)"):
        idle_session.wait(60)


def test_idle_is_not_tried_where_the_server_does_not_offer_it(dovecot_without_idle, settings, db):
    settings.SERVICEDESK_EMAIL = {**settings.SERVICEDESK_EMAIL, "IMAP_CA_FILE": str(dovecot_without_idle.ca_file)}
    account = make_account(dovecot_without_idle, dovecot_without_idle.new_user())
    client = mailbox_connect(account)
    try:
        assert "IDLE" not in client.capabilities
        with pytest.raises(IdleUnsupported):
            IdleSession(client)
    finally:
        client.logout()


# --- the watcher of one account ----------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_watcher_takes_waiting_mail_then_new_mail_as_it_arrives(dovecot, imap_ca, watching):
    user = dovecot.new_user()
    dovecot.append(user, mail(1))
    account = make_account(dovecot, user)

    watching(account)

    assert wait_for(lambda: stored(account) == 1)
    dovecot.append(user, mail(2))
    assert wait_for(lambda: stored(account) == 2)
    dovecot.append(user, mail(3), mail(4))
    assert wait_for(lambda: stored(account) == 4)
    assert InboundEmail.objects.count() == 4
    assert wait_for(lambda: seen(dovecot, user) == {1: True, 2: True, 3: True, 4: True})


@pytest.mark.django_db(transaction=True)
def test_watcher_idles_again_after_each_renewal(dovecot, imap_ca, watching, monkeypatch):
    waits: list[float] = []
    wait = IdleSession.wait

    def counting(self: IdleSession, seconds: float, *, stop: threading.Event | None = None) -> bool:
        waits.append(seconds)
        return wait(self, seconds, stop=stop)

    monkeypatch.setattr(IdleSession, "wait", counting)
    user = dovecot.new_user()
    account = make_account(dovecot, user)

    watching(account, renew_seconds=0.3)

    assert wait_for(lambda: len(waits) >= 4)
    dovecot.append(user, mail(1))
    assert wait_for(lambda: stored(account) == 1)
    assert set(waits) == {0.3}


@pytest.mark.django_db(transaction=True)
def test_watcher_waits_for_the_poll_lock_of_another_poller(dovecot, imap_ca, watching):
    user = dovecot.new_user()
    dovecot.append(user, mail(1))
    account = make_account(dovecot, user)
    assert cache.add(poll_lock_key(account.pk), "the beat's poll", 60)

    watching(account)

    # It does not poll beside the lock holder; once the lock is free, it does.
    assert not wait_for(lambda: stored(account) > 0, seconds=1.5)
    cache.delete(poll_lock_key(account.pk))
    assert wait_for(lambda: stored(account) == 1)
    assert wait_for(lambda: cache.get(poll_lock_key(account.pk)) is None)


@pytest.mark.django_db(transaction=True)
def test_watcher_connects_again_after_the_server_drops_it(dovecot, imap_ca, watching, caplog):
    user = dovecot.new_user()
    dovecot.append(user, mail(1))
    account = make_account(dovecot, user)
    watching(account)
    assert wait_for(lambda: stored(account) == 1)
    # The watcher is in IDLE once the poll has released the lock.
    assert wait_for(lambda: cache.get(poll_lock_key(account.pk)) is None)

    with caplog.at_level("WARNING", logger="channels_app.email.idle"):
        dovecot.doveadm("kick", user)
        assert wait_for(lambda: any("connecting again" in r.getMessage() for r in caplog.records))
    dovecot.append(user, mail(2))

    assert wait_for(lambda: stored(account) == 2)
    assert wait_for(lambda: seen(dovecot, user) == {1: True, 2: True})


@pytest.mark.django_db(transaction=True)
def test_a_server_without_idle_is_left_to_the_minute_poll(dovecot_without_idle, settings):
    settings.SERVICEDESK_EMAIL = {**settings.SERVICEDESK_EMAIL, "IMAP_CA_FILE": str(dovecot_without_idle.ca_file)}
    server = dovecot_without_idle
    user = server.new_user()
    server.append(user, mail(1))
    account = make_account(server, user)

    assert mailbox_watch(account_id=account.pk, stop=threading.Event()) == WatchEnd.NO_IDLE

    assert stored(account) == 0
    assert seen(server, user) == {1: False}
    assert mailbox_poll_task(account.pk)["stored"] == 1
    assert seen(server, user) == {1: True}


@pytest.mark.django_db(transaction=True)
def test_watcher_of_a_deleted_account_ends(dovecot, imap_ca):
    account = make_account(dovecot, dovecot.new_user())
    pk = account.pk
    account.delete()

    assert mailbox_watch(account_id=pk, stop=threading.Event()) == WatchEnd.GONE


# --- every account, and the command --------------------------------------------


def watcher_alive(account: MailAccount) -> bool:
    return any(thread.name == f"mail-idle-{account.pk}" and thread.is_alive() for thread in threading.enumerate())


@pytest.mark.django_db(transaction=True)
def test_accounts_are_watched_as_they_are_added_and_deactivated(dovecot, imap_ca):
    first_user, second_user = dovecot.new_user(), dovecot.new_user()
    first = make_account(dovecot, first_user)
    stop = threading.Event()

    def supervise() -> None:
        try:
            mailboxes_watch(stop=stop, refresh_seconds=0.3)
        finally:
            connections.close_all()

    supervisor = threading.Thread(target=supervise)
    supervisor.start()
    try:
        dovecot.append(first_user, mail(1))
        assert wait_for(lambda: stored(first) == 1)

        second = make_account(dovecot, second_user)
        dovecot.append(second_user, mail(2))
        assert wait_for(lambda: stored(second) == 1)

        MailAccount.objects.filter(pk=first.pk).update(is_active=False)
        assert wait_for(lambda: not watcher_alive(first))
        assert watcher_alive(second)
    finally:
        stop.set()
        supervisor.join(30)
    assert not supervisor.is_alive()
    assert not watcher_alive(second)


@pytest.mark.django_db(transaction=True)
def test_mail_idle_command_takes_mail_in_until_terminated(dovecot, imap_ca):
    user = dovecot.new_user()
    dovecot.append(user, mail(1))
    account = make_account(dovecot, user)
    arrived: list[int] = []

    def customer_then_terminate() -> None:
        try:
            if wait_for(lambda: stored(account) == 1):
                arrived.append(1)
                dovecot.append(user, mail(2))
                if wait_for(lambda: stored(account) == 2):
                    arrived.append(2)
        finally:
            connections.close_all()
            os.kill(os.getpid(), signal.SIGTERM)

    helper = threading.Thread(target=customer_then_terminate)
    out = io.StringIO()
    terminations: list[int] = []

    def outside_the_command(signum: int, frame: object) -> None:
        terminations.append(signum)

    # Whatever happens to the command, the helper's SIGTERM never ends the test run.
    previous = signal.signal(signal.SIGTERM, outside_the_command)
    try:
        helper.start()
        call_command("mail_idle", "--account", account.name, stdout=out)
        helper.join(30)
        assert signal.getsignal(signal.SIGTERM) == outside_the_command
    finally:
        signal.signal(signal.SIGTERM, previous)

    assert arrived == [1, 2]
    assert terminations == []
    assert out.getvalue() == (f"Watching {account.name} with IMAP IDLE; stop with Ctrl-C.\nStopped.\n")
    assert seen(dovecot, user) == {1: True, 2: True}


def test_mail_idle_command_rejects_an_unknown_account(db):
    with pytest.raises(CommandError, match=re.escape("No mail account named 'nope'.")):
        call_command("mail_idle", "--account", "nope")
