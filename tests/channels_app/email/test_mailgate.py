"""``manage.py ingest_email`` in both modes as a mail server runs it (one process
per mail), and the answers of the thin pipe (``--url``, ``mailgate.py``)."""

from __future__ import annotations

import http.server
import io
import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest
from django.core.management import call_command
from django.db import connection

from channels_app.email import mailgate
from channels_app.email.api import signature_valid
from channels_app.email.models import InboundEmail
from servicedesk.tickets.models import Ticket
from tests.channels_app.email.test_ingest import mail

ROOT = Path(__file__).resolve().parents[3]
SECRET = "mailgate-test-secret"


@pytest.fixture
def desk(live_server, settings) -> str:
    """The inbound endpoint of a desk served on a free port, with the secret set."""
    settings.SERVICEDESK = {**settings.SERVICEDESK, "INBOUND_EMAIL_SECRET": SECRET}
    return f"{live_server.url}/api/v1/inbound/email/"


def manage(*args: str, raw: bytes, env: dict[str, str]) -> tuple[int, str, str]:
    done = subprocess.run(
        [sys.executable, "manage.py", "ingest_email", *args],
        cwd=ROOT,
        input=raw,
        env=env,
        capture_output=True,
        timeout=120,
        check=False,
    )
    return done.returncode, done.stdout.decode(), done.stderr.decode()


def mail_host_env(**extra: str) -> dict[str, str]:
    """A mail host's environment: the secret, and no Django settings that could be loaded."""
    env = {key: value for key, value in os.environ.items() if key not in ("DATABASE_URL", "REDIS_URL")}
    return {**env, "DJANGO_SETTINGS_MODULE": "no.such.settings", mailgate.SECRET_VARIABLE: SECRET, **extra}


def desk_env(tmp_path: Path) -> dict[str, str]:
    """The desk's own environment, on this test's database."""
    name = connection.settings_dict["NAME"]
    return {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "servicedesk.settings.test",
        "DATABASE_URL": urlunsplit(urlsplit(os.environ["DATABASE_URL"])._replace(path=f"/{name}")),
        "SERVICEDESK_VAR_DIR": str(tmp_path / "var"),
        "LOG_LEVEL": "WARNING",
    }


# --- The two modes, in a process of their own ------------------------------------


@pytest.mark.django_db(transaction=True)
def test_thin_mode_hands_the_mail_to_the_desk_without_starting_django(desk):
    first = manage("--url", desk, raw=mail(), env=mail_host_env())
    second = manage("--url", desk, raw=mail(), env=mail_host_env())

    reference = Ticket.objects.get().reference
    assert first == (0, f"stored {reference}\n", "")
    assert second == (0, f"duplicate {reference}\n", "")
    assert list(InboundEmail.objects.values_list("source", "status")) == [("http", "processed")]


@pytest.mark.django_db(transaction=True)
def test_thin_mode_exits_zero_for_a_quarantined_mail(desk):
    result = manage("--url", desk, raw=mail(sender="Alice <alice@@example..com>"), env=mail_host_env())

    assert result == (0, "quarantined no sender address\n", "")
    assert InboundEmail.objects.get().status == "quarantined"


@pytest.mark.django_db(transaction=True)
def test_thin_mode_reads_the_secret_from_a_file(desk, tmp_path):
    secret_file = tmp_path / "secret"
    secret_file.write_text(SECRET + "\n")
    env = mail_host_env()
    del env[mailgate.SECRET_VARIABLE]

    code, out, err = manage("--url", desk, "--secret-file", str(secret_file), raw=mail(), env=env)

    assert (code, out, err) == (0, f"stored {Ticket.objects.get().reference}\n", "")


def test_thin_mode_exits_75_when_the_desk_is_unreachable():
    code, out, err = manage("--url", "http://127.0.0.1:9/api/v1/inbound/email/", raw=mail(), env=mail_host_env())

    assert (code, out) == (75, "")
    assert err.startswith("-: temporary failure, try again later: the desk is unreachable: ")


@pytest.mark.django_db(transaction=True)
def test_thin_mode_exits_75_for_a_wrong_secret_and_nothing_is_stored(desk):
    code, out, err = manage("--url", desk, raw=mail(), env=mail_host_env(**{mailgate.SECRET_VARIABLE: "wrong"}))

    assert (code, out) == (75, "")
    assert err == "-: temporary failure, try again later: the desk answered HTTP 401 Missing or invalid signature.\n"
    assert InboundEmail.objects.count() == 0


@pytest.mark.django_db(transaction=True)
def test_thin_mode_exits_one_when_the_desk_refuses_the_mail_as_too_large(desk, settings):
    settings.SERVICEDESK = {**settings.SERVICEDESK, "INBOUND_EMAIL_MAX_BYTES": 500}

    code, out, err = manage("--url", desk, raw=mail(body="x" * 1000), env=mail_host_env())

    assert (code, out) == (1, "")
    assert err == "-: refused by the desk: HTTP 413 The message is larger than 500 bytes.\n"
    assert InboundEmail.objects.count() == 0


@pytest.mark.django_db(transaction=True)
def test_thin_mode_with_an_option_of_the_full_command_runs_through_django(desk, tmp_path):
    env = {**desk_env(tmp_path), mailgate.SECRET_VARIABLE: SECRET}

    code, out, err = manage("--url", desk, "--verbosity", "0", raw=mail(), env=env)

    assert (code, out, err) == (0, f"stored {Ticket.objects.get().reference}\n", "")
    assert InboundEmail.objects.get().source == "http"


