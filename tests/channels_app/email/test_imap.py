"""IMAP polling against a real Dovecot: exactly once through crashes, UIDVALIDITY
changes and refused TLS; the beat task and ``manage.py fetch_mail``."""

from __future__ import annotations

import imaplib
import io
import re
import socket
from collections.abc import Callable

import pytest
from django.core.cache import cache
from django.core.management import CommandError, call_command
from django.db import OperationalError

from channels_app.email import imap, services
from channels_app.email.imap import PollReport, mailbox_poll
from channels_app.email.models import InboundEmail, MailAccount
from channels_app.email.tasks import mailbox_poll_task, mailboxes_poll_task, poll_lock_key
from servicedesk.tickets.models import Message, MessageKind, Ticket
from tests.channels_app.email.dovecot import HOST, PASSWORD, Dovecot, dovecot, dovecot_without_tls, imap_ca

__all__ = ["dovecot", "dovecot_without_tls", "imap_ca"]

pytestmark = pytest.mark.django_db

PASSWORD_ENV = "SD_TEST_IMAP_PASSWORD"


def mail(n: int, *, sender: str = "Alice Byrne <alice@example.com>", extra: str = "") -> bytes:
    from_line = f"From: {sender}\r\n" if sender else ""
    return (
        f"{from_line}To: support@servicedesk.example\r\nSubject: Problem number {n}\r\n"
        f"Message-ID: <imap-{n}@example.com>\r\nDate: Mon, 02 Jun 2025 10:00:00 +0000\r\n{extra}"
        f"MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nPlease help with problem {n}.\r\n"
    ).encode()


