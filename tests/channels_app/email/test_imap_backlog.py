"""One IMAP poll drains a backlog in batches, within its time budget, against a real Dovecot."""

from __future__ import annotations

import imaplib

import pytest
from django.db import OperationalError

from channels_app.email import imap, services
from channels_app.email.imap import PollReport, mailbox_poll
from channels_app.email.models import InboundEmail, MailAccount
from servicedesk.tickets.models import Ticket
from tests.channels_app.email.dovecot import Dovecot, dovecot, imap_ca
from tests.channels_app.email.test_imap import _password, make_account

# The IMAP account fixtures are test_imap's: one account, made one way.
__all__ = ["_password", "dovecot", "imap_ca", "make_account"]

pytestmark = pytest.mark.django_db


def mail(n: int) -> bytes:
    return (
        f"From: Customer {n} <customer{n}@example.com>\r\nTo: support@servicedesk.example\r\n"
        f"Subject: Backlog problem {n}\r\nMessage-ID: <backlog-{n}@example.com>\r\n"
        "Date: Mon, 02 Jun 2025 10:00:00 +0000\r\nMIME-Version: 1.0\r\n"
        f"Content-Type: text/plain; charset=utf-8\r\n\r\nProblem {n}.\r\n"
    ).encode()


@pytest.fixture
def poll_settings(settings):  # type: ignore[no-untyped-def]
    """Set IMAP_POLL_SECONDS / IMAP_POLL_BATCH for the test."""

    def apply(**values: float) -> None:
        settings.SERVICEDESK_EMAIL = {**settings.SERVICEDESK_EMAIL, **values}

    return apply


