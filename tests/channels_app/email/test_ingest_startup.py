"""``manage.py ingest_email`` starts for every mail: what it must not load (docs/performance.md, "Start-up").

A mail server runs the command once per message, so the modules below, each
imported only where it is used, must stay out of it; one imported at module
level again (or a ``reverse()`` in the acknowledgement) shows up here.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from django.db import connection

from servicedesk.tickets.models import Message, Ticket

ROOT = Path(__file__).resolve().parents[3]

# (Fernet, imported where a mailbox password is read, is not among them: both
# channel layers import it to push the new ticket to the workspace.)
NOT_LOADED = {
    "phonenumbers": "normalising a phone number (tickets/services/customers.py)",
    "drf_spectacular.openapi": "the API schema, loaded with the URL configuration",
    "servicedesk.urls": "the URL configuration: the acknowledgement's portal link is written out",
    "holidays": "seeding a calendar's holidays (sla/services.py)",
    # The acknowledgement is rendered by the mail engine (core/mail_templates.py),
    # which loads only the tag libraries a mail uses; the pages' engine would
    # import every app's, REST framework's with its renderers and requests.
    "rest_framework.renderers": "every app's tag library, loaded by the pages' template engine",
    "requests": "REST framework's tag library, loaded by the pages' template engine",
}

# manage.py as a mail server runs it, reporting the modules it loaded when it is done.
RUN = """
import json, runpy, sys
sys.argv = ["manage.py", "ingest_email"]
try:
    runpy.run_path("manage.py", run_name="__main__")
finally:
    with open({report!r}, "w") as report:
        json.dump(sorted(sys.modules), report)
"""


def database_url() -> str:
    db = connection.settings_dict
    return f"postgres://{db['USER']}:{db['PASSWORD']}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


def redis_url_apart() -> str:
    """The test Redis, in a database of its own that the test empties: the queued acknowledgement is left there."""
    base = os.environ.get("REDIS_URL", "")
    if not base:
        pytest.fail("This test needs Redis: set REDIS_URL (scripts/test does).")
    return base.rsplit("/", 1)[0] + "/14" if base.count("/") >= 3 else base.rstrip("/") + "/14"


@pytest.mark.parametrize("services", ["redis", "zero-setup"])
@pytest.mark.django_db(transaction=True)
def test_a_new_mail_is_stored_and_acknowledged_without_the_modules_it_does_not_need(tmp_path, postgres_only, services):
    n = uuid.uuid4().hex
    raw = (
        f"From: Dora Lind <dora-{n[:8]}@example.com>\r\nTo: support@servicedesk.example\r\nSubject: Start-up {n}\r\n"
        f"Message-ID: <{n}@example.com>\r\nDate: Mon, 02 Jun 2025 10:00:00 +0000\r\nMIME-Version: 1.0\r\n"
        "Content-Type: text/plain; charset=utf-8\r\n\r\nHello.\r\n"
    ).encode()
    report = tmp_path / "modules.json"
    env = {
        **os.environ,
        # As a mail server runs it: the project's settings, the acknowledgement
        # queued for a worker (in Redis, or without it the file broker under the
        # var directory) and the new ticket pushed to the workspace.
        "DJANGO_SETTINGS_MODULE": "servicedesk.settings.local",
        "DEBUG": "false",
        "DATABASE_URL": database_url(),
        "SERVICEDESK_VAR_DIR": str(tmp_path / "var"),
    }
    env.pop("REDIS_URL", None)
    if services == "redis":
        env["REDIS_URL"] = redis_url_apart()

    done = subprocess.run(
        [sys.executable, "-c", RUN.format(report=str(report))],
        cwd=ROOT,
        env=env,
        input=raw,
        capture_output=True,
        timeout=120,
        check=False,
    )

    assert done.returncode == 0, done.stderr.decode()
    ticket = Ticket.objects.get(subject=f"Start-up {n}")
    assert done.stdout.decode() == f"stored {ticket.reference}\n"
    ack = Message.objects.get(ticket=ticket, purpose=Message.Purpose.ACKNOWLEDGEMENT)
    assert "/help/tickets/" in ack.text and ack.delivery_status == "queued"
    loaded = set(json.loads(report.read_text()))
    assert "channels_app.email.services" in loaded
    assert {name: why for name, why in NOT_LOADED.items() if name in loaded} == {}
    if services == "redis":
        import redis

        redis.Redis.from_url(env["REDIS_URL"]).flushdb()
