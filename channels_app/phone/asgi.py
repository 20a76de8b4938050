"""``POST /api/v1/phone/events/`` answered by the web server directly, in front of Django's request handling.

A telephone system posts three events or more for every call, in bursts.
Through Django's request handling (every middleware, a thread hop each) a
request cost about four milliseconds of CPU on the reference machine before
the view ran, so one process took under 250 events a second
(docs/performance.md, "Phone events"). This route answers the same requests
as the API view, in the same order of checks, with the same answers and the
headers the site's middleware adds to a JSON answer:

- With Redis and PostgreSQL (production), on the event loop: one Redis round
  trip reads the refusals and the rate counter of the address; the lines
  are this process's (``lines.py``, read on a thread at most once a second
  when they may have changed); the signature, JSON and fields are checked with the
  view's own functions; the event is stored with the view's statement
  (``services.event_insert``) on a connection of the loop's own pool
  (``core/loop_db.py``), in autocommit; the call joins the set of calls to fold (one
  more round trip), and a drain task is enqueued on a thread when none is
  queued. Anything unusual (the lines changed, a signature no known line
  made, Redis unreachable) goes to the view's function on a thread.
- Otherwise (the zero-setup default), ``api.event_receive`` on the event
  loop's pool of threads.

Every other method and path goes to Django; the OpenAPI schema still
describes the view (``api.CtiEventView``), which stays for both.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from django.conf import settings

from servicedesk.core.loop_db import loop_connection, loop_db_available
from servicedesk.live.threads import in_thread

from . import lines as phone_lines
from .api import (
    BODY_MAX_BYTES,
    PHONE_EVENTS_LIMIT,
    REFUSALS,
    SIGNATURE_HEADER,
    Answer,
    event_parse,
    event_receive,
    line_signed,
    line_takes,
    refused_too_often,
    throttled,
    unavailable,
)

log = logging.getLogger(__name__)

PATH = "/api/v1/phone/events/"
_SIGNATURE = SIGNATURE_HEADER.lower().encode("latin-1")

Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]
Asgi = Callable[[dict[str, Any], Receive, Send], Awaitable[None]]


def _receive_safely(body: bytes, signature: str, client: str, limits: bool = True) -> Answer:
    try:
        return event_receive(body=body, signature=signature, client=client, limits=limits)
    except Exception:
        log.exception("Phone event not received")
        return Answer(500, {"detail": "Server error."})


_in_thread_receive = in_thread(_receive_safely)


class _Direct:
    """This process's Redis client for the direct route."""

    def __init__(self) -> None:
        self.redis: Any = None


_DIRECT = _Direct()


def direct_enabled() -> bool:
    """The event loop route: with Redis, PostgreSQL and the fold in a worker, unless SD_PHONE_DIRECT_ROUTE=false."""
    return bool(
        settings.SERVICEDESK.get("PHONE_DIRECT_ROUTE", True)
        and settings.SERVICEDESK["PHONE_FOLD_IN_WORKER"]
        and getattr(settings, "REDIS_URL", "")
        and loop_db_available()
    )


def _opened() -> _Direct:
    direct = _DIRECT
    if direct.redis is None:
        import redis.asyncio

        direct.redis = redis.asyncio.Redis.from_url(settings.REDIS_URL, socket_connect_timeout=1, socket_timeout=2)
    return direct


def _redis_key(name: str) -> str:
    from django.core.cache import cache

    return str(cache.make_and_validate_key(name))


