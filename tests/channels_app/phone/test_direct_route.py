"""The generic CTI webhook as the web server answers it in front of Django (channels_app/phone/asgi.py).

A real ``python -m servicedesk.serve`` on the test database, with a Redis
database of these tests' own (emptied before and after) and, where the fold
is checked, a real Celery worker. Each bad request gets from the server the
same status and body as from the API view (run here through Django's test
client), with the site's security headers; a burst of a call's events costs
one drain task and folds the call once; the limits and a line's changes hold
as they do through the view.
"""

from __future__ import annotations

import http.client
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import redis
from django.conf import settings as django_settings
from django.test import Client

from channels_app.phone.api import signature_make
from channels_app.phone.models import Call, CallEvent, CallOutcome, PhoneLine
from channels_app.phone.services import fold_keys
from tests.channels_app.phone.test_events import LINE_NUMBER, SECRET, call_events
from tests.e2e.conftest import REPO_ROOT, WorkerProcess, wait_until
from tests.e2e.test_live_desk import serve, stop
from tests.factories import AgentFactory

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

URL = "/api/v1/phone/events/"
OWN_REDIS_DB = 13


def own_redis_url() -> str:
    base = django_settings.REDIS_URL
    assert base, "These tests need Redis: REDIS_URL (scripts/test sets it)."
    return base.rsplit("/", 1)[0] + f"/{OWN_REDIS_DB}"


@dataclass
class Desk:
    port: int
    log: Path
    redis: redis.Redis
    env: dict[str, str]

    def post(self, body: bytes, header: str) -> tuple[int, dict[str, Any], dict[str, str]]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            conn.request(
                "POST", URL, body=body, headers={"Content-Type": "application/json", "X-ServiceDesk-Signature": header}
            )
            response = conn.getresponse()
            data = response.read()
            return response.status, json.loads(data), {k.lower(): v for k, v in response.getheaders()}
        finally:
            conn.close()


def signed(event: dict[str, Any] | bytes, secret: str = SECRET, stamp: int | None = None) -> tuple[bytes, str]:
    body = event if isinstance(event, bytes) else json.dumps(event).encode()
    return body, signature_make(body, secret, stamp or int(time.time()))


def desk_start(tmp_path: Path, **extra: str) -> Iterator[Desk]:
    url = own_redis_url()
    client = redis.Redis.from_url(url)
    client.flushdb()
    settings_env = {
        "SD_PHONE_WEBHOOK_SECRET": SECRET,
        "SD_PHONE_REGION": "IE",
        "CELERY_TASK_ALWAYS_EAGER": "false",
        **extra,
    }
    server, port, log = serve(tmp_path, "direct", redis_url=url, **settings_env)
    from tests.e2e.test_live_desk import desk_env

    try:
        yield Desk(port=port, log=log, redis=client, env=desk_env(tmp_path, redis_url=url, **settings_env))
    finally:
        stop(server)
        client.flushdb()


@pytest.fixture
def desk(tmp_path: Path, settings) -> Iterator[Desk]:
    settings.SERVICEDESK = {**settings.SERVICEDESK, "PHONE_WEBHOOK_SECRET": SECRET, "PHONE_REGION": "IE"}
    yield from desk_start(tmp_path, SD_PHONE_REFUSED_PER_MINUTE="100")


def test_bad_requests_get_the_views_answers_with_the_sites_headers_and_store_nothing(desk: Desk):
    PhoneLine.objects.create(key="default", name="Main", number=LINE_NUMBER)
    PhoneLine.objects.create(key="sales", name="Sales", number="+35319999999")
    ring = call_events("bad")[0]
    cases = {
        "not JSON": signed(b"{not json"),
        "a JSON array": signed(b"[1, 2]"),
        "unknown event": signed({**ring, "event": "transfer"}),
        "not a number": signed({**ring, "from": "call me maybe"}),
        "no offset": signed({**ring, "at": "2026-03-02T09:15:00"}),
        "27 years ago": signed({**ring, "at": "1999-03-02T09:15:00+00:00"}),
        "NUL character": signed({**ring, "transcript": "a\u0000b"}),
        "another line's number": signed({**ring, "to": "+35319999999"}),
        "wrong secret": signed(ring, secret="not-the-secret"),
        "six minutes old": signed(ring, stamp=int(time.time()) - 360),
        "no signature": (json.dumps(ring).encode(), ""),
        "over 256 KiB": signed({**ring, "transcript": "x" * (256 * 1024)}),
    }
    view = Client()
    for name, (body, header) in cases.items():
        status, data, headers = desk.post(body, header)
        expected = view.post(URL, data=body, content_type="application/json", HTTP_X_SERVICEDESK_SIGNATURE=header)
        assert (status, data) == (expected.status_code, expected.json()), name
        assert status in (400, 401, 404, 413), name
        assert headers["content-type"] == "application/json", name
        assert headers["x-content-type-options"] == "nosniff" and headers["x-frame-options"] == "DENY", name
    assert not CallEvent.objects.exists()


