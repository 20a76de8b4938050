"""Helpers that take the cache or the Celery broker away for a test, for real:
they point at a port where nothing listens."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

CLOSED_PORT_REDIS = "redis://127.0.0.1:1/0"

UNREACHABLE_CACHES = {
    "default": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": CLOSED_PORT_REDIS,
        "OPTIONS": {"socket_connect_timeout": 1, "socket_timeout": 1},
    }
}


def _reset_broker_connections(app: Any) -> None:
    """Close the broker connections and forget the routing cached for the previous configuration."""
    from kombu import pools

    app._pool = None
    app.__dict__.pop("amqp", None)
    pools.reset()


@contextlib.contextmanager
def celery_broker(url: str, *, queue: str = "celery") -> Iterator[Any]:
    """Tasks enqueued inside go to the broker at ``url`` (not run in-process); the
    Celery app's configuration and connections are put back afterwards."""
    from servicedesk.celery import app

    keys = ("task_always_eager", "broker_url", "broker_transport_options", "task_default_queue")
    saved = {key: app.conf.get(key) for key in keys}
    app.conf["task_always_eager"] = False
    app.conf["broker_url"] = url
    app.conf["broker_transport_options"] = {}
    app.conf["task_default_queue"] = queue
    _reset_broker_connections(app)
    try:
        yield app
    finally:
        for key, value in saved.items():
            app.conf[key] = value
        _reset_broker_connections(app)