@pytest.fixture
def sent(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The UID commands the poller sends, in order."""
    commands: list[str] = []
    uid_command = imaplib.IMAP4.uid

    def recording_uid(self: imaplib.IMAP4, command: str, *args: str):  # type: ignore[no-untyped-def]
        commands.append(command.upper())
        return uid_command(self, command, *args)

    monkeypatch.setattr(imaplib.IMAP4, "uid", recording_uid)
    return commands


def counts(report: PollReport) -> tuple[int, int, int, int, int, bool, str]:
    return (
        report.fetched,
        report.stored,
        report.duplicates,
        report.quarantined,
        report.marked,
        report.budget_spent,
        report.error,
    )


def seen(dovecot: Dovecot, user: str) -> dict[int, bool]:
    return {uid: "\\Seen" in flags for uid, flags in dovecot.flags(user).items()}


def stored_uids(account: MailAccount) -> list[int]:
    return sorted(int(key.rsplit(":", 1)[1]) for key in InboundEmail.objects.values_list("source_key", flat=True))


# Several batches; each mail costs its full intake, so the backlog stays small.
BACKLOG = 150
BATCH = 40


def test_one_poll_drains_a_backlog_larger_than_a_batch(dovecot, make_account, poll_settings, sent):
    poll_settings(IMAP_POLL_BATCH=BATCH, IMAP_POLL_SECONDS=3600)
    user = dovecot.new_user()
    dovecot.append(user, *(mail(n) for n in range(1, BACKLOG + 1)))
    account = make_account(user)

    report = mailbox_poll(account=account)

    assert counts(report) == (BACKLOG, BACKLOG, 0, 0, BACKLOG, False, "")
    # One search; per batch (40, 40, 40, 30) one FETCH of flags and sizes, one
    # of the bodies and one STORE of the flags; then a search that finds nothing.
    assert sent == ["SEARCH", *(["FETCH", "FETCH", "STORE"] * 4), "SEARCH"]
    assert seen(dovecot, user) == dict.fromkeys(range(1, BACKLOG + 1), True)
    assert InboundEmail.objects.filter(status="processed").count() == BACKLOG
    assert stored_uids(account) == list(range(1, BACKLOG + 1))
    assert Ticket.objects.count() == BACKLOG

    again = mailbox_poll(account=account)

    assert counts(again) == (0, 0, 0, 0, 0, False, "")
    assert InboundEmail.objects.count() == BACKLOG


def test_a_body_fetch_is_limited_by_the_messages_sizes(dovecot, make_account, monkeypatch, sent):
    monkeypatch.setattr(imap, "FETCH_MAX_BYTES", len(mail(1)) * 2)
    user = dovecot.new_user()
    dovecot.append(user, *(mail(n) for n in range(1, 6)))
    account = make_account(user)

    report = mailbox_poll(account=account)

    assert counts(report) == (5, 5, 0, 0, 5, False, "")
    # Sizes first, then bodies in groups of two, two and one, each group marked after it is stored.
    assert sent == ["SEARCH", "FETCH", *(["FETCH", "STORE"] * 3), "SEARCH"]
    assert seen(dovecot, user) == dict.fromkeys(range(1, 6), True)


def test_mail_arriving_during_the_poll_is_taken_by_the_same_poll(dovecot, make_account, monkeypatch):
    user = dovecot.new_user()
    dovecot.append(user, mail(1), mail(2))
    account = make_account(user)
    ingest = imap.email_ingest
    appended: list[int] = []

    def arriving(**kwargs):  # type: ignore[no-untyped-def]
        if not appended:
            dovecot.append(user, mail(3))
            appended.append(3)
        return ingest(**kwargs)

    monkeypatch.setattr(imap, "email_ingest", arriving)

    report = mailbox_poll(account=account)

    assert counts(report) == (3, 3, 0, 0, 3, False, "")
    assert seen(dovecot, user) == {1: True, 2: True, 3: True}
    assert stored_uids(account) == [1, 2, 3]


def test_mail_another_poller_took_after_the_search_is_skipped(dovecot, make_account, poll_settings, monkeypatch):
    poll_settings(IMAP_POLL_BATCH=2)
    user = dovecot.new_user()
    dovecot.append(user, *(mail(n) for n in range(1, 5)))
    account = make_account(user)
    ingest = imap.email_ingest

    def another_poller_takes_3(**kwargs):  # type: ignore[no-untyped-def]
        if kwargs["source_key"].endswith(":1"):
            other = dovecot.client(user)
            other.select("INBOX")
            other.uid("STORE", "3", "+FLAGS", "(\\Seen)")
            other.logout()
        return ingest(**kwargs)

    monkeypatch.setattr(imap, "email_ingest", another_poller_takes_3)

    report = mailbox_poll(account=account)

    # UID 3 was in the search's answer, but the second batch's flags show it taken.
    assert counts(report) == (3, 3, 0, 0, 3, False, "")
    assert stored_uids(account) == [1, 2, 4]
    assert seen(dovecot, user) == dict.fromkeys(range(1, 5), True)


def test_the_time_budget_stops_a_poll_and_the_next_continues(dovecot, make_account, poll_settings):
    # A spent budget still lets a poll take one message: every poll moves on.
    poll_settings(IMAP_POLL_SECONDS=0)
    user = dovecot.new_user()
    dovecot.append(user, *(mail(n) for n in range(1, 6)))
    account = make_account(user)

    first = mailbox_poll(account=account)

    assert counts(first) == (1, 1, 0, 0, 1, True, "")
    assert str(first) == (
        f"{account.name}: fetched 1, stored 1, duplicates 0, quarantined 0, marked 1; "
        "time budget spent, the rest waits for the next poll"
    )
    assert seen(dovecot, user) == {1: True, 2: False, 3: False, 4: False, 5: False}
    assert stored_uids(account) == [1]

    second = mailbox_poll(account=account)

    assert counts(second) == (1, 1, 0, 0, 1, True, "")
    assert seen(dovecot, user) == {1: True, 2: True, 3: False, 4: False, 5: False}
    assert stored_uids(account) == [1, 2]

    poll_settings(IMAP_POLL_SECONDS=50)
    rest = mailbox_poll(account=account)

    assert counts(rest) == (3, 3, 0, 0, 3, False, "")
    assert seen(dovecot, user) == dict.fromkeys(range(1, 6), True)
    assert stored_uids(account) == [1, 2, 3, 4, 5]
    assert InboundEmail.objects.filter(status="processed").count() == 5
    assert Ticket.objects.count() == 5


def failing(n: int, monkeypatch) -> None:
    receive = services.inbound_message_receive
    calls = {"n": 0}

    def failing_nth(**kwargs):  # type: ignore[no-untyped-def]
        calls["n"] += 1
        if calls["n"] == n:
            raise OperationalError("server closed the connection unexpectedly")
        return receive(**kwargs)

    monkeypatch.setattr(services, "inbound_message_receive", failing_nth)


def test_a_database_failure_marks_what_was_committed_before_it(dovecot, make_account, monkeypatch, poll_settings):
    poll_settings(IMAP_COMMIT_BATCH=1)
    user = dovecot.new_user()
    dovecot.append(user, mail(1), mail(2), mail(3))
    account = make_account(user)
    failing(2, monkeypatch)

    with pytest.raises(OperationalError):
        mailbox_poll(account=account)

    assert seen(dovecot, user) == {1: True, 2: False, 3: False}
    assert list(InboundEmail.objects.values_list("status", flat=True)) == ["processed"]
    assert Ticket.objects.count() == 1

    report = mailbox_poll(account=account)

    assert counts(report) == (2, 2, 0, 0, 2, False, "")
    assert seen(dovecot, user) == {1: True, 2: True, 3: True}
    assert sorted(InboundEmail.objects.values_list("status", flat=True)) == ["processed"] * 3
    assert Ticket.objects.count() == 3


def test_a_database_failure_undoes_its_whole_transaction_and_marks_none_of_it(
    dovecot, make_account, monkeypatch, poll_settings
):
    poll_settings(IMAP_COMMIT_BATCH=10)
    user = dovecot.new_user()
    dovecot.append(user, mail(1), mail(2), mail(3))
    account = make_account(user)
    failing(2, monkeypatch)

    with pytest.raises(OperationalError):
        mailbox_poll(account=account)

    # Mail 1 was stored in the transaction mail 2 broke: rolled back, so not marked either.
    assert seen(dovecot, user) == {1: False, 2: False, 3: False}
    assert (InboundEmail.objects.count(), Ticket.objects.count()) == (0, 0)

    report = mailbox_poll(account=account)

    assert counts(report) == (3, 3, 0, 0, 3, False, "")
    assert seen(dovecot, user) == {1: True, 2: True, 3: True}
    assert Ticket.objects.count() == 3


def test_one_transaction_stores_many_mails_and_a_duplicate_among_them_costs_the_others_nothing(
    dovecot, make_account, poll_settings
):
    poll_settings(IMAP_COMMIT_BATCH=50)
    user = dovecot.new_user()
    # The same mail twice (two copies in the folder), between others.
    dovecot.append(user, mail(1), mail(2), mail(2), mail(3))
    account = make_account(user)

    report = mailbox_poll(account=account)

    assert counts(report) == (4, 3, 1, 0, 4, False, "")
    assert seen(dovecot, user) == dict.fromkeys(range(1, 5), True)
    assert Ticket.objects.count() == 3


def test_a_processed_folder_receives_a_backlog_in_groups(dovecot, make_account, poll_settings, sent):
    poll_settings(IMAP_POLL_BATCH=4)
    user = dovecot.new_user()
    dovecot.create_folder(user, "Done")
    dovecot.append(user, *(mail(n) for n in range(1, 11)))
    account = make_account(user, processed_folder="Done")

    report = mailbox_poll(account=account)

    assert counts(report) == (10, 10, 0, 0, 10, False, "")
    assert sent == ["SEARCH", *(["FETCH", "FETCH", "MOVE"] * 3), "SEARCH"]
    assert dovecot.flags(user) == {}
    assert sorted(dovecot.flags(user, "Done")) == list(range(1, 11))
    assert stored_uids(account) == list(range(1, 11))


def test_uid_sets_are_written_as_ranges():
    assert imap._uid_set([1]) == "1"
    assert imap._uid_set([3, 1, 2, 7, 9, 10, 10]) == "1:3,7,9:10"


class FetchAnswer:
    """A connection whose UID FETCH answers with the given data, as imaplib returns it."""

    def __init__(self, data: list[object]) -> None:
        self.data = data

    def uid(self, command: str, *args: str) -> tuple[str, list[object]]:
        return "OK", self.data


def test_bodies_are_matched_by_uid_before_or_after_the_literal_and_other_responses_ignored():
    answer = FetchAnswer(
        [
            (b"1 (UID 7 BODY[] {5}", b"first"),
            b")",
            # A server that sends the UID after the body.
            (b"2 (BODY[] {6}", b"second"),
            b" UID 9)",
            # Another session's flag change, and a UID that was not asked for.
            b"3 (FLAGS (\\Seen))",
            (b"4 (UID 12 BODY[] {5}", b"other"),
            b")",
        ]
    )

    assert imap._fetch(answer, [7, 9]) == {7: b"first", 9: b"second"}  # type: ignore[arg-type]