def test_a_calls_burst_costs_one_drain_and_a_worker_folds_it_once(desk: Desk, tmp_path: Path):
    line = PhoneLine.objects.create(key="default", name="Main", number=LINE_NUMBER)
    AgentFactory(email="agent1@example.com")
    events = call_events("burst")
    for event in events:
        status, data, _headers = desk.post(*signed(event))
        assert (status, data) == (200, {"outcome": "stored"})
    pending, scheduled = fold_keys()
    assert desk.redis.smembers(pending) == {f"{line.pk}:burst".encode()}
    assert desk.redis.exists(scheduled)
    assert desk.redis.llen("celery") == 1  # one drain task for the three events
    assert not Call.objects.exists()
    worker = WorkerProcess(env=desk.env, queue="celery", log_path=tmp_path / "worker.log")
    try:
        worker.wait_for_log(" ready.", timeout=60)
        call = wait_until(
            lambda: Call.objects.filter(call_id="burst", outcome=CallOutcome.ANSWERED).first(),
            timeout=30,
            what="the call folded by the worker",
        )
        assert CallEvent.objects.filter(call=call).count() == 3
        assert not desk.redis.exists(pending) and not desk.redis.exists(scheduled)
        # The same event again changes nothing and enqueues nothing.
        status, data, _headers = desk.post(*signed(events[0]))
        assert (status, data) == (200, {"outcome": "duplicate"})
        assert CallEvent.objects.count() == 3 and desk.redis.llen("celery") == 0
        # The next call's first event is folded at once: its ring becomes a call (a pop) without waiting.
        desk.post(*signed(call_events("next")[0]))
        wait_until(lambda: Call.objects.filter(call_id="next").exists(), timeout=30, what="the next call")
    finally:
        worker.stop()


def test_a_line_made_renamed_or_switched_off_in_another_process_is_taken_at_once(desk: Desk):
    PhoneLine.objects.create(key="default", name="Main", number=LINE_NUMBER)
    assert desk.post(*signed(call_events("l-1")[0]))[0] == 200
    # A line made after the server read the lines: its first event is not refused.
    sales = PhoneLine(key="sales", name="Sales", number="+35319999999")
    sales.secret_set("sales-secret")
    sales.save()
    sales_ring = {**call_events("l-2")[0], "to": "+35319999999"}
    assert desk.post(*signed(sales_ring, secret="sales-secret"))[:2] == (200, {"outcome": "stored"})
    # A new secret: both accepted while the previous one is kept.
    sales.secret_set("sales-secret-2")
    sales.save()
    assert desk.post(*signed({**sales_ring, "call_id": "l-3"}, secret="sales-secret-2"))[0] == 200
    assert desk.post(*signed({**sales_ring, "call_id": "l-4"}, secret="sales-secret"))[0] == 200
    # Switched off in another process (the admin's, here a shell on the server's settings): refused
    # within a second or so, once the server sees the new token in the shared cache.
    subprocess.run(
        [
            sys.executable,
            "manage.py",
            "shell",
            "-c",
            "from channels_app.phone.models import PhoneLine; line = PhoneLine.objects.get(key='sales'); "
            "line.is_active = False; line.save()",
        ],
        cwd=REPO_ROOT,
        env=desk.env,
        check=True,
        timeout=120,
    )
    wait_until(
        lambda: (
            desk.post(*signed({**sales_ring, "call_id": f"l-{time.monotonic()}"}, secret="sales-secret-2"))[0] == 401
        ),
        timeout=5,
        what="the switched-off line refused",
    )
    # From then on it stays refused.
    assert desk.post(*signed({**sales_ring, "call_id": "l-after"}, secret="sales-secret-2"))[0] == 401
    assert {"l-1", "l-2", "l-3", "l-4"} <= set(CallEvent.objects.values_list("call_key", flat=True))
    assert not CallEvent.objects.filter(call_key="l-after").exists()


def test_refused_signatures_and_the_rate_limit_are_429_with_retry_after(tmp_path: Path, settings):
    settings.SERVICEDESK = {**settings.SERVICEDESK, "PHONE_WEBHOOK_SECRET": SECRET, "PHONE_REGION": "IE"}
    for desk in desk_start(tmp_path, SD_PHONE_REFUSED_PER_MINUTE="3", SD_API_THROTTLE_PHONE_EVENTS="8/minute"):
        PhoneLine.objects.create(key="default", name="Main", number=LINE_NUMBER)
        for _ in range(3):
            assert desk.post(*signed(call_events("r")[0], secret="guess"))[0] == 401
        status, data, headers = desk.post(*signed(call_events("r")[0]))
        assert status == 429 and int(headers["retry-after"]) >= 1
        assert "refused" in data["detail"]
        assert not CallEvent.objects.exists()
        # A new minute (the counters emptied): 8 events a minute, the ninth waits.
        desk.redis.flushdb()
        answers = [desk.post(*signed(call_events(f"n-{n}")[0]))[:2] for n in range(9)]
        assert [a[0] for a in answers] == [200] * 8 + [429]
        assert answers[-1][1]["reason"] == "throttled" and answers[-1][1]["retry_after"] >= 1
        assert CallEvent.objects.count() == 8
