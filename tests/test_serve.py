"""python -m servicedesk.serve: the web server with several worker processes."""

from __future__ import annotations

import http.client
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from servicedesk.serve import listening_socket

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_the_shared_socket_hands_its_connections_tcp_nodelay():
    listener = listening_socket("127.0.0.1", free_port())
    try:
        assert listener.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 1
        client = socket.create_connection(listener.getsockname())
        accepted, _address = listener.accept()
        # Inherited from the listening socket: no reply waits for a delayed ACK.
        assert accepted.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 1
        accepted.close()
        client.close()
    finally:
        listener.close()


def test_two_workers_answer_on_one_port_and_stop_on_sigterm(tmp_path):
    port = free_port()
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "servicedesk.settings.local",
        "DEBUG": "false",
        "SERVICEDESK_VAR_DIR": str(tmp_path),
        "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}",
    }
    env.pop("REDIS_URL", None)
    server = subprocess.Popen(
        [sys.executable, "-m", "servicedesk.serve", "--port", str(port), "--workers", "2"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        answers = []
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and len(answers) < 10:
            try:
                connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
                for _ in range(10):
                    connection.request("GET", "/healthz")
                    response = connection.getresponse()
                    response.read()
                    answers.append(response.status)
                connection.close()
            except OSError:
                time.sleep(0.5)
        assert answers == [200] * 10
    finally:
        server.send_signal(signal.SIGTERM)
        _out, errors = server.communicate(timeout=30)
    assert server.returncode == 0, errors.decode()[-2000:]


def _asgi_thresholds(value: str | None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "servicedesk.settings.test"}
    env.pop("SD_GC_THRESHOLDS", None)
    if value is not None:
        env["SD_GC_THRESHOLDS"] = value
    script = "import gc, servicedesk.asgi; print(','.join(map(str, gc.get_threshold())), gc.get_freeze_count() > 0)"
    return subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )


def test_the_web_application_freezes_its_start_up_objects_and_raises_the_young_generations_threshold():
    default = _asgi_thresholds(None)
    assert default.returncode == 0, default.stderr
    assert default.stdout.split() == ["10000,10,10", "True"]
    chosen = _asgi_thresholds("2000,20,5")
    assert chosen.returncode == 0, chosen.stderr
    assert chosen.stdout.split() == ["2000,20,5", "True"]


def test_thresholds_that_are_not_three_whole_numbers_stop_the_start_with_the_reason():
    for value in ("10000,10", "10000,ten,10", "0,10,10"):
        refused = _asgi_thresholds(value)
        assert refused.returncode != 0
        assert "ImproperlyConfigured: SD_GC_THRESHOLDS takes three whole numbers" in refused.stderr


def test_the_web_server_starts_no_parallel_workers_unless_told(monkeypatch):
    """``SD_DB_PARALLEL_WORKERS``: the web server's statements start no parallel workers (0) unless
    the environment sets a number; the database server's own setting elsewhere."""
    from servicedesk.serve import server_environment_set

    monkeypatch.delenv("SD_DB_PARALLEL_WORKERS", raising=False)
    monkeypatch.delenv("SD_DB_POOL", raising=False)
    server_environment_set()
    assert (os.environ["SD_DB_PARALLEL_WORKERS"], os.environ["SD_DB_POOL"]) == ("0", "true")
    monkeypatch.setenv("SD_DB_PARALLEL_WORKERS", "2")
    server_environment_set()
    assert os.environ["SD_DB_PARALLEL_WORKERS"] == "2"


def _setting_shown(environment: dict[str, str], setting: str = "max_parallel_workers_per_gather") -> str:
    """What a connection made by the settings says of ``setting``."""
    script = (
        "import django; django.setup()\n"
        "from django.db import connection\n"
        "with connection.cursor() as cursor:\n"
        f"    cursor.execute('SHOW {setting}')\n"
        "    print(cursor.fetchone()[0])\n"
    )
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "servicedesk.settings.local", **environment}
    env.pop("SD_DB_POOL", None)
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout.strip().splitlines()[-1]


def test_the_parallel_workers_setting_reaches_the_database_connection(db, postgres_only):
    from django.conf import settings
    from django.db import connection

    from tests.e2e.conftest import _database_url

    url = _database_url(settings.DATABASES["default"])
    with connection.cursor() as cursor:
        cursor.execute("SHOW max_parallel_workers_per_gather")
        servers_own = cursor.fetchone()[0]
    assert servers_own != "0"  # PostgreSQL's default is 2: the settings below change it
    assert _setting_shown({"DATABASE_URL": url, "SD_DB_PARALLEL_WORKERS": ""}) == servers_own
    assert _setting_shown({"DATABASE_URL": url, "SD_DB_PARALLEL_WORKERS": "0"}) == "0"
    assert _setting_shown({"DATABASE_URL": url, "SD_DB_PARALLEL_WORKERS": "1"}) == "1"


def test_the_plan_cache_mode_setting_reaches_the_database_connection(db, postgres_only):
    """``SD_DB_PLAN_CACHE_MODE``: the server's own unless set; sent only while statements are
    prepared; a bad value stops the start."""
    from django.conf import settings

    from tests.e2e.conftest import _database_url

    url = _database_url(settings.DATABASES["default"])
    base = {"DATABASE_URL": url, "SD_DB_PARALLEL_WORKERS": "0"}
    assert _setting_shown(base, "plan_cache_mode") == "auto"  # PostgreSQL's default
    assert _setting_shown({**base, "SD_DB_PLAN_CACHE_MODE": "force_custom_plan"}, "plan_cache_mode") == (
        "force_custom_plan"
    )
    custom_unprepared = {**base, "SD_DB_PLAN_CACHE_MODE": "force_custom_plan", "SD_DB_PREPARE_THRESHOLD": "0"}
    assert _setting_shown(custom_unprepared, "plan_cache_mode") == "auto"
    # Both startup options together.
    assert _setting_shown({**base, "SD_DB_PLAN_CACHE_MODE": "force_custom_plan"}) == "0"
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "servicedesk.settings.local", **base}
    env["SD_DB_PLAN_CACHE_MODE"] = "sometimes"
    refused = subprocess.run(
        [sys.executable, "-c", "import django; django.setup()"], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert refused.returncode != 0
    assert "ImproperlyConfigured: SD_DB_PLAN_CACHE_MODE: auto, force_custom_plan" in refused.stderr