@pytest.fixture(autouse=True)
def _password(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(PASSWORD_ENV, PASSWORD)


@pytest.fixture
def make_account(dovecot: Dovecot, imap_ca, queue) -> Callable[..., MailAccount]:  # type: ignore[no-untyped-def]
    def make(user: str, **fields: object) -> MailAccount:
        values: dict[str, object] = {
            "name": f"support-{user}",
            "host": HOST,
            "port": dovecot.imaps_port,
            "security": MailAccount.Security.TLS,
            "username": user,
            "password_env": PASSWORD_ENV,
            "queue": queue,
            **fields,
        }
        return MailAccount.objects.create(**values)

    return make


def acknowledgements() -> int:
    return Message.objects.filter(purpose="acknowledgement").count()


def customer_messages() -> int:
    return Message.objects.filter(kind=MessageKind.PUBLIC_ENDUSER).count()


def totals() -> tuple[int, int, int, int]:
    """Tickets, customer messages, acknowledgements, inbound rows."""
    return (Ticket.objects.count(), customer_messages(), acknowledgements(), InboundEmail.objects.count())


def counts(report: PollReport) -> tuple[int, int, int, int, int, str]:
    return (report.fetched, report.stored, report.duplicates, report.quarantined, report.marked, report.error)


def test_poll_stores_each_message_once_and_flags_it_seen(dovecot, make_account):
    user = dovecot.new_user()
    dovecot.append(user, mail(1), mail(2), mail(3))
    account = make_account(user)
    uidvalidity = dovecot.uidvalidity(user)

    report = mailbox_poll(account=account)

    assert counts(report) == (3, 3, 0, 0, 3, "")
    assert report.uidvalidity == uidvalidity
    assert Ticket.objects.count() == 3
    assert sorted(Ticket.objects.values_list("subject", flat=True)) == [
        "Problem number 1",
        "Problem number 2",
        "Problem number 3",
    ]
    assert customer_messages() == 3
    assert acknowledgements() == 3
    rows = InboundEmail.objects.order_by("source_key")
    assert [row.source_key for row in rows] == [f"imap:{account.pk}:{uidvalidity}:{uid}" for uid in (1, 2, 3)]
    assert {(row.source, row.status, row.account_id) for row in rows} == {("imap", "processed", account.pk)}
    assert [row.raw_bytes() for row in rows] == [mail(1), mail(2), mail(3)]
    assert {uid: "\\Seen" in flags for uid, flags in dovecot.flags(user).items()} == {1: True, 2: True, 3: True}
    account.refresh_from_db()
    assert account.last_error == ""
    assert account.last_polled_at is not None

    again = mailbox_poll(account=account)

    assert counts(again) == (0, 0, 0, 0, 0, "")
    assert totals() == (3, 3, 3, 3)


def test_mail_already_read_in_the_mailbox_is_not_taken(dovecot, make_account):
    user = dovecot.new_user()
    dovecot.append(user, mail(1), mail(2))
    client = dovecot.client(user)
    client.select("INBOX")
    client.uid("STORE", "1", "+FLAGS", "(\\Seen)")
    client.logout()

    report = mailbox_poll(account=make_account(user))

    assert counts(report) == (1, 1, 0, 0, 1, "")
    assert list(Ticket.objects.values_list("subject", flat=True)) == ["Problem number 2"]


def test_processed_folder_receives_the_mail(dovecot, make_account):
    user = dovecot.new_user()
    dovecot.create_folder(user, "Done")
    dovecot.append(user, mail(1), mail(2))
    account = make_account(user, processed_folder="Done")

    report = mailbox_poll(account=account)

    assert counts(report) == (2, 2, 0, 0, 2, "")
    assert dovecot.flags(user) == {}
    assert sorted(dovecot.flags(user, "Done")) == [1, 2]
    assert counts(mailbox_poll(account=account)) == (0, 0, 0, 0, 0, "")
    assert Ticket.objects.count() == 2


def test_processed_folder_without_move_copies_and_expunges(dovecot, make_account, monkeypatch):
    user = dovecot.new_user()
    dovecot.create_folder(user, "Done")
    dovecot.append(user, mail(1), mail(2))
    account = make_account(user, processed_folder="Done")
    connect = imap.mailbox_connect

    def without_move(account: MailAccount) -> imaplib.IMAP4:
        client = connect(account)
        client.capabilities = tuple(cap for cap in client.capabilities if cap != "MOVE")
        return client

    monkeypatch.setattr(imap, "mailbox_connect", without_move)
    sent: list[str] = []
    uid_command = imaplib.IMAP4.uid

    def recording_uid(self: imaplib.IMAP4, command: str, *args: str):  # type: ignore[no-untyped-def]
        sent.append(command.upper())
        return uid_command(self, command, *args)

    monkeypatch.setattr(imaplib.IMAP4, "uid", recording_uid)

    report = mailbox_poll(account=account)

    assert counts(report) == (2, 2, 0, 0, 2, "")
    assert "MOVE" not in sent
    # One COPY, STORE and EXPUNGE for the group of both messages.
    assert (sent.count("COPY"), sent.count("STORE"), sent.count("EXPUNGE")) == (1, 1, 1)
    assert dovecot.flags(user) == {}
    assert {uid: flags - {"\\Recent"} for uid, flags in dovecot.flags(user, "Done").items()} == {1: set(), 2: set()}


def test_crash_between_fetch_and_commit_leaves_the_message_for_the_next_poll(dovecot, make_account, monkeypatch):
    user = dovecot.new_user()
    dovecot.append(user, mail(1), mail(2))
    account = make_account(user)
    receive = services.inbound_message_receive
    calls = {"n": 0}

    def failing_once(**kwargs):  # type: ignore[no-untyped-def]
        calls["n"] += 1
        if calls["n"] == 1:
            raise OperationalError("server closed the connection unexpectedly")
        return receive(**kwargs)

    monkeypatch.setattr(services, "inbound_message_receive", failing_once)

    with pytest.raises(OperationalError):
        mailbox_poll(account=account)

    assert {uid: "\\Seen" in flags for uid, flags in dovecot.flags(user).items()} == {1: False, 2: False}
    # The mail's row and its ticket message are one transaction: nothing of it is stored.
    assert (Ticket.objects.count(), InboundEmail.objects.count()) == (0, 0)
    account.refresh_from_db()
    assert account.last_error == "OperationalError: server closed the connection unexpectedly"

    report = mailbox_poll(account=account)

    assert counts(report) == (2, 2, 0, 0, 2, "")
    assert {uid: "\\Seen" in flags for uid, flags in dovecot.flags(user).items()} == {1: True, 2: True}
    assert (Ticket.objects.count(), customer_messages(), acknowledgements()) == (2, 2, 2)
    assert sorted(InboundEmail.objects.values_list("status", "attempts")) == [("processed", 1), ("processed", 1)]
    account.refresh_from_db()
    assert account.last_error == ""


def test_crash_after_commit_before_the_flag_yields_one_message(dovecot, make_account, monkeypatch):
    user = dovecot.new_user()
    dovecot.append(user, mail(1))
    account = make_account(user)
    mark = imap._mark
    calls = {"n": 0}

    def lost_once(client: imaplib.IMAP4, account: MailAccount, uids: list[int]) -> None:
        calls["n"] += 1
        if calls["n"] == 1:
            raise imaplib.IMAP4.abort("socket error: EOF")
        mark(client, account, uids)

    monkeypatch.setattr(imap, "_mark", lost_once)

    first = mailbox_poll(account=account)

    assert counts(first) == (1, 1, 0, 0, 0, "abort: socket error: EOF")
    assert {uid: "\\Seen" in flags for uid, flags in dovecot.flags(user).items()} == {1: False}
    account.refresh_from_db()
    assert account.last_error == "abort: socket error: EOF"

    second = mailbox_poll(account=account)

    assert counts(second) == (1, 0, 1, 0, 1, "")
    assert {uid: "\\Seen" in flags for uid, flags in dovecot.flags(user).items()} == {1: True}
    assert totals() == (1, 1, 1, 1)
    assert counts(mailbox_poll(account=account)) == (0, 0, 0, 0, 0, "")


def test_uidvalidity_change_recognises_the_same_mail(dovecot, make_account):
    user = dovecot.new_user()
    dovecot.append(user, mail(1), mail(2))
    account = make_account(user)
    old = dovecot.uidvalidity(user)
    assert counts(mailbox_poll(account=account)) == (2, 2, 0, 0, 2, "")
    # The mailbox is rebuilt: new UIDVALIDITY, flags lost, and one mail comes
    # back with a header the server added (other bytes, same Message-ID).
    client = dovecot.client(user)
    client.select("INBOX")
    client.uid("STORE", "1:*", "-FLAGS", "(\\Seen)")
    client.logout()
    dovecot.doveadm("mailbox", "update", "-u", user, "--uid-validity", str(old + 7), "INBOX")
    dovecot.append(user, mail(1, extra="X-Restored: yes\r\n"))
    assert dovecot.uidvalidity(user) == old + 7

    report = mailbox_poll(account=account)

    assert report.uidvalidity == old + 7
    assert counts(report) == (3, 0, 3, 0, 3, "")
    assert (Ticket.objects.count(), customer_messages(), acknowledgements()) == (2, 2, 2)
    assert sorted(InboundEmail.objects.values_list("source_key", "status")) == [
        (f"imap:{account.pk}:{old}:1", "processed"),
        (f"imap:{account.pk}:{old}:2", "processed"),
        (f"imap:{account.pk}:{old + 7}:3", "duplicate"),
    ]
    assert {uid: "\\Seen" in flags for uid, flags in dovecot.flags(user).items()} == {1: True, 2: True, 3: True}


def test_a_quarantined_message_does_not_stop_the_poll(dovecot, make_account):
    user = dovecot.new_user()
    dovecot.append(user, mail(1), mail(2, sender=""), mail(3))
    account = make_account(user)

    report = mailbox_poll(account=account)

    assert counts(report) == (3, 2, 0, 1, 3, "")
    assert list(InboundEmail.objects.order_by("source_key").values_list("status", "quarantine_reason")) == [
        ("processed", ""),
        ("quarantined", "no sender address"),
        ("processed", ""),
    ]
    assert Ticket.objects.count() == 2
    assert {uid: "\\Seen" in flags for uid, flags in dovecot.flags(user).items()} == {1: True, 2: True, 3: True}


def test_starttls_account_polls_over_tls(dovecot, make_account):
    user = dovecot.new_user()
    dovecot.append(user, mail(1))
    account = make_account(user, port=dovecot.imap_port, security=MailAccount.Security.STARTTLS)

    assert counts(mailbox_poll(account=account)) == (1, 1, 0, 0, 1, "")
    assert Ticket.objects.count() == 1


def test_server_without_starttls_gets_no_login(dovecot_without_tls, make_account):
    server = dovecot_without_tls
    user = server.new_user()
    server.append(user, mail(1))
    log_before = (server.root / "dovecot.log").read_text()
    account = make_account(user, port=server.imap_port, security=MailAccount.Security.STARTTLS)

    report = mailbox_poll(account=account)

    error = "MailboxError: the server does not offer STARTTLS; refusing to log in without TLS"
    assert counts(report) == (0, 0, 0, 0, 0, error)
    account.refresh_from_db()
    assert account.last_error == error
    assert InboundEmail.objects.count() == 0
    assert Ticket.objects.count() == 0
    assert (server.root / "dovecot.log").read_text().count(f"user=<{user}>") == log_before.count(f"user=<{user}>")
    assert {uid: "\\Seen" in flags for uid, flags in server.flags(user).items()} == {1: False}


@pytest.mark.parametrize("security", [MailAccount.Security.TLS, MailAccount.Security.STARTTLS])
def test_an_untrusted_certificate_stops_the_poll_before_login(dovecot, make_account, settings, security):
    settings.SERVICEDESK_EMAIL = {}
    user = dovecot.new_user()
    dovecot.append(user, mail(1))
    port = dovecot.imaps_port if security == MailAccount.Security.TLS else dovecot.imap_port
    account = make_account(user, port=port, security=security)

    report = mailbox_poll(account=account)

    assert report.error.startswith("SSLCertVerificationError: [SSL: CERTIFICATE_VERIFY_FAILED]")
    assert counts(report)[:5] == (0, 0, 0, 0, 0)
    account.refresh_from_db()
    assert account.last_error == report.error
    assert InboundEmail.objects.count() == 0


def test_missing_password_is_reported(dovecot, make_account, monkeypatch):
    monkeypatch.delenv(PASSWORD_ENV)
    user = dovecot.new_user()
    account = make_account(user)

    report = mailbox_poll(account=account)

    assert report.error == (
        "MailboxError: no password: set the environment variable named in the account, or a stored password"
    )
    account.refresh_from_db()
    assert account.last_error == report.error


def test_stored_password_logs_in(dovecot, make_account):
    user = dovecot.new_user()
    dovecot.append(user, mail(1))
    account = make_account(user, password_env="")
    account.password_set(PASSWORD)
    account.save()

    assert counts(mailbox_poll(account=account)) == (1, 1, 0, 0, 1, "")


def test_wrong_password_is_recorded(dovecot, make_account):
    user = dovecot.new_user()
    dovecot.append(user, mail(1))
    account = make_account(user, password_env="")
    account.password_set("not-the-password")
    account.save()

    report = mailbox_poll(account=account)

    assert report.error == "error: b'[AUTHENTICATIONFAILED] Authentication failed.'"
    assert InboundEmail.objects.count() == 0


def test_beat_task_polls_every_active_account(dovecot, make_account):
    users = [dovecot.new_user() for _ in range(3)]
    for n, user in enumerate(users, start=1):
        dovecot.append(user, mail(n))
    first = make_account(users[0])
    second = make_account(users[1])
    make_account(users[2], is_active=False)

    assert mailboxes_poll_task() == 2

    assert [("\\Seen" in dovecot.flags(user)[1]) for user in users] == [True, True, False]
    assert sorted(InboundEmail.objects.values_list("account_id", "status")) == [
        (first.pk, "processed"),
        (second.pk, "processed"),
    ]
    assert sorted(Ticket.objects.values_list("subject", flat=True)) == ["Problem number 1", "Problem number 2"]


def test_account_task_skips_while_another_poll_holds_the_lock(dovecot, make_account):
    user = dovecot.new_user()
    dovecot.append(user, mail(1))
    account = make_account(user)
    cache.add(poll_lock_key(account.pk), "other-poller", 60)

    assert mailbox_poll_task(account.pk) == {
        "account_id": account.pk,
        "skipped": "another poll of this account is running",
    }
    assert InboundEmail.objects.count() == 0

    cache.delete(poll_lock_key(account.pk))
    result = mailbox_poll_task(account.pk)

    assert result == {
        "account": account.name,
        "uidvalidity": dovecot.uidvalidity(user),
        "fetched": 1,
        "stored": 1,
        "duplicates": 0,
        "quarantined": 0,
        "marked": 1,
        "budget_spent": False,
        "error": "",
    }
    assert cache.get(poll_lock_key(account.pk)) is None


def test_account_task_skips_with_a_warning_while_the_lock_cache_is_down(settings, queue, caplog):
    from tests.outage import UNREACHABLE_CACHES

    account = MailAccount.objects.create(
        name="support", host="127.0.0.1", port=1, username="support", password_env=PASSWORD_ENV, queue=queue
    )
    settings.CACHES = UNREACHABLE_CACHES

    with caplog.at_level("WARNING"):
        result = mailbox_poll_task.apply(args=[account.pk]).get()

    assert result == {"account_id": account.pk, "skipped": "the lock cache is unreachable"}
    assert [record.getMessage() for record in caplog.records if record.levelname == "WARNING"] == [
        f"Mailbox poll of account {account.pk} skipped: the lock cache is unreachable"
    ]
    assert InboundEmail.objects.count() == 0


def test_the_beat_task_enqueues_nothing_and_warns_while_the_broker_is_down(queue, caplog):
    from tests.outage import CLOSED_PORT_REDIS, celery_broker

    first, _second = (
        MailAccount.objects.create(
            name=f"support-{n}", host="127.0.0.1", port=1, username=f"u{n}", password_env=PASSWORD_ENV, queue=queue
        )
        for n in (1, 2)
    )

    with celery_broker(CLOSED_PORT_REDIS), caplog.at_level("WARNING"):
        assert mailboxes_poll_task() == 0

    # It stops at the first refusal; the next minute's run polls every account again.
    assert [record.getMessage() for record in caplog.records if record.levelname == "WARNING"] == [
        f"Could not enqueue email.mailbox_poll({first.pk},): the broker is unreachable"
    ]


def test_fetch_mail_command_prints_the_report(dovecot, make_account):
    user = dovecot.new_user()
    dovecot.append(user, mail(1), mail(2))
    account = make_account(user)
    out = io.StringIO()

    call_command("fetch_mail", "--account", account.name, stdout=out)

    assert out.getvalue() == (f"{account.name}: fetched 2, stored 2, duplicates 0, quarantined 0, marked 2\n")
    assert Ticket.objects.count() == 2


def test_fetch_mail_command_exits_1_on_a_failed_poll(dovecot, make_account, monkeypatch):
    monkeypatch.delenv(PASSWORD_ENV)
    account = make_account(dovecot.new_user())
    err = io.StringIO()

    with pytest.raises(SystemExit) as exit_info:
        call_command("fetch_mail", "--account", account.name, stderr=err)

    assert exit_info.value.code == 1
    assert err.getvalue() == (
        f"{account.name}: fetched 0, stored 0, duplicates 0, quarantined 0, marked 0; error: "
        "MailboxError: no password: set the environment variable named in the account, or a stored password\n"
    )


def test_fetch_mail_command_rejects_an_unknown_account(db):
    with pytest.raises(CommandError, match=re.escape("No mail account named 'nope'.")):
        call_command("fetch_mail", "--account", "nope")


def test_unreachable_server_is_recorded(make_account):
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        port = probe.getsockname()[1]
    account = make_account("nobody", port=port)

    report = mailbox_poll(account=account)

    assert report.error == "ConnectionRefusedError: [Errno 111] Connection refused"
    account.refresh_from_db()
    assert account.last_error == report.error
    assert account.last_polled_at is not None


def test_folder_names_are_quoted_in_modified_utf7():
    assert imap.mailbox_name("INBOX") == '"INBOX"'
    assert imap.mailbox_name('Done & "Größe"') == '"Done &- \\"Gr&APYA3w-e\\""'
    assert imap.mailbox_name("日本") == '"&ZeVnLA-"'


def test_processed_folder_with_a_non_ascii_name(dovecot, make_account):
    user = dovecot.new_user()
    folder = "Erledigt Größe"
    dovecot.create_folder(user, imap.mailbox_name(folder))
    dovecot.append(user, mail(1))
    account = make_account(user, processed_folder=folder)

    assert counts(mailbox_poll(account=account)) == (1, 1, 0, 0, 1, "")
    assert dovecot.flags(user) == {}
    assert sorted(dovecot.flags(user, imap.mailbox_name(folder))) == [1]
