"""The web server's pool of PostgreSQL connections (``python -m servicedesk.serve``, SD_DB_POOL)."""

from __future__ import annotations

import http.client
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection

from tests.e2e.conftest import REPO_ROOT, _database_url, _free_port, wait_until

pytestmark = pytest.mark.django_db(transaction=True)


def _get(port: int, path: str) -> tuple[int, dict[str, object]]:
    client = http.client.HTTPConnection("127.0.0.1", port, timeout=20)
    try:
        client.request("GET", path)
        response = client.getresponse()
        return response.status, json.loads(response.read() or b"{}")
    finally:
        client.close()


def _server_backends(application_name: str) -> list[int]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pid FROM pg_stat_activity WHERE application_name = %s", [application_name])
        return [row[0] for row in cursor.fetchall()]


def _serve(tmp_path: Path, database_url: str, redis_url: str, **extra: str) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "servicedesk.settings.local",
        "DEBUG": "false",
        "SERVICEDESK_VAR_DIR": str(tmp_path),
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
        "SD_DB_POOL_MIN": "2",
        "SD_DB_POOL_MAX": "4",
        **extra,
    }
    env.pop("SD_DB_POOL", None)  # the server's own default
    return subprocess.Popen(
        [sys.executable, "-m", "servicedesk.serve", "--port", extra.get("PORT", "0"), "--no-access-log"],
        cwd=REPO_ROOT,
        env=env,
        stdout=(tmp_path / "server.log").open("wb"),
        stderr=subprocess.STDOUT,
    )


def _wait_until_answering(server: subprocess.Popen[bytes], port: int, tmp_path: Path) -> None:
    def up() -> bool:
        if server.poll() is not None:
            pytest.fail(f"The server exited:\n{(tmp_path / 'server.log').read_text()[-3000:]}")
        try:
            _get(port, "/healthz")
        except OSError:
            return False
        return True

    wait_until(up, timeout=60, what="the web server to answer")


def _stop(server: subprocess.Popen[bytes]) -> None:
    server.terminate()
    server.wait(timeout=20)


@pytest.fixture
def served(tmp_path: Path, e2e_redis_url: str) -> Iterator[tuple[int, str]]:
    """The product's web server with one worker on the test database; yields (port, its application_name)."""
    port = _free_port()
    name = f"sd-pool-test-{port}"
    url = f"{_database_url(settings.DATABASES['default'])}?application_name={name}"
    server = _serve(tmp_path, url, e2e_redis_url, PORT=str(port))
    try:
        _wait_until_answering(server, port, tmp_path)
        yield port, name
    finally:
        _stop(server)


def test_requests_borrow_pooled_connections_instead_of_opening_their_own(served):
    port, name = served
    seen: set[int] = set()
    for _ in range(30):
        status, body = _get(port, "/healthz")
        assert (status, body.get("database")) == (200, True)
        seen.update(_server_backends(name))
    # Without a pool a request opens a connection (a new server process) and closes it.
    assert 1 <= len(seen) <= 4


def test_a_connection_the_database_dropped_is_replaced_without_a_failed_request(served):
    port, name = served
    assert _get(port, "/healthz")[0] == 200
    dropped = _server_backends(name)
    assert dropped
    with connection.cursor() as cursor:
        for pid in dropped:
            cursor.execute("SELECT pg_terminate_backend(%s)", [pid])
    wait_until(lambda: not set(dropped) & set(_server_backends(name)), timeout=10, what="the backends to end")
    # Every pooled connection is checked before it is lent: no request sees the dead ones.
    for _ in range(10):
        status, body = _get(port, "/healthz")
        assert (status, body.get("database")) == (200, True)
    assert not set(dropped) & set(_server_backends(name))


def test_an_unreachable_database_is_a_503_within_the_pool_timeout(tmp_path, e2e_redis_url):
    port = _free_port()
    server = _serve(
        tmp_path,
        "postgres://postgres@127.0.0.1:1/servicedesk",
        e2e_redis_url,
        PORT=str(port),
        SD_DB_POOL_TIMEOUT="2",
    )
    try:
        _wait_until_answering(server, port, tmp_path)
        started = time.monotonic()
        status, body = _get(port, "/healthz")
        assert (status, body.get("database")) == (503, False)
        client = http.client.HTTPConnection("127.0.0.1", port, timeout=20)
        client.request("GET", "/help/contact/")
        response = client.getresponse()
        page = response.read().decode()
        client.close()
        assert response.status == 503
        assert response.getheader("Retry-After")
        assert "Temporarily unavailable" in page
        # Each request waited for a connection at most the pool's timeout, then gave up.
        assert time.monotonic() - started < 15
        assert server.poll() is None
    finally:
        _stop(server)