async def _direct_receive(body: bytes, signature: str, client: str) -> Answer:
    """``api.event_receive`` on the event loop, for the common case; the rest on a thread (module docstring)."""
    import psycopg
    import redis

    from .services import FOLD_SCHEDULED_SECONDS, drain_enqueue, fold_keys, fold_member

    direct = _opened()
    refused_key, refused_left = REFUSALS.counter(client)
    counter = PHONE_EVENTS_LIMIT.counter(client)
    rate = PHONE_EVENTS_LIMIT.rate()
    try:
        pipe = direct.redis.pipeline(transaction=False)
        pipe.get(_redis_key(refused_key))
        if counter is not None:
            pipe.incr(_redis_key(counter[0]))
            pipe.expire(_redis_key(counter[0]), counter[1])
        replies = await pipe.execute()
    except (redis.RedisError, OSError):
        log.warning("Phone event taken on a thread: Redis is unreachable", exc_info=True)
        return await _in_thread_receive(body, signature, client)
    refused = int(replies[0] or 0)
    limit = settings.SERVICEDESK["PHONE_REFUSED_PER_MINUTE"]
    if refused >= limit:
        return refused_too_often(refused_left)
    if counter is not None and rate is not None and int(replies[1]) > rate[0]:
        return throttled(counter[1])
    if len(body) > BODY_MAX_BYTES:
        return Answer(413, {"detail": f"An event is at most {BODY_MAX_BYTES} bytes."})
    known = phone_lines.LINES.current()
    if known is None:
        # Not checked within the last second: on a thread, which may read the shared token and the lines.
        known = await in_thread(phone_lines.LINES.get)()
    line = line_signed(known, body, signature)
    if line is None:
        # A line this process does not know yet, the default line still to make, or a bad signature:
        # the view's function reads the lines again (the address is counted against the limits already).
        return await _in_thread_receive(body, signature, client, False)
    from django.db import connections
    from django.utils import timezone

    from .services import event_insert

    received_at = timezone.now()
    event = event_parse(body, received_at)
    if isinstance(event, Answer):
        return event
    if not line_takes(line, event, known):
        return Answer(404, {"detail": "No such line."})
    sql, values = event_insert(line_id=line.pk, event=event, received_at=received_at, connection=connections["default"])
    stored = None
    for attempt in range(2):
        try:
            async with loop_connection() as conn:
                cursor = await conn.execute(sql, values)
                stored = await cursor.fetchone() is not None
            break
        except psycopg.OperationalError:
            # A connection the database closed (a restart) is dropped by the pool: once more on another.
            if attempt:
                log.warning("Phone event not stored: the database is unreachable", exc_info=True)
                return unavailable()
        except Exception:
            log.warning("Phone event not stored", exc_info=True)
            return unavailable()
    if stored:
        from .tasks import calls_fold_drain_task

        pending, scheduled = fold_keys()
        try:
            pipe = direct.redis.pipeline(transaction=False)
            pipe.sadd(pending, fold_member(line.pk, event.call_id))
            pipe.set(scheduled, "1", nx=True, ex=FOLD_SCHEDULED_SECONDS)
            _added, flagged = await pipe.execute()
            later = (not flagged) or await in_thread(drain_enqueue)(calls_fold_drain_task)
        except (redis.RedisError, OSError):
            later = False
        if not later:
            await in_thread(_fold_here)(line.pk, event.call_id)
    return Answer(200, {"outcome": "stored" if stored else "duplicate"})


def _fold_here(line_id: int, call_key: str) -> None:
    from django.db import InterfaceError, OperationalError

    from .models import PhoneLine
    from .services import call_fold_run

    try:
        call_fold_run(line=PhoneLine.objects.get(pk=line_id), call_key=call_key)
    except (OperationalError, InterfaceError):
        # The event is kept: the pending-events sweep folds its call when the database is back.
        log.warning("Call %s of line %s stored, not folded yet", call_key, line_id, exc_info=True)


def _headers(answer: Answer, secure: bool) -> list[tuple[bytes, bytes]]:
    headers = [(b"content-type", b"application/json")]
    # As SecurityMiddleware and XFrameOptionsMiddleware answer every request of the site.
    if settings.SECURE_CONTENT_TYPE_NOSNIFF:
        headers.append((b"x-content-type-options", b"nosniff"))
    for name, value in (
        (b"referrer-policy", settings.SECURE_REFERRER_POLICY),
        (b"cross-origin-opener-policy", settings.SECURE_CROSS_ORIGIN_OPENER_POLICY),
        (b"x-frame-options", settings.X_FRAME_OPTIONS),
    ):
        if value:
            text = value if isinstance(value, str) else ",".join(value)
            headers.append((name, text.encode("latin-1")))
    if secure and settings.SECURE_HSTS_SECONDS:
        hsts = f"max-age={settings.SECURE_HSTS_SECONDS}"
        if settings.SECURE_HSTS_INCLUDE_SUBDOMAINS:
            hsts += "; includeSubDomains"
        if settings.SECURE_HSTS_PRELOAD:
            hsts += "; preload"
        headers.append((b"strict-transport-security", hsts.encode("latin-1")))
    headers += [(name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in answer.headers.items()]
    return headers


async def events(scope: dict[str, Any], receive: Receive, send: Send) -> None:
    """The webhook: the body read up to one byte over the limit, then answered as the view answers."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return
        chunk = message.get("body", b"")
        chunks.append(chunk)
        size += len(chunk)
        if not message.get("more_body") or size > BODY_MAX_BYTES:
            break
    body = b"".join(chunks)[: BODY_MAX_BYTES + 1]
    # Sent twice, the header's values are joined with commas, as Django's request handling joins them.
    signature = ",".join(v.decode("latin-1") for n, v in scope["headers"] if n.lower() == _SIGNATURE)
    client = (scope.get("client") or ("unknown", 0))[0] or "unknown"
    if direct_enabled():
        try:
            answer = await _direct_receive(body, signature, client)
        except Exception:
            log.exception("Phone event not received")
            answer = Answer(500, {"detail": "Server error."})
    else:
        answer = await _in_thread_receive(body, signature, client)
    payload = json.dumps(answer.data, default=str, ensure_ascii=False).encode()
    start = {"type": "http.response.start", "status": answer.status}
    await send({**start, "headers": _headers(answer, scope.get("scheme") == "https")})
    await send({"type": "http.response.body", "body": payload})


def with_events_route(django_application: Any) -> Asgi:
    """The HTTP application: the phone events webhook here, everything else to Django."""

    async def application(scope: dict[str, Any], receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        root = scope.get("root_path", "")
        if root and path.startswith(root):
            path = path[len(root) :]
        if scope["type"] == "http" and scope.get("method") == "POST" and path == PATH:
            await events(scope, receive, send)
            return
        await django_application(scope, receive, send)

    return application
