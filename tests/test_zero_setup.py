"""The zero-setup path a newcomer takes: no DATABASE_URL, no REDIS_URL.

Settings are loaded in fresh processes, as ``scripts/run`` and an MTA pipe do,
so what is checked is what a person sees on their terminal.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _zero_setup_env(var_dir: Path, **extra: str) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if key not in {"DATABASE_URL", "REDIS_URL", "SITE_URL"}}
    env.update(
        {
            "DJANGO_SETTINGS_MODULE": "servicedesk.settings.local",
            "SERVICEDESK_VAR_DIR": str(var_dir),
            "PYTHONWARNINGS": "default",
            **extra,
        }
    )
    return env


def _run(args: list[str], env: dict[str, str], stdin: bytes = b"") -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(args, cwd=ROOT, env=env, input=stdin, capture_output=True, timeout=120, check=False)


def _site_url(env: dict[str, str]) -> str:
    done = _run(
        [
            sys.executable,
            "-c",
            "import django; django.setup(); from django.conf import settings; print(settings.SITE_URL)",
        ],
        env,
    )
    assert done.returncode == 0, done.stderr.decode()
    return done.stdout.decode().strip()


def test_site_url_follows_the_port_when_it_is_not_set(tmp_path: Path) -> None:
    assert _site_url(_zero_setup_env(tmp_path, PORT="8100")) == "http://127.0.0.1:8100"
    assert _site_url(_zero_setup_env(tmp_path)) == "http://127.0.0.1:8000"
    # An explicit SITE_URL (a proxy, a real host name) wins over the port.
    assert (
        _site_url(_zero_setup_env(tmp_path, PORT="8100", SITE_URL="https://help.example.com/"))
        == "https://help.example.com"
    )


def test_ingest_email_prints_no_broker_hostname_warning(tmp_path: Path) -> None:
    env = _zero_setup_env(tmp_path / "var")
    migrated = _run([sys.executable, "manage.py", "migrate", "--noinput", "-v", "0"], env)
    assert migrated.returncode == 0, migrated.stderr.decode()
    raw = (
        b"From: Alice Byrne <alice@example.com>\r\nTo: support@servicedesk.example\r\n"
        b"Subject: Printer\r\nMessage-ID: <zero-setup-1@example.com>\r\n\r\nIt is on fire.\r\n"
    )

    done = _run([sys.executable, "manage.py", "ingest_email"], env, stdin=raw)

    assert done.returncode == 0, done.stderr.decode()
    assert done.stdout.decode().startswith("stored SD-")
    assert "No hostname was supplied" not in done.stderr.decode()
    # The acknowledgement's task really went through the file broker, so the
    # connection the warning came from was made.
    assert len(list((tmp_path / "var" / "celery" / "queue").iterdir())) == 1


def test_the_call_access_rule_works_on_the_zero_setup_database(tmp_path: Path) -> None:
    """SQLite has no JSON containment: a call ringing for an agent is found there too (``access.rings_for``)."""
    env = _zero_setup_env(tmp_path / "var")
    migrated = _run([sys.executable, "manage.py", "migrate", "--noinput", "-v0"], env)
    assert migrated.returncode == 0, migrated.stderr.decode()
    script = """
import django
django.setup()
from django.contrib.auth.models import Group
from django.utils import timezone
from channels_app.phone.access import calls_visible_to
from channels_app.phone.models import Call, PhoneLine
from servicedesk.accounts.models import User
from servicedesk.tickets.models import Queue

other = Queue.objects.create(slug="other", name="Other")
line = PhoneLine.objects.create(key="other-line", name="Other line", number="+35311111111", queue=other)
ann, bob = (User.objects.create_user(username=name, email=name + "@example.com") for name in ("ann", "bob"))
for user in (ann, bob):
    user.groups.add(Group.objects.get_or_create(name="agent")[0])
call = Call.objects.create(line=line, call_id="c1", direction="in", rang_at=timezone.now(), ringing=[ann.pk])
print(list(calls_visible_to(ann).values_list("call_id", flat=True)), list(calls_visible_to(bob)))
"""
    done = _run([sys.executable, "-c", script], env)
    assert done.returncode == 0, done.stderr.decode()
    assert done.stdout.decode().split() == ["['c1']", "[]"]
