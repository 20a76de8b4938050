"""The search in the zero-setup default (SQLite): ranked, paged and shown on the desk.

SQLite has no ``tsvector``: the text is matched by ``icontains`` and ranked in
Python (``search._portable_ranked``), and the page orders by that rank through
SQLite's ``json_extract``. The suite's database is PostgreSQL, so this runs in
a child process on a SQLite file of its own.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

SCRIPT = """
import django
django.setup()
from django.core.management import call_command
from django.db import connection
from django.test import Client
assert connection.vendor == "sqlite", connection.vendor
call_command("migrate", verbosity=0)
from servicedesk.core.pagination import CappedPaginator
from servicedesk.tickets.selectors import TicketFilters, ticket_list
from tests.factories import AgentFactory, CustomerFactory, QueueFactory, ticket_make
queue = QueueFactory(slug="support", name="Support")
manager = AgentFactory(username="max", role="manager")
wang = CustomerFactory(name="王芳", email="wang@example.com")
first = ticket_make(customer=wang, queue=queue, subject="Printer jam")
second = ticket_make(customer=CustomerFactory(name="Ann Lee", email="ann@example.com"), queue=queue, subject="Printer offline")
ticket_make(customer=CustomerFactory(name="Bo Li", email="bo@example.com"), queue=queue, subject="Refund")
found = ticket_list(user=manager, filters=TicketFilters.from_params({"search": "printer"}))
page = CappedPaginator(found, 1).page(2)
print("printer", page.paginator.count, sorted(t.subject for t in found))
print("name", [t.subject for t in ticket_list(user=manager, filters=TicketFilters.from_params({"search": "王芳"}))])
client = Client()
client.force_login(manager)
response = client.get("/desk/?q=printer", HTTP_ACCEPT_LANGUAGE="en")
print("desk", response.status_code, "Printer jam" in response.content.decode(), "2 tickets" in response.content.decode())
response = client.get("/api/v1/tickets/?search=printer")
print("api", response.status_code, response.json()["count"])
"""


def test_the_sqlite_default_ranks_pages_and_shows_a_search(tmp_path):
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "servicedesk.settings.local",
        "DEBUG": "false",
        "SERVICEDESK_VAR_DIR": str(tmp_path),
        "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}",
        "CELERY_TASK_ALWAYS_EAGER": "true",
    }
    env.pop("REDIS_URL", None)
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stderr[-3000:]
    lines = dict(line.split(" ", 1) for line in done.stdout.strip().splitlines() if " " in line)
    assert lines["printer"] == "2 ['Printer jam', 'Printer offline']"
    assert lines["name"] == "['Printer jam']"
    assert lines["desk"] == "200 True True"
    assert lines["api"] == "200 2"