@pytest.mark.django_db(transaction=True)
def test_full_mode_stores_the_mail_from_its_own_process(tmp_path):
    code, out, err = manage(raw=mail(), env=desk_env(tmp_path))

    assert (code, out, err) == (0, f"stored {Ticket.objects.get().reference}\n", "")
    assert list(InboundEmail.objects.values_list("source", "status")) == [("pipe", "processed")]


@pytest.mark.django_db(transaction=True)
def test_the_command_called_in_process_with_url_posts_too(desk, tmp_path, monkeypatch):
    monkeypatch.setenv(mailgate.SECRET_VARIABLE, SECRET)
    path = tmp_path / "one.eml"
    path.write_bytes(mail())
    out, err = io.StringIO(), io.StringIO()

    call_command("ingest_email", "--url", desk, str(path), stdout=out, stderr=err)

    assert (out.getvalue(), err.getvalue()) == (f"stored {Ticket.objects.get().reference}\n", "")


# --- What each answer of the desk means to the mail server -------------------------


class Answer(http.server.BaseHTTPRequestHandler):
    status = 200
    body = b""

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.send_response(self.status)
        if 300 <= self.status < 400:
            self.send_header("Location", "https://desk.example/api/v1/inbound/email/")
        self.send_header("Content-Length", str(len(self.body)))
        self.end_headers()
        self.wfile.write(self.body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def answering() -> Iterator[type[Answer]]:
    """A stand-in for the desk that gives the answer the test sets on the class it yields."""
    handler = type("Answering", (Answer,), {})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    handler.url = f"http://127.0.0.1:{server.server_address[1]}/api/v1/inbound/email/"  # type: ignore[attr-defined]
    yield handler
    server.shutdown()
    server.server_close()


def post(url: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    status = mailgate.mails_post(
        [], url=url, secret_file=None, timeout=10, stdin=io.BytesIO(mail()), stdout=out, stderr=err
    )
    return status, out.getvalue(), err.getvalue()


@pytest.mark.parametrize(
    ("status", "body", "exit_status", "said"),
    [
        (200, b'{"outcome": "stored", "reference": "SD-1042", "reason": null}', 0, "stored SD-1042"),
        (200, b'{"outcome": "duplicate", "reference": "SD-1042", "reason": null}', 0, "duplicate SD-1042"),
        (200, b"<html>a proxy's page</html>", 75, "the desk gave an unexpected answer"),
        (503, b'{"detail": "Temporarily unavailable, try again later."}', 75, "HTTP 503"),
        (500, b"", 75, "HTTP 500"),
        (429, b'{"detail": "Request was throttled."}', 75, "HTTP 429"),
        (401, b'{"detail": "Missing or invalid signature."}', 75, "HTTP 401"),
        (404, b'{"detail": "Not found."}', 75, "HTTP 404"),
        (302, b"", 75, "redirects to https://desk.example/api/v1/inbound/email/"),
        (413, b'{"detail": "The message is larger than 500 bytes."}', 1, "refused by the desk: HTTP 413"),
        (400, b'{"detail": "Bad request."}', 1, "refused by the desk: HTTP 400"),
    ],
)
def test_each_answer_of_the_desk_gives_its_exit_status(answering, monkeypatch, status, body, exit_status, said):
    monkeypatch.setenv(mailgate.SECRET_VARIABLE, SECRET)
    answering.status, answering.body = status, body

    code, out, err = post(answering.url)

    assert code == exit_status
    assert said in (out if exit_status == 0 else err)
    assert (out == "") is (exit_status != 0)


def test_the_mail_is_signed_with_the_shared_secret(monkeypatch):
    received: dict[str, bytes | str] = {}

    class Recording(Answer):
        body = b'{"outcome": "stored", "reference": "SD-1", "reason": null}'

        def do_POST(self) -> None:
            received["body"] = self.rfile.read(int(self.headers["Content-Length"]))
            received["signature"] = self.headers["X-ServiceDesk-Signature"]
            received["type"] = self.headers["Content-Type"]
            self.send_response(200)
            self.send_header("Content-Length", str(len(self.body)))
            self.end_headers()
            self.wfile.write(self.body)

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Recording)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    monkeypatch.setenv(mailgate.SECRET_VARIABLE, SECRET)
    try:
        code, _out, _err = post(f"http://127.0.0.1:{server.server_address[1]}/")
    finally:
        server.shutdown()
        server.server_close()

    assert code == 0
    assert received["body"] == mail()
    assert received["type"] == "message/rfc822"
    assert signature_valid(mail(), str(received["signature"]), SECRET)


def test_without_a_secret_the_mail_waits(monkeypatch, tmp_path):
    monkeypatch.setenv(mailgate.SECRET_VARIABLE, "x")
    monkeypatch.delenv(mailgate.SECRET_VARIABLE)
    monkeypatch.setattr(mailgate, "PROJECT_ENV_FILE", tmp_path / ".env")

    code, out, err = post("http://127.0.0.1:9/")

    assert (code, out) == (75, "")
    assert err == "temporary failure, try again later: no secret: set SD_INBOUND_EMAIL_SECRET or pass --secret-file\n"


def test_the_secret_is_read_from_the_projects_env_file(monkeypatch, tmp_path, answering):
    monkeypatch.setenv(mailgate.SECRET_VARIABLE, "x")
    monkeypatch.delenv(mailgate.SECRET_VARIABLE)
    env_file = tmp_path / ".env"
    env_file.write_text(f"SD_INBOUND_EMAIL_SECRET={SECRET}\n")
    monkeypatch.setattr(mailgate, "PROJECT_ENV_FILE", env_file)
    answering.body = json.dumps({"outcome": "stored", "reference": "SD-7", "reason": None}).encode()

    assert mailgate.secret_find(None) == SECRET
    assert post(answering.url) == (0, "stored SD-7\n", "")
