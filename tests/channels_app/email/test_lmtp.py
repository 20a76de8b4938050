"""The LMTP listener, through a real LMTP session (Python's ``smtplib.LMTP``).

LMTP answers the data once per recipient; ``smtplib`` reads the first of
those replies in ``data()``, the others are read here with ``getreply()``.
The listener runs in this process on its own loop and database threads, so
the tests commit for real (transactional database).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import smtplib
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest
from django.db import connection

from channels_app.email.lmtp import LmtpListener, delivery_store, listening_socket
from channels_app.email.models import InboundEmail
from servicedesk.tickets.models import Message, MessageKind, Ticket
from tests.channels_app.email.test_ingest import mail
from tests.outage import celery_broker

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("postgres_only")]

ROOT = Path(__file__).resolve().parents[3]
SENDER = "alice@example.com"
SUPPORT = "support@servicedesk.example"
SALES = "sales@servicedesk.example"


class Running:
    """A listener on a free port (or ``socket_path``), served by an event loop in a thread of its own."""

    def __init__(self, socket_path: str | None = None, **options: Any) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        sock = listening_socket(host="127.0.0.1", port=0, socket_path=socket_path)
        self.port = 0 if socket_path else sock.getsockname()[1]
        self.listener = LmtpListener(sock, hostname="desk.test", **options)
        self.call(self.listener.start())

    def call(self, coroutine: Any, timeout: float = 30) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout=timeout)

    def close(self) -> None:
        self.call(self.listener.stop(), timeout=60)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=10)
        self.loop.close()


@contextlib.contextmanager
def running(**options: Any) -> Iterator[Running]:
    server = Running(**options)
    try:
        yield server
    finally:
        server.close()


def client(port: int | str) -> smtplib.LMTP:
    """An LMTP session on a local port, or on a Unix socket (a path)."""
    if isinstance(port, str):
        session = smtplib.LMTP(port, local_hostname="mx.test")
    else:
        session = smtplib.LMTP("127.0.0.1", port, local_hostname="mx.test")
    code, _ = session.ehlo()  # LHLO
    assert code == 250
    return session


def deliver(session: smtplib.LMTP, raw: bytes, recipients: tuple[str, ...] = (SUPPORT,)) -> list[tuple[int, str]]:
    """One mail over an open session: the reply of each recipient, in order."""
    assert session.mail(SENDER)[0] == 250
    for recipient in recipients:
        assert session.rcpt(recipient)[0] == 250
    replies = [session.data(raw)]
    replies += [session.getreply() for _ in recipients[1:]]
    return [(code, text.decode()) for code, text in replies]


def test_one_mail_to_two_recipients_is_stored_once_and_both_get_250():
    with running() as server, contextlib.closing(client(server.port)) as session:
        replies = deliver(session, mail(), (SUPPORT, SALES))
        # Both replies were read: the session is in step for the next command.
        after = session.noop()

    ticket = Ticket.objects.get()
    assert replies == [(250, f"2.0.0 stored {ticket.reference}")] * 2
    assert after[0] == 250
    assert list(InboundEmail.objects.values_list("source", "status")) == [("lmtp", "processed")]
    assert Message.objects.filter(kind=MessageKind.PUBLIC_ENDUSER).count() == 1


def test_the_same_mail_delivered_again_gets_250_and_stores_nothing_new():
    with running() as server, contextlib.closing(client(server.port)) as session:
        first = deliver(session, mail())
        second = deliver(session, mail(), (SUPPORT, SALES))

    reference = Ticket.objects.get().reference
    assert first == [(250, f"2.0.0 stored {reference}")]
    assert second == [(250, f"2.0.0 duplicate {reference}")] * 2
    assert InboundEmail.objects.count() == 1
    assert Message.objects.filter(kind=MessageKind.PUBLIC_ENDUSER).count() == 1


def test_sessions_at_once_each_store_their_mail():
    raws = [mail(message_id=f"<m{n}@example.com>", sender=f"c{n}@example.com") for n in range(4)]
    replies: list[Any] = [None] * 4

    def one(n: int, port: int) -> None:
        with contextlib.closing(client(port)) as session:
            replies[n] = deliver(session, raws[n])

    with running(workers=2) as server:
        threads = [threading.Thread(target=one, args=(n, server.port)) for n in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)

    assert [reply[0][0] for reply in replies] == [250] * 4
    assert sorted(InboundEmail.objects.values_list("rfc_message_id", flat=True)) == [
        f"<m{n}@example.com>" for n in range(4)
    ]
    assert Ticket.objects.count() == 4


@contextlib.contextmanager
def database_down() -> Iterator[None]:
    """Every new connection goes to a port where nothing listens, as while PostgreSQL restarts.

    The listener's threads open their connections from the same settings
    dictionary as this one, so they meet the outage too."""
    saved = dict(connection.settings_dict)
    connection.close()
    connection.settings_dict.update(HOST="127.0.0.1", PORT=1)
    try:
        yield
    finally:
        connection.close()
        connection.settings_dict.clear()
        connection.settings_dict.update(saved)


def test_a_database_outage_answers_451_and_the_retry_after_it_is_stored(caplog):
    with running() as server, contextlib.closing(client(server.port)) as session:
        with database_down():
            during = deliver(session, mail(), (SUPPORT, SALES))
        after = deliver(session, mail(), (SUPPORT, SALES))

    ticket = Ticket.objects.get()
    assert during == [(451, "4.3.0 Temporary failure, try again later")] * 2
    assert after == [(250, f"2.0.0 stored {ticket.reference}")] * 2
    assert list(InboundEmail.objects.values_list("source", "status", "attempts")) == [("lmtp", "processed", 1)]
    assert "LMTP delivery deferred: OperationalError" in caplog.text


def test_connections_cut_by_a_database_restart_do_not_break_the_listener(settings):
    """Kept connections (CONN_MAX_AGE) that PostgreSQL closed under the listener:
    at most one delivery is deferred, and every later one is stored."""
    connection.settings_dict["CONN_MAX_AGE"] = 600
    try:
        with running() as server, contextlib.closing(client(server.port)) as session:
            first = deliver(session, mail(message_id="<before@example.com>"))
            with connection.cursor() as cursor:
                cursor.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND pid <> pg_backend_pid()"
                )
            replies = [deliver(session, mail(message_id="<after@example.com>"))[0][0] for _ in range(2)]
    finally:
        connection.settings_dict["CONN_MAX_AGE"] = 0

    # The first delivery finds its kept connection cut (deferred), and
    # closes it; the mail server's retry gets a new one.
    assert first[0][0] == 250
    assert replies == [451, 250]
    assert sorted(InboundEmail.objects.values_list("rfc_message_id", "status")) == [
        ("<after@example.com>", "processed"),
        ("<before@example.com>", "processed"),
    ]


def test_an_unreachable_broker_answers_451_and_stores_nothing():
    with (
        celery_broker("redis://127.0.0.1:1/0"),
        running() as server,
        contextlib.closing(client(server.port)) as session,
    ):
        replies = deliver(session, mail(), (SUPPORT, SALES))

    assert replies == [(451, "4.3.0 Temporary failure, try again later: the message broker is unreachable")] * 2
    assert InboundEmail.objects.count() == 0


def test_an_unexpected_failure_answers_451_never_5xx(monkeypatch, caplog):
    def broken(**kwargs: Any) -> Any:
        raise RuntimeError("a bug")

    monkeypatch.setattr("channels_app.email.lmtp.email_ingest", broken)
    with running() as server, contextlib.closing(client(server.port)) as session:
        replies = deliver(session, mail(), (SUPPORT, SALES))

    assert replies == [(451, "4.3.0 Temporary failure, try again later")] * 2
    assert "RuntimeError: a bug" in caplog.text


def test_oversized_mail_gets_552_for_each_recipient_and_nothing_is_stored(settings):
    settings.SERVICEDESK = {**settings.SERVICEDESK, "INBOUND_EMAIL_MAX_BYTES": 2000}
    raw = mail(body="A line of text.\r\n" * 200)
    with running() as server, contextlib.closing(client(server.port)) as session:
        announced = session.esmtp_features.get("size")
        replies = deliver(session, raw, (SUPPORT, SALES))
        after = session.noop()
        declared = session.mail(SENDER, [f"SIZE={len(raw)}"])

    assert announced == "2000"
    assert [code for code, _text in replies] == [552, 552]
    assert after[0] == 250
    assert declared[0] == 552
    assert InboundEmail.objects.count() == 0


def test_a_mail_that_cannot_be_used_gets_250_and_is_kept_in_quarantine():
    raw = mail(sender="Alice <alice@@example..com>")
    with running() as server, contextlib.closing(client(server.port)) as session:
        replies = deliver(session, raw, (SUPPORT, SALES))

    row = InboundEmail.objects.get()
    assert replies == [(250, "2.0.0 quarantined no sender address")] * 2
    assert (row.source, row.status, row.quarantine_reason) == ("lmtp", "quarantined", "no sender address")
    assert row.raw_bytes() == raw
    assert Ticket.objects.count() == 0


def test_stopping_lets_the_mail_in_progress_finish_and_closes_idle_sessions():
    storing = threading.Event()
    release = threading.Event()

    def slow_store(raw: bytes) -> str:
        storing.set()
        release.wait(timeout=30)
        return delivery_store(raw)

    server = Running(store=slow_store)
    replies: list[Any] = []
    busy = client(server.port)
    idle = client(server.port)
    delivering = threading.Thread(target=lambda: replies.append(deliver(busy, mail(), (SUPPORT, SALES))))
    delivering.start()
    assert storing.wait(timeout=30)

    stopped = asyncio.run_coroutine_threadsafe(server.listener.stop(), server.loop)
    idle_answer = idle.getreply()  # the 421 sent to a session between mails
    assert not stopped.done()
    release.set()
    delivering.join(timeout=30)
    stopped.result(timeout=30)
    server.close()
    busy_after = busy.getreply()  # then told as well, and closed

    reference = Ticket.objects.get().reference
    assert idle_answer == (421, b"4.3.2 Service shutting down, try again later")
    assert replies == [[(250, f"2.0.0 stored {reference}")] * 2]
    assert busy_after == (421, b"4.3.2 Service shutting down, try again later")
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", server.port), timeout=2)


def test_a_unix_socket_replaces_the_file_a_stopped_listener_left(tmp_path):
    path = str(tmp_path / "lmtp.sock")
    with socket.socket(socket.AF_UNIX) as stale:
        stale.bind(path)  # bound, never listened on: what a killed listener leaves

    with running(socket_path=path) as server, contextlib.closing(client(path)) as session:
        replies = deliver(session, mail())

    assert server.listener.address == f"unix:{path}"
    assert replies == [(250, f"2.0.0 stored {Ticket.objects.get().reference}")]


def command_start(tmp_path: Path, *args: str) -> tuple[subprocess.Popen[str], int, str]:
    """``manage.py lmtp_server`` on a free port and this test's database; its first line."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    name = connection.settings_dict["NAME"]
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "servicedesk.settings.test",
        "DATABASE_URL": urlunsplit(urlsplit(os.environ["DATABASE_URL"])._replace(path=f"/{name}")),
        "SERVICEDESK_VAR_DIR": str(tmp_path / "var"),
        "LOG_LEVEL": "WARNING",
    }
    process = subprocess.Popen(
        [sys.executable, "manage.py", "lmtp_server", "--port", str(port), *args],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    return process, port, process.stdout.readline()


def listener_children(pid: int) -> list[int]:
    return [int(child) for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


def test_the_command_serves_until_sigterm(tmp_path):
    process, port, ready = command_start(tmp_path, "--workers", "1")
    try:
        with contextlib.closing(client(port)) as session:
            replies = deliver(session, mail(), (SUPPORT, SALES))
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()

    reference = Ticket.objects.get().reference
    assert ready == f"LMTP listener on inet:127.0.0.1:{port}; SIGTERM stops it.\n"
    assert replies == [(250, f"2.0.0 stored {reference}")] * 2
    assert (process.returncode, err) == (0, "")
    assert out == "Stopping: finishing the mails in progress.\nStopped.\n"
    assert InboundEmail.objects.get().source == "lmtp"


def test_the_command_with_processes_serves_from_each_and_stops_them_all(tmp_path):
    process, port, ready = command_start(tmp_path, "--processes", "2", "--workers", "1")
    raws = [mail(message_id=f"<p{n}@example.com>", sender=f"p{n}@example.com") for n in range(6)]
    replies: list[Any] = [None] * len(raws)

    def one(n: int) -> None:
        with contextlib.closing(client(port)) as session:
            replies[n] = deliver(session, raws[n])

    try:
        threads = [threading.Thread(target=one, args=(n,)) for n in range(len(raws))]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
        children = listener_children(process.pid)
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()

    assert ready == f"LMTP listener on inet:127.0.0.1:{port} (2 processes); SIGTERM stops it.\n"
    assert [reply[0][0] for reply in replies] == [250] * len(raws)
    assert InboundEmail.objects.filter(source="lmtp").count() == len(raws)
    assert len(children) == 2
    assert (process.returncode, err) == (0, "")
    assert out == "Stopping: finishing the mails in progress.\nStopped.\n"
    for pid in children:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)


def test_when_one_process_dies_the_others_stop_and_the_command_exits_1(tmp_path):
    """For the service manager to start the listener again, whole."""
    process, _port, _ready = command_start(tmp_path, "--processes", "2", "--workers", "1")
    try:
        children = listener_children(process.pid)
        os.kill(children[0], signal.SIGKILL)
        _out, err = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()

    assert len(children) == 2
    assert process.returncode == 1
    assert f"LMTP listener process {children[0]} ended by itself (exit status -9): stopping the others" in err
    with pytest.raises(ProcessLookupError):
        os.kill(children[1], 0)
